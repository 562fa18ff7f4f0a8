//! Group commit for the segment engine: appends that need the disk register their partition's files as
//! dirty and take a sequence number; one background thread syncs every dirty file and completes every
//! waiter up to the sequence it saw, so concurrent `sync` appends share one round of `fsync`s.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use janus_api::sync::lock;
use janus_api::{FlushTracker, StorageError, TopicPartition};

/// Files of one partition waiting for a sync.
struct DirtyEntry {
    files: Vec<Arc<File>>,
    /// Offset below which the partition is durable once these files are synced.
    durable_offset: i64,
    /// Where to record that offset.
    recovery_point: Arc<AtomicI64>,
    /// When the `interval` policy wants these files synced at the latest.
    deadline: Instant,
}

#[derive(Default)]
struct DirtySet {
    /// Sequence of the newest registered append.
    seq: u64,
    entries: HashMap<TopicPartition, DirtyEntry>,
}

/// The dirty set, the tracker and the flush thread's stop flag.
pub struct GroupCommit {
    dirty: Mutex<DirtySet>,
    /// Serializes flush rounds (the thread's and explicit `flush` calls).
    round: Mutex<()>,
    tracker: Arc<FlushTracker>,
    stop: AtomicBool,
    /// Flush rounds run so far (each syncs every dirty file once).
    rounds: AtomicU64,
}

/// Longest the flush thread sleeps between looks at its stop flag and deadlines.
const MAX_IDLE: Duration = Duration::from_millis(100);

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            dirty: Mutex::default(),
            round: Mutex::default(),
            tracker: FlushTracker::new(0),
            stop: AtomicBool::new(false),
            rounds: AtomicU64::new(0),
        }
    }
}

impl GroupCommit {
    /// The tracker that `Durable` handles wait on.
    pub fn tracker(&self) -> &Arc<FlushTracker> {
        &self.tracker
    }

    /// Registers `files` of `tp` as needing a sync by `deadline`, after which the partition is durable below
    /// `durable_offset`. Returns the sequence to wait for.
    pub fn register(
        &self,
        tp: &TopicPartition,
        files: impl IntoIterator<Item = Arc<File>>,
        durable_offset: i64,
        recovery_point: &Arc<AtomicI64>,
        deadline: Instant,
    ) -> u64 {
        let mut dirty = lock(&self.dirty);
        dirty.seq += 1;
        let seq = dirty.seq;
        let entry = dirty.entries.entry(tp.clone()).or_insert_with(|| DirtyEntry {
            files: Vec::new(),
            durable_offset,
            recovery_point: Arc::clone(recovery_point),
            deadline,
        });
        for file in files {
            if !entry.files.iter().any(|f| Arc::ptr_eq(f, &file)) {
                entry.files.push(file);
            }
        }
        entry.durable_offset = entry.durable_offset.max(durable_offset);
        entry.deadline = entry.deadline.min(deadline);
        seq
    }

    /// Drops a partition's pending entry (its topic was deleted).
    pub fn forget(&self, tp: &TopicPartition) {
        lock(&self.dirty).entries.remove(tp);
    }

    /// Syncs every dirty file and completes the waiters registered so far.
    pub fn flush_round(&self) -> Result<(), StorageError> {
        let _round = lock(&self.round);
        let (seq, entries) = {
            let mut dirty = lock(&self.dirty);
            (dirty.seq, std::mem::take(&mut dirty.entries))
        };
        for (tp, entry) in entries {
            for file in &entry.files {
                file.sync_data().map_err(|e| StorageError::io(format!("segment of {tp}"), e))?;
            }
            entry.recovery_point.fetch_max(entry.durable_offset, Ordering::AcqRel);
        }
        self.tracker.mark_durable(seq);
        self.rounds.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// How many flush rounds have run.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    fn next_deadline(&self) -> Option<Instant> {
        lock(&self.dirty).entries.values().map(|e| e.deadline).min()
    }

    /// Asks the flush thread to stop after its current round.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.tracker.wake_flusher();
    }

    /// The flush thread's loop: waits for a `sync` request or the earliest `interval` deadline, then runs a
    /// round; calls `on_idle` between rounds (for checkpoints). A failed sync fails every waiter: the data
    /// may not be on disk and the engine cannot promise otherwise.
    pub fn run(&self, mut on_idle: impl FnMut()) {
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let wait = self.next_deadline().map_or(MAX_IDLE, |d| d.saturating_duration_since(now).min(MAX_IDLE));
            let requested = self.tracker.wait_for_request(wait);
            if self.tracker.has_failed() {
                return;
            }
            let due = requested > self.tracker.durable() || self.next_deadline().is_some_and(|d| d <= Instant::now());
            if due && let Err(e) = self.flush_round() {
                tracing::error!(error = %e, "flush failed; failing every waiting append");
                self.tracker.fail(format!("flush failed: {e}"));
                return;
            }
            on_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_completes_every_registered_append_and_moves_recovery_points() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let gc = GroupCommit::default();
        let rp = Arc::new(AtomicI64::new(0));
        let tp = TopicPartition::new("t", 0);
        let s1 = gc.register(&tp, [Arc::clone(&file)], 10, &rp, Instant::now());
        let s2 = gc.register(&tp, [Arc::clone(&file)], 20, &rp, Instant::now());
        let (w1, w2) = (gc.tracker().waiter(s1, true), gc.tracker().waiter(s2, true));
        assert!(!w1.is_done());
        gc.flush_round().unwrap();
        w1.wait().unwrap();
        w2.wait().unwrap();
        assert_eq!(rp.load(Ordering::Acquire), 20);
    }
}
