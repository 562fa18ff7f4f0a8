//! Plain data types of the client API: engines, topics, positions, group offsets.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use janus_proto::v1 as pb;

use crate::error::ClientError;

/// Which storage engine holds a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Kafka model: a directory of segment files per partition.
    Segment,
    /// RocketMQ model: one shared CommitLog and a ConsumeQueue per queue.
    Commitlog,
}

impl Engine {
    /// The name used on the command line and in output (`segment`, `commitlog`).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Segment => "segment",
            Engine::Commitlog => "commitlog",
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> pb::Engine {
        match self {
            Engine::Segment => pb::Engine::Segment,
            Engine::Commitlog => pb::Engine::Commitlog,
        }
    }

    /// The engine of a wire value; `None` for unspecified or unknown values.
    pub fn from_proto(value: i32) -> Option<Engine> {
        match pb::Engine::try_from(value).ok()? {
            pb::Engine::Segment => Some(Engine::Segment),
            pb::Engine::Commitlog => Some(Engine::Commitlog),
            pb::Engine::Unspecified => None,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "segment" => Ok(Engine::Segment),
            "commitlog" => Ok(Engine::Commitlog),
            _ => Err(ClientError::invalid(format!("unknown engine {s:?}: expected segment or commitlog"))),
        }
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Storage engine.
    pub engine: Engine,
    /// Partition (queue) count; 0 = the broker default.
    pub partitions: u32,
    /// Per-topic config overrides (Kafka-style dotted keys).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with the broker's default partition count and no overrides.
    pub fn new(name: impl Into<String>, engine: Engine) -> Self {
        NewTopic { name: name.into(), engine, partitions: 0, configs: BTreeMap::new() }
    }

    /// Sets the partition count.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Adds one config override.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// A topic as the broker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Storage engine (`None` if the broker sent a value this client does not know).
    pub engine: Option<Engine>,
    /// Partition count.
    pub partitions: u32,
    /// Effective value of every per-topic config key.
    pub configs: BTreeMap<String, String>,
}

impl From<pb::TopicInfo> for TopicInfo {
    fn from(t: pb::TopicInfo) -> Self {
        TopicInfo {
            engine: Engine::from_proto(t.engine),
            name: t.name,
            partitions: t.partitions,
            configs: t.configs.into_iter().collect(),
        }
    }
}

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First readable offset.
    pub log_start_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
}

/// A topic and the offsets of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic.
    pub topic: TopicInfo,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionInfo>,
}

/// Where a subscription, a consumer without committed offsets, or an offset reset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Position {
    /// The first readable offset.
    #[default]
    Earliest,
    /// The end of the log (only new messages).
    Latest,
    /// This offset.
    Offset(i64),
    /// The first offset whose timestamp is at or after this (milliseconds since the Unix epoch).
    Timestamp(i64),
}

impl Position {
    /// The wire value.
    pub fn to_proto(self) -> pb::Position {
        use pb::position::At;
        let at = match self {
            Position::Earliest => At::Earliest(true),
            Position::Latest => At::Latest(true),
            Position::Offset(o) => At::Offset(o),
            Position::Timestamp(t) => At::TimestampMs(t),
        };
        pb::Position { at: Some(at) }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Earliest => f.write_str("earliest"),
            Position::Latest => f.write_str("latest"),
            Position::Offset(o) => write!(f, "{o}"),
            Position::Timestamp(t) => write!(f, "@{t}"),
        }
    }
}

impl FromStr for Position {
    type Err = ClientError;

    /// Parses `earliest`, `latest`, an offset (`42`) or a timestamp in ms (`@1700000000000`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ClientError::invalid(format!(
                "bad position {s:?}: expected earliest, latest, an offset (e.g. 42) or @UNIX_MS (e.g. @1700000000000)"
            ))
        };
        match s.trim() {
            "earliest" => Ok(Position::Earliest),
            "latest" => Ok(Position::Latest),
            t if t.starts_with('@') => {
                let ms: i64 = t[1..].parse().map_err(|_| bad())?;
                if ms < 0 {
                    return Err(bad());
                }
                Ok(Position::Timestamp(ms))
            }
            t => {
                let offset: i64 = t.parse().map_err(|_| bad())?;
                if offset < 0 {
                    return Err(bad());
                }
                Ok(Position::Offset(offset))
            }
        }
    }
}

/// A run of produced messages: offsets `base_offset..=last_offset` of one partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset of the run.
    pub base_offset: i64,
    /// Last offset of the run (inclusive).
    pub last_offset: i64,
}

impl Append {
    /// Number of messages in the run.
    pub fn count(&self) -> u64 {
        (self.last_offset - self.base_offset + 1).max(0) as u64
    }
}

/// Adds `next` to `list`, merging it with an entry it directly continues.
pub(crate) fn merge_append(list: &mut Vec<Append>, next: Append) {
    if let Some(prev) = list
        .iter_mut()
        .rev()
        .find(|a| a.topic == next.topic && a.partition == next.partition && a.last_offset + 1 == next.base_offset)
    {
        prev.last_offset = next.last_offset;
        return;
    }
    list.push(next);
}

/// One partition of a consumer group: committed offset, end offset, lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The group's committed offset (next offset to consume).
    pub committed_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset`.
    pub lag: i64,
}

impl From<pb::GroupPartition> for GroupPartition {
    fn from(p: pb::GroupPartition) -> Self {
        GroupPartition {
            topic: p.topic,
            partition: p.partition,
            committed_offset: p.committed_offset,
            log_end_offset: p.log_end_offset,
            lag: p.lag,
        }
    }
}

/// Transport compression of produce requests (gRPC message compression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The tonic encoding, if any.
    pub(crate) fn encoding(self) -> Option<tonic::codec::CompressionEncoding> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(tonic::codec::CompressionEncoding::Gzip),
            Compression::Zstd => Some(tonic::codec::CompressionEncoding::Zstd),
        }
    }
}

impl FromStr for Compression {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(ClientError::invalid(format!("unknown compression {s:?}: expected none, gzip or zstd"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse() {
        assert_eq!("earliest".parse::<Position>().unwrap(), Position::Earliest);
        assert_eq!("latest".parse::<Position>().unwrap(), Position::Latest);
        assert_eq!("42".parse::<Position>().unwrap(), Position::Offset(42));
        assert_eq!("@1700000000000".parse::<Position>().unwrap(), Position::Timestamp(1_700_000_000_000));
        for bad in ["", "-1", "@", "@x", "@-5", "first", "1.5"] {
            let err = bad.parse::<Position>().unwrap_err();
            assert!(err.to_string().contains("expected earliest"), "{bad}: {err}");
        }
    }

    #[test]
    fn positions_round_trip_display() {
        for p in [Position::Earliest, Position::Latest, Position::Offset(7), Position::Timestamp(9)] {
            assert_eq!(p.to_string().parse::<Position>().unwrap(), p);
        }
    }

    #[test]
    fn engines_parse() {
        assert_eq!("segment".parse::<Engine>().unwrap(), Engine::Segment);
        assert_eq!("CommitLog".parse::<Engine>().unwrap(), Engine::Commitlog);
        assert!("kafka".parse::<Engine>().is_err());
        assert_eq!(Engine::from_proto(Engine::Commitlog.to_proto() as i32), Some(Engine::Commitlog));
        assert_eq!(Engine::from_proto(0), None);
        assert_eq!(Engine::from_proto(99), None);
    }

    #[test]
    fn appends_merge_when_contiguous() {
        let a = |p, b, l| Append { topic: "t".into(), partition: p, base_offset: b, last_offset: l };
        let mut list = Vec::new();
        merge_append(&mut list, a(0, 0, 9));
        merge_append(&mut list, a(1, 0, 4));
        merge_append(&mut list, a(0, 10, 19));
        merge_append(&mut list, a(0, 30, 30));
        assert_eq!(list, vec![a(0, 0, 19), a(1, 0, 4), a(0, 30, 30)]);
        assert_eq!(list[0].count(), 20);
    }
}
