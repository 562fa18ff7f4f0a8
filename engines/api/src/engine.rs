//! The storage trait both engines implement, and the small types it returns.

use crate::batch::{Record, RecordBatch};
use crate::config::TopicConfig;
use crate::durable::Durable;
use crate::error::StorageError;
use crate::slice::ReadSlice;
use crate::topic::{EngineKind, TopicPartition, TopicSpec};

/// What `append` assigned.
#[derive(Debug)]
pub struct Appended {
    /// Offset of the first record of the batch.
    pub base_offset: i64,
    /// Offset of the last record of the batch.
    pub last_offset: i64,
    /// Completes when the batch is on disk as the topic's flush policy promises.
    pub durable: Durable,
}

/// The readable range of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    /// The first offset that can be read (the log start offset).
    pub log_start: i64,
    /// The offset the next append will get (the log end offset).
    pub log_end: i64,
}

/// What one retention pass removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files (segments or CommitLog files) deleted.
    pub files_deleted: usize,
    /// Bytes those files held.
    pub bytes_deleted: u64,
}

impl RetentionReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: RetentionReport) {
        self.files_deleted += other.files_deleted;
        self.bytes_deleted += other.bytes_deleted;
    }
}

/// A storage engine: topics of partitions of ordered, offset-addressed record batches.
///
/// Engines are synchronous and internally locked; callers run them on blocking threads. Every method
/// takes input from outside and must return an error rather than panic on anything it is given.
///
/// Abilities only some engines have are capability traits reached through [`Engine::compaction`],
/// [`Engine::tag_filter`] and [`Engine::key_lookup`]: `None` means the engine does not have it.
pub trait Engine: Send + Sync + 'static {
    /// Which model this engine implements.
    fn kind(&self) -> EngineKind;

    /// Creates a new, empty topic. Fails if the engine already has a topic of that name in memory or on disk.
    fn create_topic(&self, spec: &TopicSpec) -> Result<(), StorageError>;

    /// Opens a topic whose files may already exist (at startup, from the metadata store's list), recovering
    /// them as needed and creating whatever is missing. Opening an already open topic is an error.
    fn open_topic(&self, spec: &TopicSpec) -> Result<(), StorageError>;

    /// Replaces a topic's config (the partition count cannot change here).
    fn alter_topic(&self, topic: &str, config: &TopicConfig) -> Result<(), StorageError>;

    /// Deletes a topic and all its data.
    fn delete_topic(&self, topic: &str) -> Result<(), StorageError>;

    /// Removes every file the engine holds for `topic`, whether the topic is open or not (crash leftovers,
    /// orphans); `Ok(())` when it holds none.
    fn purge_topic(&self, topic: &str) -> Result<(), StorageError>;

    /// Names of the topics that have data on disk, open or not (for reconciling with the metadata store).
    fn topics_on_disk(&self) -> Result<Vec<String>, StorageError>;

    /// Validates `batch`, assigns its offsets and writes it to the page cache; returns at once.
    /// A rejected batch leaves nothing written.
    fn append(&self, tp: &TopicPartition, batch: RecordBatch) -> Result<Appended, StorageError>;

    /// Reads from `offset`, at most `max_bytes` unless the first batch alone is larger (then that batch
    /// alone, so a consumer always makes progress). Reading at the log end returns [`ReadSlice::Empty`];
    /// outside `log_start..=log_end` is [`StorageError::OffsetOutOfRange`]. (Filtering by tag is
    /// [`TagFilter::read_tagged`], for engines that have it.)
    fn read(&self, tp: &TopicPartition, offset: i64, max_bytes: usize) -> Result<ReadSlice, StorageError>;

    /// Decodes the records of `slice` (which this engine returned from `read`) at or after `from_offset`,
    /// verifying every checksum.
    fn decode_records(&self, slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError>;

    /// `slice` as Kafka RecordBatch v2 bytes, ready for a Kafka fetch response or a batch fetch: the segment
    /// engine returns its stored batches as they are; the commitlog engine re-encodes its records into batches
    /// that carry their offsets and timestamps (one batch per contiguous run of offsets, except that a batch
    /// appended with a producer id comes back as one batch of its own with its producer id, epoch and base
    /// sequence when the slice holds its first record; its records in a slice that starts after its first
    /// come back without producer fields).
    fn encode_batches(&self, slice: &ReadSlice) -> Result<bytes::Bytes, StorageError>;

    /// The readable range of a partition.
    fn offsets(&self, tp: &TopicPartition) -> Result<Offsets, StorageError>;

    /// The first offset whose timestamp is at or after `ts_ms`, or `None` if every record is older.
    fn offset_for_timestamp(&self, tp: &TopicPartition, ts_ms: i64) -> Result<Option<i64>, StorageError>;

    /// Advances the log start offset to `offset` (Kafka's DeleteRecords); whole files below it are removed by
    /// the next retention pass. Returns the new log start offset.
    fn delete_records_before(&self, tp: &TopicPartition, offset: i64) -> Result<i64, StorageError>;

    /// Deletes whole files past their topic's retention time or size, or below the log start offset; never the
    /// file being written.
    fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, StorageError>;

    /// Forces everything appended so far to disk.
    fn flush(&self) -> Result<(), StorageError>;

    /// Flushes, writes the clean-shutdown marker and closes; later calls fail with [`StorageError::Closed`].
    /// Dropping an engine without calling this is treated as a crash on the next open.
    fn shutdown(&self) -> Result<(), StorageError>;

    /// Log compaction, if this engine can compact.
    fn compaction(&self) -> Option<&dyn Compaction> {
        None
    }

    /// Tag filtering in storage, if this engine has it.
    fn tag_filter(&self) -> Option<&dyn TagFilter> {
        None
    }

    /// Lookup of messages by key, if this engine has an index for it.
    fn key_lookup(&self) -> Option<&dyn KeyLookup> {
        None
    }
}

/// Log compaction, for engines that support `cleanup.policy=compact` (reached through
/// [`Engine::compaction`]).
pub trait Compaction: Send + Sync {
    /// Compacts every closed segment of every `compact` topic: keeps the newest record per key and drops
    /// tombstones older than `delete.retention.ms` at `now_ms`. Returns how many segments were rewritten.
    fn compact(&self, now_ms: i64) -> Result<usize, StorageError>;
}

/// Filtering messages by tag in storage, RocketMQ's subscription expression `TagA || TagB` (reached
/// through [`Engine::tag_filter`]). A message's tag is its [`crate::headers::TAGS`] header.
pub trait TagFilter: Send + Sync {
    /// Like `Engine::read`, but returns only messages whose `TAGS` header is one of `tags` (RocketMQ's
    /// `TagA || TagB`); the slice's next offset moves past what was skipped.
    fn read_tagged(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        tags: &[String],
    ) -> Result<ReadSlice, StorageError>;
}

/// Looking messages up by key through an index (RocketMQ's "query message by key"; reached through
/// [`Engine::key_lookup`]). A message's keys are the words of its [`crate::headers::KEYS`] header and its
/// record key.
pub trait KeyLookup: Send + Sync {
    /// At most `max` live messages of `topic` carrying `key` (a word of their `KEYS` header, or their
    /// record key) stored between `begin_ms` and `end_ms` inclusive (the time the broker stored them),
    /// newest first, each with the partition it is in.
    fn lookup_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<(TopicPartition, Record)>, StorageError>;
}
