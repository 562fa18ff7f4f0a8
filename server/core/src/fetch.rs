//! Fetch: read a partition from an offset (through the engine's tag filter when it has one, else filtered
//! here), long-poll until data arrives, resolve positions (earliest, latest, an offset, a timestamp) to
//! offsets, and follow a partition as a [`Subscription`].
//!
//! Waiting uses the topic's per-partition watch, which produce fires after every append: no polling loop.
//! With a tag filter a read may return no records while its next offset moves on; fetch and subscriptions
//! then go on scanning.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_api::{Compression, Engine, ReadSlice, Record, RecordBatch, TopicPartition, headers};
use janus_codec::batch::split_batches;
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
    /// How the result carries the records.
    pub format: RecordFormat,
}

/// How a fetch result carries the records it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordFormat {
    /// Decoded records (for faces that send per-message fields).
    #[default]
    Records,
    /// Kafka RecordBatch v2 bytes as the engine ships them (the fast path).
    Batches,
    /// Kafka RecordBatch v2 batches for a face that ships file ranges itself (the Kafka face's `sendfile`
    /// path): a read the engine answers with a file range of stored batches (the segment engine) stays that
    /// range, [`Fetched::File`], so no byte of it passes through the broker's memory; any other read is
    /// encoded as in [`RecordFormat::Batches`].
    Shipped,
}

/// The records a fetch read, in the format asked for.
#[derive(Clone, Debug)]
pub enum Fetched {
    /// Decoded records, at or after the offset asked for.
    Records(Vec<Record>),
    /// Whole Kafka RecordBatch v2 batches; the first may begin before the offset asked for.
    Batches {
        /// The batches, back to back.
        bytes: Bytes,
        /// How many records they hold.
        records: u64,
    },
    /// Whole Kafka RecordBatch v2 batches left where they are stored: `len` bytes at `position` of a segment
    /// file, to be sent with `sendfile(2)` (only for [`RecordFormat::Shipped`]). The first batch may begin
    /// before the offset asked for.
    ///
    /// Holding the file keeps its bytes: a segment deleted by retention or by its topic's deletion is
    /// unlinked, and compaction renames a new file over it, but the open descriptor keeps the old inode and
    /// its bytes until dropped. The engine truncates a segment only at recovery (before any read) and after
    /// a failed append (past the bytes any read returned), so the range stays whole; a face must still
    /// treat a file that ends early as an error of the connection, since the frame size is already sent.
    File {
        /// The open segment file.
        file: Arc<File>,
        /// Byte position of the first batch.
        position: u64,
        /// Number of bytes, a whole number of batches.
        len: u32,
        /// How many records from the offset asked for to the end of the range: `next_offset - offset`,
        /// counted without reading the file. It leaves out the records of the first batch before the offset
        /// (clients skip them) and counts offsets compaction removed, so it is an estimate on compacted topics.
        records: u64,
    },
}

impl Fetched {
    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        match self {
            Fetched::Records(records) => records.is_empty(),
            Fetched::Batches { bytes, .. } => bytes.is_empty(),
            Fetched::File { len, .. } => *len == 0,
        }
    }

    /// How many bytes of batches were read (for decoded records: 0, they have no wire size yet).
    pub fn batch_len(&self) -> usize {
        match self {
            Fetched::Records(_) => 0,
            Fetched::Batches { bytes, .. } => bytes.len(),
            Fetched::File { len, .. } => *len as usize,
        }
    }

    /// An empty result in `format`.
    fn empty(format: RecordFormat) -> Fetched {
        match format {
            RecordFormat::Records => Fetched::Records(Vec::new()),
            RecordFormat::Batches | RecordFormat::Shipped => Fetched::Batches { bytes: Bytes::new(), records: 0 },
        }
    }

    /// How many records were read.
    pub fn record_count(&self) -> u64 {
        match self {
            Fetched::Records(records) => records.len() as u64,
            Fetched::Batches { records, .. } | Fetched::File { records, .. } => *records,
        }
    }
}

/// What a fetch (or one step of a subscription) returns.
#[derive(Clone, Debug)]
pub struct FetchResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset the read started at.
    pub from_offset: i64,
    /// What was read.
    pub data: Fetched,
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

/// What one read asks for: where, how much, which tags, in which format.
#[derive(Clone, Debug)]
struct ReadSpec {
    offset: i64,
    max_bytes: usize,
    tags: Arc<Vec<String>>,
    format: RecordFormat,
}

/// Reads `max_bytes` of `partition` from `offset`, filtered by `tags` (blocking).
fn read_partition(r: &Registry, topic: &Topic, partition: u32, spec: &ReadSpec) -> Result<FetchResult, BrokerError> {
    let offset = spec.offset;
    let tp = TopicPartition::new(topic.name.clone(), partition);
    let engine = r.engine(topic.engine);
    let (slice, data) = read_filtered(engine, &tp, spec)?;
    let o = engine.offsets(&tp)?;
    metrics::record_out(&topic.name, data.record_count(), slice.byte_len() as u64);
    Ok(FetchResult {
        topic: topic.name.clone(),
        partition,
        from_offset: offset,
        data,
        next_offset: slice.next_offset().max(offset),
        log_start: o.log_start,
        log_end: o.log_end,
    })
}

/// Reads, keeping only messages tagged with one of `tags` (when any): in storage through the engine's tag
/// filter when it has one, else here after decoding. Batches come from the engine as it ships them, except
/// when this function filtered decoded records: those it encodes into one batch that keeps their offsets.
/// In [`RecordFormat::Shipped`] a file range is kept as it is ([`Fetched::File`]).
fn read_filtered(
    engine: &dyn Engine,
    tp: &TopicPartition,
    spec: &ReadSpec,
) -> Result<(ReadSlice, Fetched), BrokerError> {
    let tags = spec.tags.as_slice();
    let in_storage = engine.tag_filter().filter(|_| !tags.is_empty());
    let slice = match in_storage {
        Some(filter) => filter.read_tagged(tp, spec.offset, spec.max_bytes, tags)?,
        None => engine.read(tp, spec.offset, spec.max_bytes)?,
    };
    let filter_here = !tags.is_empty() && in_storage.is_none();
    if spec.format == RecordFormat::Shipped
        && !filter_here
        && let ReadSlice::File { file, position, len, next_offset } = &slice
    {
        let records = u64::try_from(next_offset - spec.offset).unwrap_or(0);
        let data = Fetched::File { file: Arc::clone(file), position: *position, len: *len, records };
        return Ok((slice, data));
    }
    if matches!(spec.format, RecordFormat::Batches | RecordFormat::Shipped) && !filter_here {
        let bytes = engine.encode_batches(&slice)?;
        let records = split_batches(&bytes).filter_map(Result::ok).map(|(h, _)| h.records_count.max(0) as u64).sum();
        return Ok((slice, Fetched::Batches { bytes, records }));
    }
    let mut records = engine.decode_records(&slice, spec.offset)?;
    if filter_here {
        records.retain(|rec| has_tag(rec, tags));
    }
    let data = match spec.format {
        RecordFormat::Records => Fetched::Records(records),
        RecordFormat::Batches | RecordFormat::Shipped => {
            let count = records.len() as u64;
            Fetched::Batches { bytes: encode_filtered(&records)?, records: count }
        }
    };
    Ok((slice, data))
}

/// Decoded records (in offset order, possibly with gaps) as one batch that keeps their offsets and
/// timestamps; nothing for no records.
fn encode_filtered(records: &[Record]) -> Result<Bytes, BrokerError> {
    let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(Bytes::new()) };
    let internal = |e: janus_api::BatchError| {
        BrokerError::new(ErrorCode::Internal, format!("cannot encode the filtered records as a batch: {e}"))
    };
    let delta = i32::try_from(last.offset - first.offset)
        .map_err(|_| BrokerError::new(ErrorCode::Internal, "filtered records span more than i32::MAX offsets"))?;
    let batch = RecordBatch::build_with_offsets(first.offset, delta, records, Compression::None).map_err(internal)?;
    Ok(batch.into_bytes())
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
    /// The offset `at` names in one partition (Kafka's ListOffsets): the log start, the log end, a given
    /// offset checked to lie in the log, or the first message at or after a timestamp (the log end if none).
    pub async fn resolve_position(&self, topic: &str, partition: u32, at: Position) -> Result<i64, BrokerError> {
        let t = self.topic(topic)?;
        t.check_partition(partition)?;
        self.blocking(move |r| resolve(r, &t, partition, at)).await
    }

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
        let mut spec = ReadSpec { offset: req.offset, max_bytes, tags: Arc::new(req.tags), format: req.format };
        loop {
            watch.borrow_and_update();
            let permit = self.limiter.acquire(connection, max_bytes).await?;
            let (t, s) = (Arc::clone(&topic), spec.clone());
            let read = self.blocking(move |r| read_partition(r, &t, partition, &s)).await?;
            drop(permit);
            let expired = Instant::now() >= deadline;
            if !read.data.is_empty() || expired || self.shutting_down() || topic.is_deleted() {
                return Ok(read);
            }
            if read.next_offset > spec.offset && read.next_offset < read.log_end {
                // A tag filter skipped everything read: go on scanning.
                spec.offset = read.next_offset;
                continue;
            }
            spec.offset = read.next_offset;
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        let data = Fetched::empty(spec.format);
                        return Ok(FetchResult { data, from_offset: spec.offset, next_offset: spec.offset, ..read });
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    }

    /// Starts following one partition from `req.start` (see [`Subscription`]).
    pub async fn subscribe(&self, req: SubscribeRequest) -> Result<Subscription, BrokerError> {
        let topic = self.topic(&req.topic)?;
        let partition = req.partition;
        let watch = self.partition_watch(&topic, partition)?;
        let t = Arc::clone(&topic);
        let start = req.start;
        let offset = self.blocking(move |r| resolve(r, &t, partition, start)).await?;
        let spec = ReadSpec {
            offset,
            max_bytes: self.fetch_limits.max_bytes(req.max_bytes),
            tags: Arc::new(req.tags),
            format: req.format,
        };
        Ok(Subscription { core: self.clone(), topic, partition, spec, watch })
    }

    /// The log-end watch of `partition` (`UnknownPartition` when the topic has no such partition).
    fn partition_watch(&self, topic: &Topic, partition: u32) -> Result<watch::Receiver<i64>, BrokerError> {
        topic.check_partition(partition)?;
        topic.watch(partition).ok_or_else(|| {
            BrokerError::new(ErrorCode::Internal, format!("partition {partition} of '{}' has no watch", topic.name))
        })
    }
}

/// A subscription request, as every face hands it to the core.
#[derive(Clone, Debug)]
pub struct SubscribeRequest {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Where to start.
    pub start: Position,
    /// Bytes per read (0: the broker's default; clamped to its maximum).
    pub max_bytes: u32,
    /// Only messages whose `TAGS` header is one of these; empty: every message.
    pub tags: Vec<String>,
    /// How each result carries the records.
    pub format: RecordFormat,
}

/// A partition followed from an offset: each [`Subscription::next`] returns the next non-empty read,
/// waiting at the log end for appends.
pub struct Subscription {
    core: Core,
    topic: Arc<Topic>,
    partition: u32,
    spec: ReadSpec,
    watch: watch::Receiver<i64>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic.name)
            .field("partition", &self.partition)
            .field("offset", &self.spec.offset)
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
            let (t, s, partition) = (Arc::clone(&self.topic), self.spec.clone(), self.partition);
            let read = self.core.blocking(move |r| read_partition(r, &t, partition, &s)).await?;
            if !read.data.is_empty() {
                self.spec.offset = read.next_offset;
                return Ok(read);
            }
            if read.next_offset > self.spec.offset {
                // A tag filter skipped what was read: go on scanning.
                self.spec.offset = read.next_offset;
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
