//! Lookups: the first offset at or after a timestamp, and messages by key through the IndexFiles.
//!
//! **Timestamps.** A record's timestamp is its BORNTIMESTAMP (the Kafka record timestamp), which producers
//! choose and which need not grow with the offset; STORETIMESTAMP (wall clock at append) does grow but is
//! not what a Kafka client asks about. So the answer is defined on born time, as Kafka defines it: the
//! first offset, in offset order from the log start, whose born timestamp is at or after the target. The
//! queue is cut into blocks of [`TIME_BLOCK`] entries; the newest born timestamp of each full block is
//! computed once (from the CommitLog) and cached, blocks whose newest timestamp is below the target are
//! skipped, and the first candidate block is scanned. Correct for any order of timestamps; fast when they
//! mostly grow.
//!
//! **Keys.** `KeyLookup::lookup_by_key` (the engine's `janus_api::KeyLookup`) hashes `topic#key`, walks the IndexFile chains (newest first) and
//! keeps a candidate only when the message really is a live message of that topic carrying that key (in
//! KEYS or as the record key) stored within the time range.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use janus_api::sync::lock;
use janus_api::{Record, StorageError, TopicPartition};

use crate::commitlog::CommitLog;
use crate::consume_queue::CqStore;
use crate::dispatch::{has_key, region_record};
use crate::index_file::key_hash;
use crate::state::{Queue, State};

/// Entries per cached block of born timestamps.
pub const TIME_BLOCK: u64 = 1024;

/// Born timestamps of offsets `lo..hi` of `queue`.
fn born_timestamps(cq: &CqStore, log: &CommitLog, queue: &Queue, lo: u64, hi: u64) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::with_capacity((hi - lo) as usize);
    let mut n = lo;
    while n < hi {
        let chunk = cq.read(&queue.loc, n, (hi - n) as usize)?;
        if chunk.is_empty() {
            return Err(StorageError::Corrupt {
                path: queue.loc.dir.clone(),
                detail: format!("ConsumeQueue entry {n} is missing"),
            });
        }
        for e in chunk {
            let ts = log.with_message(e.phys.max(0) as u64, |v| v.meta.born_timestamp).ok_or_else(|| {
                StorageError::Corrupt {
                    path: queue.loc.dir.clone(),
                    detail: format!("ConsumeQueue entry {n} points at {} where no message is readable", e.phys),
                }
            })??;
            out.push(ts);
            n += 1;
        }
    }
    Ok(out)
}

/// The first offset from the log start whose born timestamp is at or after `ts_ms` (see the module docs).
pub(crate) fn offset_for_timestamp(
    cq: &CqStore,
    log: &CommitLog,
    queue: &Queue,
    ts_ms: i64,
) -> Result<Option<i64>, StorageError> {
    let o = queue.offsets();
    if o.log_start >= o.log_end {
        return Ok(None);
    }
    let (start, end) = (o.log_start as u64, o.log_end as u64);
    let mut block = start / TIME_BLOCK;
    while block * TIME_BLOCK < end {
        let (b_lo, b_hi) = (block * TIME_BLOCK, ((block + 1) * TIME_BLOCK).min(end));
        let lo = b_lo.max(start);
        let full = b_hi - b_lo == TIME_BLOCK && lo == b_lo;
        let cached = lock(&queue.time_blocks).get(&block).copied();
        let mut times = None;
        let newest = match cached {
            Some(v) => v,
            None => {
                let t = born_timestamps(cq, log, queue, lo, b_hi)?;
                let newest = t.iter().copied().max().unwrap_or(i64::MIN);
                if full {
                    lock(&queue.time_blocks).insert(block, newest);
                }
                times = Some(t);
                newest
            }
        };
        if newest >= ts_ms {
            let t = match times {
                Some(t) => t,
                None => born_timestamps(cq, log, queue, lo, b_hi)?,
            };
            if let Some(i) = t.iter().position(|&x| x >= ts_ms) {
                // The log start may have moved meanwhile; never answer below it.
                return Ok(Some((lo + i as u64).max(queue.start.load(Ordering::Acquire) as u64) as i64));
            }
        }
        block += 1;
    }
    Ok(None)
}

/// `KeyLookup::lookup_by_key` over `state` (see the module docs).
pub(crate) fn lookup_by_key(
    state: &State,
    topic: &str,
    key: &str,
    begin_ms: i64,
    end_ms: i64,
    max: usize,
) -> Result<Vec<(TopicPartition, Record)>, StorageError> {
    let t = state.topic(topic)?;
    let tombstone = lock(&state.tombstones).get(topic).copied().unwrap_or(0);
    let candidates = state.index.lookup(key_hash(topic, key.as_bytes()), begin_ms, end_ms, max.saturating_mul(8) + 64);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for phys in candidates {
        if out.len() >= max {
            break;
        }
        if phys < 0 || (phys as u64) < tombstone || !seen.insert(phys) {
            continue;
        }
        let phys = phys as u64;
        let Some(file) = state.log.file_at(phys) else { continue };
        let pos = (phys - file.start) as usize;
        let Some(Ok((size, queue_id, offset, store, ok))) = state.log.with_message(phys, |v| {
            let ok = v.topic == topic.as_bytes() && has_key(v.properties, key.as_bytes()).unwrap_or(false);
            (v.total_size, v.meta.queue_id, v.meta.queue_offset, v.meta.store_timestamp, ok)
        }) else {
            continue;
        };
        if !ok || store < begin_ms || store > end_ms {
            continue;
        }
        let Some(queue) = usize::try_from(queue_id).ok().and_then(|q| t.queues.get(q)) else { continue };
        let o = queue.offsets();
        if offset < o.log_start || offset >= o.log_end {
            continue;
        }
        // The queue's own entry must point here: the message belongs to this incarnation of the topic.
        if state.cq.entry(&queue.loc, offset as u64)?.is_none_or(|e| e.phys as u64 != phys) {
            continue;
        }
        let Some(region) = file.map.region(pos, size) else { continue };
        let record = region_record(&region).map_err(|e| e.into_storage(file.map.path()))?;
        out.push((TopicPartition::new(topic, queue_id as u32), record));
    }
    Ok(out)
}
