//! Recovery at open.
//!
//! After a clean shutdown (no abort marker, an intact checkpoint whose CommitLog end is really the end of
//! the data) the engine starts at once. Otherwise:
//!
//! 1. [`recover_log`] scans the CommitLog from the start of the file holding the checkpoint's flushed
//!    point (from the first file without a checkpoint), checking every message (size, magic, body CRC,
//!    PHYSICALOFFSET, topic and properties structure); it cuts the log at the first bad record, zeroing
//!    the rest of that file and deleting later files. Torn (short) files were already extended with zeros.
//! 2. [`recover_queues`] re-dispatches the surviving scanned messages into the ConsumeQueues and IndexFiles
//!    (entry `n` of a queue is rewritten in place, so this is idempotent), then checks the tail of every
//!    ConsumeQueue on disk: entries pointing at or past the new end, or at a message that is not theirs,
//!    are cut off. Queues with a hole, or shorter than the checkpoint says, are rebuilt from the whole
//!    CommitLog ([`rebuild_queues`]).

use std::collections::HashSet;
use std::sync::Arc;

use crate::format as rec;
use janus_api::StorageError;
use janus_api::sync::lock;

use crate::checkpoint::{self, Checkpoint};
use crate::commitlog::CommitLog;
use crate::consume_queue::QueueLoc;
use crate::dispatch::Redispatcher;
use crate::state::{Queue, State};

/// What [`recover_log`] decided.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoveredLog {
    /// The written end of the CommitLog.
    pub end: u64,
    /// The newest STORETIMESTAMP seen.
    pub last_store_ms: i64,
    /// Where the scan started (messages from here are re-dispatched).
    pub scan_from: u64,
}

/// Decides the CommitLog's written end (see the module docs), truncating a damaged tail.
pub(crate) fn recover_log(
    log: &CommitLog,
    ckpt: Option<&Checkpoint>,
    crashed: bool,
) -> Result<RecoveredLog, StorageError> {
    if let (false, Some(c)) = (crashed, ckpt) {
        let end = c.commitlog_flushed;
        let files = log.files();
        let sane = match log.file_at(end) {
            Some(f) => {
                let tail = f.map.tail_from((end - f.start) as usize);
                matches!(rec::parse_entry(tail), Ok(rec::Entry::End))
            }
            None => files.last().map_or(end == 0, |l| l.end() == end),
        };
        if sane {
            // SAFETY: recovery runs at open, before the engine (and so any reader) exists.
            unsafe { log.set_written(end) };
            return Ok(RecoveredLog { end, last_store_ms: c.last_store_ms, scan_from: end });
        }
        tracing::warn!(end, "the checkpoint does not match the CommitLog; recovering as after a crash");
    }
    let first = log.min_offset();
    let file_bytes = log.file_bytes();
    let from = ckpt.map_or(0, |c| c.dispatch_flushed.min(c.commitlog_flushed)).max(first);
    let from = from - from % file_bytes;
    let last_end = log.files().last().map_or(0, |f| f.end());
    let from = if log.files().is_empty() { 0 } else { from.max(first).min(last_end) };
    let mut last_store_ms = ckpt.map_or(i64::MIN, |c| c.last_store_ms);
    let scanned = log.scan(from, true, |_, view| {
        last_store_ms = last_store_ms.max(view.meta.store_timestamp);
        Ok(())
    })?;
    if let Some(damage) = &scanned.damage {
        tracing::warn!(end = scanned.end, %damage, "cutting the CommitLog at a damaged record");
    }
    log.truncate(scanned.end)?;
    // SAFETY: recovery runs at open, before the engine (and so any reader) exists.
    unsafe { log.set_written(scanned.end) };
    Ok(RecoveredLog { end: scanned.end, last_store_ms: last_store_ms.max(0), scan_from: from })
}

/// Whether the message at `phys` is offset `offset` of queue `queue` of `topic`, `size` bytes long.
fn entry_matches(state: &State, phys: i64, size: i32, topic: &str, queue: u32, offset: u64) -> bool {
    if phys < 0 || size <= 0 || phys as u64 + size as u64 > state.log.written() {
        return false;
    }
    matches!(
        state.log.with_message(phys as u64, |v| {
            v.topic == topic.as_bytes()
                && v.meta.queue_id == queue as i32
                && v.meta.queue_offset == offset as i64
                && v.total_size == size as usize
        }),
        Some(Ok(true))
    )
}

/// Cuts off the entries of a queue that point at or past the CommitLog end or at a message that is not
/// theirs; returns the queue's new end.
fn validate_tail(state: &State, topic: &str, queue: u32, loc: &QueueLoc) -> Result<u64, StorageError> {
    let files = state.cq.load(loc)?;
    let per = state.cq.entries_per_file();
    let lo = files.first(per).min(files.next);
    let end = state.log.written() as i64;
    // The first entry reaching past the end (entries grow with the CommitLog).
    let (mut a, mut b) = (lo, files.next);
    while a < b {
        let mid = a + (b - a) / 2;
        let inside = state.cq.entry(loc, mid)?.is_some_and(|e| e.phys.saturating_add(i64::from(e.size)) <= end);
        if inside {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    let mut next = a;
    while next > lo {
        match state.cq.entry(loc, next - 1)? {
            Some(e) if entry_matches(state, e.phys, e.size, topic, queue, next - 1) => break,
            _ => next -= 1,
        }
    }
    if next < files.next {
        tracing::warn!(topic, queue, from = files.next, to = next, "cutting a ConsumeQueue tail");
        state.cq.truncate(loc, next)?;
    }
    Ok(next)
}

/// Re-dispatches what the crash scan saw, validates every ConsumeQueue tail and rebuilds damaged queues.
pub(crate) fn recover_queues(state: &State, scan_from: u64) -> Result<(), StorageError> {
    let tombstones = lock(&state.tombstones).clone();
    let loc = |t: &str, q: u32| state.queue_loc(t, q);
    let mut d = Redispatcher::new(&state.cq, Some(&state.index), &tombstones, &loc);
    state.log.scan(scan_from, false, |pos, view| d.dispatch(pos, view))?;
    d.finish()?;
    let mut damaged = Vec::new();
    let mut ends = Vec::new();
    for (topic, queue) in state.cq.queue_dirs()? {
        let loc = state.queue_loc(&topic, queue);
        let next = validate_tail(state, &topic, queue, &loc)?;
        let files = state.cq.load(&loc)?;
        let expected = lock(&state.known_queues).get(&(topic.clone(), queue)).copied();
        if !files.contiguous() || expected.is_some_and(|e| (next as i64) < e) {
            damaged.push((topic.clone(), queue));
        }
        ends.push(((topic, queue), next));
    }
    if !damaged.is_empty() {
        tracing::warn!(queues = damaged.len(), "rebuilding damaged ConsumeQueues from the CommitLog");
        rebuild_queues(state, &damaged)?;
        for ((topic, queue), next) in ends.iter_mut() {
            if damaged.iter().any(|(t, q)| t == topic && q == queue) {
                *next = state.cq.load(&state.queue_loc(topic, *queue))?.next;
            }
        }
    }
    let mut known = lock(&state.known_queues);
    known.clear();
    known.extend(ends.into_iter().map(|(k, next)| (k, next as i64)));
    Ok(())
}

/// Rebuilds the given queues from every message still in the CommitLog.
pub(crate) fn rebuild_queues(state: &State, queues: &[(String, u32)]) -> Result<(), StorageError> {
    let wanted: HashSet<(String, u32)> = queues.iter().cloned().collect();
    for (topic, queue) in queues {
        let loc = state.queue_loc(topic, *queue);
        state.cq.truncate(&loc, 0)?;
    }
    let tombstones = lock(&state.tombstones).clone();
    let loc = |t: &str, q: u32| state.queue_loc(t, q);
    let only = |t: &str, q: u32| wanted.contains(&(t.to_string(), q));
    let mut d = Redispatcher::new(&state.cq, None, &tombstones, &loc).only(&only);
    state.log.scan(state.log.min_offset(), false, |pos, view| d.dispatch(pos, view))?;
    d.finish()
}

/// Builds the in-memory state of a topic's queues from their files, first rebuilding from the CommitLog
/// (in one scan) those that miss data the checkpoint says they had, or that have a hole.
pub(crate) fn load_queues(state: &State, topic: &Arc<str>, partitions: u32) -> Result<Vec<Arc<Queue>>, StorageError> {
    let per = state.cq.entries_per_file();
    let mut damaged = Vec::new();
    for id in 0..partitions {
        let loc = state.queue_loc(topic, id);
        let files = state.cq.load(&loc)?;
        let expected = lock(&state.known_queues).get(&(topic.to_string(), id)).copied();
        let logical = checkpoint::read_log_start(&loc.dir)?.unwrap_or(0).max(0) as u64;
        let hole_at_front = files.next > 0 && files.first(per) > logical && state.log.min_offset() == 0;
        if !files.contiguous() || expected.is_some_and(|e| (files.next as i64) < e) || hole_at_front {
            tracing::warn!(topic = %topic, queue = id, "rebuilding a ConsumeQueue from the CommitLog");
            damaged.push((topic.to_string(), id));
        }
    }
    if !damaged.is_empty() {
        rebuild_queues(state, &damaged)?;
    }
    let mut queues = Vec::with_capacity(partitions as usize);
    for id in 0..partitions {
        let loc = state.queue_loc(topic, id);
        let files = state.cq.load(&loc)?;
        let logical = checkpoint::read_log_start(&loc.dir)?.unwrap_or(0).max(0);
        let next = (files.next as i64).max(logical);
        let first = files.first(per).min(files.next) as i64;
        let live =
            crate::retention::first_live(&state.cq, &state.log, &loc, first.max(logical) as u64, files.next)? as i64;
        let start = logical.max(first).max(live).min(next);
        queues.push(Queue::new(id, loc, start, next, logical));
    }
    Ok(queues)
}
