//! Plain data types of the client API: engines, topics, positions, consumer groups.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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

/// One partition of a consumer group: committed offset, end offset, lag, and who reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The group's committed offset (next offset to consume); -1 when none is committed.
    pub committed_offset: i64,
    /// Next offset to be written.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset` (from the log start when nothing is committed).
    pub lag: i64,
    /// The member id of the member reading it now (clustering groups), if any.
    pub owner: Option<String>,
    /// Broadcasting groups: whose offset this row is (a member's instance id or client id).
    pub offsets_of: Option<String>,
}

impl From<pb::GroupPartition> for GroupPartition {
    fn from(p: pb::GroupPartition) -> Self {
        GroupPartition {
            topic: p.topic,
            partition: p.partition,
            committed_offset: p.committed_offset,
            log_end_offset: p.log_end_offset,
            lag: p.lag,
            owner: p.owner,
            offsets_of: p.offsets_of,
        }
    }
}

/// Partitions by topic, each list sorted.
pub type TopicPartitions = BTreeMap<String, Vec<u32>>;

/// The wire lists of a [`TopicPartitions`] map.
pub(crate) fn topic_partitions_to_proto(map: &TopicPartitions) -> Vec<pb::TopicPartitions> {
    map.iter()
        .map(|(topic, partitions)| pb::TopicPartitions { topic: topic.clone(), partitions: partitions.clone() })
        .collect()
}

/// A [`TopicPartitions`] map of wire lists (the broker lists each topic once), each list sorted.
pub(crate) fn topic_partitions_from_proto(list: Vec<pb::TopicPartitions>) -> TopicPartitions {
    list.into_iter()
        .map(|mut tp| {
            tp.partitions.sort_unstable();
            (tp.topic, tp.partitions)
        })
        .collect()
}

/// How a consumer group shares its topics' partitions (RocketMQ's message models).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GroupMode {
    /// Each partition is read by exactly one member (Kafka's consumer groups, RocketMQ's CLUSTERING).
    #[default]
    Clustering,
    /// Every member reads every partition, each with its own committed offsets (RocketMQ's BROADCASTING).
    Broadcasting,
}

impl GroupMode {
    /// `clustering` or `broadcasting`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMode::Clustering => "clustering",
            GroupMode::Broadcasting => "broadcasting",
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> pb::GroupMode {
        match self {
            GroupMode::Clustering => pb::GroupMode::Clustering,
            GroupMode::Broadcasting => pb::GroupMode::Broadcasting,
        }
    }

    /// The mode of a wire value (unspecified is clustering); `None` for unknown values.
    pub fn from_proto(value: i32) -> Option<GroupMode> {
        match pb::GroupMode::try_from(value).ok()? {
            pb::GroupMode::Unspecified | pb::GroupMode::Clustering => Some(GroupMode::Clustering),
            pb::GroupMode::Broadcasting => Some(GroupMode::Broadcasting),
        }
    }
}

impl fmt::Display for GroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One heartbeat of a broker-assigned group member (the GroupHeartbeat RPC); see [`crate::Client::group_heartbeat`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHeartbeat {
    /// The group.
    pub group: String,
    /// The id the broker gave the member; empty to join.
    pub member_id: String,
    /// The generation of the last answer the member received; 0 when joining.
    pub generation: i32,
    /// A static member's instance id.
    pub instance_id: Option<String>,
    /// The client's name for itself (shown by describe).
    pub client_id: String,
    /// The topics the member reads.
    pub topics: Vec<String>,
    /// The partitions the member owns now.
    pub owned: TopicPartitions,
    /// `None` = the broker default (45 s).
    pub session_timeout: Option<Duration>,
    /// `None` = the broker default.
    pub rebalance_timeout: Option<Duration>,
    /// `range`, `roundrobin` or `sticky`; `None` = the group's.
    pub assignor: Option<String>,
    /// Clustering or broadcasting.
    pub mode: GroupMode,
}

/// Milliseconds for a wire field where 0 means the broker default (a nonzero duration below 1 ms is 1 ms,
/// one above `u32::MAX` ms is `u32::MAX`).
fn millis_or_zero(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| d.as_millis().clamp(1, u128::from(u32::MAX)) as u32)
}

impl GroupHeartbeat {
    /// The wire request.
    pub fn to_proto(&self) -> pb::GroupHeartbeatRequest {
        pb::GroupHeartbeatRequest {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            generation: self.generation,
            instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            topics: self.topics.clone(),
            owned: topic_partitions_to_proto(&self.owned),
            session_timeout_ms: millis_or_zero(self.session_timeout),
            rebalance_timeout_ms: millis_or_zero(self.rebalance_timeout),
            assignor: self.assignor.clone().unwrap_or_default(),
            mode: self.mode.to_proto() as i32,
        }
    }
}

/// The broker's answer to a [`GroupHeartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    /// The member's id (new when it joined).
    pub member_id: String,
    /// The group's generation, for the next heartbeat and for commits.
    pub generation: i32,
    /// The partitions the member may read now; owned partitions missing here must be given up.
    pub assignment: TopicPartitions,
    /// When to heartbeat next.
    pub heartbeat_interval: Duration,
    /// The group's state (`Stable`, `PreparingRebalance`, ...).
    pub state: String,
}

impl From<pb::GroupHeartbeatResponse> for GroupAssignment {
    fn from(r: pb::GroupHeartbeatResponse) -> Self {
        GroupAssignment {
            member_id: r.member_id,
            generation: r.generation,
            assignment: topic_partitions_from_proto(r.assignment),
            heartbeat_interval: Duration::from_millis(u64::from(r.heartbeat_interval_ms)),
            state: r.state,
        }
    }
}

/// Who commits offsets: a group member, fenced by the broker with its id and generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberIdentity {
    /// The member id.
    pub member_id: String,
    /// The generation of the member's last heartbeat answer.
    pub generation: i32,
    /// A static member's instance id.
    pub instance_id: Option<String>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The id the broker gave it.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// The client's name for itself.
    pub client_id: String,
    /// The address it connects from.
    pub host: String,
    /// The partitions it owns now.
    pub assignment: TopicPartitions,
}

impl From<pb::GroupMember> for GroupMember {
    fn from(m: pb::GroupMember) -> Self {
        GroupMember {
            member_id: m.member_id,
            instance_id: m.instance_id,
            client_id: m.client_id,
            host: m.host,
            assignment: topic_partitions_from_proto(m.assignment),
        }
    }
}

/// A consumer group as describe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its state: Empty, PreparingRebalance, CompletingRebalance, Stable or Dead.
    pub state: String,
    /// Its generation (0 before the first rebalance).
    pub generation: i32,
    /// `janus`, `classic`, or empty while it has no members.
    pub protocol: String,
    /// The assignor (janus groups) or the chosen protocol name (classic groups).
    pub assignor: String,
    /// Clustering or broadcasting (`None`: a mode this client does not know).
    pub mode: Option<GroupMode>,
    /// The members, by member id.
    pub members: Vec<GroupMember>,
    /// Every partition the group reads or has committed on, by topic and partition.
    pub partitions: Vec<GroupPartition>,
}

impl GroupDescription {
    /// The sum of the partitions' lags.
    pub fn total_lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag.max(0)).sum()
    }
}

impl From<pb::DescribeGroupResponse> for GroupDescription {
    fn from(r: pb::DescribeGroupResponse) -> Self {
        let mut members: Vec<GroupMember> = r.members.into_iter().map(GroupMember::from).collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let mut partitions: Vec<GroupPartition> = r.partitions.into_iter().map(GroupPartition::from).collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition, &a.offsets_of).cmp(&(&b.topic, b.partition, &b.offsets_of)));
        GroupDescription {
            group: r.group,
            state: r.state,
            generation: r.generation,
            protocol: r.protocol,
            assignor: r.assignor,
            mode: GroupMode::from_proto(r.mode),
            members,
            partitions,
        }
    }
}

/// One consumer group in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group.
    pub group: String,
    /// Its state (empty from a broker that does not report it).
    pub state: String,
    /// How many members it has.
    pub members: u32,
    /// `janus`, `classic`, or empty.
    pub protocol: String,
}

impl From<pb::GroupListing> for GroupListing {
    fn from(l: pb::GroupListing) -> Self {
        GroupListing { group: l.group, state: l.state, members: l.members, protocol: l.protocol }
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
