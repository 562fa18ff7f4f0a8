//! Log compaction (`cleanup.policy=compact`): keep only the newest record of each key in the closed
//! segments, drop tombstones once their segment is older than `delete.retention.ms`, rewrite each changed
//! segment into a `.cleaned` file and swap it in with an atomic rename.
//!
//! Each segment is rewritten on its own (Kafka also merges small neighbours; we do not yet). Batches keep
//! their base and last offsets, so offsets never move; a batch left with no record is dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use janus_api::batch::RecordBatch;
use janus_api::{IoResultExt, Record, StorageError};

use crate::log::PartitionLog;
use crate::naming::{CLEANED_SUFFIX, LOG_SUFFIX};
use crate::segment::{Segment, read_batch, read_header};

/// Compacts the closed segments of `log`; returns how many were rewritten.
pub fn compact(log: &mut PartitionLog, now_ms: i64, delete_retention_ms: u64) -> Result<usize, StorageError> {
    // Newest offset of every key across the closed segments.
    let mut newest: HashMap<Bytes, i64> = HashMap::new();
    for seg in log.closed_segments_mut() {
        for_each_batch(seg, |batch| {
            batch.for_each_record(|offset, _, r| {
                if let Some(key) = r.key {
                    newest.insert(Bytes::copy_from_slice(key), offset);
                }
            })?;
            Ok(())
        })?;
    }
    let horizon = now_ms.saturating_sub(delete_retention_ms as i64);
    let mut rewritten = 0;
    for seg in log.closed_segments_mut() {
        let drop_tombstones = seg.max_timestamp() < horizon;
        let keep = |r: &Record| {
            let newest_of_key = r.key.as_ref().is_some_and(|k| newest.get(k) == Some(&r.offset));
            newest_of_key && (r.value.is_some() || !drop_tombstones)
        };
        if rewrite_segment(seg, keep)? {
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

fn for_each_batch(
    seg: &Segment,
    mut f: impl FnMut(&RecordBatch) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let file = seg.log_file()?;
    let mut pos = 0;
    while let Some(h) = read_header(&file, pos, seg.size()).at(seg.path(LOG_SUFFIX))? {
        f(&read_batch(&file, pos, &h).at(seg.path(LOG_SUFFIX))?)?;
        pos += h.batch_size() as u64;
    }
    Ok(())
}

/// Rewrites `seg` keeping the records `keep` accepts; returns whether anything changed.
fn rewrite_segment(seg: &mut Segment, keep: impl Fn(&Record) -> bool) -> Result<bool, StorageError> {
    let cleaned_path = seg.path(&format!("{LOG_SUFFIX}.{CLEANED_SUFFIX}"));
    let mut changed = false;
    let mut batches = Vec::new();
    for_each_batch(seg, |batch| {
        batches.push(batch.clone());
        Ok(())
    })?;
    let mut kept_batches = Vec::with_capacity(batches.len());
    for batch in batches {
        let records = batch.records()?;
        let kept: Vec<Record> = records.iter().filter(|r| keep(r)).cloned().collect();
        if kept.len() == records.len() {
            kept_batches.push(batch);
        } else {
            changed = true;
            if !kept.is_empty() {
                kept_batches.push(RecordBatch::rebuild(&batch.header(), &kept)?);
            }
        }
    }
    if !changed {
        return Ok(false);
    }
    let file = File::create(&cleaned_path).at(&cleaned_path)?;
    let mut written = 0u64;
    for batch in &kept_batches {
        file.write_all_at(batch.as_bytes(), written).at(&cleaned_path)?;
        written += batch.len() as u64;
    }
    file.sync_all().at(&cleaned_path)?;
    drop(file);
    seg.swap_in(&cleaned_path)?;
    Ok(true)
}
