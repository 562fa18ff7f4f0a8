//! Consumer settings.

use std::time::Duration;

use crate::types::{GroupMode, Position};

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

/// The client id a consumer gives the broker when [`ConsumerConfig::client_id`] is left empty.
pub const DEFAULT_CLIENT_ID: &str = "janus-client";

/// Consumer settings.
///
/// With a `group` and no `partitions`, the consumer is a **member** of the group: the broker assigns it
/// partitions and moves them when members come and go (see [`crate::Consumer`]). With explicit
/// `partitions` it reads exactly those, resuming from and committing to the group's offsets as no member
/// (the broker allows such commits only while the group has no members).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group: resume from its committed offsets and commit to it. `None` = no group.
    pub group: Option<String>,
    /// Partitions to read; `None` = all of them without a group, the broker's assignment with one.
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
    /// Group members: the assignor to ask for (`range`, `roundrobin` or `sticky`); `None` = the group's
    /// (range for a new group).
    pub assignor: Option<String>,
    /// Group members: clustering (each partition read by one member) or broadcasting (every member reads
    /// every partition with its own offsets; give each member its own `instance_id` or `client_id`).
    pub group_mode: GroupMode,
    /// Group members: a static instance id. A member that restarts with the same id within its session
    /// timeout gets its partitions back without a rebalance; two live members with one id fence the older.
    pub instance_id: Option<String>,
    /// Group members: expelled after this long without a heartbeat; `None` = the broker default (45 s).
    pub session_timeout: Option<Duration>,
    /// Group members: how long giving up partitions may take in a rebalance; `None` = the broker default.
    pub rebalance_timeout: Option<Duration>,
    /// The consumer's name for itself, shown by `janus group describe`; empty = [`DEFAULT_CLIENT_ID`].
    pub client_id: String,
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
            assignor: None,
            group_mode: GroupMode::Clustering,
            instance_id: None,
            session_timeout: None,
            rebalance_timeout: None,
            client_id: String::new(),
        }
    }
}

impl ConsumerConfig {
    /// Default settings with a group.
    pub fn with_group(group: impl Into<String>) -> Self {
        ConsumerConfig { group: Some(group.into()), ..ConsumerConfig::default() }
    }

    /// True when the consumer joins its group (a group and no explicit partitions).
    pub fn is_group_member(&self) -> bool {
        self.group.is_some() && self.partitions.is_none()
    }
}
