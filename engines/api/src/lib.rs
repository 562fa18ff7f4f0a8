//! The Janus storage trait, the types both engines share, their errors, and the Kafka RecordBatch v2 codec.
//!
//! Nothing here does file or network IO of its own except what a [`ReadSlice`] needs to be copied out.

pub mod batch;
pub mod commitlog_record;
pub mod config;
pub mod durable;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod slice;
pub mod sync;
pub mod topic;

pub use batch::{BatchError, BatchHeader, Compression, Header, NewRecord, Record, RecordBatch};
pub use config::{CleanupPolicy, ConfigError, FlushPolicy, TopicConfig};
pub use durable::{Durable, FlushTracker};
pub use engine::{Appended, Compaction, Engine, Offsets, RetentionReport};
pub use error::{IoResultExt, StorageError};
pub use slice::{MappedRegion, ReadFilter, ReadSlice};
pub use topic::{EngineKind, TopicPartition, TopicSpec, validate_topic_name};

/// Milliseconds since the Unix epoch, the timestamp unit of every record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
