//! Fetch: read a partition from an offset (through the engine's tag filter when it has one, else filtered
//! here), long-poll until data arrives, resolve positions (earliest, latest, an offset, a timestamp) to
//! offsets, and follow a partition as a [`Subscription`].
//!
//! Waiting uses the topic's per-partition watch, which produce fires after every append: no polling loop.
//! With a tag filter a read may return no records while its next offset moves on; fetch and subscriptions
//! then go on scanning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use janus_api::{Engine, ReadSlice, Record, TopicPartition, headers};
use tokio::sync::watch;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::metrics;
use crate::topics::{Registry, Topic};

/// Where to start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// The log start offset.
    Earliest,
    /// The log end offset (only messages produced from now on).
    Latest,
    /// This offset, which must lie in `log_start..=log_end`.
    Offset(i64),
    /// The first message with a timestamp at or after this (milliseconds since the epoch); the log end if none.
    Timestamp(i64),
}

/// One fetch request, as every face hands it to the core.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: i64,
    /// At most this many bytes (0: the broker's default; clamped to its maximum).
    pub max_bytes: u32,
    /// How long to wait for data when there is none (clamped to the broker's maximum).
    pub max_wait_ms: u32,
    /// Only messages whose `TAGS` header is one of these; empty: every message.
    pub tags: Vec<String>,
}

/// What a fetch (or one step of a subscription) returns.
#[derive(Clone, Debug)]
pub struct FetchResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The records read, at or after the offset asked for.
    pub records: Vec<Record>,
    /// Where the next read should start.
    pub next_offset: i64,
    /// The partition's log start offset.
    pub log_start: i64,
    /// The partition's log end offset.
    pub log_end: i64,
}

/// How much a fetch may return and how long it may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// Bytes per response when a request says 0.
    pub default_fetch_bytes: u32,
    /// The most bytes a request may ask for (larger requests are clamped).
    pub max_fetch_bytes: u32,
    /// The longest wait a request may ask for (longer requests are clamped).
    pub max_fetch_wait_ms: u32,
}

impl FetchLimits {
    fn max_bytes(&self, asked: u32) -> usize {
        (if asked == 0 { self.default_fetch_bytes } else { asked.min(self.max_fetch_bytes) }) as usize
    }
}

fn has_tag(record: &Record, tags: &[String]) -> bool {
    record
        .headers
        .iter()
        .find(|h| h.key == headers::TAGS)
        .and_then(|h| h.value.as_ref())
        .is_some_and(|v| tags.iter().any(|t| t.as_bytes() == &v[..]))
}

/// Reads `max_bytes` of `partition` from `offset`, filtered by `tags` (blocking).
fn read_partition(
    r: &Registry,
    topic: &Topic,
    partition: u32,
    offset: i64,
    max_bytes: usize,
    tags: &[String],
) -> Result<FetchResult, BrokerError> {
    let tp = TopicPartition::new(topic.name.clone(), partition);
    let engine = r.engine(topic.engine);
    let (slice, records) = read_filtered(engine, &tp, offset, max_bytes, tags)?;
    let o = engine.offsets(&tp)?;
    metrics::record_out(&topic.name, records.len() as u64, slice.byte_len() as u64);
    Ok(FetchResult {
        topic: topic.name.clone(),
        partition,
        records,
        next_offset: slice.next_offset().max(offset),
        log_start: o.log_start,
        log_end: o.log_end,
    })
}

/// Reads and decodes, keeping only messages tagged with one of `tags` (when any): in storage through the
/// engine's tag filter when it has one, else here after decoding.
fn read_filtered(
    engine: &dyn Engine,
    tp: &TopicPartition,
    offset: i64,
    max_bytes: usize,
    tags: &[String],
) -> Result<(ReadSlice, Vec<Record>), BrokerError> {
    let in_storage = engine.tag_filter().filter(|_| !tags.is_empty());
    let slice = match in_storage {
        Some(filter) => filter.read_tagged(tp, offset, max_bytes, tags)?,
        None => engine.read(tp, offset, max_bytes)?,
    };
    let mut records = engine.decode_records(&slice, offset)?;
    if !tags.is_empty() && in_storage.is_none() {
        records.retain(|rec| has_tag(rec, tags));
    }
    Ok((slice, records))
}

/// The offset `at` names in one partition (blocking).
pub(crate) fn resolve(r: &Registry, topic: &Topic, partition: u32, at: Position) -> Result<i64, BrokerError> {
    let tp = TopicPartition::new(topic.name.clone(), partition);
    let engine = r.engine(topic.engine);
    let o = engine.offsets(&tp)?;
    Ok(match at {
        Position::Earliest => o.log_start,
        Position::Latest => o.log_end,
        Position::Offset(offset) => {
            if offset < o.log_start || offset > o.log_end {
                return Err(BrokerError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "offset {offset} is out of range for {tp}: valid offsets are {}..{} (the end is the next \
                         offset to be written)",
                        o.log_start, o.log_end
                    ),
                ));
            }
            offset
        }
        Position::Timestamp(ts) => engine.offset_for_timestamp(&tp, ts)?.unwrap_or(o.log_end),
    })
}

impl Core {
    /// Fetches from one partition, waiting up to the request's `max_wait_ms` while there is nothing to
    /// return; the bytes it may return are held from the in-flight budgets while it reads.
    pub async fn fetch(&self, connection: Option<SocketAddr>, req: FetchRequest) -> Result<FetchResult, BrokerError> {
        let topic = self.topic(&req.topic)?;
        let max_bytes = self.fetch_limits.max_bytes(req.max_bytes);
        let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(self.fetch_limits.max_fetch_wait_ms)));
        let deadline = Instant::now() + wait;
        let partition = req.partition;
        let mut watch = self.partition_watch(&topic, partition)?;
        let mut shutdown = self.shutdown.clone();
        let tags = Arc::new(req.tags);
        let mut offset = req.offset;
        loop {
            watch.borrow_and_update();
            let permit = self.limiter.acquire(connection, max_bytes).await?;
            let (t, tg) = (Arc::clone(&topic), Arc::clone(&tags));
            let read = self.blocking(move |r| read_partition(r, &t, partition, offset, max_bytes, &tg)).await?;
            drop(permit);
            let expired = Instant::now() >= deadline;
            if !read.records.is_empty() || expired || self.shutting_down() || topic.is_deleted() {
                return Ok(read);
            }
            if read.next_offset > offset && read.next_offset < read.log_end {
                // A tag filter skipped everything read: go on scanning.
                offset = read.next_offset;
                continue;
            }
            offset = read.next_offset;
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return Ok(FetchResult { records: vec![], next_offset: offset, ..read });
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    }

    /// Starts following one partition from `start` (see [`Subscription`]).
    pub async fn subscribe(
        &self,
        topic: &str,
        partition: u32,
        start: Position,
        max_bytes: u32,
        tags: Vec<String>,
    ) -> Result<Subscription, BrokerError> {
        let topic = self.topic(topic)?;
        let watch = self.partition_watch(&topic, partition)?;
        let t = Arc::clone(&topic);
        let offset = self.blocking(move |r| resolve(r, &t, partition, start)).await?;
        Ok(Subscription {
            core: self.clone(),
            topic,
            partition,
            offset,
            max_bytes: self.fetch_limits.max_bytes(max_bytes),
            tags: Arc::new(tags),
            watch,
        })
    }

    /// The log-end watch of `partition` (`UnknownPartition` when the topic has no such partition).
    fn partition_watch(&self, topic: &Topic, partition: u32) -> Result<watch::Receiver<i64>, BrokerError> {
        topic.check_partition(partition)?;
        topic.watch(partition).ok_or_else(|| {
            BrokerError::new(ErrorCode::Internal, format!("partition {partition} of '{}' has no watch", topic.name))
        })
    }
}

/// A partition followed from an offset: each [`Subscription::next`] returns the next non-empty read,
/// waiting at the log end for appends.
pub struct Subscription {
    core: Core,
    topic: Arc<Topic>,
    partition: u32,
    offset: i64,
    max_bytes: usize,
    tags: Arc<Vec<String>>,
    watch: watch::Receiver<i64>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic.name)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next records from where the last call ended. Ends with `ShuttingDown` when the broker shuts
    /// down and `UnknownTopic` when the topic is deleted; after an error, call no more.
    pub async fn next(&mut self) -> Result<FetchResult, BrokerError> {
        let mut shutdown = self.core.shutdown.clone();
        loop {
            self.watch.borrow_and_update();
            if self.core.shutting_down() {
                return Err(BrokerError::new(
                    ErrorCode::ShuttingDown,
                    "the broker is shutting down; subscribe again later",
                ));
            }
            if self.topic.is_deleted() {
                return Err(BrokerError::new(
                    ErrorCode::UnknownTopic,
                    format!("topic '{}' was deleted", self.topic.name),
                ));
            }
            let (t, tg, partition, offset, max) =
                (Arc::clone(&self.topic), Arc::clone(&self.tags), self.partition, self.offset, self.max_bytes);
            let read = self.core.blocking(move |r| read_partition(r, &t, partition, offset, max, &tg)).await?;
            if !read.records.is_empty() {
                self.offset = read.next_offset;
                return Ok(read);
            }
            if read.next_offset > self.offset {
                // A tag filter skipped what was read: go on scanning.
                self.offset = read.next_offset;
                continue;
            }
            tokio::select! {
                changed = self.watch.changed() => {
                    if changed.is_err() {
                        return Err(BrokerError::new(
                            ErrorCode::UnknownTopic,
                            format!("topic '{}' was deleted", self.topic.name),
                        ));
                    }
                }
                _ = shutdown.changed() => {}
            }
        }
    }
}
