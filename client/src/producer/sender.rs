//! The per-partition sender task: ships sealed batches in order, unary or over a ProduceStream.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use janus_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::batch::{Batch, Pending, RequestShape, split_ranges};
use super::config::{RequestObserver, RequestReport};
use super::delivery::BatchAck;
use super::idempotence::{Idempotence, Session, retriable};
use crate::client::Client;
use crate::error::{ClientError, Result, codes};
use crate::types::{Append, Compression, merge_append};

/// What the producer asks of a partition's sender task.
pub(crate) enum Command {
    /// Send this batch after the ones before it.
    Batch(Batch),
    /// Answer once everything queued before has been acknowledged (closing an open stream).
    Flush(oneshot::Sender<()>),
}

/// Appends and the first error since the last flush.
#[derive(Default)]
pub(crate) struct Report {
    inner: Mutex<(Vec<Append>, Option<ClientError>)>,
}

impl Report {
    fn record(&self, topic: &str, partition: u32, result: &Result<BatchAck>) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(ack) => {
                for &(base_offset, last_offset) in &ack.ranges {
                    let append = Append { topic: topic.to_string(), partition, base_offset, last_offset };
                    merge_append(&mut guard.0, append);
                }
            }
            Err(e) => {
                if guard.1.is_none() {
                    guard.1 = Some(e.clone());
                }
            }
        }
    }

    /// Takes what was recorded since the last call.
    pub fn take(&self) -> (Vec<Append>, Option<ClientError>) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (std::mem::take(&mut guard.0), guard.1.take())
    }
}

/// Everything a sender task needs; shared by the producer's tasks.
#[derive(Clone)]
pub(crate) struct SenderContext {
    pub client: Client,
    pub compression: Compression,
    pub shape: RequestShape,
    pub max_in_flight: usize,
    pub stream_bytes: usize,
    pub stream_time: Duration,
    pub observer: Option<RequestObserver>,
    pub report: Arc<Report>,
    pub idempotence: Option<Arc<Idempotence>>,
    pub delivery_timeout: Duration,
    pub retry_backoff: Duration,
}

impl SenderContext {
    /// The idempotent session batches are stamped with now, if the producer is idempotent; `Err` when the
    /// broker could not give one (the batch fails with it).
    async fn session(&self) -> Result<Option<Arc<Session>>> {
        match &self.idempotence {
            None => Ok(None),
            Some(i) => i.session(&self.client).await.map(Some),
        }
    }

    /// Forgets `session` after one of its batches failed for good.
    async fn forget(&self, session: &Option<Arc<Session>>) {
        if let (Some(i), Some(s)) = (&self.idempotence, session) {
            i.reset(s).await;
        }
    }

    fn finish(
        &self,
        topic: &str,
        partition: u32,
        counts: (usize, usize),
        latency: Duration,
        result: &Result<BatchAck>,
    ) {
        self.report.record(topic, partition, result);
        if let Some(observer) = &self.observer {
            observer(&RequestReport {
                topic: topic.to_string(),
                partition,
                messages: counts.0,
                bytes: counts.1,
                latency,
                ok: result.is_ok(),
            });
        }
    }
}

/// Unary mode: one Produce call per batch, at most `max_in_flight` at once.
pub(crate) async fn run_unary(ctx: SenderContext, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut in_flight: VecDeque<JoinHandle<()>> = VecDeque::new();
    // An idempotent session's first batch to a partition goes alone: a partition with no state for the
    // producer takes any sequence, so a later batch overtaking it would make it out of order for good.
    let mut started = ctx.idempotence.is_none();
    let mut current: Option<Arc<Session>> = None;
    while let Some(command) = rx.recv().await {
        match command {
            Command::Batch(batch) => {
                let session = ctx.session().await;
                if let Ok(Some(s)) = &session
                    && !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, s))
                {
                    current = Some(Arc::clone(s));
                    started = false;
                }
                let limit = if started { ctx.max_in_flight.max(1) } else { 1 };
                while in_flight.len() >= limit {
                    if let Some(handle) = in_flight.pop_front() {
                        let _ = handle.await;
                    }
                }
                let topic = batch.topic.clone();
                let partition = batch.partition;
                // Stamped here, in the partition's send order.
                let stamp = session.as_ref().ok().and_then(|s| s.as_deref());
                let (request, pending) = batch.into_request(ctx.shape, stamp);
                let send = Unary { topic, partition, request, pending };
                let handle = tokio::spawn(send_unary(ctx.clone(), send, session));
                if started {
                    in_flight.push_back(handle);
                } else {
                    // The session's first batch: answered before the next one goes.
                    let _ = handle.await;
                    started = true;
                }
            }
            Command::Flush(done) => {
                for handle in in_flight.drain(..) {
                    let _ = handle.await;
                }
                let _ = done.send(());
            }
        }
    }
    for handle in in_flight {
        let _ = handle.await;
    }
}

/// One batch's unary request, ready to send.
struct Unary {
    topic: Arc<str>,
    partition: u32,
    request: pb::ProduceRequest,
    pending: Pending,
}

async fn send_unary(ctx: SenderContext, send: Unary, session: Result<Option<Arc<Session>>>) {
    let Unary { topic, partition, request, pending } = send;
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            ctx.finish(&topic, partition, (pending.count, pending.bytes), Duration::ZERO, &Err(e.clone()));
            pending.resolve(Err(e));
            return;
        }
    };
    let started = Instant::now();
    let deadline = started + ctx.delivery_timeout;
    let mut backoff = ctx.retry_backoff;
    let mut gap_backoff = Duration::from_millis(2);
    let result = loop {
        let result = ctx.client.produce_with(request.clone(), ctx.compression).await;
        match &result {
            // Safe only with idempotence: the broker answers a batch it already stored with its offsets.
            // A gap means an earlier batch of the partition is still on its way: try again almost at once.
            Err(e)
                if session.is_some()
                    && e.broker_code() == Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(gap_backoff).await;
                gap_backoff = (gap_backoff * 2).min(ctx.retry_backoff);
            }
            Err(e) if session.is_some() && retriable(e) && Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            _ => break result,
        }
    };
    if result.is_err() {
        ctx.forget(&session).await;
    }
    let latency = started.elapsed();
    let result = result.and_then(|appends| {
        let ranges = ranges_of(partition, &appends);
        let mut split = split_ranges(&ranges, &[pending.count]).ok_or_else(|| mismatch(&ranges, pending.count))?;
        Ok(BatchAck { partition, ranges: split.pop().unwrap_or_default() })
    });
    ctx.finish(&topic, partition, (pending.count, pending.bytes), latency, &result);
    pending.resolve(result);
}

/// Stream mode: batches go on one ProduceStream until it is big or old enough, or a flush comes.
pub(crate) async fn run_stream(ctx: SenderContext, mut rx: mpsc::UnboundedReceiver<Command>) {
    loop {
        let first = match rx.recv().await {
            None => return,
            Some(Command::Flush(done)) => {
                let _ = done.send(());
                continue;
            }
            Some(Command::Batch(batch)) => batch,
        };
        let open = stream_epoch(&ctx, first, &mut rx).await;
        if !open {
            return;
        }
    }
}

/// One stream: returns false once the command channel is closed.
async fn stream_epoch(ctx: &SenderContext, first: Batch, rx: &mut mpsc::UnboundedReceiver<Command>) -> bool {
    let topic = first.topic.clone();
    let partition = first.partition;
    let (tx, requests) = mpsc::channel::<pb::ProduceRequest>(4);
    let client = ctx.client.clone();
    let compression = ctx.compression;
    let started = Instant::now();
    let call = tokio::spawn(async move { client.produce_stream(ReceiverStream::new(requests), compression).await });
    let deadline = tokio::time::Instant::now() + ctx.stream_time;
    let mut pending: Vec<Pending> = Vec::new();
    let mut bytes = 0usize;
    let mut waiters = Vec::new();
    let mut open = true;
    let mut next = Some(first);
    // Without a session (the broker could not give one) batches go without a producer id.
    let session = ctx.session().await.unwrap_or_default();
    loop {
        if let Some(batch) = next.take() {
            let (request, p) = batch.into_request(ctx.shape, session.as_deref());
            bytes += p.bytes;
            pending.push(p);
            if tx.send(request).await.is_err() {
                break; // the call already failed; its error is collected below
            }
        }
        if bytes >= ctx.stream_bytes {
            break;
        }
        tokio::select! {
            command = rx.recv() => match command {
                None => { open = false; break; }
                Some(Command::Batch(batch)) => next = Some(batch),
                Some(Command::Flush(done)) => { waiters.push(done); break; }
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    drop(tx);
    let result = match call.await {
        Ok(result) => result,
        Err(e) => Err(ClientError::Protocol(format!("produce stream task failed: {e}"))),
    };
    if result.is_err() {
        ctx.forget(&session).await;
    }
    let latency = started.elapsed();
    let counts: Vec<usize> = pending.iter().map(|p| p.count).collect();
    let total: usize = counts.iter().sum();
    let per_batch = result.and_then(|appends| {
        let ranges = ranges_of(partition, &appends);
        split_ranges(&ranges, &counts).ok_or_else(|| mismatch(&ranges, total))
    });
    let whole: Result<BatchAck> = per_batch
        .as_ref()
        .map(|split| BatchAck { partition, ranges: split.iter().flatten().copied().collect() })
        .map_err(Clone::clone);
    ctx.finish(&topic, partition, (total, bytes), latency, &whole);
    match per_batch {
        Ok(split) => {
            for (p, ranges) in pending.into_iter().zip(split) {
                p.resolve(Ok(BatchAck { partition, ranges }));
            }
        }
        Err(e) => {
            for p in pending {
                p.resolve(Err(e.clone()));
            }
        }
    }
    for done in waiters {
        let _ = done.send(());
    }
    open
}

fn ranges_of(partition: u32, appends: &[pb::PartitionAppend]) -> Vec<(i64, i64)> {
    appends.iter().filter(|a| a.partition == partition).map(|a| (a.base_offset, a.last_offset)).collect()
}

fn mismatch(ranges: &[(i64, i64)], count: usize) -> ClientError {
    ClientError::Protocol(format!("sent {count} messages but the broker acknowledged offset ranges {ranges:?}"))
}
