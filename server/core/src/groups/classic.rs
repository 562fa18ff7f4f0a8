//! Kafka's classic group protocol on the shared group state: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.
//!
//! A membership change moves the group to PreparingRebalance; the join phase ends when every member has
//! rejoined, or when its deadline passes (the initial rebalance delay for a group that was empty, else the
//! longest rebalance timeout), and members that did not rejoin are removed. Then a new generation starts:
//! the protocol most members prefer among those all support is chosen, the leader gets every member's
//! metadata, and the group waits in CompletingRebalance for the leader's SyncGroup (members that do not
//! sync within the rebalance timeout are removed). The assignment bytes pass through untouched.
//! JoinGroup and SyncGroup answers travel through one-shot channels so they can complete later.

use bytes::Bytes;

use super::coordinator::Env;
use super::group::{Group, JoinWaiter, Member, Protocol, SyncWaiter, illegal_generation, unknown_member};
use super::protocol::{
    GroupState, JoinGroupRequest, JoinGroupResponse, JoinOutcome, JoinedMember, SyncGroupRequest, SyncGroupResponse,
};
use crate::error::{BrokerError, ErrorCode};

fn rebalancing(group: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::RebalanceInProgress,
        format!("group '{group}' is rebalancing: join again to get the new assignment"),
    )
}

fn inconsistent(message: String) -> BrokerError {
    BrokerError::new(ErrorCode::InconsistentGroupProtocol, message)
}

impl Group {
    /// A JoinGroup: answers through `waiter` now or when the join phase ends. Returns whether stored
    /// state changed.
    pub(crate) fn classic_join(
        &mut self,
        req: &JoinGroupRequest,
        waiter: JoinWaiter,
        env: &Env<'_>,
    ) -> Result<bool, BrokerError> {
        self.check_classic_protocol(req)?;
        if self.members.is_empty() && self.pending.is_empty() {
            // Whatever the group spoke before it emptied, this member's protocol is the group's now.
            self.protocol = None;
        }
        if self.protocol.is_none() {
            self.protocol =
                Some(Protocol::Classic { protocol_type: req.protocol_type.clone(), protocol_name: None, leader: None });
        }
        let protocols: Vec<(String, Vec<u8>)> = req.protocols.iter().map(|(n, m)| (n.clone(), m.to_vec())).collect();
        if req.member_id.is_empty() {
            if let Some(instance) = &req.instance_id
                && let Some(old_id) = self.static_member(instance).map(str::to_string)
            {
                return Ok(self.replace_static(&old_id, req, protocols, waiter, env));
            }
            let id = env.fresh_id();
            if self.members.len() + self.pending.len() >= env.config.max_members {
                return Err(BrokerError::new(
                    ErrorCode::LimitExceeded,
                    format!("group '{}' already has {} members (group.max.size)", self.name, self.members.len()),
                ));
            }
            if req.require_known_member_id && req.instance_id.is_none() {
                self.pending.insert(id.clone(), env.now + req.session_timeout);
                let _ = waiter.send(Ok(JoinOutcome::MemberIdRequired { member_id: id }));
                return Ok(false);
            }
            self.add_classic_member(id, req, protocols, waiter, env)?;
            return Ok(true);
        }
        if self.pending.remove(&req.member_id).is_some() {
            self.add_classic_member(req.member_id.clone(), req, protocols, waiter, env)?;
            return Ok(true);
        }
        let state = self.state;
        let leader = self.leader().map(str::to_string);
        let member = self.member_mut(&req.member_id, req.instance_id.as_deref())?;
        member.touch(env.now);
        let unchanged = member.protocols == protocols;
        member.client_id.clone_from(&req.client_id);
        member.host.clone_from(&req.client_host);
        match state {
            GroupState::PreparingRebalance => {
                member.protocols = protocols;
                member.join_waiter = Some(waiter);
                self.maybe_complete_join(env);
                Ok(true)
            }
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged
                    && (state == GroupState::CompletingRebalance || leader.as_deref() != Some(&req.member_id)) =>
            {
                let answer = self.join_answer(&req.member_id);
                let _ = waiter.send(Ok(JoinOutcome::Joined(answer)));
                Ok(false)
            }
            _ => {
                member.protocols = protocols;
                member.join_waiter = Some(waiter);
                self.prepare_rebalance(env);
                Ok(true)
            }
        }
    }

    fn check_classic_protocol(&self, req: &JoinGroupRequest) -> Result<(), BrokerError> {
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Err(inconsistent(format!(
                "a JoinGroup for group '{}' needs a protocol type and at least one protocol",
                self.name
            )));
        }
        if self.members.is_empty() {
            return Ok(());
        }
        match &self.protocol {
            Some(Protocol::Assigned { .. }) => Err(inconsistent(format!(
                "group '{}' has janus.v1 (broker-assigned) members; a classic-protocol member cannot join it",
                self.name
            ))),
            Some(Protocol::Classic { protocol_type, .. }) if *protocol_type != req.protocol_type => {
                Err(inconsistent(format!(
                    "group '{}' uses protocol type '{protocol_type}', this member '{}'",
                    self.name, req.protocol_type
                )))
            }
            _ => {
                let supported = |name: &str| {
                    self.members
                        .values()
                        .filter(|m| m.id != req.member_id)
                        .all(|m| m.protocols.iter().any(|(n, _)| n == name))
                };
                if req.protocols.iter().any(|(n, _)| supported(n)) {
                    Ok(())
                } else {
                    Err(inconsistent(format!(
                        "none of this member's protocols ({}) is supported by every member of group '{}'",
                        req.protocols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                        self.name
                    )))
                }
            }
        }
    }

    fn add_classic_member(
        &mut self,
        id: String,
        req: &JoinGroupRequest,
        protocols: Vec<(String, Vec<u8>)>,
        waiter: JoinWaiter,
        env: &Env<'_>,
    ) -> Result<(), BrokerError> {
        if self.members.len() >= env.config.max_members {
            return Err(BrokerError::new(
                ErrorCode::LimitExceeded,
                format!("group '{}' already has {} members (group.max.size)", self.name, self.members.len()),
            ));
        }
        let mut member = Member {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout.as_millis() as u64,
            rebalance_timeout_ms: req.rebalance_timeout.as_millis() as u64,
            protocols,
            join_waiter: Some(waiter),
            ..Member::default()
        };
        member.touch(env.now);
        self.members.insert(id, member);
        self.emptied_ms = None;
        self.prepare_rebalance(env);
        Ok(())
    }

    /// A static member restarted with a new member id: it takes the old one's place. A stable group whose
    /// leader did not change keeps its assignment (no rebalance); otherwise the group rebalances.
    fn replace_static(
        &mut self,
        old_id: &str,
        req: &JoinGroupRequest,
        protocols: Vec<(String, Vec<u8>)>,
        waiter: JoinWaiter,
        env: &Env<'_>,
    ) -> bool {
        let id = env.fresh_id();
        let mut member = self.members.remove(old_id).expect("found by instance id");
        let group = self.name.clone();
        let instance = req.instance_id.clone().unwrap_or_default();
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(Err(super::group::fenced(&group, &instance)));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(Err(super::group::fenced(&group, &instance)));
        }
        // Kafka rebalances a restarted static member's group only when it no longer supports the selected
        // protocol: its metadata bytes (which a Java consumer fills with its owned partitions) may differ.
        let selected = match &self.protocol {
            Some(Protocol::Classic { protocol_name: Some(n), .. }) => Some(n.clone()),
            _ => None,
        };
        let unchanged = selected.is_none_or(|n| protocols.iter().any(|(p, _)| *p == n));
        member.id.clone_from(&id);
        member.client_id.clone_from(&req.client_id);
        member.host.clone_from(&req.client_host);
        member.session_timeout_ms = req.session_timeout.as_millis() as u64;
        member.rebalance_timeout_ms = req.rebalance_timeout.as_millis() as u64;
        member.protocols = protocols;
        member.touch(env.now);
        let was_leader = self.leader() == Some(old_id);
        if let Some(Protocol::Classic { leader: Some(l), .. }) = &mut self.protocol
            && l == old_id
        {
            l.clone_from(&id);
        }
        self.members.insert(id.clone(), member);
        tracing::info!(group = %self.name, instance = %instance, old = %old_id, new = %id,
            "static member rejoined");
        if self.state == GroupState::Stable && unchanged && !was_leader {
            let answer = self.join_answer(&id);
            let _ = waiter.send(Ok(JoinOutcome::Joined(answer)));
        } else {
            self.members.get_mut(&id).expect("inserted").join_waiter = Some(waiter);
            if self.state == GroupState::PreparingRebalance {
                self.maybe_complete_join(env);
            } else {
                self.prepare_rebalance(env);
            }
        }
        true
    }

    /// The leader's member id.
    pub(crate) fn leader(&self) -> Option<&str> {
        match &self.protocol {
            Some(Protocol::Classic { leader, .. }) => leader.as_deref(),
            _ => None,
        }
    }

    /// The JoinGroup answer of the current generation for `member_id`.
    fn join_answer(&self, member_id: &str) -> JoinGroupResponse {
        let (protocol_type, protocol_name, leader) = match &self.protocol {
            Some(Protocol::Classic { protocol_type, protocol_name, leader }) => {
                (protocol_type.clone(), protocol_name.clone().unwrap_or_default(), leader.clone().unwrap_or_default())
            }
            _ => Default::default(),
        };
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol_name)
                        .map(|(_, meta)| Bytes::from(meta.clone()))
                        .unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            generation: self.generation,
            protocol_type,
            protocol_name,
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Starts (or keeps) a join phase; pending SyncGroups learn that the group is rebalancing.
    pub(crate) fn prepare_rebalance(&mut self, env: &Env<'_>) {
        let was_empty = self.state == GroupState::Empty || self.state == GroupState::Dead;
        if self.state != GroupState::PreparingRebalance {
            let name = self.name.clone();
            for m in self.members.values_mut() {
                m.synced = false;
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(rebalancing(&name)));
                }
            }
            self.state = GroupState::PreparingRebalance;
            let delay = if was_empty {
                env.config.initial_rebalance_delay
            } else {
                self.members.values().map(Member::rebalance_timeout).max().unwrap_or_default()
            };
            self.phase_deadline = Some(env.now + delay);
            self.initial_delay = was_empty && !delay.is_zero();
            if self.initial_delay {
                return;
            }
        }
        self.maybe_complete_join(env);
    }

    /// Ends the join phase early when every member has rejoined (not during a new group's initial delay).
    fn maybe_complete_join(&mut self, env: &Env<'_>) {
        if self.state != GroupState::PreparingRebalance || !self.pending.is_empty() {
            return;
        }
        if self.initial_delay && self.phase_deadline.is_some_and(|d| d > env.now) {
            return;
        }
        if self.members.values().all(|m| m.join_waiter.is_some()) {
            self.complete_join(env);
        }
    }

    /// The join phase's deadline passed: members that did not rejoin are removed, and the phase ends.
    pub(crate) fn classic_phase_expired(&mut self, env: &Env<'_>) {
        match self.state {
            GroupState::PreparingRebalance => {
                // Dynamic members that did not rejoin are removed; static ones stay (Kafka keeps them until
                // their session times out, so a slow restart does not cost a second rebalance).
                let gone: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in gone {
                    tracing::info!(group = %self.name, member = %id, "member did not rejoin in time: removed");
                    self.members.remove(&id);
                }
                self.pending.clear();
                self.complete_join(env);
            }
            GroupState::CompletingRebalance => {
                let gone: Vec<String> = self.members.values().filter(|m| !m.synced).map(|m| m.id.clone()).collect();
                for id in gone {
                    tracing::info!(group = %self.name, member = %id, "member did not sync in time: removed");
                    self.members.remove(&id);
                }
                if self.members.is_empty() {
                    self.become_empty(env.now_ms);
                } else {
                    self.prepare_rebalance(env);
                }
            }
            _ => self.phase_deadline = None,
        }
    }

    /// A new generation: choose the protocol and leader, answer every waiting JoinGroup.
    fn complete_join(&mut self, env: &Env<'_>) {
        if self.members.is_empty() {
            self.become_empty(env.now_ms);
            return;
        }
        let protocol_name = self.choose_protocol();
        let current_leader =
            self.leader().filter(|l| self.members.get(*l).is_some_and(|m| m.join_waiter.is_some())).map(str::to_string);
        let leader = current_leader.unwrap_or_else(|| {
            let waiting = self.members.values().find(|m| m.join_waiter.is_some());
            waiting.or_else(|| self.members.values().next()).map(|m| m.id.clone()).unwrap_or_default()
        });
        if let Some(Protocol::Classic { protocol_name: name, leader: l, .. }) = &mut self.protocol {
            *name = Some(protocol_name.clone());
            *l = Some(leader);
        }
        self.generation += 1;
        self.rebalances += 1;
        self.initial_delay = false;
        self.state = GroupState::CompletingRebalance;
        let sync_timeout = self.members.values().map(Member::rebalance_timeout).max().unwrap_or_default();
        self.phase_deadline = Some(env.now + sync_timeout);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let answer = self.join_answer(&id);
            let generation = self.generation;
            let member = self.members.get_mut(&id).expect("listed");
            member.assignment.clear();
            match member.join_waiter.take() {
                Some(w) => {
                    member.synced = false;
                    member.answered(generation);
                    member.touch(env.now);
                    let _ = w.send(Ok(JoinOutcome::Joined(answer)));
                }
                // A static member that has not rejoined yet: nothing is awaited from it in this sync phase;
                // its session runs on, and it rejoins (or is expelled) on its own.
                None => member.synced = true,
            }
        }
        tracing::info!(group = %self.name, generation = self.generation, members = self.members.len(),
            protocol = %protocol_name, "classic group rebalanced");
    }

    /// The protocol every member supports that most members list first (ties: the earliest name).
    fn choose_protocol(&self) -> String {
        let Some(first) = self.members.values().next() else { return String::new() };
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(x, _)| x == *n)))
            .collect();
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let votes = self
                .members
                .values()
                .filter(|m| m.protocols.iter().map(|(n, _)| n).find(|n| candidates.contains(n)) == Some(*c))
                .count();
            if best.is_none_or(|(b, v)| votes > v || (votes == v && *c < b)) {
                best = Some((c, votes));
            }
        }
        best.map(|(n, _)| n.clone()).unwrap_or_default()
    }

    /// A SyncGroup: answers through `waiter` now (Stable) or when the leader's assignment arrives.
    /// Returns whether stored state changed.
    pub(crate) fn classic_sync(
        &mut self,
        req: &SyncGroupRequest,
        waiter: SyncWaiter,
        env: &Env<'_>,
    ) -> Result<bool, BrokerError> {
        let (generation, state, name) = (self.generation, self.state, self.name.clone());
        let (protocol_type, protocol_name) = match &self.protocol {
            Some(Protocol::Classic { protocol_type, protocol_name, .. }) => {
                (protocol_type.clone(), protocol_name.clone().unwrap_or_default())
            }
            _ => return Err(unknown_member(&name, &req.member_id)),
        };
        let is_leader = self.leader() == Some(req.member_id.as_str());
        let member = self.member_mut(&req.member_id, req.instance_id.as_deref())?;
        if req.generation != generation {
            return Err(illegal_generation(&name, req.generation, generation));
        }
        if req.protocol_type.as_ref().is_some_and(|t| *t != protocol_type)
            || req.protocol_name.as_ref().is_some_and(|n| *n != protocol_name)
        {
            return Err(inconsistent(format!(
                "group '{name}' uses protocol type '{protocol_type}' and protocol '{protocol_name}'"
            )));
        }
        member.touch(env.now);
        match state {
            GroupState::PreparingRebalance => Err(rebalancing(&name)),
            GroupState::Stable => {
                let assignment = Bytes::from(member.assignment.clone());
                let _ = waiter.send(Ok(SyncGroupResponse { protocol_type, protocol_name, assignment }));
                Ok(false)
            }
            GroupState::CompletingRebalance => {
                member.synced = true;
                member.sync_waiter = Some(waiter);
                if !is_leader {
                    return Ok(false);
                }
                for m in self.members.values_mut() {
                    m.assignment =
                        req.assignments.iter().find(|(id, _)| *id == m.id).map(|(_, a)| a.to_vec()).unwrap_or_default();
                }
                self.state = GroupState::Stable;
                self.phase_deadline = None;
                for m in self.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let assignment = Bytes::from(m.assignment.clone());
                        let (protocol_type, protocol_name) = (protocol_type.clone(), protocol_name.clone());
                        let _ = w.send(Ok(SyncGroupResponse { protocol_type, protocol_name, assignment }));
                    }
                }
                Ok(true)
            }
            GroupState::Empty | GroupState::Dead => Err(unknown_member(&name, &req.member_id)),
        }
    }

    /// A classic Heartbeat: keeps the session; tells the member when it must rejoin.
    pub(crate) fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        env: &Env<'_>,
    ) -> Result<(), BrokerError> {
        let (current, state, name) = (self.generation, self.state, self.name.clone());
        if !self.is_classic() {
            return Err(unknown_member(&name, member_id));
        }
        let member = self.member_mut(member_id, instance_id)?;
        if generation != current {
            return Err(illegal_generation(&name, generation, current));
        }
        member.touch(env.now);
        match state {
            GroupState::PreparingRebalance => Err(rebalancing(&name)),
            _ => Ok(()),
        }
    }

    /// A pending member id went away (left or expired): the join phase may be able to end.
    pub(crate) fn pending_left(&mut self, env: &Env<'_>) {
        if self.members.is_empty() && self.pending.is_empty() && self.state != GroupState::Empty {
            self.become_empty(env.now_ms);
        } else {
            self.maybe_complete_join(env);
        }
    }

    /// Removes a classic member (left, or expelled): its waiters are told, and the group rebalances.
    pub(crate) fn classic_remove(&mut self, member_id: &str, env: &Env<'_>) {
        let Some(mut member) = self.members.remove(member_id) else { return };
        let name = self.name.clone();
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(Err(unknown_member(&name, member_id)));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(Err(unknown_member(&name, member_id)));
        }
        if self.members.is_empty() && self.pending.is_empty() {
            self.become_empty(env.now_ms);
        } else if self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(env);
        } else {
            self.prepare_rebalance(env);
        }
    }
}
