//! The Janus storage trait, the types both engines share and their errors.
//!
//! The contract knows no engine: no on-disk format lives here (turning a [`ReadSlice`] into records or into
//! Kafka batches is [`Engine::decode_records`] / [`Engine::encode_batches`]), and abilities only some engines
//! have are capability traits ([`Compaction`], [`TagFilter`], [`KeyLookup`]) an engine hands out through
//! [`Engine::compaction`], [`Engine::tag_filter`] and [`Engine::key_lookup`].
//!
//! The Kafka RecordBatch v2 codec lives in `janus-codec` (the client and a Kafka face use it without any
//! storage); it is re-exported here as [`batch`], so `janus_api::batch::...` and `janus_api::RecordBatch`
//! keep naming it.
//!
//! Nothing here does network IO; file IO is limited to copying a [`ReadSlice`] out and the durable-write
//! helpers of [`fsutil`]; [`volume`] measures free disk space.

pub mod config;
pub mod durable;
pub mod engine;
pub mod error;
pub mod fsutil;
/// Record header names with a meaning beyond the record (RocketMQ properties), shared with the client.
pub use janus_codec::headers;
pub mod slice;
pub mod sync;
pub mod topic;
pub mod volume;

pub use janus_codec::batch;

pub use batch::{BatchError, BatchHeader, Compression, Header, NewRecord, Record, RecordBatch};
pub use config::{CleanupPolicy, ConfigError, FlushPolicy, OptionKey, TopicConfig};
pub use durable::{Durable, FlushTracker};
pub use engine::{Appended, Compaction, Engine, KeyLookup, Offsets, RetentionReport, TagFilter};
pub use error::{IoResultExt, StorageError};
pub use slice::{MappedRegion, ReadSlice};
pub use topic::{EngineKind, INTERNAL_TOPIC_PREFIXES, TopicPartition, TopicSpec, validate_topic_name};

/// Milliseconds since the Unix epoch, the timestamp unit of every record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
