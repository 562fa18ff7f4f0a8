//! The batching producer.
//!
//! `send` routes a message to a partition (explicit, Kafka murmur2 of the key, or a sticky partition
//! for keyless messages), appends it to that partition's open batch and returns a [`DeliveryFuture`].
//! A batch is sealed when it reaches `batch_bytes` or its first message has waited `linger`; sealed
//! batches go to a per-partition sender task (one request in flight per partition by default, so order
//! is kept). Buffered and in-flight bytes are bounded by `max_buffered_bytes`: `send` waits for room.
//!
//! The producer is idempotent by default (Kafka's `enable.idempotence`): its client-built batches carry a
//! producer id and per-partition sequences, and a unary request that fails in a way that may have lost
//! it or its answer is sent again, unchanged, until `delivery_timeout`: the broker stores it once.

mod batch;
mod config;
mod delivery;
mod idempotence;
mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

pub use config::{ProducerConfig, RecordCompression, RequestObserver, RequestReport, SendMode, WireFormat};
pub use delivery::DeliveryFuture;

use batch::{Batch, RequestShape};
use sender::{Command, Report, SenderContext};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::partitioner::partition_for_key;
use crate::record::ProducerRecord;
use crate::types::Append;

/// A batching, asynchronous producer; clones share the same buffers and tasks.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    state: Mutex<State>,
    buffer: Arc<Semaphore>,
    buffer_limit: u32,
    linger_wake: Arc<Notify>,
    ctx: SenderContext,
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, TopicState>,
}

/// The broker's default `max.message.bytes`, used if a topic's description lacks it.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What the producer learns of a topic from the broker.
#[derive(Clone, Copy, Debug)]
struct TopicFacts {
    partitions: u32,
    max_message_bytes: usize,
}

/// Per-topic routing state, batches and sender queues.
struct TopicState {
    name: Arc<str>,
    partitions: u32,
    max_batch_bytes: usize,
    sticky: u32,
    open: Vec<Option<Batch>>,
    senders: Vec<Option<mpsc::UnboundedSender<Command>>>,
}

impl TopicState {
    fn new(name: &str, info: TopicFacts) -> Self {
        let n = info.partitions as usize;
        TopicState {
            name: Arc::from(name),
            partitions: info.partitions,
            max_batch_bytes: info.max_message_bytes,
            sticky: 0,
            open: (0..n).map(|_| None).collect(),
            senders: (0..n).map(|_| None).collect(),
        }
    }
}

impl Client {
    /// A producer on this connection. Must be called inside a tokio runtime.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }
}

impl Producer {
    /// A producer on `client`. Must be called inside a tokio runtime (it spawns its linger task).
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let buffer_limit = config.max_buffered_bytes.clamp(1, u32::MAX as usize) as u32;
        let ctx = SenderContext {
            client: client.clone(),
            compression: config.compression.unwrap_or(client.options().compression),
            shape: RequestShape {
                wait_durable: config.wait_durable,
                format: config.format,
                compression: config.record_compression,
                message_ids: config.message_ids,
            },
            max_in_flight: config.max_in_flight.max(1),
            stream_bytes: config.stream_bytes,
            stream_time: config.stream_time,
            observer: config.observer.clone(),
            report: Arc::new(Report::default()),
            idempotence: (config.idempotent && config.format == WireFormat::Batches)
                .then(|| Arc::new(idempotence::Idempotence::default())),
            delivery_timeout: config.delivery_timeout,
            retry_backoff: config.retry_backoff,
        };
        let inner = Arc::new(Inner {
            client,
            config,
            state: Mutex::new(State::default()),
            buffer: Arc::new(Semaphore::new(buffer_limit as usize)),
            buffer_limit,
            linger_wake: Arc::new(Notify::new()),
            ctx,
            closed: AtomicBool::new(false),
        });
        tokio::spawn(linger_loop(Arc::downgrade(&inner), inner.linger_wake.clone(), inner.config.linger));
        Producer { inner }
    }

    /// The settings this producer runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Queues a message; waits while the buffer is full. The returned future resolves once the
    /// broker has stored the message (or refused its batch).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed("producer"));
        }
        let size = record.encoded_len();
        let want = size.clamp(1, inner.buffer_limit as usize) as u32;
        let permit =
            inner.buffer.clone().acquire_many_owned(want).await.map_err(|_| ClientError::Closed("producer"))?;
        let facts = self.topic_facts(&record.topic).await?;
        let (topic, explicit, message) = record.into_parts();
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.topics.contains_key(&topic) {
            state.topics.insert(topic.clone(), TopicState::new(&topic, facts));
        }
        let Some(ts) = state.topics.get_mut(&topic) else { return Err(ClientError::Closed("producer")) };
        let partition = match explicit {
            Some(p) if p >= ts.partitions => {
                return Err(ClientError::invalid(format!(
                    "partition {p} does not exist: topic {topic} has {} partitions (0..{})",
                    ts.partitions, ts.partitions
                )));
            }
            Some(p) => p,
            None => match &message.key {
                Some(key) => partition_for_key(key, ts.partitions),
                None => ts.sticky,
            },
        };
        let slot = &mut ts.open[partition as usize];
        let new_batch = slot.is_none();
        let batch = slot.get_or_insert_with(|| Batch::new(ts.name.clone(), partition, ts.max_batch_bytes));
        let (index, rx) = batch.push(message, size, permit);
        let delivery = DeliveryFuture::new(rx, index, ts.name.clone());
        if batch.bytes >= inner.config.batch_bytes {
            if let Some(full) = slot.take() {
                inner.dispatch(ts, full);
            }
        } else if new_batch {
            inner.linger_wake.notify_one();
        }
        Ok(delivery)
    }

    /// Sends everything buffered and waits until every message sent before the call is acknowledged.
    /// Returns the offset ranges stored since the previous flush (contiguous runs merged), or the first
    /// error since then (each message's future has its own result).
    pub async fn flush(&self) -> Result<Vec<Append>> {
        let waiters = {
            let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut waiters = Vec::new();
            for ts in state.topics.values_mut() {
                for p in 0..ts.open.len() {
                    if let Some(batch) = ts.open[p].take() {
                        self.inner.dispatch(ts, batch);
                    }
                }
                for sender in ts.senders.iter().flatten() {
                    let (done, wait) = oneshot::channel();
                    if sender.send(Command::Flush(done)).is_ok() {
                        waiters.push(wait);
                    }
                }
            }
            waiters
        };
        for wait in waiters {
            let _ = wait.await;
        }
        let (appends, error) = self.inner.ctx.report.take();
        match error {
            Some(e) => Err(e),
            None => Ok(appends),
        }
    }

    /// Flushes, then refuses further sends.
    pub async fn close(&self) -> Result<Vec<Append>> {
        let result = self.flush().await;
        self.inner.closed.store(true, Ordering::Release);
        result
    }

    /// What routing and batching need of `topic` (asked of the broker once, then cached).
    async fn topic_facts(&self, topic: &str) -> Result<TopicFacts> {
        {
            let state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ts) = state.topics.get(topic) {
                return Ok(TopicFacts { partitions: ts.partitions, max_message_bytes: ts.max_batch_bytes });
            }
        }
        let description = self.inner.client.describe_topic(topic).await?;
        let partitions = description.topic.partitions.max(description.partitions.len() as u32);
        if partitions == 0 {
            return Err(ClientError::Protocol(format!("topic {topic} has no partitions")));
        }
        let max_message_bytes = description
            .topic
            .configs
            .get("max.message.bytes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        Ok(TopicFacts { partitions, max_message_bytes })
    }
}

impl Inner {
    /// Hands a sealed batch to its partition's sender task (starting it on first use).
    fn dispatch(&self, ts: &mut TopicState, batch: Batch) {
        let partition = batch.partition;
        if batch.messages.is_empty() {
            return;
        }
        if ts.sticky == partition && ts.partitions > 1 {
            ts.sticky = (ts.sticky + 1) % ts.partitions;
        }
        let sender = ts.senders[partition as usize].get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let ctx = self.ctx.clone();
            match self.config.mode {
                SendMode::Unary => tokio::spawn(sender::run_unary(ctx, rx)),
                SendMode::Stream => tokio::spawn(sender::run_stream(ctx, rx)),
            };
            tx
        });
        if let Err(mpsc::error::SendError(Command::Batch(batch))) = sender.send(Command::Batch(batch)) {
            // The task is gone (runtime shutting down): fail the batch rather than hang its futures.
            let (_, pending) = batch.into_request(self.ctx.shape, None);
            pending.resolve(Err(ClientError::Closed("producer")));
        }
    }

    /// Seals batches whose linger time is up; returns when the next one will be.
    fn seal_expired(&self, now: Instant) -> Option<Instant> {
        let linger = self.config.linger;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: Option<Instant> = None;
        for ts in state.topics.values_mut() {
            for p in 0..ts.open.len() {
                let due = match &ts.open[p] {
                    Some(b) => b.created + linger,
                    None => continue,
                };
                if due <= now {
                    if let Some(batch) = ts.open[p].take() {
                        self.dispatch(ts, batch);
                    }
                } else {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
        }
        next
    }
}

/// Seals lingering batches on time; exits once the producer is dropped.
async fn linger_loop(inner: Weak<Inner>, wake: Arc<Notify>, linger: Duration) {
    const IDLE: Duration = Duration::from_millis(100);
    loop {
        let next = match inner.upgrade() {
            Some(inner) => inner.seal_expired(Instant::now()),
            None => return,
        };
        let sleep_for = next.map_or(IDLE, |n| n.saturating_duration_since(Instant::now()).min(IDLE));
        if next.is_some() {
            tokio::time::sleep(sleep_for).await;
        } else {
            // Nothing lingering: wait for a new batch (or re-check liveness now and then).
            let _ = tokio::time::timeout(sleep_for.max(linger.min(IDLE)), wake.notified()).await;
        }
    }
}
