//! Delayed and timed messages: scheduling into the RocksDB timer store ([`crate::meta::timers`]), the
//! delivery task, and cancelling by id (RocketMQ's RecallMessage).
//!
//! **Why RocksDB and not a timing wheel: measured.** RocketMQ 5's default timer store is a timing wheel
//! (two weeks of 1 s slots, preallocated) over an append-only timer log whose records chain per slot;
//! RIP-82 later added a RocksDB store keyed by due time. `experiments/src/bin/timer_store.rs` runs this
//! store and a model of the wheel on the same workloads in separate processes (release build, results in
//! `experiments/results/e9-timers/store-comparison.md`):
//!
//! | | RocksDB (this store) | wheel + log model |
//! |---|---|---|
//! | schedule 1,000,000 due over 600 s | 1.2 M/s | 22 M/s |
//! | memory grown while 1,000,000 are pending | 32 MB | 30 MB (the wheel) |
//! | read and remove 500,000 due in one second | 0.78 s | 0.46 s |
//!
//! Both are far faster than the broker around them (a produce request costs more than its timer's
//! write), and both hold 1,000,000 pending timers in about 30 MB. The RocksDB store is chosen for what the
//! wheel lacks: cancelling by id needs a second index there (here it is a point lookup in `timer_ids`),
//! the wheel's crash recovery means a checkpoint and replaying the log (RocketMQ flushes progress every
//! second and redelivers a slot after a crash), and the log needs its own compaction once it is mostly
//! delivered records; RocksDB's WAL, ordered keys and compaction give all three. The one cost it showed,
//! draining a burst, came from rescanning the deletions of earlier rounds; rounds now resume after the
//! last delivered key, which took the drain from 4.1 s to 0.78 s.
//!
//! **Delivery.** One task sleeps until the earliest due time (or at most `timer.precision.ms`, or until a
//! schedule wakes it), then appends what is due to its topic and partition, in due order, batched per
//! partition, and removes it from the store. A message is never delivered before its due time; lateness
//! is the time to append (milliseconds) unless the broker is backlogged. Delivered copies carry
//! `JANUS_TIMER_DUE_MS` (the due time) and the delivery time as their timestamp, so lateness is visible to
//! consumers. A crash between the append and the removal delivers that round again: at most
//! `timer_delivery_batch` duplicates. Messages that fell due while the broker was down are delivered at
//! once after it starts.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use janus_api::{Header, NewRecord, headers};
use tokio::sync::Notify;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::messaging::metrics as m;
use crate::meta::timers::TimerEntry;
use janus_api::sync::lock as sync_lock;

/// The timer service's in-memory state: a counter and two clocks, never per-timer memory.
#[derive(Debug, Default)]
pub struct Timers {
    pending: AtomicU64,
    /// Schedules get a due time no earlier than this: the delivery task has scanned up to it.
    floor_ms: Mutex<i64>,
    /// Serialises a delivery round against cancels, so a cancelled message is never also delivered.
    round: tokio::sync::Mutex<()>,
    wake: Notify,
}

impl Timers {
    /// A service over a store holding `pending` messages.
    pub fn new(pending: u64) -> Self {
        m::set_timers_pending(pending);
        Timers { pending: AtomicU64::new(pending), ..Timers::default() }
    }

    /// Messages scheduled and not yet delivered or cancelled.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    fn add_pending(&self, n: u64) {
        m::set_timers_pending(self.pending.fetch_add(n, Ordering::Relaxed) + n);
    }

    fn sub_pending(&self, n: u64) {
        let before = self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(p.saturating_sub(n)));
        m::set_timers_pending(before.unwrap_or(0).saturating_sub(n));
    }
}

/// A message that was scheduled: where it will go and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledMessage {
    /// Its id (cancel it with [`Core::cancel_timer`]).
    pub message_id: String,
    /// The partition it will be appended to.
    pub partition: u32,
    /// When, milliseconds since the Unix epoch.
    pub deliver_at_ms: i64,
}

/// A pending message as [`Core::pending_timer`] shows it.
pub type PendingTimer = TimerEntry;

impl Core {
    /// Stores `entries` until they are due (`sync`: durable before returning) and wakes the delivery task.
    pub(crate) async fn schedule(&self, mut entries: Vec<TimerEntry>, sync: bool) -> Result<(), BrokerError> {
        if entries.is_empty() {
            return Ok(());
        }
        let messaging = std::sync::Arc::clone(&self.messaging);
        let n = entries.len() as u64;
        self.blocking(move |r| {
            let floor = sync_lock(&messaging.timers.floor_ms);
            for e in &mut entries {
                e.due_ms = e.due_ms.max(*floor);
            }
            r.meta().put_timers(&entries, sync)?;
            messaging.timers.add_pending(n);
            Ok(())
        })
        .await?;
        self.messaging.timers.wake.notify_one();
        Ok(())
    }

    /// The pending (scheduled, not yet delivered) message with id `id`.
    pub async fn pending_timer(&self, id: String) -> Result<PendingTimer, BrokerError> {
        self.blocking(move |r| Ok(r.meta().timer_by_id(&id)?.ok_or_else(|| no_timer(&id)))).await?
    }

    /// Cancels the pending message `id` (RocketMQ's RecallMessage): it will never be delivered. Refused
    /// with `UnknownMessage` once it was delivered (or if it never existed).
    pub async fn cancel_timer(&self, id: String) -> Result<PendingTimer, BrokerError> {
        let _round = self.messaging.timers.round.lock().await;
        let messaging = std::sync::Arc::clone(&self.messaging);
        self.blocking(move |r| {
            let entry = r.meta().timer_by_id(&id)?.ok_or_else(|| no_timer(&id))?;
            r.meta().cancel_timer(&entry)?;
            messaging.timers.sub_pending(1);
            m::timer_cancelled();
            Ok(entry)
        })
        .await
    }

    /// Delivers due messages until the broker shuts down (the runtime spawns this once).
    pub async fn run_timer_delivery(&self) {
        let mut shutdown = self.shutdown_signal();
        let precision = self.messaging.config.timer_precision;
        let mut scanned_from = ScanStart::default();
        loop {
            if self.shutting_down() {
                return;
            }
            let wait = match self.deliver_due_round(&mut scanned_from).await {
                Ok(true) => continue,
                Ok(false) => self.time_to_next_timer(scanned_from.due_ms).await.unwrap_or(precision).min(precision),
                Err(e) => {
                    tracing::warn!(error = %e, "timer delivery failed; retrying");
                    precision
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.messaging.timers.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn time_to_next_timer(&self, from_ms: i64) -> Option<Duration> {
        let next = self.blocking(move |r| Ok(r.meta().next_timer_due(from_ms)?)).await.ok()??;
        Some(Duration::from_millis((next - self.messaging.now_ms()).max(0) as u64 + 1))
    }

    /// Delivers one round of due messages; `Ok(true)` when the round was full (more may be due).
    async fn deliver_due_round(&self, scanned_from: &mut ScanStart) -> Result<bool, BrokerError> {
        let round = self.messaging.timers.round.lock().await;
        let now = self.messaging.now_ms();
        {
            let mut floor = sync_lock(&self.messaging.timers.floor_ms);
            // Past every key this round can reach, so a schedule made during the round lands after the
            // point where the next round starts (a message due now is delivered a millisecond later).
            *floor = (*floor).max(now + 1);
        }
        let (from, limit) = (scanned_from.clone(), self.messaging.config.timer_delivery_batch);
        let due =
            self.blocking(move |r| Ok(r.meta().due_timers(from.due_ms, from.after_id.as_deref(), now, limit)?)).await?;
        if due.is_empty() {
            *scanned_from = ScanStart { due_ms: now, after_id: None };
            return Ok(false);
        }
        let full = due.len() >= limit;
        let mut by_target: BTreeMap<(String, u32), Vec<&TimerEntry>> = BTreeMap::new();
        for e in &due {
            by_target.entry((e.topic.clone(), e.partition)).or_default().push(e);
        }
        // What is done with (appended or dropped) leaves the store even if a later target fails, so a failing
        // partition never makes the others' messages come again on every retry.
        let mut done: Vec<&TimerEntry> = Vec::with_capacity(due.len());
        let mut failed = None;
        for ((topic_name, partition), entries) in by_target {
            match self.deliver_to(&topic_name, partition, &entries, now).await {
                Ok(()) => done.extend(entries),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            self.remove_delivered(&done).await?;
            return Err(e);
        }
        let delivered_at = self.messaging.now_ms();
        for e in &due {
            m::record_timer_lateness(delivered_at - e.due_ms);
        }
        self.remove_delivered(&done).await?;
        let last = due.last().map(|e| (e.due_ms, e.id.clone()));
        *scanned_from = match last {
            Some((due_ms, id)) if full => ScanStart { due_ms, after_id: Some(id) },
            _ => ScanStart { due_ms: now, after_id: None },
        };
        drop(round);
        Ok(full)
    }

    /// Appends due messages to one partition; messages whose topic or partition is gone, or that no longer
    /// fit its `max.message.bytes` (changed since they were scheduled), are dropped with a warning rather
    /// than holding up every later timer.
    async fn deliver_to(
        &self,
        topic_name: &str,
        partition: u32,
        entries: &[&TimerEntry],
        now: i64,
    ) -> Result<(), BrokerError> {
        let drop_all = |why: &str| {
            tracing::warn!(topic = %topic_name, partition, dropped = entries.len(), "scheduled messages dropped: {why}");
            m::timers_dropped(entries.len() as u64);
            Ok(())
        };
        let topic = match self.topic(topic_name) {
            Ok(t) if partition < t.partitions => t,
            _ => return drop_all("the topic or partition no longer exists"),
        };
        let records: Vec<NewRecord> = entries.iter().map(|e| delivered_copy(e, now)).collect();
        let batches =
            match crate::produce::build_batches(&topic.name, &records, topic.config().max_message_bytes as usize) {
                Ok(b) => b,
                Err(e) => return drop_all(e.message()),
            };
        self.append_and_wait(topic, batches.into_iter().map(|b| (partition, b)).collect(), false).await?;
        m::timers_delivered(entries.len() as u64);
        Ok(())
    }

    /// Removes delivered (or dropped) messages from the store.
    async fn remove_delivered(&self, done: &[&TimerEntry]) -> Result<(), BrokerError> {
        if done.is_empty() {
            return Ok(());
        }
        let keys: Vec<(i64, String)> = done.iter().map(|e| (e.due_ms, e.id.clone())).collect();
        self.blocking(move |r| Ok(r.meta().remove_timers(keys.iter().map(|(d, id)| (*d, id.as_str())))?)).await?;
        self.messaging.timers.sub_pending(done.len() as u64);
        Ok(())
    }
}

/// Where the delivery task's next scan starts: everything before it was delivered (schedules are clamped
/// to the floor, which is never below it).
#[derive(Clone, Debug, Default)]
struct ScanStart {
    due_ms: i64,
    /// After this message of `due_ms` (a full round ended there), or from the start of `due_ms`.
    after_id: Option<String>,
}

fn no_timer(id: &str) -> BrokerError {
    BrokerError::new(
        ErrorCode::UnknownMessage,
        format!("no scheduled message has id '{id}': it was delivered or cancelled already, or never scheduled"),
    )
}

/// The copy of a due message that is appended: its delivery time as timestamp (RocketMQ's store time) and
/// its due time in `JANUS_TIMER_DUE_MS`; the properties that asked for a delay are dropped so the copy is not
/// scheduled again if it is produced anew (a dead letter resent, say).
fn delivered_copy(e: &TimerEntry, now: i64) -> NewRecord {
    let mut record = e.record.clone();
    record.headers.retain(|h| {
        ![headers::DELAY, headers::TIMER_DELAY_MS, headers::TIMER_DELAY_SEC, headers::TIMER_DELIVER_MS]
            .contains(&h.key.as_str())
    });
    record.headers.push(Header::new(headers::TIMER_DUE_MS, Bytes::from(e.due_ms.to_string())));
    record.timestamp_ms = now;
    record
}
