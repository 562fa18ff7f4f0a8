//! One group's membership state: members, generation, state, and what both protocols share (expiring
//! members, moving to Empty). The protocols' transitions live in [`super::assigned`] and
//! [`super::classic`]. Everything here is synchronous and takes the time as an argument, so the
//! coordinator can run it under its lock and tests can drive it with tokio's paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::assignor::Assignor;
use super::protocol::{GroupMode, GroupState, JoinOutcome, SyncGroupResponse};
use crate::error::{BrokerError, ErrorCode};

/// A (topic, partition) pair.
pub(crate) type Tp = (String, u32);

/// Which protocol a group speaks, with that protocol's group-wide choices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Protocol {
    /// janus.v1: the broker assigns.
    Assigned {
        /// The assignor.
        assignor: Assignor,
        /// Clustering or broadcasting.
        mode: GroupMode,
    },
    /// Kafka's classic protocol: the leader assigns.
    Classic {
        /// For example `consumer`.
        protocol_type: String,
        /// The protocol chosen at the last rebalance.
        protocol_name: Option<String>,
        /// The leader's member id.
        leader: Option<String>,
    },
}

/// A classic member waiting for its JoinGroup or SyncGroup answer.
pub(crate) type JoinWaiter = oneshot::Sender<Result<JoinOutcome, BrokerError>>;
/// See [`JoinWaiter`].
pub(crate) type SyncWaiter = oneshot::Sender<Result<SyncGroupResponse, BrokerError>>;

/// One member. Fields marked `serde(skip)` live only in memory; the rest is stored with the group.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    /// Broker-assigned: subscribed topics.
    #[serde(default)]
    pub topics: BTreeSet<String>,
    /// Broker-assigned: partitions the member holds (granted and not yet released).
    #[serde(default)]
    pub owned: BTreeSet<Tp>,
    /// Broker-assigned: the partitions the assignor gave it at the group's generation.
    #[serde(default)]
    pub target: BTreeSet<Tp>,
    /// The generation of the last answer it got.
    #[serde(default)]
    pub generation: i32,
    /// The generation before that (an answer may have been lost).
    #[serde(skip)]
    pub previous_generation: i32,
    /// Classic: (protocol name, metadata) by preference.
    #[serde(default)]
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Classic: the assignment bytes the leader gave it.
    #[serde(default)]
    pub assignment: Vec<u8>,
    /// When its session ends unless it heartbeats.
    #[serde(skip)]
    pub session_deadline: Option<Instant>,
    /// Broker-assigned: when it must have released partitions that move away from it.
    #[serde(skip)]
    pub revoke_deadline: Option<Instant>,
    /// Classic: its JoinGroup waiting for the join phase to end.
    #[serde(skip)]
    pub join_waiter: Option<JoinWaiter>,
    /// Classic: its SyncGroup waiting for the leader's assignment.
    #[serde(skip)]
    pub sync_waiter: Option<SyncWaiter>,
    /// Classic: it sent SyncGroup for the current generation.
    #[serde(skip)]
    pub synced: bool,
}

impl Member {
    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// The rebalance timeout.
    pub fn rebalance_timeout(&self) -> Duration {
        Duration::from_millis(self.rebalance_timeout_ms)
    }

    /// Restarts the session clock.
    pub fn touch(&mut self, now: Instant) {
        self.session_deadline = Some(now + self.session_timeout());
    }

    /// Records that an answer of `generation` went to the member.
    pub fn answered(&mut self, generation: i32) {
        if self.generation != generation {
            self.previous_generation = self.generation;
            self.generation = generation;
        }
    }

    /// Whether `generation` from the member is current for it (the last answer's, or the one before
    /// when that answer may have been lost).
    pub fn knows(&self, generation: i32) -> bool {
        generation == self.generation || generation == self.previous_generation
    }

    /// Whose offsets a broadcasting member commits: its instance id, else its client id.
    pub fn offsets_owner(&self) -> &str {
        self.instance_id.as_deref().unwrap_or(&self.client_id)
    }
}

/// One group. See the module docs.
#[derive(Serialize, Deserialize)]
pub(crate) struct Group {
    pub name: String,
    pub generation: i32,
    /// The protocol of its members (kept while it is empty, forgotten when the next member joins).
    pub protocol: Option<Protocol>,
    pub members: BTreeMap<String, Member>,
    /// When it last became empty, in ms since the epoch.
    pub emptied_ms: Option<i64>,
    /// Stored so that a classic group caught mid-rebalance by a restart rebalances again.
    #[serde(default = "empty_state")]
    pub state: GroupState,
    /// Broker-assigned: the end of the initial-delay window. Classic: the end of the join or sync phase.
    #[serde(skip)]
    pub phase_deadline: Option<Instant>,
    /// Classic: member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    #[serde(skip)]
    pub pending: BTreeMap<String, Instant>,
    /// Broker-assigned: topic -> partition count the last assignment used.
    #[serde(skip)]
    pub partition_counts: BTreeMap<String, u32>,
    /// Classic: the join phase is a formerly empty group's initial delay (it does not end early).
    #[serde(skip)]
    pub initial_delay: bool,
    /// Rebalances since the broker started (for metrics).
    #[serde(skip)]
    pub rebalances: u64,
}

fn empty_state() -> GroupState {
    GroupState::Empty
}

impl Group {
    /// A new, empty group.
    pub fn new(name: &str) -> Group {
        Group {
            name: name.to_string(),
            generation: 0,
            protocol: None,
            members: BTreeMap::new(),
            emptied_ms: None,
            state: GroupState::Empty,
            phase_deadline: None,
            pending: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            initial_delay: false,
            rebalances: 0,
        }
    }

    /// After loading from the store: every member gets a fresh session, and the state follows from what
    /// was stored (members that do not come back are expelled when their session ends).
    pub fn restored(mut self, now: Instant) -> Group {
        for m in self.members.values_mut() {
            m.touch(now);
            m.previous_generation = m.generation;
        }
        let stored = self.state;
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            match &self.protocol {
                Some(Protocol::Classic { .. }) if stored == GroupState::Stable => GroupState::Stable,
                Some(Protocol::Classic { .. }) => {
                    // Caught mid-rebalance: members learn it from their next heartbeat and rejoin; those
                    // that do not are removed when the join phase ends.
                    let timeout = self.members.values().map(Member::rebalance_timeout).max().unwrap_or_default();
                    self.phase_deadline = Some(now + timeout);
                    GroupState::PreparingRebalance
                }
                _ => {
                    if self.members.values().all(|m| m.owned == m.target) {
                        GroupState::Stable
                    } else {
                        GroupState::CompletingRebalance
                    }
                }
            }
        };
        self
    }

    /// The member with static instance id `instance`, if any.
    pub fn static_member(&self, instance: &str) -> Option<&str> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance)).map(|m| m.id.as_str())
    }

    /// The member `member_id`, checked against `instance_id` (Kafka's rules: an unknown id whose instance
    /// id belongs to another member is fenced).
    pub fn member_mut(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<&mut Member, BrokerError> {
        if !self.members.contains_key(member_id) {
            if let Some(instance) = instance_id
                && self.static_member(instance).is_some()
            {
                return Err(fenced(&self.name, instance));
            }
            return Err(unknown_member(&self.name, member_id));
        }
        let member = self.members.get_mut(member_id).expect("checked above");
        if let Some(instance) = instance_id
            && member.instance_id.as_deref() != Some(instance)
        {
            return Err(fenced(&self.name, instance));
        }
        Ok(member)
    }

    /// Whether the group speaks the classic protocol.
    pub fn is_classic(&self) -> bool {
        matches!(self.protocol, Some(Protocol::Classic { .. }))
    }

    /// The group's mode (clustering unless a broker-assigned group says otherwise).
    pub fn mode(&self) -> GroupMode {
        match &self.protocol {
            Some(Protocol::Assigned { mode, .. }) => *mode,
            _ => GroupMode::Clustering,
        }
    }

    /// Moves to Empty after the last member left: a new generation, and the time offsets retention
    /// counts from.
    pub fn become_empty(&mut self, now_ms: i64) {
        self.state = GroupState::Empty;
        self.generation += 1;
        self.phase_deadline = None;
        self.partition_counts.clear();
        self.emptied_ms = Some(now_ms);
    }

    /// The earliest instant at which [`super::coordinator`] must look at this group again.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().flat_map(|m| {
            let waiting = m.join_waiter.is_some() || m.sync_waiter.is_some();
            [if waiting { None } else { m.session_deadline }, m.revoke_deadline]
        });
        members.chain([self.phase_deadline]).chain(self.pending.values().map(|d| Some(*d))).flatten().min()
    }
}

/// UNKNOWN_MEMBER_ID with what to do.
pub(crate) fn unknown_member(group: &str, member_id: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::UnknownMemberId,
        format!(
            "member '{member_id}' is not in group '{group}' (it left, or was expelled when its session timed out); \
             join again with an empty member id"
        ),
    )
}

/// FENCED_INSTANCE_ID with what happened.
pub(crate) fn fenced(group: &str, instance: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::FencedInstanceId,
        format!(
            "another member of group '{group}' registered with static instance id '{instance}': this one is fenced \
             (two consumers must not share an instance id)"
        ),
    )
}

/// ILLEGAL_GENERATION with both generations.
pub(crate) fn illegal_generation(group: &str, sent: i32, current: i32) -> BrokerError {
    BrokerError::new(
        ErrorCode::IllegalGeneration,
        format!(
            "generation {sent} is not current for this member of group '{group}' (the group is at generation \
             {current}); its assignment is stale: join again"
        ),
    )
}
