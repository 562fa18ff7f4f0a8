//! Receive and acknowledge (RocketMQ 5's SimpleConsumer), retries through the group's retry topic, and
//! dead letters.
//!
//! A receive reads a topic's partitions, and the group's retry topic `%RETRY%<group>+<topic>` (RocketMQ 5's
//! "pop v2" name), from each queue's cursor and leases what it hands out (see [`super::leases`]). A message
//! not acknowledged within its invisible duration, or nacked, is copied into the retry topic through the
//! timer store, due after the back-off of its attempt (delay levels 3..18), and is then done in the queue
//! it came from, so the committed offset moves on and the rest of the partition keeps flowing while it
//! waits. After `max.reconsume.times` redeliveries the copy goes to `%DLQ%<group>` instead, with headers
//! naming where it came from (`RETRY_TOPIC`, `JANUS_ORIGIN_PARTITION`, `JANUS_ORIGIN_OFFSET`,
//! `ORIGIN_MESSAGE_ID`, `JANUS_DLQ_ATTEMPTS`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use janus_api::{EngineKind, Header, NewRecord, Record, RecordBatch, headers, now_ms, sync};
use janus_codec::message_id::new_message_id;
use tokio::time::Instant;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::fetch::{FetchRequest, Fetched, RecordFormat};
use crate::groups::validate_group_name;
use crate::messaging::handle::ReceiptHandle;
use crate::messaging::header_value as topic_header;
use crate::messaging::leases::QueueKey;
use crate::messaging::metrics as m;
use crate::messaging::schedule::retry_backoff_ms;
use crate::meta::timers::TimerEntry;
use crate::topics::Topic;

/// A group and a topic.
type GroupTopic = (Arc<str>, Arc<str>);

/// A receive, as every face hands it to the core.
#[derive(Clone, Debug)]
pub struct ReceiveRequest {
    /// The receiving group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// At most this many messages (1 to the broker's `max_receive_batch`).
    pub max_messages: u32,
    /// How long the messages stay invisible to other receivers (`None`: the broker default, 60 s).
    pub invisible: Option<Duration>,
    /// Only messages whose `TAGS` header is one of these; empty: every message.
    pub tags: Vec<String>,
    /// How long to wait when nothing is there (clamped to the broker's maximum).
    pub wait: Duration,
}

/// A received message.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The topic it was produced to (for a retry, the original topic).
    pub topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: i64,
    /// Its id (`UNIQ_KEY`; empty for a message produced without one through a face that adds none).
    pub message_id: String,
    /// Which delivery this is: 1, then 2 for the first redelivery, ...
    pub attempt: u32,
    /// What acknowledges it or changes its invisible duration.
    pub receipt_handle: String,
    /// When it becomes visible again unless acknowledged, milliseconds since the Unix epoch.
    pub invisible_until_ms: i64,
    /// The message as stored (for a retry: the retry topic's copy, with its offset there).
    pub record: Record,
}

/// Bytes to read for `wanted` messages: about 2 KiB each, from 16 KiB to 1 MiB (a read returns whole
/// batches, at least one); reading the broker's default 1 MiB to hand out 32 messages would decode and
/// drop the rest.
fn read_bytes(wanted: usize) -> u32 {
    (wanted as u32).saturating_mul(2048).clamp(16 << 10, 1 << 20)
}

/// The retry topic of `group` for `topic`.
pub fn retry_topic_name(group: &str, topic: &str) -> String {
    format!("%RETRY%{group}+{topic}")
}

/// The dead-letter topic of `group`.
pub fn dlq_topic_name(group: &str) -> String {
    format!("%DLQ%{group}")
}

fn header_str<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    topic_header(&record.headers, name)
}

fn header_num(record: &Record, name: &str) -> Option<i64> {
    header_str(record, name).and_then(|v| v.trim().parse().ok())
}

impl Core {
    fn check_invisible(&self, invisible: Duration) -> Result<(), BrokerError> {
        let c = &self.messaging.config;
        if invisible < c.min_invisible || invisible > c.max_invisible {
            return Err(BrokerError::new(
                ErrorCode::InvalidInvisibleTime,
                format!(
                    "invisible duration {} ms is outside the allowed {} ms to {} ms",
                    invisible.as_millis(),
                    c.min_invisible.as_millis(),
                    c.max_invisible.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Receives up to `max_messages` of a topic for a group, leasing each for the invisible duration;
    /// waits up to `wait` while there is nothing. Returns an empty list when the wait ends empty-handed.
    pub async fn receive(&self, req: ReceiveRequest) -> Result<Vec<ReceivedMessage>, BrokerError> {
        validate_group_name(&req.group)?;
        let retry_name = retry_topic_name(&req.group, &req.topic);
        janus_api::validate_topic_name(&retry_name).map_err(|e| {
            BrokerError::invalid(format!(
                "group '{}' cannot receive from '{}': its retry topic name is not valid ({e}); receiving groups \
                 are named with ASCII letters, digits, '.', '_' and '-'",
                req.group, req.topic
            ))
        })?;
        let topic = self.topic(&req.topic)?;
        let c = &self.messaging.config;
        let invisible = req.invisible.unwrap_or(c.default_invisible);
        self.check_invisible(invisible)?;
        if req.max_messages == 0 || req.max_messages > c.max_receive_batch {
            return Err(BrokerError::invalid(format!(
                "max_messages {} is outside 1..={}",
                req.max_messages, c.max_receive_batch
            )));
        }
        let deadline = Instant::now() + req.wait.min(c.max_receive_wait);
        let group: Arc<str> = req.group.as_str().into();
        let mut shutdown = self.shutdown_signal();
        loop {
            let mut sources = vec![Arc::clone(&topic)];
            sources.extend(self.topic(&retry_name).ok());
            let mut watches: Vec<_> = sources.iter().map(|t| t.watch_appends()).collect();
            let got = self.receive_round(&group, &sources, req.max_messages as usize, invisible, &req.tags).await?;
            if !got.is_empty() || Instant::now() >= deadline || self.shutting_down() || topic.is_deleted() {
                return Ok(got);
            }
            let retry_watch = if watches.len() == 2 { watches.pop() } else { None };
            let Some(mut topic_watch) = watches.pop() else { return Ok(got) };
            tokio::select! {
                _ = topic_watch.changed() => {}
                _ = async { match retry_watch { Some(mut w) => { let _ = w.changed().await; } None => std::future::pending().await } } => {}
                // A retry topic created meanwhile, or a lease table change: look again now and then.
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    }

    /// One pass over `sources`' queues, leasing up to `want` messages.
    async fn receive_round(
        &self,
        group: &Arc<str>,
        sources: &[Arc<Topic>],
        want: usize,
        invisible: Duration,
        tags: &[String],
    ) -> Result<Vec<ReceivedMessage>, BrokerError> {
        let mut queues: Vec<(Arc<Topic>, u32)> =
            sources.iter().flat_map(|t| (0..t.partitions).map(move |p| (Arc::clone(t), p))).collect();
        let start = self.messaging.next_start(queues.len());
        queues.rotate_left(start);
        let mut out = Vec::new();
        let max_inflight = self.messaging.config.max_inflight_leases;
        let mut limited = false;
        for (topic, partition) in queues {
            if out.len() >= want {
                break;
            }
            let key = QueueKey { group: Arc::clone(group), topic: topic.name.as_str().into(), partition };
            let cursor = self.open_queue(&key, &topic).await?;
            if sync::lock(&self.messaging.leases).inflight() >= max_inflight {
                limited = true;
                break;
            }
            let read = self
                .fetch(
                    None,
                    FetchRequest {
                        topic: topic.name.clone(),
                        partition,
                        offset: cursor,
                        max_bytes: read_bytes(want - out.len()),
                        max_wait_ms: 0,
                        tags: tags.to_vec(),
                        format: RecordFormat::Records,
                    },
                )
                .await;
            let read = match read {
                Ok(r) => r,
                Err(e) if e.code() == ErrorCode::OffsetOutOfRange => {
                    // Retention removed what the cursor pointed at: skip to the log start.
                    let (t, p) = (Arc::clone(&topic), partition);
                    let start =
                        self.blocking(move |r| crate::fetch::resolve(r, &t, p, crate::Position::Earliest)).await?;
                    sync::lock(&self.messaging.leases).advance(&key, cursor, start);
                    continue;
                }
                Err(e) if e.code() == ErrorCode::UnknownTopic => continue,
                Err(e) => return Err(e),
            };
            let Fetched::Records(records) = read.data else { continue };
            let now = Instant::now();
            let until_ms = self.messaging.now_ms() + invisible.as_millis() as i64;
            let mut table = sync::lock(&self.messaging.leases);
            let room = (want - out.len()).min(max_inflight.saturating_sub(table.inflight()));
            let taken = records.len().min(room);
            let new_cursor = if taken == records.len() { read.next_offset } else { records[taken].offset };
            if !table.advance(&key, cursor, new_cursor) {
                continue; // another receiver read this range first
            }
            let is_retry = sources.len() == 2 && Arc::ptr_eq(&topic, &sources[1]);
            for record in records.into_iter().take(taken) {
                let attempt = if is_retry {
                    (header_num(&record, headers::RECONSUME_TIME).unwrap_or(0).max(0) as u32).saturating_add(1)
                } else {
                    1
                };
                let nonce = table.lease(&key, record.offset, attempt, now + invisible);
                let handle = ReceiptHandle { queue: key.clone(), offset: record.offset, nonce }.encode();
                let (origin_topic, origin_partition, origin_offset) = if is_retry {
                    (
                        header_str(&record, headers::RETRY_TOPIC).unwrap_or(&topic.name).to_string(),
                        header_num(&record, headers::ORIGIN_PARTITION).unwrap_or(0) as u32,
                        header_num(&record, headers::ORIGIN_OFFSET).unwrap_or(record.offset),
                    )
                } else {
                    (topic.name.clone(), partition, record.offset)
                };
                out.push(ReceivedMessage {
                    topic: origin_topic,
                    partition: origin_partition,
                    offset: origin_offset,
                    message_id: header_str(&record, headers::UNIQ_KEY).unwrap_or("").to_string(),
                    attempt,
                    receipt_handle: handle,
                    invisible_until_ms: until_ms,
                    record,
                });
            }
            m::set_leases_inflight(table.inflight());
        }
        if out.is_empty() && limited {
            return Err(BrokerError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the broker holds {max_inflight} received and unacknowledged messages (max_inflight_leases): \
                     acknowledge some first"
                ),
            ));
        }
        Ok(out)
    }

    /// The cursor of a queue, opening it at the group's committed offset (or the log start) the first time.
    async fn open_queue(&self, key: &QueueKey, topic: &Arc<Topic>) -> Result<i64, BrokerError> {
        if let Some(c) = sync::lock(&self.messaging.leases).cursor(key) {
            return Ok(c);
        }
        let (k, t) = (key.clone(), Arc::clone(topic));
        let start = self
            .blocking(move |r| {
                let committed = r
                    .meta()
                    .group_offsets(&k.group, Some(&k.topic))?
                    .into_iter()
                    .find(|o| o.partition == k.partition)
                    .map(|o| o.offset);
                let earliest = crate::fetch::resolve(r, &t, k.partition, crate::Position::Earliest)?;
                let latest = crate::fetch::resolve(r, &t, k.partition, crate::Position::Latest)?;
                Ok(committed.unwrap_or(earliest).clamp(earliest, latest))
            })
            .await?;
        let mut table = sync::lock(&self.messaging.leases);
        table.open(key, start);
        Ok(table.cursor(key).unwrap_or(start))
    }

    fn current_handle(group: &str, handle: &str) -> Result<ReceiptHandle, BrokerError> {
        validate_group_name(group)?;
        let h = ReceiptHandle::decode(handle)?;
        if &*h.queue.group != group {
            return Err(BrokerError::new(
                ErrorCode::InvalidReceiptHandle,
                format!("the receipt handle belongs to group '{}', not '{group}'", h.queue.group),
            ));
        }
        Ok(h)
    }

    /// Acknowledges a received message: it is done for the group.
    pub fn ack(&self, group: &str, handle: &str) -> Result<(), BrokerError> {
        let h = Self::current_handle(group, handle)?;
        let mut table = sync::lock(&self.messaging.leases);
        table.ack(&h.queue, h.offset, h.nonce, Instant::now())?;
        m::set_leases_inflight(table.inflight());
        Ok(())
    }

    /// Makes a received message invisible for `invisible` from now; returns its new receipt handle (the old
    /// one stops working) and when it becomes visible. A zero duration is a nack.
    pub async fn change_invisible(
        &self,
        group: &str,
        handle: &str,
        invisible: Duration,
    ) -> Result<Option<(String, i64)>, BrokerError> {
        if invisible.is_zero() {
            return self.nack(group, handle).await.map(|_| None);
        }
        self.check_invisible(invisible)?;
        let h = Self::current_handle(group, handle)?;
        let now = Instant::now();
        let (nonce, _) =
            sync::lock(&self.messaging.leases).extend(&h.queue, h.offset, h.nonce, now, now + invisible)?;
        let handle = ReceiptHandle { nonce, ..h }.encode();
        Ok(Some((handle, self.messaging.now_ms() + invisible.as_millis() as i64)))
    }

    /// Gives a received message back: it is redelivered after the retry back-off of its attempt (or
    /// dead-lettered after the last one).
    pub async fn nack(&self, group: &str, handle: &str) -> Result<(), BrokerError> {
        let h = Self::current_handle(group, handle)?;
        let attempt = sync::lock(&self.messaging.leases).start_retry(&h.queue, h.offset, h.nonce, Instant::now())?;
        self.retry_leased(&h.queue, h.offset, attempt).await
    }

    /// Moves a leased message whose `attempt`-th delivery failed to the retry or dead-letter topic, then
    /// marks it done; on failure puts it back in flight to be tried again in a second.
    async fn retry_leased(&self, key: &QueueKey, offset: i64, attempt: u32) -> Result<(), BrokerError> {
        match self.copy_for_retry(key, offset, attempt).await {
            Ok(()) => {
                let mut table = sync::lock(&self.messaging.leases);
                table.finish_retry(key, offset);
                m::set_leases_inflight(table.inflight());
                Ok(())
            }
            Err(e) => {
                sync::lock(&self.messaging.leases).abort_retry(key, offset, Instant::now() + Duration::from_secs(1));
                Err(e)
            }
        }
    }

    async fn copy_for_retry(&self, key: &QueueKey, offset: i64, attempt: u32) -> Result<(), BrokerError> {
        let read = self
            .fetch(
                None,
                FetchRequest {
                    topic: key.topic.to_string(),
                    partition: key.partition,
                    offset,
                    // The smallest read: the one batch (or message) holding the offset.
                    max_bytes: 1,
                    max_wait_ms: 0,
                    tags: vec![],
                    format: RecordFormat::Records,
                },
            )
            .await;
        let record = match read {
            Ok(r) => match r.data {
                Fetched::Records(v) => v.into_iter().find(|r| r.offset == offset),
                Fetched::Batches { .. } | Fetched::File { .. } => None,
            },
            Err(e) if matches!(e.code(), ErrorCode::OffsetOutOfRange | ErrorCode::UnknownTopic) => None,
            Err(e) => return Err(e),
        };
        let Some(record) = record else {
            tracing::warn!(group = %key.group, topic = %key.topic, partition = key.partition, offset,
                "a message to retry is gone (retention or topic deletion): nothing to redeliver");
            return Ok(());
        };
        let engine = self.topic(&key.topic).map(|t| t.engine).unwrap_or(EngineKind::Commitlog);
        let mut copy = NewRecord {
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .filter(|h| {
                    ![
                        headers::RECONSUME_TIME,
                        headers::DELAY,
                        headers::TIMER_DELIVER_MS,
                        headers::TIMER_DELAY_MS,
                        headers::TIMER_DELAY_SEC,
                        headers::TIMER_DUE_MS,
                    ]
                    .contains(&h.key.as_str())
                })
                .cloned()
                .collect(),
            timestamp_ms: record.timestamp_ms,
        };
        let origin_topic = match header_str(&record, headers::RETRY_TOPIC) {
            Some(t) => t.to_string(),
            None => {
                let id = header_str(&record, headers::UNIQ_KEY).unwrap_or("").to_string();
                copy.headers.push(Header::new(headers::RETRY_TOPIC, Bytes::from(key.topic.to_string())));
                copy.headers.push(Header::new(headers::ORIGIN_PARTITION, Bytes::from(key.partition.to_string())));
                copy.headers.push(Header::new(headers::ORIGIN_OFFSET, Bytes::from(offset.to_string())));
                copy.headers.push(Header::new(headers::ORIGIN_MESSAGE_ID, Bytes::from(id)));
                key.topic.to_string()
            }
        };
        let max = self.max_reconsume_times(&key.group).await?;
        if attempt > max {
            copy.headers.push(Header::new(headers::RECONSUME_TIME, Bytes::from((attempt - 1).to_string())));
            copy.headers.push(Header::new(headers::DLQ_ATTEMPTS, Bytes::from(attempt.to_string())));
            let dlq = self.internal_topic(&dlq_topic_name(&key.group), engine).await?;
            let batches: Vec<(u32, RecordBatch)> =
                crate::produce::build_batches(&dlq.name, &[copy], dlq.config().max_message_bytes as usize)?
                    .into_iter()
                    .map(|b| (0, b))
                    .collect();
            self.append_and_wait(dlq, batches, false).await?;
            m::dead_lettered(&key.group);
            tracing::info!(group = %key.group, topic = %origin_topic, attempt, "message moved to the dead-letter topic");
        } else {
            copy.headers.push(Header::new(headers::RECONSUME_TIME, Bytes::from(attempt.to_string())));
            let retry = self.internal_topic(&retry_topic_name(&key.group, &origin_topic), engine).await?;
            let id = header_str(&record, headers::UNIQ_KEY).map_or_else(new_message_id, str::to_string);
            let due_ms = self.messaging.now_ms() + retry_backoff_ms(&self.messaging.config.delay_levels_ms, attempt);
            self.schedule(
                vec![TimerEntry { due_ms, id, topic: retry.name.clone(), partition: 0, record: copy }],
                false,
            )
            .await?;
            m::retried(&key.group);
        }
        Ok(())
    }

    /// Redeliveries a message of `group` gets before it is dead-lettered: the group's own setting (read
    /// from the store once, then cached), else the broker's default.
    pub async fn max_reconsume_times(&self, group: &str) -> Result<u32, BrokerError> {
        let cached = sync::lock(&self.messaging.group_max_reconsume).get(group).copied();
        let own = match cached {
            Some(own) => own,
            None => {
                let g = group.to_string();
                let own =
                    self.blocking(move |r| Ok(r.meta().group_state(&g)?.and_then(|s| s.max_reconsume_times))).await?;
                sync::lock(&self.messaging.group_max_reconsume).insert(group.to_string(), own);
                own
            }
        };
        Ok(own.unwrap_or(self.messaging.config.max_reconsume_times))
    }

    /// Sets `max.reconsume.times` for one group, durably (it outlives restarts).
    pub async fn set_max_reconsume_times(&self, group: &str, times: u32) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        if times > 1000 {
            return Err(BrokerError::new(ErrorCode::InvalidConfig, "max.reconsume.times must be 0 to 1000"));
        }
        let g = group.to_string();
        self.blocking(move |r| Ok(r.meta().set_max_reconsume_times(&g, times, now_ms())?)).await?;
        sync::lock(&self.messaging.group_max_reconsume).insert(group.to_string(), Some(times));
        Ok(())
    }

    /// A retry or dead-letter topic, created (one partition, on `engine`) if it does not exist yet.
    pub(crate) async fn internal_topic(&self, name: &str, engine: EngineKind) -> Result<Arc<Topic>, BrokerError> {
        if let Ok(t) = self.topic(name) {
            return Ok(t);
        }
        let n = name.to_string();
        match self.blocking(move |r| r.create_topic(&n, Some(engine), 1, BTreeMap::new())).await {
            Ok(t) => Ok(t),
            Err(e) if e.code() == ErrorCode::TopicExists => self.topic(name),
            Err(e) => Err(e),
        }
    }

    /// Redelivers leases whose invisible duration ended and writes moved committed offsets, until the
    /// broker shuts down (the runtime spawns this once).
    pub async fn run_lease_tasks(&self) {
        let mut shutdown = self.shutdown_signal();
        let interval = self.messaging.config.commit_interval;
        let mut next_commit = Instant::now() + interval;
        loop {
            let expired = sync::lock(&self.messaging.leases).take_expired(Instant::now(), 1000);
            let full = expired.len() >= 1000;
            for (key, offset, attempt) in expired {
                if let Err(e) = self.retry_leased(&key, offset, attempt).await {
                    tracing::warn!(group = %key.group, topic = %key.topic, offset, error = %e,
                        "could not redeliver a message whose invisible duration ended; trying again");
                }
            }
            if Instant::now() >= next_commit || self.shutting_down() {
                self.store_committed().await;
                next_commit = Instant::now() + interval;
            }
            if self.shutting_down() {
                return;
            }
            if full {
                continue;
            }
            let wake = sync::lock(&self.messaging.leases).next_deadline().map_or(next_commit, |d| d.min(next_commit));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    }

    /// Writes the committed offsets of receiving groups that moved.
    pub async fn store_committed(&self) {
        let moved = sync::lock(&self.messaging.leases).take_moved();
        if moved.is_empty() {
            return;
        }
        let keys: Vec<QueueKey> = moved.iter().map(|(k, _)| k.clone()).collect();
        let mut by_group: BTreeMap<GroupTopic, Vec<(u32, i64)>> = BTreeMap::new();
        for (k, offset) in moved {
            by_group.entry((k.group, k.topic)).or_default().push((k.partition, offset));
        }
        let result = self
            .blocking(move |r| {
                let live: BTreeSet<String> = r.topics().into_iter().map(|t| t.name.clone()).collect();
                for ((group, topic), offsets) in by_group {
                    if live.contains(&*topic) {
                        r.meta().commit_offsets(&group, &topic, &offsets, now_ms())?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not store receiving groups' committed offsets; trying again");
            sync::lock(&self.messaging.leases).unstore(&keys);
        }
    }
}
