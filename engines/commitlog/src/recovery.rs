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
use std::fs;

use crate::format as rec;
use janus_api::sync::lock;
use janus_api::{IoResultExt, StorageError};

use crate::checkpoint::Checkpoint;
use crate::commitlog::CommitLog;
use crate::consume_queue::QueueLoc;
use crate::dispatch::Redispatcher;
use crate::engine::Inner;

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
            log.set_written(end);
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
    log.set_written(scanned.end);
    Ok(RecoveredLog { end: scanned.end, last_store_ms: last_store_ms.max(0), scan_from: from })
}

/// Every queue directory on disk: `(topic, queue)`.
pub(crate) fn queue_dirs(inner: &Inner) -> Result<Vec<(String, u32)>, StorageError> {
    let root = inner.cq.root();
    let mut out = Vec::new();
    for topic in fs::read_dir(root).at(root)? {
        let topic = topic.at(root)?;
        let Some(name) = topic.file_name().to_str().map(str::to_string) else { continue };
        if janus_api::validate_topic_name(&name).is_err() || !topic.path().is_dir() {
            continue;
        }
        for q in fs::read_dir(topic.path()).at(topic.path())? {
            let q = q.at(topic.path())?;
            if let Some(id) = q.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && q.path().is_dir()
            {
                out.push((name.clone(), id));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the message at `phys` is offset `offset` of queue `queue` of `topic`, `size` bytes long.
fn entry_matches(inner: &Inner, phys: i64, size: i32, topic: &str, queue: u32, offset: u64) -> bool {
    if phys < 0 || size <= 0 || phys as u64 + size as u64 > inner.log.written() {
        return false;
    }
    matches!(
        inner.log.with_message(phys as u64, |v| {
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
fn validate_tail(inner: &Inner, topic: &str, queue: u32, loc: &QueueLoc) -> Result<u64, StorageError> {
    let files = inner.cq.load(loc)?;
    let per = inner.cq.entries_per_file();
    let lo = files.first(per).min(files.next);
    let end = inner.log.written() as i64;
    // The first entry reaching past the end (entries grow with the CommitLog).
    let (mut a, mut b) = (lo, files.next);
    while a < b {
        let mid = a + (b - a) / 2;
        let inside = inner.cq.entry(loc, mid)?.is_some_and(|e| e.phys.saturating_add(i64::from(e.size)) <= end);
        if inside {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    let mut next = a;
    while next > lo {
        match inner.cq.entry(loc, next - 1)? {
            Some(e) if entry_matches(inner, e.phys, e.size, topic, queue, next - 1) => break,
            _ => next -= 1,
        }
    }
    if next < files.next {
        tracing::warn!(topic, queue, from = files.next, to = next, "cutting a ConsumeQueue tail");
        inner.cq.truncate(loc, next)?;
    }
    Ok(next)
}

/// Re-dispatches what the crash scan saw, validates every ConsumeQueue tail and rebuilds damaged queues.
pub(crate) fn recover_queues(inner: &Inner, scan_from: u64) -> Result<(), StorageError> {
    let tombstones = lock(&inner.tombstones).clone();
    let loc = |t: &str, q: u32| inner.queue_loc(t, q);
    let mut d = Redispatcher::new(&inner.cq, Some(&inner.index), &tombstones, &loc);
    inner.log.scan(scan_from, false, |pos, view| d.dispatch(pos, view))?;
    d.finish()?;
    let mut damaged = Vec::new();
    let mut ends = Vec::new();
    for (topic, queue) in queue_dirs(inner)? {
        let loc = inner.queue_loc(&topic, queue);
        let next = validate_tail(inner, &topic, queue, &loc)?;
        let files = inner.cq.load(&loc)?;
        let expected = lock(&inner.known_queues).get(&(topic.clone(), queue)).copied();
        if !files.contiguous() || expected.is_some_and(|e| (next as i64) < e) {
            damaged.push((topic.clone(), queue));
        }
        ends.push(((topic, queue), next));
    }
    if !damaged.is_empty() {
        tracing::warn!(queues = damaged.len(), "rebuilding damaged ConsumeQueues from the CommitLog");
        rebuild_queues(inner, &damaged)?;
        for ((topic, queue), next) in ends.iter_mut() {
            if damaged.iter().any(|(t, q)| t == topic && q == queue) {
                *next = inner.cq.load(&inner.queue_loc(topic, *queue))?.next;
            }
        }
    }
    let mut known = lock(&inner.known_queues);
    known.clear();
    known.extend(ends.into_iter().map(|(k, next)| (k, next as i64)));
    Ok(())
}

/// Rebuilds the given queues from every message still in the CommitLog.
pub(crate) fn rebuild_queues(inner: &Inner, queues: &[(String, u32)]) -> Result<(), StorageError> {
    let wanted: HashSet<(String, u32)> = queues.iter().cloned().collect();
    for (topic, queue) in queues {
        let loc = inner.queue_loc(topic, *queue);
        inner.cq.truncate(&loc, 0)?;
    }
    let tombstones = lock(&inner.tombstones).clone();
    let loc = |t: &str, q: u32| inner.queue_loc(t, q);
    let only = |t: &str, q: u32| wanted.contains(&(t.to_string(), q));
    let mut d = Redispatcher::new(&inner.cq, None, &tombstones, &loc).only(&only);
    inner.log.scan(inner.log.min_offset(), false, |pos, view| d.dispatch(pos, view))?;
    d.finish()
}
