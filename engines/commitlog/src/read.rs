//! Reading: ConsumeQueue entries give each message's position; contiguous messages become one mapped
//! region ([`ReadSlice::Mapped`]). Decoding such a slice, and re-encoding it as Kafka batches, is here too.

use std::sync::Arc;

use bytes::Bytes;
use janus_api::{Compression, Offsets, ReadSlice, Record, RecordBatch, StorageError, TopicPartition};

use crate::commitlog::LogFile;
use crate::format::{self as rec, ProducerMark};
use crate::state::State;

/// Most ConsumeQueue entries one filtered read scans before it returns what it has.
const MAX_SCAN_ENTRIES: u64 = 16 * 1024;
/// ConsumeQueue entries read at once.
const READ_CHUNK: usize = 256;

/// Reads `tp` from `offset` (see `Engine::read`); with `tags`, only messages whose tag is one of them
/// (see [`janus_api::TagFilter`]): candidates are picked by the ConsumeQueue's tag hash, then their `TAGS`
/// property is compared, so hash collisions never leak through.
pub(crate) fn read(
    state: &State,
    tp: &TopicPartition,
    offset: i64,
    max_bytes: usize,
    tags: Option<&[String]>,
) -> Result<ReadSlice, StorageError> {
    let (_, queue) = state.queue(tp)?;
    let o = queue.offsets();
    if offset == o.log_end {
        return Ok(ReadSlice::Empty { next_offset: o.log_end });
    }
    let out_of_range = |o: Offsets| StorageError::OffsetOutOfRange {
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset,
        start: o.log_start,
        end: o.log_end,
    };
    if offset < o.log_start || offset > o.log_end {
        return Err(out_of_range(o));
    }
    let tags: Option<(Vec<i64>, &[String])> =
        tags.map(|t| (t.iter().map(|s| rec::tag_hash(Some(s.as_bytes()))).collect(), t));
    let mut regions = Vec::new();
    let mut current: Option<(Arc<LogFile>, usize, usize)> = None;
    let mut total = 0usize;
    let mut n = offset;
    let scan_limit = if tags.is_some() { offset.saturating_add(MAX_SCAN_ENTRIES as i64) } else { i64::MAX };
    'outer: while n < o.log_end && n < scan_limit {
        let want = ((o.log_end - n) as usize).min(READ_CHUNK);
        let chunk = state.cq.read(&queue.loc, n as u64, want)?;
        if chunk.is_empty() {
            return Err(out_of_range(queue.offsets()));
        }
        for e in chunk {
            if !e.is_present() {
                return Err(StorageError::Corrupt {
                    path: queue.loc.dir.clone(),
                    detail: format!("ConsumeQueue entry {n} of {tp} is missing below the log end"),
                });
            }
            if let Some((hashes, names)) = &tags {
                if !hashes.contains(&e.tag_hash) {
                    n += 1;
                    continue;
                }
                let wanted = state.log.with_message(e.phys as u64, |v| {
                    v.tags().ok().flatten().is_some_and(|t| names.iter().any(|name| name.as_bytes() == &t[..]))
                });
                if !matches!(wanted, Some(Ok(true))) {
                    n += 1;
                    continue;
                }
            }
            let size = e.size as usize;
            if total > 0 && total + size > max_bytes {
                break 'outer;
            }
            let phys = e.phys as u64;
            let extend = current.as_ref().is_some_and(|(f, pos, len)| f.start + (pos + len) as u64 == phys);
            if extend {
                if let Some(c) = current.as_mut() {
                    c.2 += size;
                }
            } else {
                if let Some((f, pos, len)) = current.take() {
                    regions.push(f.map.region(pos, len).ok_or_else(|| out_of_range(queue.offsets()))?);
                }
                let file = state.log.file_at(phys).ok_or_else(|| out_of_range(queue.offsets()))?;
                let pos = (phys - file.start) as usize;
                current = Some((file, pos, size));
            }
            total += size;
            n += 1;
            if total >= max_bytes {
                break 'outer;
            }
        }
    }
    if let Some((f, pos, len)) = current.take() {
        regions.push(f.map.region(pos, len).ok_or_else(|| out_of_range(queue.offsets()))?);
    }
    if regions.is_empty() {
        Ok(ReadSlice::Empty { next_offset: n })
    } else {
        Ok(ReadSlice::Mapped { regions, next_offset: n })
    }
}

/// Calls `f` with each mapped region of a slice this engine returned.
fn for_each_region(slice: &ReadSlice, f: impl FnMut(&Bytes) -> Result<(), StorageError>) -> Result<(), StorageError> {
    match slice {
        ReadSlice::Empty { .. } => Ok(()),
        ReadSlice::Mapped { regions, .. } => regions.iter().try_for_each(f),
        ReadSlice::File { .. } => Err(StorageError::Unsupported(
            "a file slice holds segment batches; the commitlog engine only decodes its own mapped slices".into(),
        )),
    }
}

/// The records of a slice this engine returned, at or after `from_offset`, every body CRC checked.
pub(crate) fn decode_slice(slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
    let mut out = Vec::new();
    for_each_region(slice, |region| rec::decode_region(region, from_offset, &mut out))?;
    Ok(out)
}

/// A slice this engine returned as Kafka RecordBatch v2 bytes (see [`encode_as_batches`]).
pub(crate) fn encode_slice(slice: &ReadSlice) -> Result<Bytes, StorageError> {
    let (mut records, mut marks) = (Vec::new(), Vec::new());
    for_each_region(slice, |region| {
        rec::decode_region_with(region, i64::MIN, |record, mark| {
            records.push(record);
            marks.push(mark);
        })
    })?;
    encode_as_batches(&records, &marks)
}

/// Kafka RecordBatch v2 bytes for `records` (in offset order), `marks[i]` being the producer mark of
/// `records[i]`'s message: uncompressed batches, each record keeping its offset, timestamp, key, value and
/// headers. A marked record starts a batch with the mark's producer fields, holding it and the records that
/// follow it up to the mark's record count (fewer when the slice ends or skips an offset first); every
/// other run of contiguous offsets is one batch without a producer id. So an appended batch comes back
/// whole, with its producer id, epoch and base sequence, when the slice holds its first record; a slice
/// that starts inside it gives its other records as a batch without producer fields.
pub(crate) fn encode_as_batches(records: &[Record], marks: &[Option<ProducerMark>]) -> Result<Bytes, StorageError> {
    let mark_at = |i: usize| marks.get(i).copied().flatten();
    let mut built_batches = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mark = mark_at(start);
        let limit = mark.map_or(usize::MAX, |m| m.record_count as usize);
        let mut end = start + 1;
        while end < records.len()
            && end - start < limit
            && mark_at(end).is_none()
            && records[end - 1].offset.checked_add(1) == Some(records[end].offset)
        {
            end += 1;
        }
        let run = &records[start..end];
        let last_offset_delta = i32::try_from(run.len() - 1).map_err(|_| {
            StorageError::Unsupported(format!("{} contiguous records do not fit in one batch", run.len()))
        })?;
        let base = run[0].offset;
        let built = match mark {
            Some(m) => {
                let producer = (m.producer_id, m.producer_epoch, m.base_sequence);
                RecordBatch::build_with_producer(base, last_offset_delta, run, Compression::None, producer)?
            }
            None => RecordBatch::build_with_offsets(base, last_offset_delta, run, Compression::None)?,
        };
        built_batches.push(built.into_bytes());
        start = end;
    }
    // One batch (the common case: no producer marks, no gaps) is returned as built; several are joined
    // into one buffer sized once, not grown by doubling (E2b: growing it page-faulted and copied a fresh
    // buffer per Fetch).
    if built_batches.len() == 1 {
        return Ok(built_batches.swap_remove(0));
    }
    let mut out = Vec::with_capacity(built_batches.iter().map(Bytes::len).sum());
    for b in &built_batches {
        out.extend_from_slice(b);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use janus_api::batch::split_batches;

    fn record(offset: i64) -> Record {
        Record { offset, timestamp_ms: 100 + offset, key: None, value: Some(Bytes::from_static(b"v")), headers: vec![] }
    }

    fn mark(producer_id: i64, record_count: i32) -> Option<ProducerMark> {
        Some(ProducerMark { producer_id, producer_epoch: 1, base_sequence: 10, record_count })
    }

    /// `(base offset, records, producer id)` of each batch `encode_as_batches` makes of these offsets.
    fn encoded(offsets: &[i64], marks: &[(i64, Option<ProducerMark>)]) -> Vec<(i64, i32, i64)> {
        let records: Vec<Record> = offsets.iter().map(|&o| record(o)).collect();
        let marks: Vec<Option<ProducerMark>> =
            offsets.iter().map(|o| marks.iter().find(|m| m.0 == *o).and_then(|m| m.1)).collect();
        let bytes = encode_as_batches(&records, &marks).unwrap();
        let headers: Vec<_> = split_batches(&bytes).map(|b| b.unwrap().0).collect();
        for h in &headers {
            let sequence = if h.producer_id < 0 { (-1, -1) } else { (1, 10) };
            assert_eq!((h.producer_epoch as i32, h.base_sequence), sequence);
        }
        headers.iter().map(|h| (h.base_offset, h.records_count, h.producer_id)).collect()
    }

    #[test]
    fn marked_records_start_batches_of_their_record_count() {
        let marks = [(0, mark(1, 3)), (5, mark(2, 2)), (7, mark(3, 5))];
        let all: Vec<i64> = (0..10).collect();
        assert_eq!(encoded(&all, &marks), [(0, 3, 1), (3, 2, -1), (5, 2, 2), (7, 3, 3)]);
        // A slice starting inside a batch: its records there have no mark and come back plain.
        assert_eq!(encoded(&all[1..], &marks), [(1, 4, -1), (5, 2, 2), (7, 3, 3)]);
        // A gap (a tag filter) ends a batch; what follows it in the same appended batch is plain.
        assert_eq!(encoded(&[0, 1, 3, 4, 5], &marks), [(0, 2, 1), (3, 2, -1), (5, 1, 2)]);
        // Without marks: one batch per contiguous run, as before.
        assert_eq!(encoded(&[0, 1, 2, 4, 5], &[]), [(0, 3, -1), (4, 2, -1)]);
        assert_eq!(encoded(&[], &[]), []);
    }
}
