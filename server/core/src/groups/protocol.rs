//! The requests and answers of the two membership protocols a group can speak, and of describing groups.
//!
//! - **Broker-assigned** (janus.v1, like Kafka's KIP-848 and RocketMQ 5's assignment query): a member
//!   heartbeats with its subscription and the partitions it owns ([`MemberHeartbeat`]) and gets its target
//!   assignment back ([`MemberAssignment`]).
//! - **Classic** (Kafka's JoinGroup / SyncGroup / Heartbeat / LeaveGroup): the leader client computes the
//!   assignment; the broker passes subscription metadata and assignment bytes through untouched.
//!
//! A group speaks one of them, fixed by its first member while it has members.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::assignor::Assignor;

/// Partitions by topic, each list sorted.
pub type TopicPartitions = BTreeMap<String, Vec<u32>>;

/// How a group shares its topics' partitions (RocketMQ's message models).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Each partition is read by exactly one member (Kafka's groups, RocketMQ's CLUSTERING).
    #[default]
    Clustering,
    /// Every member reads every partition, each with its own committed offsets (RocketMQ's BROADCASTING).
    Broadcasting,
}

impl GroupMode {
    /// `clustering` or `broadcasting`.
    pub fn name(self) -> &'static str {
        match self {
            GroupMode::Clustering => "clustering",
            GroupMode::Broadcasting => "broadcasting",
        }
    }
}

/// Kafka's classic group states (stored by their names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Membership changed: waiting for members to (re)join, or for the initial rebalance delay.
    PreparingRebalance,
    /// A new generation exists: waiting for the leader's assignment (classic) or for old owners to release
    /// partitions that move (broker-assigned).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group is gone (its offsets expired); a new one of that name starts Empty.
    Dead,
}

impl GroupState {
    /// The state's name as Kafka's tools print it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A heartbeat of the broker-assigned protocol. An empty `member_id` joins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberHeartbeat {
    /// The group.
    pub group: String,
    /// The member id the broker gave; empty to join.
    pub member_id: String,
    /// The generation of the last answer this member received; 0 when joining.
    pub generation: i32,
    /// A static member's instance id: a restart within the session timeout keeps its partitions.
    pub instance_id: Option<String>,
    /// The client's name for itself (shown by describe).
    pub client_id: String,
    /// Where the member connects from (the face fills it in).
    pub client_host: String,
    /// The topics it subscribes to (at least one, each existing).
    pub topics: Vec<String>,
    /// The partitions it owns now: any it was told to give up and no longer lists are released.
    pub owned: TopicPartitions,
    /// `None` = the broker default (45 s); must be within the broker's allowed range.
    pub session_timeout: Option<Duration>,
    /// How long it may take to give up partitions; `None` = the broker default.
    pub rebalance_timeout: Option<Duration>,
    /// The assignor it asks for; `None` = the group's (range for a new group).
    pub assignor: Option<Assignor>,
    /// Clustering or broadcasting; must match the group's while it has members.
    pub mode: GroupMode,
}

/// The answer to a [`MemberHeartbeat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAssignment {
    /// The member's id (new when it joined).
    pub member_id: String,
    /// The group's generation, to send in the next heartbeat and with commits.
    pub generation: i32,
    /// The partitions the member may read now: its target minus those their old owner has not yet released.
    /// Owned partitions missing here must be given up (commit, stop reading, heartbeat without them).
    pub assignment: TopicPartitions,
    /// When to heartbeat next.
    pub heartbeat_interval: Duration,
    /// The group's state after this heartbeat.
    pub state: GroupState,
}

/// Who commits offsets: a member of the group, fenced by its id and generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitAs {
    /// The member id.
    pub member_id: String,
    /// The generation the member last received.
    pub generation: i32,
    /// A static member's instance id.
    pub instance_id: Option<String>,
}

/// A classic-protocol JoinGroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group: String,
    /// Empty for a new member.
    pub member_id: String,
    /// A static member's instance id.
    pub instance_id: Option<String>,
    /// The client's name for itself.
    pub client_id: String,
    /// Where the member connects from.
    pub client_host: String,
    /// For example `consumer`; every member of a group must use the same.
    pub protocol_type: String,
    /// The assignment protocols the member supports, by preference, with their metadata bytes.
    pub protocols: Vec<(String, Bytes)>,
    /// Must be within the broker's allowed range.
    pub session_timeout: Duration,
    /// How long the broker waits for members to rejoin in a rebalance.
    pub rebalance_timeout: Duration,
    /// Kafka JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED with its id.
    pub require_known_member_id: bool,
}

/// One member as the leader's JoinGroup answer lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member id.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// Its metadata for the chosen protocol, untouched.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup that completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// The new generation.
    pub generation: i32,
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen assignment protocol.
    pub protocol_name: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member with its metadata when this member is the leader; empty otherwise.
    pub members: Vec<JoinedMember>,
}

/// How a JoinGroup ends when it does not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The rebalance completed.
    Joined(JoinGroupResponse),
    /// MEMBER_ID_REQUIRED: join again with this id.
    MemberIdRequired {
        /// The id to join with.
        member_id: String,
    },
}

/// A classic-protocol SyncGroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group: String,
    /// The member id.
    pub member_id: String,
    /// A static member's instance id.
    pub instance_id: Option<String>,
    /// The generation from JoinGroup.
    pub generation: i32,
    /// When given, must match the group's.
    pub protocol_type: Option<String>,
    /// When given, must match the chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's assignment: member id -> opaque bytes (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen protocol.
    pub protocol_name: String,
    /// This member's assignment bytes as the leader sent them (empty when the leader gave none).
    pub assignment: Bytes,
}

/// One member of a described group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Where it connects from.
    pub client_host: String,
    /// Broker-assigned groups: the partitions it owns now. Classic groups: empty (see `assignment_bytes`).
    pub assignment: TopicPartitions,
    /// Classic groups: the subscription metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Classic groups: the assignment bytes the leader gave it.
    pub assignment_bytes: Bytes,
}

/// One partition of a described group: its committed offset, end and lag, and who reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset (the next offset to read); -1 when none is committed.
    pub committed_offset: i64,
    /// The partition's log end offset.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset` (from the log start when nothing is committed), at least 0.
    pub lag: i64,
    /// The member that owns it now (broker-assigned clustering groups), if any.
    pub owner: Option<String>,
    /// Broadcasting groups: whose offset this is (the member's instance or client id).
    pub offsets_of: Option<String>,
}

/// What describe shows of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Its generation (0 before the first rebalance).
    pub generation: i32,
    /// `janus` (broker-assigned), `classic`, or empty when it has no members.
    pub protocol: String,
    /// Classic groups: the protocol type their members joined with (`consumer` for Kafka consumers);
    /// `janus` for broker-assigned groups; empty when the group has no members.
    pub protocol_type: String,
    /// Broker-assigned: the assignor. Classic: the chosen protocol name.
    pub assignor: String,
    /// Clustering or broadcasting.
    pub mode: GroupMode,
    /// The members.
    pub members: Vec<MemberDescription>,
    /// Every partition the group reads or has committed on.
    pub partitions: Vec<PartitionDescription>,
}

/// A line of the group list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// How many members it has.
    pub members: usize,
    /// `janus`, `classic` or empty.
    pub protocol: String,
    /// The protocol type (see [`GroupDescription::protocol_type`]).
    pub protocol_type: String,
}
