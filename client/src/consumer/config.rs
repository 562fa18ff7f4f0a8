//! Consumer settings.

use std::time::Duration;

use crate::types::Position;

/// How the consumer reads each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMode {
    /// One server-streaming Subscribe call per partition (the broker pushes, flow-controlled by HTTP/2).
    Subscribe,
    /// Repeated unary Fetch calls per partition, each waiting up to `max_wait` for new data.
    Fetch {
        /// Long-poll wait when a partition has no new data.
        max_wait: Duration,
    },
}

/// How broker responses carry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFormat {
    /// Whole Kafka RecordBatch v2 batches, decoded (and CRC-checked) by the consumer: the fast path.
    #[default]
    Batches,
    /// One protobuf message per record.
    Messages,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group: resume from its committed offsets and commit to it. `None` = no group.
    pub group: Option<String>,
    /// Partitions to read; `None` = all of them.
    pub partitions: Option<Vec<u32>>,
    /// Where to start a partition that has no committed offset (or when there is no group).
    pub start: Position,
    /// Only messages with one of these tags (commitlog topics); empty = all.
    pub tags: Vec<String>,
    /// Bytes per broker response; 0 = broker default (1 MiB).
    pub max_bytes: u32,
    /// Subscribe streams or long-poll fetches.
    pub mode: FetchMode,
    /// Batches (default) or per-record messages in responses.
    pub format: ReadFormat,
    /// With a group, commit the consumed positions this often (checked on each poll); `None` = only
    /// on explicit `commit` and on `close`.
    pub auto_commit: Option<Duration>,
    /// Responses buffered per partition ahead of the application.
    pub prefetch: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group: None,
            partitions: None,
            start: Position::Earliest,
            tags: Vec::new(),
            max_bytes: 0,
            mode: FetchMode::Subscribe,
            format: ReadFormat::Batches,
            auto_commit: Some(Duration::from_secs(5)),
            prefetch: 4,
        }
    }
}

impl ConsumerConfig {
    /// Default settings with a group.
    pub fn with_group(group: impl Into<String>) -> Self {
        ConsumerConfig { group: Some(group.into()), ..ConsumerConfig::default() }
    }
}
