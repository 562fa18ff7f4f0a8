//! Reading: ConsumeQueue entries give each message's position; contiguous messages become one mapped
//! region ([`ReadSlice::Mapped`]). Decoding such a slice, and re-encoding it as Kafka batches, is here too.

use std::sync::Arc;

use bytes::Bytes;
use janus_api::{Compression, Offsets, ReadSlice, Record, RecordBatch, StorageError, TopicPartition};

use crate::commitlog::LogFile;
use crate::format as rec;
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

/// The records of a slice this engine returned, at or after `from_offset`, every body CRC checked.
pub(crate) fn decode_slice(slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
    let mut out = Vec::new();
    match slice {
        ReadSlice::Empty { .. } => {}
        ReadSlice::Mapped { regions, .. } => {
            for region in regions {
                rec::decode_region(region, from_offset, &mut out)?;
            }
        }
        ReadSlice::File { .. } => {
            return Err(StorageError::Unsupported(
                "a file slice holds segment batches; the commitlog engine only decodes its own mapped slices".into(),
            ));
        }
    }
    Ok(out)
}

/// Kafka RecordBatch v2 bytes for `records` (in offset order): one uncompressed batch per run of
/// contiguous offsets, each record keeping its offset, timestamp, key, value and headers.
pub(crate) fn encode_as_batches(records: &[Record]) -> Result<Bytes, StorageError> {
    let mut out = Vec::new();
    let mut rest = records;
    while let Some(first) = rest.first() {
        let run = 1 + rest.windows(2).take_while(|w| w[0].offset.checked_add(1) == Some(w[1].offset)).count();
        let (batch, tail) = rest.split_at(run);
        let last_offset_delta = i32::try_from(run - 1)
            .map_err(|_| StorageError::Unsupported(format!("{run} contiguous records do not fit in one batch")))?;
        let built = RecordBatch::build_with_offsets(first.offset, last_offset_delta, batch, Compression::None)?;
        out.extend_from_slice(built.as_bytes());
        rest = tail;
    }
    Ok(Bytes::from(out))
}
