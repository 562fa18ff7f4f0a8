//! [`RecordBatch`]: one batch's bytes, with framing checks, full validation and decoding.

use std::fmt;

use bytes::Bytes;

use super::compression::{Compression, MAX_DECOMPRESSED_SIZE, decompress, decompress_with_limit};
use super::error::BatchError;
use super::header::{BatchHeader, RECORDS_OFFSET, compute_crc, write_base_offset};
use super::record::{Record, RecordView};

/// Fewest bytes a record can take (length, attributes, timestamp delta, offset delta, key length,
/// value length, header count: one byte each).
pub(crate) const MIN_RECORD_SIZE: usize = 7;

/// Exactly one RecordBatch v2, as bytes.
///
/// [`RecordBatch::from_bytes`] only checks the framing (size, magic, length field); a batch from outside
/// must go through [`RecordBatch::validate`] before it is trusted. Batches made by the builders are valid.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    pub(crate) bytes: Bytes,
}

impl fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBatch").field("len", &self.bytes.len()).field("header", &self.header()).finish()
    }
}

impl AsRef<[u8]> for RecordBatch {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl RecordBatch {
    /// Wraps the bytes of exactly one batch after a cheap framing check: at least 61 bytes, magic 2, a
    /// length field of at least 49, and `12 + length == bytes.len()`. The CRC and the records are not
    /// checked: call [`RecordBatch::validate`] for that.
    pub fn from_bytes(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        let header = BatchHeader::parse(&bytes)?;
        if header.batch_size() != bytes.len() {
            return Err(BatchError::BadLength { declared: header.batch_size(), actual: bytes.len() });
        }
        Ok(RecordBatch { bytes })
    }

    /// The fixed header.
    pub fn header(&self) -> BatchHeader {
        BatchHeader::read(&self.bytes)
    }

    /// The batch's bytes, exactly as stored or sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The batch's bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Size of the batch in bytes (at least 61).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch has at least its 61-byte header. (Not "has no records": see
    /// [`RecordBatch::record_count`].)
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The codec of the records; an error for the undefined codecs 5, 6, 7 (which `validate` rejects).
    pub fn compression(&self) -> Result<Compression, BatchError> {
        self.header().compression()
    }

    /// baseOffset.
    pub fn base_offset(&self) -> i64 {
        self.header().base_offset
    }

    /// Offset of the last record: baseOffset + lastOffsetDelta.
    pub fn last_offset(&self) -> i64 {
        self.header().last_offset()
    }

    /// Offset just after the batch: last_offset() + 1.
    pub fn next_offset(&self) -> i64 {
        self.header().next_offset()
    }

    /// recordsCount from the header.
    pub fn record_count(&self) -> i32 {
        self.header().records_count
    }

    /// maxTimestamp from the header.
    pub fn max_timestamp(&self) -> i64 {
        self.header().max_timestamp
    }

    /// Checks everything a broker must check on a batch from outside and returns its header: magic,
    /// length, CRC-32C, codec, that the records decompress, that each record's fields fill exactly its
    /// length, that header keys are UTF-8, that offset deltas are non-negative, strictly increasing and
    /// at most lastOffsetDelta, that recordsCount is the number of records, and that nothing follows the
    /// last record. Never panics; allocates nothing for an uncompressed batch.
    pub fn validate(&self) -> Result<BatchHeader, BatchError> {
        self.validate_within(MAX_DECOMPRESSED_SIZE)
    }

    /// [`RecordBatch::validate`], refusing a compressed batch whose records decompress to more than
    /// `max_decompressed` bytes (a broker passes its topic's limit, so a small request cannot make it
    /// allocate much more than the topic allows).
    pub fn validate_within(&self, max_decompressed: usize) -> Result<BatchHeader, BatchError> {
        let header = BatchHeader::parse(&self.bytes)?;
        if header.batch_size() != self.bytes.len() {
            return Err(BatchError::BadLength { declared: header.batch_size(), actual: self.bytes.len() });
        }
        let computed = compute_crc(&self.bytes);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch { stored: header.crc, computed });
        }
        let codec = header.compression()?;
        let section = &self.bytes[RECORDS_OFFSET..];
        if codec == Compression::None || section.is_empty() {
            walk_records(&header, section, |_| ())?;
        } else {
            let plain = decompress_with_limit(codec, section, max_decompressed)?;
            walk_records(&header, &plain, |_| ())?;
        }
        Ok(header)
    }

    /// Checks only the CRC-32C (for a reader that decodes the records next, which checks their structure).
    pub fn check_crc(&self) -> Result<(), BatchError> {
        let header = BatchHeader::parse(&self.bytes)?;
        let computed = compute_crc(&self.bytes);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch { stored: header.crc, computed });
        }
        Ok(())
    }

    /// The same batch with baseOffset set to `base` (a field outside the CRC). Copies the bytes only if
    /// they are shared with another `Bytes`.
    pub fn with_base_offset(self, base: i64) -> RecordBatch {
        if self.base_offset() == base {
            return self;
        }
        let bytes = match self.bytes.try_into_mut() {
            Ok(mut unique) => {
                write_base_offset(&mut unique, base);
                unique.freeze()
            }
            Err(shared) => {
                let mut copy = shared.to_vec();
                write_base_offset(&mut copy, base);
                Bytes::from(copy)
            }
        };
        RecordBatch { bytes }
    }

    /// The same batch with an idempotent producer's id, epoch and base sequence (fields inside the CRC,
    /// which is recomputed). Copies the bytes only if they are shared with another `Bytes`.
    pub fn with_producer(self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> RecordBatch {
        let Ok(mut header) = BatchHeader::parse(&self.bytes) else { return self };
        header.producer_id = producer_id;
        header.producer_epoch = producer_epoch;
        header.base_sequence = base_sequence;
        let mut bytes = match self.bytes.try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => bytes::BytesMut::from(&shared[..]),
        };
        header.write_to(&mut bytes);
        header.crc = compute_crc(&bytes);
        header.write_to(&mut bytes);
        RecordBatch { bytes: bytes.freeze() }
    }

    /// Decompresses and decodes the records, with absolute offsets and timestamps. Keys, values and
    /// header values share memory with the batch (or with its decompressed records).
    ///
    /// Checks the records' structure like [`RecordBatch::validate`] does, but not the CRC.
    pub fn records(&self) -> Result<Vec<Record>, BatchError> {
        self.records_within(MAX_DECOMPRESSED_SIZE)
    }

    /// [`RecordBatch::records`], refusing a compressed batch whose records decompress to more than
    /// `max_decompressed` bytes.
    pub fn records_within(&self, max_decompressed: usize) -> Result<Vec<Record>, BatchError> {
        let header = BatchHeader::parse(&self.bytes)?;
        let codec = header.compression()?;
        let section = self.bytes.slice(RECORDS_OFFSET.min(self.bytes.len())..);
        let plain = if codec == Compression::None || section.is_empty() {
            section
        } else {
            Bytes::from(decompress_with_limit(codec, &section, max_decompressed)?)
        };
        let capacity = usize::try_from(header.records_count).unwrap_or(0).min(plain.len() / MIN_RECORD_SIZE);
        let mut out = Vec::with_capacity(capacity);
        walk_records(&header, &plain, |view| {
            out.push(to_record(&header, &plain, &view));
        })?;
        Ok(out)
    }

    /// Calls `f` with each record's absolute offset, timestamp and parsed bytes (nothing copied, nothing
    /// allocated for an uncompressed batch), after the same structural checks as [`RecordBatch::records`].
    /// Returns the header.
    pub fn for_each_record<F>(&self, mut f: F) -> Result<BatchHeader, BatchError>
    where
        F: FnMut(i64, i64, &RecordView<'_>),
    {
        let header = BatchHeader::parse(&self.bytes)?;
        let codec = header.compression()?;
        let section = &self.bytes[RECORDS_OFFSET.min(self.bytes.len())..];
        let mut call = |view: RecordView<'_>| f(offset_of(&header, &view), timestamp_of(&header, &view), &view);
        if codec == Compression::None || section.is_empty() {
            walk_records(&header, section, &mut call)?;
        } else {
            let plain = decompress(codec, section)?;
            walk_records(&header, &plain, &mut call)?;
        }
        Ok(header)
    }
}

#[inline]
fn offset_of(header: &BatchHeader, view: &RecordView<'_>) -> i64 {
    header.base_offset.wrapping_add(i64::from(view.offset_delta))
}

#[inline]
fn timestamp_of(header: &BatchHeader, view: &RecordView<'_>) -> i64 {
    if header.is_log_append_time() {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(view.timestamp_delta)
    }
}

fn to_record(header: &BatchHeader, backing: &Bytes, view: &RecordView<'_>) -> Record {
    Record {
        offset: offset_of(header, view),
        timestamp_ms: timestamp_of(header, view),
        key: view.key.map(|k| backing.slice_ref(k)),
        value: view.value.map(|v| backing.slice_ref(v)),
        headers: view.owned_headers(backing),
    }
}

/// Walks the (decompressed) records section, checking structure, counts and offset deltas, and calls
/// `f` for each record in order.
pub(crate) fn walk_records<'a, F>(header: &BatchHeader, section: &'a [u8], mut f: F) -> Result<(), BatchError>
where
    F: FnMut(RecordView<'a>),
{
    let declared = header.records_count;
    let Ok(count) = usize::try_from(declared) else {
        return Err(BatchError::Corrupt(format!("records count {declared} is negative")));
    };
    if header.last_offset_delta < 0 {
        return Err(BatchError::Corrupt(format!("lastOffsetDelta {} is negative", header.last_offset_delta)));
    }
    let mut pos = 0usize;
    let mut prev_delta: Option<i32> = None;
    for index in 0..count {
        if pos == section.len() {
            return Err(BatchError::RecordCountMismatch { declared, actual: index });
        }
        let (view, used) = RecordView::parse(&section[pos..]).map_err(|e| e.at(index, pos))?;
        let delta = view.offset_delta;
        match prev_delta {
            None if delta < 0 => {
                return Err(BatchError::Corrupt(format!("record {index} has a negative offset delta {delta}")));
            }
            Some(prev) if delta <= prev => {
                return Err(BatchError::Corrupt(format!(
                    "record {index} has offset delta {delta}, not above the previous record's {prev}"
                )));
            }
            _ => {}
        }
        if delta > header.last_offset_delta {
            return Err(BatchError::Corrupt(format!(
                "record {index} has offset delta {delta}, beyond the batch's lastOffsetDelta {}",
                header.last_offset_delta
            )));
        }
        prev_delta = Some(delta);
        pos += used;
        f(view);
    }
    if pos < section.len() {
        // Tell "more records than declared" from plain garbage.
        let mut extra = 0usize;
        let mut p = pos;
        while let Ok((_, used)) = RecordView::parse(&section[p..]) {
            extra += 1;
            p += used;
            if p == section.len() {
                return Err(BatchError::RecordCountMismatch { declared, actual: count + extra });
            }
        }
        return Err(BatchError::TrailingBytes { extra: section.len() - pos });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::record::{Header, NewRecord};

    #[test]
    fn producer_fields_are_set_and_the_crc_still_holds() {
        let r = NewRecord { key: None, value: Some(Bytes::from_static(b"v")), headers: vec![], timestamp_ms: 1 };
        let b = RecordBatch::build(&[r.clone(), r], Compression::None).unwrap().with_producer(42, 3, i32::MAX);
        let h = b.validate().unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count), (42, 3, i32::MAX, 2));
        assert_eq!(b.records().unwrap().len(), 2);
    }

    fn sample() -> RecordBatch {
        let records: Vec<NewRecord> = (0..3)
            .map(|i| NewRecord {
                key: Some(Bytes::from(vec![b'k', b'0' + i as u8])),
                value: Some(Bytes::from_static(b"value")),
                headers: vec![Header::new("h", "x")],
                timestamp_ms: 100 + i,
            })
            .collect();
        RecordBatch::build(&records, Compression::None).unwrap()
    }

    #[test]
    fn with_base_offset_rewrites_in_place_when_unique() {
        let batch = sample();
        let crc = batch.header().crc;
        let ptr = batch.as_bytes().as_ptr();
        let moved = batch.with_base_offset(1_000);
        assert_eq!(moved.as_bytes().as_ptr(), ptr, "no copy for a unique buffer");
        let h = moved.validate().unwrap();
        assert_eq!((h.base_offset, h.crc), (1_000, crc), "CRC does not cover baseOffset");
        let offsets: Vec<i64> = moved.records().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1_000, 1_001, 1_002]);
    }

    #[test]
    fn with_base_offset_copies_when_shared() {
        let batch = sample();
        let keep = batch.clone();
        let moved = batch.with_base_offset(7);
        assert_ne!(moved.as_bytes().as_ptr(), keep.as_bytes().as_ptr());
        assert_eq!(keep.base_offset(), 0, "the other holder's bytes are untouched");
        assert_eq!(moved.base_offset(), 7);
        assert_eq!(moved.last_offset(), 9);
        assert_eq!(moved.next_offset(), 10);
    }

    #[test]
    fn records_share_the_batch_memory() {
        let batch = sample();
        let range = batch.as_bytes().as_ptr_range();
        for r in batch.records().unwrap() {
            let v = r.value.unwrap();
            assert!(range.contains(&v.as_ptr()), "value is a slice of the batch");
        }
    }

    #[test]
    fn for_each_record_sees_offsets_timestamps_and_keys() {
        let batch = sample().with_base_offset(50);
        let mut seen = Vec::new();
        let h = batch
            .for_each_record(|offset, ts, view| {
                seen.push((offset, ts, view.key.unwrap().to_vec(), view.headers().count()));
            })
            .unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(
            seen,
            vec![(50, 100, b"k0".to_vec(), 1), (51, 101, b"k1".to_vec(), 1), (52, 102, b"k2".to_vec(), 1)]
        );
    }

    #[test]
    fn log_append_time_gives_every_record_the_max_timestamp() {
        let batch = sample();
        let mut bytes = batch.as_bytes().to_vec();
        let mut h = batch.header();
        h.attributes |= crate::batch::header::TIMESTAMP_TYPE_MASK;
        h.max_timestamp = 9_999;
        h.write_to(&mut bytes);
        let crc = compute_crc(&bytes);
        h.crc = crc;
        h.write_to(&mut bytes);
        let batch = RecordBatch::from_bytes(Bytes::from(bytes)).unwrap();
        assert!(batch.validate().unwrap().is_log_append_time());
        let ts: Vec<i64> = batch.records().unwrap().iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(ts, [9_999, 9_999, 9_999]);
    }
}
