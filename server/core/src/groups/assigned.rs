//! The broker-assigned protocol (janus.v1): members heartbeat with their subscription and the partitions
//! they own; the broker computes a target assignment per generation and hands each member the part of its
//! target that no other member still holds.
//!
//! Cooperative moves: a partition whose target owner changes stays with its old owner until that owner
//! heartbeats without it (after committing and stopping) or leaves the group; only then is it granted to
//! the new owner. A member keeps a partition in its heartbeats from the moment an answer grants it until
//! it has given it up, so at no instant do two members hold one partition. A member that does not give up
//! a partition within its rebalance timeout is expelled, so no group stays stuck mid-rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::assignor::{AssignmentInput, MemberSubscription};
use super::coordinator::Env;
use super::group::{Group, Member, Protocol, Tp, illegal_generation};
use super::protocol::{GroupMode, GroupState, MemberAssignment, MemberHeartbeat, TopicPartitions};
use crate::error::{BrokerError, ErrorCode};

/// Partitions by topic from a set of pairs.
pub(crate) fn by_topic(set: &BTreeSet<Tp>) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (t, p) in set {
        out.entry(t.clone()).or_default().push(*p);
    }
    out
}

fn pairs(map: &TopicPartitions) -> BTreeSet<Tp> {
    map.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect()
}

impl Group {
    /// One heartbeat of the broker-assigned protocol; `session` and `rebalance` are the checked timeouts.
    /// Returns the answer and whether stored state changed.
    pub(crate) fn assigned_heartbeat(
        &mut self,
        hb: &MemberHeartbeat,
        session: Duration,
        rebalance: Duration,
        env: &Env<'_>,
    ) -> Result<(MemberAssignment, bool), BrokerError> {
        self.check_protocol(hb)?;
        let mut dirty = false;
        let mut rebalance_needed = false;
        let topics: BTreeSet<String> = hb.topics.iter().cloned().collect();
        let member_id = if hb.member_id.is_empty() {
            dirty = true;
            self.admit(hb, &topics, env, &mut rebalance_needed)?
        } else {
            let group = self.name.clone();
            let member = self.member_mut(&hb.member_id, hb.instance_id.as_deref())?;
            if !member.knows(hb.generation) {
                return Err(illegal_generation(&group, hb.generation, member.generation));
            }
            hb.member_id.clone()
        };
        if self.protocol.is_none() {
            self.protocol = Some(Protocol::Assigned { assignor: hb.assignor.unwrap_or_default(), mode: hb.mode });
        }
        let member = self.members.get_mut(&member_id).expect("admitted or found above");
        member.session_timeout_ms = session.as_millis() as u64;
        member.rebalance_timeout_ms = rebalance.as_millis() as u64;
        member.client_id.clone_from(&hb.client_id);
        member.host.clone_from(&hb.client_host);
        member.touch(env.now);
        if member.topics != topics {
            member.topics = topics;
            rebalance_needed = true;
        }
        // Partitions it no longer lists are released; it cannot claim partitions it was not granted.
        let reported = pairs(&hb.owned);
        let before = member.owned.len();
        member.owned.retain(|tp| reported.contains(tp));
        dirty |= member.owned.len() != before;
        if member.owned.is_subset(&member.target) {
            member.revoke_deadline = None;
        }
        if self.partitions_changed(env) {
            rebalance_needed = true;
        }
        if rebalance_needed {
            self.assigned_rebalance(env);
            dirty = true;
        }
        dirty |= self.grant(&member_id);
        self.settle();
        let generation = self.generation;
        let member = self.members.get_mut(&member_id).expect("present");
        // The generation a member was told is what a restarted broker must accept from it: store it.
        dirty |= member.generation != generation;
        member.answered(generation);
        // The rebalance timeout counts from when the member learns it must give partitions up.
        if self.state != GroupState::PreparingRebalance
            && !member.owned.is_subset(&member.target)
            && member.revoke_deadline.is_none()
        {
            member.revoke_deadline = Some(env.now + member.rebalance_timeout());
        }
        let assignment = if self.state == GroupState::PreparingRebalance {
            // The initial delay: nothing new is handed out until the first assignment.
            by_topic(&member.owned)
        } else {
            by_topic(&member.owned.intersection(&member.target).cloned().collect())
        };
        let interval = env.config.heartbeat_interval.min(session / 3);
        Ok((
            MemberAssignment {
                member_id,
                generation,
                assignment,
                heartbeat_interval: interval.max(Duration::from_millis(1)),
                state: self.state,
            },
            dirty,
        ))
    }

    /// Refuses a heartbeat whose protocol or mode differs from the group's while it has members.
    fn check_protocol(&mut self, hb: &MemberHeartbeat) -> Result<(), BrokerError> {
        if self.members.is_empty() && self.pending.is_empty() {
            if !matches!(self.protocol, Some(Protocol::Assigned { mode, .. }) if mode == hb.mode) {
                self.protocol = None;
            }
            if let (Some(Protocol::Assigned { assignor, .. }), Some(asked)) = (&mut self.protocol, hb.assignor) {
                *assignor = asked;
            }
            return Ok(());
        }
        match &self.protocol {
            Some(Protocol::Classic { protocol_type, .. }) => Err(BrokerError::new(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{}' has Kafka classic-protocol members (protocol type '{protocol_type}'); a janus.v1 \
                     member cannot join it: use another group name",
                    self.name
                ),
            )),
            Some(Protocol::Assigned { mode, .. }) if *mode != hb.mode => Err(BrokerError::new(
                ErrorCode::InconsistentGroupProtocol,
                format!(
                    "group '{}' is in {} mode; this member asked for {}: every member of a group uses one mode",
                    self.name,
                    mode.name(),
                    hb.mode.name()
                ),
            )),
            Some(Protocol::Assigned { assignor, .. }) if hb.assignor.is_some_and(|a| a != *assignor) => {
                Err(BrokerError::new(
                    ErrorCode::InconsistentGroupProtocol,
                    format!(
                        "group '{}' uses the {} assignor; this member asked for {}: ask for the same one, or none",
                        self.name,
                        assignor.name(),
                        hb.assignor.map(|a| a.name()).unwrap_or_default()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Adds a joining member (or gives a restarted static member its place back); returns its id.
    fn admit(
        &mut self,
        hb: &MemberHeartbeat,
        topics: &BTreeSet<String>,
        env: &Env<'_>,
        rebalance_needed: &mut bool,
    ) -> Result<String, BrokerError> {
        let id = env.fresh_id();
        if let Some(instance) = &hb.instance_id
            && let Some(old_id) = self.static_member(instance).map(str::to_string)
        {
            // A static member restarted: same partitions, no rebalance unless its subscription changed.
            let mut member = self.members.remove(&old_id).expect("found by instance id");
            tracing::info!(group = %self.name, instance = %instance, old = %old_id, new = %id,
                "static member rejoined");
            member.id.clone_from(&id);
            if &member.topics != topics {
                *rebalance_needed = true;
            }
            self.members.insert(id.clone(), member);
            return Ok(id);
        }
        if self.members.len() >= env.config.max_members {
            return Err(BrokerError::new(
                ErrorCode::LimitExceeded,
                format!("group '{}' already has {} members (group.max.size)", self.name, self.members.len()),
            ));
        }
        if hb.mode == GroupMode::Broadcasting {
            // Broadcasting members keep offsets by instance id, else client id: two members sharing one
            // would each skip what the other read.
            let owner = hb.instance_id.as_deref().unwrap_or(&hb.client_id);
            if self.members.values().any(|m| m.offsets_owner() == owner) {
                return Err(BrokerError::invalid(format!(
                    "a member of broadcasting group '{}' already keeps its offsets as '{owner}': give each \
                     broadcasting member its own instance id or client id",
                    self.name
                )));
            }
        }
        let was_empty = self.members.is_empty();
        self.members.insert(
            id.clone(),
            Member { id: id.clone(), instance_id: hb.instance_id.clone(), topics: topics.clone(), ..Member::default() },
        );
        if was_empty {
            self.emptied_ms = None;
        }
        *rebalance_needed = true;
        Ok(id)
    }

    /// Whether a subscribed topic's partition count changed (or it was deleted) since the last assignment.
    fn partitions_changed(&self, env: &Env<'_>) -> bool {
        if self.state == GroupState::PreparingRebalance {
            return false;
        }
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        subscribed.into_iter().any(|t| env.partitions(t) != self.partition_counts.get(t).copied())
    }

    /// Membership or subscriptions changed: start the initial delay for a group that was empty, else
    /// compute a new target assignment (a new generation).
    pub(crate) fn assigned_rebalance(&mut self, env: &Env<'_>) {
        if self.members.is_empty() {
            self.become_empty(env.now_ms);
            return;
        }
        let delay = env.config.initial_rebalance_delay;
        match self.state {
            GroupState::Empty | GroupState::Dead if !delay.is_zero() => {
                self.state = GroupState::PreparingRebalance;
                self.phase_deadline = Some(env.now + delay);
            }
            GroupState::PreparingRebalance if self.phase_deadline.is_some_and(|d| d > env.now) => {}
            _ => self.assign(env),
        }
    }

    /// Computes the target assignment of a new generation.
    pub(crate) fn assign(&mut self, env: &Env<'_>) {
        let subscribed: BTreeSet<String> = self.members.values().flat_map(|m| m.topics.iter().cloned()).collect();
        let counts: BTreeMap<String, u32> =
            subscribed.into_iter().filter_map(|t| env.partitions(&t).map(|n| (t, n))).collect();
        let (assignor, mode) = match &self.protocol {
            Some(Protocol::Assigned { assignor, mode }) => (*assignor, *mode),
            _ => (Default::default(), GroupMode::Clustering),
        };
        let targets: BTreeMap<String, BTreeSet<Tp>> = match mode {
            GroupMode::Broadcasting => self
                .members
                .values()
                .map(|m| {
                    let all = m
                        .topics
                        .iter()
                        .filter_map(|t| counts.get(t).map(|n| (t, *n)))
                        .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
                        .collect();
                    (m.id.clone(), all)
                })
                .collect(),
            GroupMode::Clustering => {
                let subscriptions: BTreeMap<String, MemberSubscription> = self
                    .members
                    .values()
                    .map(|m| {
                        let current = m.target.iter().filter(|tp| m.topics.contains(&tp.0)).cloned().collect();
                        let sub = MemberSubscription {
                            topics: m.topics.clone(),
                            owned: current,
                            instance_id: m.instance_id.clone(),
                        };
                        (m.id.clone(), sub)
                    })
                    .collect();
                assignor.assign(&AssignmentInput { members: &subscriptions, partitions: &counts })
            }
        };
        self.generation += 1;
        self.rebalances += 1;
        self.partition_counts = counts;
        self.phase_deadline = None;
        self.state = GroupState::CompletingRebalance;
        for m in self.members.values_mut() {
            m.target = targets.get(&m.id).cloned().unwrap_or_default();
            // Armed again when the member's next answer tells it what to give up.
            m.revoke_deadline = None;
        }
        tracing::info!(group = %self.name, generation = self.generation, members = self.members.len(),
            assignor = assignor.name(), mode = mode.name(), "group rebalanced");
    }

    /// The initial delay ended: the first assignment of the new generation.
    pub(crate) fn assigned_phase_expired(&mut self, env: &Env<'_>) {
        self.phase_deadline = None;
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if self.members.is_empty() {
            self.become_empty(env.now_ms);
        } else {
            self.assign(env);
            self.settle();
        }
    }

    /// Grants `member_id` the partitions of its target no other member holds; true if any.
    fn grant(&mut self, member_id: &str) -> bool {
        if self.state == GroupState::PreparingRebalance {
            return false;
        }
        let broadcasting = self.mode() == GroupMode::Broadcasting;
        let held: BTreeSet<Tp> = if broadcasting {
            BTreeSet::new()
        } else {
            self.members.values().filter(|m| m.id != member_id).flat_map(|m| m.owned.iter().cloned()).collect()
        };
        let member = self.members.get_mut(member_id).expect("present");
        let free: Vec<Tp> =
            member.target.iter().filter(|tp| !member.owned.contains(*tp) && !held.contains(*tp)).cloned().collect();
        let granted = !free.is_empty();
        member.owned.extend(free);
        granted
    }

    /// CompletingRebalance becomes Stable once every member holds exactly its target.
    fn settle(&mut self) {
        if self.state == GroupState::CompletingRebalance && self.members.values().all(|m| m.owned == m.target) {
            self.state = GroupState::Stable;
        }
    }

    /// Removes a member of a broker-assigned group (left, or expelled): its partitions are free, and the
    /// others are rebalanced.
    pub(crate) fn assigned_remove(&mut self, member_id: &str, env: &Env<'_>) {
        if self.members.remove(member_id).is_some() {
            self.assigned_rebalance(env);
            self.settle();
        }
    }
}
