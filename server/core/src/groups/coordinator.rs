//! The coordinator: every group's state behind one lock, stored in the metadata store, and the timer that
//! expels members whose session or rebalance timeout passed and ends join phases.
//!
//! Group state changes rarely (joins, leaves, rebalances, partitions changing hands), so each change is
//! written to RocksDB synchronously while the lock is held: what a member was told is never ahead of
//! what a restarted broker knows. Heartbeats that change nothing write nothing. Time is tokio's clock,
//! so tests run the coordinator under a paused clock, deterministically.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use janus_api::now_ms;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::config::GroupConfig;
use super::group::Group;
use super::protocol::GroupState;
use crate::error::BrokerError;
use crate::metrics;
use crate::topics::Registry;

/// See the module docs.
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    config: GroupConfig,
    registry: Arc<Registry>,
    wake: Notify,
    next_id: AtomicU64,
    incarnation: u64,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What a group transition needs from outside the group: the time, the settings, partition counts and
/// new member ids (made only when a transition asks for one).
pub(crate) struct Env<'a> {
    /// The coordinator's clock.
    pub now: Instant,
    /// Wall-clock ms (for `emptied_ms`).
    pub now_ms: i64,
    /// The settings.
    pub config: &'a GroupConfig,
    coordinator: &'a Coordinator,
    client_id: &'a str,
}

impl Env<'_> {
    /// A topic's partition count; `None` for a topic that does not exist.
    pub fn partitions(&self, topic: &str) -> Option<u32> {
        self.coordinator.registry.topic(topic).ok().map(|t| t.partitions)
    }

    /// A new member id: the client id, this broker's incarnation and a counter.
    pub fn fresh_id(&self) -> String {
        let n = self.coordinator.next_id.fetch_add(1, Ordering::Relaxed);
        let prefix: String = self.client_id.chars().filter(|c| !c.is_control()).take(64).collect();
        let prefix = if prefix.is_empty() { "member" } else { &prefix };
        format!("{prefix}-{:x}-{n}", self.coordinator.incarnation)
    }
}

/// The longest member id, instance id or client id accepted, in bytes.
pub const MAX_MEMBER_NAME_LEN: usize = 255;

impl Coordinator {
    /// Opens the coordinator over the groups stored in the registry's metadata store. Restored members
    /// get a fresh session: those that do not heartbeat again are expelled when it ends.
    pub fn open(registry: Arc<Registry>, config: GroupConfig) -> Result<Coordinator, BrokerError> {
        let now = Instant::now();
        let mut groups = HashMap::new();
        for (name, value) in registry.meta().group_records()? {
            match serde_json::from_slice::<Group>(&value) {
                Ok(g) => {
                    let g = g.restored(now);
                    publish(&g);
                    groups.insert(name, g);
                }
                Err(e) => tracing::warn!(group = %name, error = %e, "skipping an unreadable stored group"),
            }
        }
        let incarnation = now_ms() as u64;
        Ok(Coordinator {
            groups: Mutex::new(groups),
            config,
            registry,
            wake: Notify::new(),
            next_id: AtomicU64::new(0),
            incarnation,
        })
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The context of transitions run now for a client named `client_id`.
    fn env<'a>(&'a self, client_id: &'a str) -> Env<'a> {
        Env { now: Instant::now(), now_ms: now_ms(), config: &self.config, coordinator: self, client_id }
    }

    /// Runs `f` on group `name` (created empty when `create` and it does not exist; otherwise
    /// `missing` is the error) after expiring what is due; stores the group when `f` or the expiry says
    /// it changed. A group created here that ends with no members and no stored record is dropped again.
    pub(crate) fn with_group<T>(
        &self,
        name: &str,
        create: bool,
        client_id: &str,
        missing: impl FnOnce() -> BrokerError,
        f: impl FnOnce(&mut Group, &Env<'_>) -> Result<(T, bool), BrokerError>,
    ) -> Result<T, BrokerError> {
        let env = self.env(client_id);
        let mut groups = self.lock();
        let created = !groups.contains_key(name);
        if created && !create {
            return Err(missing());
        }
        let group = groups.entry(name.to_string()).or_insert_with(|| Group::new(name));
        let expired = expire(group, &env);
        let result = f(group, &env);
        let changed = expired || matches!(result, Ok((_, true)));
        if created && group.members.is_empty() && group.pending.is_empty() {
            groups.remove(name);
        } else if changed {
            // Gauges change only with the group, so a heartbeat that changes nothing records nothing.
            publish(group);
            self.store(group)?;
        }
        drop(groups);
        self.wake.notify_one();
        result.map(|(t, _)| t)
    }

    /// Reads group `name` (`None` when the coordinator has no state for it).
    pub(crate) fn read<T>(&self, name: &str, f: impl FnOnce(&Group) -> T) -> Option<T> {
        self.lock().get(name).map(f)
    }

    /// Reads every group.
    pub(crate) fn read_all<T>(&self, mut f: impl FnMut(&Group) -> T) -> Vec<T> {
        self.lock().values().map(&mut f).collect()
    }

    /// Forgets a group that has no members (its offsets expired): removes its stored record.
    pub(crate) fn forget_if_empty(&self, name: &str) -> Result<bool, BrokerError> {
        let mut groups = self.lock();
        if groups.get(name).is_some_and(|g| !g.members.is_empty() || !g.pending.is_empty()) {
            return Ok(false);
        }
        if let Some(mut g) = groups.remove(name) {
            g.state = GroupState::Dead;
            publish(&g);
            metrics::forget_group(name);
        }
        self.registry.meta().delete_group_record(name)?;
        Ok(true)
    }

    fn store(&self, group: &Group) -> Result<(), BrokerError> {
        let value = serde_json::to_vec(group)
            .map_err(|e| BrokerError::new(crate::ErrorCode::Internal, format!("encoding group state: {e}")))?;
        Ok(self.registry.meta().put_group_record(&group.name, &value)?)
    }

    /// Expires what is due in every group; returns the next instant something falls due.
    pub fn tick(&self) -> Option<Instant> {
        let env = self.env("");
        let mut groups = self.lock();
        let mut next: Option<Instant> = None;
        for group in groups.values_mut() {
            if expire(group, &env) {
                if let Err(e) = self.store(group) {
                    tracing::warn!(group = %group.name, error = %e, "could not store group state");
                }
                publish(group);
            }
            next = match (next, group.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    /// Runs [`Coordinator::tick`] whenever something falls due (at least once a second) until shutdown.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.tick();
            let now = Instant::now();
            let until = next.map_or(now + Duration::from_secs(1), |n| n.min(now + Duration::from_secs(1)));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

/// Expels members whose session or rebalance timeout passed and ends due phases; true if anything changed.
fn expire(group: &mut Group, env: &Env<'_>) -> bool {
    let now = env.now;
    let mut changed = false;
    let pending_before = group.pending.len();
    group.pending.retain(|_, deadline| *deadline > now);
    let pending_expired = group.pending.len() != pending_before;
    let expired: Vec<(String, &'static str)> = group
        .members
        .values()
        .filter_map(|m| {
            let waiting = m.join_waiter.is_some() || m.sync_waiter.is_some();
            if !waiting && m.session_deadline.is_some_and(|d| d <= now) {
                Some((m.id.clone(), "its session timed out (no heartbeat)"))
            } else if m.revoke_deadline.is_some_and(|d| d <= now) && !m.owned.is_subset(&m.target) {
                Some((m.id.clone(), "it did not give up moved partitions within its rebalance timeout"))
            } else {
                None
            }
        })
        .collect();
    for (id, why) in expired {
        tracing::info!(group = %group.name, member = %id, "member expelled: {why}");
        if group.is_classic() {
            group.classic_remove(&id, env);
        } else {
            group.assigned_remove(&id, env);
        }
        changed = true;
    }
    if pending_expired {
        group.pending_left(env);
        changed = true;
    }
    if group.phase_deadline.is_some_and(|d| d <= now) {
        if group.is_classic() {
            group.classic_phase_expired(env);
        } else {
            group.assigned_phase_expired(env);
        }
        changed = true;
    }
    changed
}

/// Sets a group's gauges.
fn publish(group: &Group) {
    metrics::set_group(&group.name, group.state, group.members.len(), group.generation, group.rebalances);
}
