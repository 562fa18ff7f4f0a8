//! Retention: deleting whole CommitLog files, then the ConsumeQueue and IndexFile files that only point at
//! what is gone.
//!
//! As in RocketMQ, retention is broker-wide because every topic shares the CommitLog: the limits used are
//! the largest `retention.ms` and the largest `retention.bytes` over the open topics (a topic that keeps
//! data forever, `-1`, keeps everything). Oldest files go first, while
//! - their newest STORETIMESTAMP is older than `now - retention.ms`, or
//! - the CommitLog is larger than `retention.bytes`, or
//! - no queue needs them any more: every message in them lies below its queue's log start (for example
//!   after `delete_records_before`, or when only deleted topics wrote there);
//!
//! never the file being written. Each queue's log start then moves past the messages that are gone, and
//! ConsumeQueue files holding only entries below the log start are deleted (never a queue's last file,
//! which keeps its end offset).

use std::sync::atomic::Ordering;

use crate::format::{self as rec, Entry};
use janus_api::sync::lock;
use janus_api::{RetentionReport, StorageError};

use crate::checkpoint;
use crate::commitlog::CommitLog;
use crate::commitlog::LogFile;
use crate::consume_queue::CqStore;
use crate::consume_queue::QueueLoc;
use crate::state::State;

/// The first queue offset in `lo..hi` whose message is still in the CommitLog (`hi` if none).
pub(crate) fn first_live(cq: &CqStore, log: &CommitLog, loc: &QueueLoc, lo: u64, hi: u64) -> Result<u64, StorageError> {
    let min = log.min_offset() as i64;
    let live = |i: u64| -> Result<bool, StorageError> { Ok(cq.entry(loc, i)?.is_some_and(|e| e.phys >= min)) };
    if lo >= hi || live(lo)? {
        return Ok(lo.min(hi));
    }
    let (mut a, mut b) = (lo + 1, hi);
    while a < b {
        let mid = a + (b - a) / 2;
        if live(mid)? {
            b = mid;
        } else {
            a = mid + 1;
        }
    }
    Ok(a)
}

/// The newest STORETIMESTAMP in `files[i]`: known from appends, else bounded by the first message of the
/// next file (store times never decrease), else found by walking the file.
fn newest_store_ms(log: &CommitLog, files: &[std::sync::Arc<LogFile>], i: usize) -> i64 {
    let f = &files[i];
    let known = f.max_store_ms.load(Ordering::Relaxed);
    if known != i64::MIN {
        return known;
    }
    if let Some(next) = files.get(i + 1)
        && let Some(Ok(ts)) = log.with_message(next.start, |v| v.meta.store_timestamp)
    {
        f.max_store_ms.fetch_max(ts, Ordering::Relaxed);
        return ts;
    }
    let data = f.map.tail_from(0);
    let mut pos = 0;
    let mut newest = i64::MIN;
    while pos < data.len() {
        match rec::parse_entry(&data[pos..]) {
            Ok(Entry::Message(v)) => {
                newest = newest.max(v.meta.store_timestamp);
                pos += v.total_size;
            }
            _ => break,
        }
    }
    f.max_store_ms.fetch_max(newest, Ordering::Relaxed);
    newest
}

/// The lowest physical offset some queue still needs (its message at its log start).
fn min_needed(state: &State) -> Result<u64, StorageError> {
    let mut min = state.log.written();
    let mut open = std::collections::HashSet::new();
    for t in state.open_topics() {
        open.insert(t.name.to_string());
        for q in &t.queues {
            let o = q.offsets();
            if o.log_start < o.log_end
                && let Some(e) = state.cq.entry(&q.loc, o.log_start as u64)?
            {
                min = min.min(e.phys.max(0) as u64);
            }
        }
    }
    let per = state.cq.entries_per_file();
    for (topic, queue) in state.cq.queue_dirs()? {
        if open.contains(&topic) {
            continue;
        }
        let loc = state.queue_loc(&topic, queue);
        let files = state.cq.load(&loc)?;
        let logical = checkpoint::read_log_start(&loc.dir)?.unwrap_or(0).max(0) as u64;
        let first = files.first(per).max(logical);
        if first < files.next
            && let Some(e) = state.cq.entry(&loc, first)?
        {
            min = min.min(e.phys.max(0) as u64);
        }
    }
    Ok(min)
}

/// One retention pass (see the module docs).
pub(crate) fn enforce(state: &State, now_ms: i64) -> Result<RetentionReport, StorageError> {
    let _m = lock(&state.maintenance);
    let configs: Vec<_> = state.open_topics().iter().map(|t| t.config()).collect();
    let widest = |get: &dyn Fn(&janus_api::TopicConfig) -> Option<u64>| -> Option<u64> {
        if configs.is_empty() {
            return None;
        }
        configs.iter().map(get).try_fold(0u64, |acc, v| v.map(|v| acc.max(v)))
    };
    let retention_ms = widest(&|c| c.retention_ms);
    let retention_bytes = widest(&|c| c.retention_bytes);
    let files = state.log.files();
    let written = state.log.written();
    let needed = min_needed(state)?;
    let mut report = RetentionReport::default();
    let mut delete_to = None;
    let mut total = files.first().map_or(0, |f| written.saturating_sub(f.start));
    for (i, f) in files.iter().enumerate() {
        if f.end() > written {
            break;
        }
        let expired = retention_ms.is_some_and(|r| {
            newest_store_ms(&state.log, &files, i).saturating_add(i64::try_from(r).unwrap_or(i64::MAX)) < now_ms
        });
        let oversize = retention_bytes.is_some_and(|b| total > b);
        let unneeded = f.end() <= needed;
        if !(expired || oversize || unneeded) {
            break;
        }
        delete_to = Some(f.end());
        total = total.saturating_sub(f.map.len() as u64);
        report.files_deleted += 1;
        report.bytes_deleted += f.map.len() as u64;
    }
    let per = state.cq.entries_per_file();
    if let Some(end) = delete_to {
        let removed = state.log.remove_files_before(end)?;
        report.files_deleted = removed.len();
        report.bytes_deleted = removed.iter().map(|f| f.map.len() as u64).sum();
        let min = state.log.min_offset();
        state.index.remove_before(min as i64)?;
        let mut tombstones = lock(&state.tombstones);
        let before = tombstones.len();
        tombstones.retain(|_, &mut phys| phys > min);
        if tombstones.len() != before {
            checkpoint::write_tombstones(&state.dir, &tombstones)?;
        }
        drop(tombstones);
        let open: std::collections::HashSet<String> = state.open_topics().iter().map(|t| t.name.to_string()).collect();
        for (topic, queue) in state.cq.queue_dirs()? {
            if open.contains(&topic) {
                continue;
            }
            let loc = state.queue_loc(&topic, queue);
            let files = state.cq.load(&loc)?;
            let live = first_live(&state.cq, &state.log, &loc, files.first(per).min(files.next), files.next)?;
            state.cq.remove_files_below(&loc, live)?;
        }
    }
    for t in state.open_topics() {
        for q in &t.queues {
            let o = q.offsets();
            let live = first_live(&state.cq, &state.log, &q.loc, o.log_start as u64, o.log_end as u64)?;
            let start = q.start.fetch_max(live as i64, Ordering::AcqRel).max(live as i64);
            state.cq.remove_files_below(&q.loc, start as u64)?;
        }
    }
    Ok(report)
}
