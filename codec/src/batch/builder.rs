//! Building batches: from new records (a producer's view), from decoded records with their offsets
//! kept (log compaction; optionally with given producer fields, for an engine that re-encodes its
//! records), and from a template header (compaction keeping producer state).

use bytes::Bytes;

use super::batch::RecordBatch;
use super::compression::{Compression, compress};
use super::error::BatchError;
use super::header::{
    BATCH_HEADER_SIZE, BatchHeader, COMPRESSION_CODEC_MASK, CRC_OFFSET, LOG_OVERHEAD, MAGIC_V2,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, NO_TIMESTAMP, compute_crc,
};
use super::record::{Header, NewRecord, Record, encode_record};

/// Header fields a builder chooses; length, magic, CRC and records count are filled in by `assemble`.
struct Params {
    base_offset: i64,
    partition_leader_epoch: i32,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl Params {
    fn plain(base_offset: i64, last_offset_delta: i32, codec: Compression) -> Params {
        Params {
            base_offset,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            attributes: codec.as_bits(),
            last_offset_delta,
            base_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
        }
    }
}

/// One record's fields as the encoder needs them.
struct Fields<'a> {
    offset_delta: i32,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [Header],
}

/// Rough size of the encoded record, to size buffers once.
fn size_hint(key: &Option<Bytes>, value: &Option<Bytes>, headers: &[Header]) -> usize {
    let h: usize = headers.iter().map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 4).sum();
    24 + key.as_ref().map_or(0, Bytes::len) + value.as_ref().map_or(0, Bytes::len) + h
}

/// Writes header and records; fills length, CRC and count. An empty record list gives a header-only
/// batch with the codec bits cleared (as Kafka writes empty batches).
fn assemble<'a, I>(mut params: Params, records: I, size_hint: usize) -> Result<RecordBatch, BatchError>
where
    I: ExactSizeIterator<Item = Fields<'a>>,
{
    let count = records.len();
    let records_count = i32::try_from(count).map_err(|_| BatchError::TooLarge {
        what: "record count",
        size: count,
        max: i32::MAX as usize,
    })?;
    let codec = Compression::from_attributes(params.attributes)?;
    if count == 0 {
        params.attributes &= !COMPRESSION_CODEC_MASK;
    }
    let base_timestamp = params.base_timestamp;

    let mut buf = Vec::with_capacity(BATCH_HEADER_SIZE + size_hint);
    buf.resize(BATCH_HEADER_SIZE, 0);
    if count > 0 {
        if codec == Compression::None {
            for r in records {
                write_fields(&mut buf, base_timestamp, &r)?;
            }
        } else {
            let mut plain = Vec::with_capacity(size_hint);
            for r in records {
                write_fields(&mut plain, base_timestamp, &r)?;
            }
            compress(codec, &plain, &mut buf)?;
        }
    }

    let length = i32::try_from(buf.len() - LOG_OVERHEAD).map_err(|_| BatchError::TooLarge {
        what: "record batch",
        size: buf.len(),
        max: LOG_OVERHEAD + i32::MAX as usize,
    })?;
    let header = BatchHeader {
        base_offset: params.base_offset,
        length,
        partition_leader_epoch: params.partition_leader_epoch,
        magic: MAGIC_V2,
        crc: 0,
        attributes: params.attributes,
        last_offset_delta: params.last_offset_delta,
        base_timestamp,
        max_timestamp: params.max_timestamp,
        producer_id: params.producer_id,
        producer_epoch: params.producer_epoch,
        base_sequence: params.base_sequence,
        records_count,
    };
    header.write_to(&mut buf);
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(RecordBatch { bytes: Bytes::from(buf) })
}

fn write_fields(out: &mut Vec<u8>, base_timestamp: i64, r: &Fields<'_>) -> Result<(), BatchError> {
    encode_record(out, r.offset_delta, r.timestamp_ms.wrapping_sub(base_timestamp), r.key, r.value, r.headers)
        .map(|_| ())
}

/// Checks that decoded records fit under `base_offset` .. `base_offset + last_offset_delta` in strictly
/// increasing order, and returns their deltas' iterator input.
fn check_offsets(base_offset: i64, last_offset_delta: i32, records: &[Record]) -> Result<(), BatchError> {
    if last_offset_delta < 0 {
        return Err(BatchError::InvalidInput(format!("lastOffsetDelta {last_offset_delta} is negative")));
    }
    let mut prev: Option<i64> = None;
    for (i, r) in records.iter().enumerate() {
        let delta = r.offset.checked_sub(base_offset);
        match delta {
            Some(d) if (0..=i64::from(last_offset_delta)).contains(&d) => {}
            _ => {
                return Err(BatchError::InvalidInput(format!(
                    "record {i} has offset {}, outside the batch's range {base_offset}..={}",
                    r.offset,
                    base_offset.saturating_add(i64::from(last_offset_delta))
                )));
            }
        }
        if let Some(p) = prev
            && r.offset <= p
        {
            return Err(BatchError::InvalidInput(format!(
                "record {i} has offset {}, not above the previous record's {p}",
                r.offset
            )));
        }
        prev = Some(r.offset);
    }
    Ok(())
}

/// Builds `records` as one batch if it fits in `max_bytes`, else each half on its own, recursively.
fn build_halving(
    records: &[NewRecord],
    max_bytes: usize,
    compression: Compression,
    out: &mut Vec<RecordBatch>,
) -> Result<(), BatchError> {
    let batch = RecordBatch::build(records, compression)?;
    if batch.len() <= max_bytes {
        out.push(batch);
        return Ok(());
    }
    if records.len() == 1 {
        return Err(BatchError::TooLarge { what: "a single-record batch", size: batch.len(), max: max_bytes });
    }
    let mid = records.len() / 2;
    build_halving(&records[..mid], max_bytes, compression, out)?;
    build_halving(&records[mid..], max_bytes, compression, out)
}

fn decoded_fields(base_offset: i64, records: &[Record]) -> impl ExactSizeIterator<Item = Fields<'_>> {
    records.iter().map(move |r| Fields {
        // In range: checked by `check_offsets`.
        offset_delta: (r.offset - base_offset) as i32,
        timestamp_ms: r.timestamp_ms,
        key: r.key.as_deref(),
        value: r.value.as_deref(),
        headers: &r.headers,
    })
}

fn timestamps(records: impl Iterator<Item = i64> + Clone) -> (i64, i64) {
    let mut it = records;
    match it.next() {
        None => (NO_TIMESTAMP, NO_TIMESTAMP),
        Some(first) => (first, it.fold(first, i64::max)),
    }
}

impl RecordBatch {
    /// Builds a batch of new records at baseOffset 0 with offset deltas 0..n-1.
    ///
    /// baseTimestamp is the first record's timestamp (as Kafka's producer does) and maxTimestamp the
    /// largest; producerId, producerEpoch, baseSequence and partitionLeaderEpoch are -1. An empty slice is
    /// [`BatchError::Empty`].
    pub fn build(records: &[NewRecord], compression: Compression) -> Result<RecordBatch, BatchError> {
        if records.is_empty() {
            return Err(BatchError::Empty);
        }
        let last_offset_delta = i32::try_from(records.len() - 1).map_err(|_| BatchError::TooLarge {
            what: "record count",
            size: records.len(),
            max: i32::MAX as usize,
        })?;
        let (base_timestamp, max_timestamp) = timestamps(records.iter().map(|r| r.timestamp_ms));
        let params = Params { base_timestamp, max_timestamp, ..Params::plain(0, last_offset_delta, compression) };
        let hint = records.iter().map(|r| size_hint(&r.key, &r.value, &r.headers)).sum();
        let fields = records.iter().enumerate().map(|(i, r)| Fields {
            offset_delta: i as i32,
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &r.headers,
        });
        assemble(params, fields, hint)
    }

    /// Builds `records` into as few batches as fit, each at most `max_bytes` long, keeping their order
    /// (what a producer does with a topic's `max.message.bytes`). Records are grouped by an estimate of
    /// their encoded size, and a built batch that still comes out too large is split in half again.
    /// A single record that cannot fit on its own is [`BatchError::TooLarge`] naming its size; an empty
    /// slice gives no batches.
    pub fn build_within(
        records: &[NewRecord],
        max_bytes: usize,
        compression: Compression,
    ) -> Result<Vec<RecordBatch>, BatchError> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut size = BATCH_HEADER_SIZE;
        for (i, r) in records.iter().enumerate() {
            let s = size_hint(&r.key, &r.value, &r.headers);
            if i > start && size + s > max_bytes {
                build_halving(&records[start..i], max_bytes, compression, &mut out)?;
                start = i;
                size = BATCH_HEADER_SIZE;
            }
            size += s;
        }
        if start < records.len() {
            build_halving(&records[start..], max_bytes, compression, &mut out)?;
        }
        Ok(out)
    }

    /// Builds a batch from decoded records keeping their absolute offsets and timestamps, for log
    /// compaction: each record's delta is `offset - base_offset`, strictly increasing and at most
    /// `last_offset_delta`, which is kept even when the last records were removed.
    ///
    /// An empty `records` gives a valid header-only batch (recordsCount 0, no codec, timestamps -1).
    /// Producer fields and partitionLeaderEpoch are -1; see [`RecordBatch::build_with_producer`] to set the
    /// producer fields and [`RecordBatch::rebuild`] to keep a whole header.
    pub fn build_with_offsets(
        base_offset: i64,
        last_offset_delta: i32,
        records: &[Record],
        compression: Compression,
    ) -> Result<RecordBatch, BatchError> {
        let producer = (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE);
        Self::build_with_producer(base_offset, last_offset_delta, records, compression, producer)
    }

    /// [`RecordBatch::build_with_offsets`] with the idempotent-producer fields `(producerId, producerEpoch,
    /// baseSequence)` written as given (an engine that stored them apart from the batch gives them back).
    pub fn build_with_producer(
        base_offset: i64,
        last_offset_delta: i32,
        records: &[Record],
        compression: Compression,
        (producer_id, producer_epoch, base_sequence): (i64, i16, i32),
    ) -> Result<RecordBatch, BatchError> {
        check_offsets(base_offset, last_offset_delta, records)?;
        let (base_timestamp, max_timestamp) = timestamps(records.iter().map(|r| r.timestamp_ms));
        let params = Params {
            base_timestamp,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            ..Params::plain(base_offset, last_offset_delta, compression)
        };
        let hint = records.iter().map(|r| size_hint(&r.key, &r.value, &r.headers)).sum();
        assemble(params, decoded_fields(base_offset, records), hint)
    }

    /// Builds a batch from decoded records that keeps everything of `template` (the batch they came
    /// from) except what depends on the records: baseOffset, lastOffsetDelta, partitionLeaderEpoch,
    /// attributes (codec, timestamp type, transactional, control, delete horizon), producerId,
    /// producerEpoch and baseSequence are kept; recordsCount, length and CRC are recomputed.
    ///
    /// baseTimestamp is the first record's timestamp, or the template's when it holds a delete horizon;
    /// maxTimestamp is the largest record timestamp, or the template's under LogAppendTime.
    pub fn rebuild(template: &BatchHeader, records: &[Record]) -> Result<RecordBatch, BatchError> {
        check_offsets(template.base_offset, template.last_offset_delta, records)?;
        let (first, max) = timestamps(records.iter().map(|r| r.timestamp_ms));
        let params = Params {
            base_offset: template.base_offset,
            partition_leader_epoch: template.partition_leader_epoch,
            attributes: template.attributes,
            last_offset_delta: template.last_offset_delta,
            base_timestamp: if template.has_delete_horizon() { template.base_timestamp } else { first },
            max_timestamp: if template.is_log_append_time() { template.max_timestamp } else { max },
            producer_id: template.producer_id,
            producer_epoch: template.producer_epoch,
            base_sequence: template.base_sequence,
        };
        let hint = records.iter().map(|r| size_hint(&r.key, &r.value, &r.headers)).sum();
        assemble(params, decoded_fields(template.base_offset, records), hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C (Castagnoli), bit by bit, independent of the crc32c crate.
    fn crc32c_reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
            }
        }
        !crc
    }

    fn value_record(n: usize) -> NewRecord {
        NewRecord { key: None, value: Some(Bytes::from(vec![b'v'; n])), headers: Vec::new(), timestamp_ms: 5 }
    }

    #[test]
    fn build_within_keeps_order_and_every_batch_under_the_limit() {
        let records: Vec<NewRecord> = (0..100).map(|i| value_record(50 + i)).collect();
        for codec in [Compression::None, Compression::Lz4] {
            let batches = RecordBatch::build_within(&records, 1024, codec).unwrap();
            assert!(batches.len() > 5);
            assert!(batches.iter().all(|b| b.len() <= 1024 && b.validate().is_ok()));
            let lengths: Vec<usize> =
                batches.iter().flat_map(|b| b.records().unwrap()).map(|r| r.value.map_or(0, |v| v.len())).collect();
            assert_eq!(lengths, (0..100).map(|i| 50 + i).collect::<Vec<_>>());
        }
        assert!(RecordBatch::build_within(&[], 1024, Compression::None).unwrap().is_empty());
    }

    #[test]
    fn build_within_refuses_a_record_that_cannot_fit_alone() {
        let err = RecordBatch::build_within(&[value_record(10), value_record(5000)], 1024, Compression::None);
        assert!(matches!(err, Err(BatchError::TooLarge { max: 1024, .. })), "{err:?}");
    }

    #[test]
    fn reference_crc_matches_known_vector() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c_reference(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn one_record_batch_is_byte_exact() {
        let batch = RecordBatch::build(
            &[NewRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000,
            }],
            Compression::None,
        )
        .unwrap();
        #[rustfmt::skip]
        let mut expected: Vec<u8> = vec![
            0, 0, 0, 0, 0, 0, 0, 0,                         // baseOffset 0
            0x00, 0x00, 0x00, 0x3a,                         // length 58 = 70 - 12
            0xff, 0xff, 0xff, 0xff,                         // partitionLeaderEpoch -1
            0x02,                                           // magic
            0xde, 0xad, 0xbe, 0xef,                         // crc, filled below
            0x00, 0x00,                                     // attributes
            0x00, 0x00, 0x00, 0x00,                         // lastOffsetDelta 0
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // baseTimestamp
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // maxTimestamp
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producerId -1
            0xff, 0xff,                                     // producerEpoch -1
            0xff, 0xff, 0xff, 0xff,                         // baseSequence -1
            0x00, 0x00, 0x00, 0x01,                         // recordsCount 1
            // record
            0x10,                                           // length 8
            0x00,                                           // attributes
            0x00,                                           // timestampDelta 0
            0x00,                                           // offsetDelta 0
            0x02, b'k',                                     // key
            0x02, b'v',                                     // value
            0x00,                                           // no headers
        ];
        let crc = crc32c_reference(&expected[21..]);
        // Pinned too (computed by hand with an independent CRC-32C), so neither side can drift.
        assert_eq!(crc, 0xe99b_8dd8);
        expected[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(batch.as_bytes(), &expected[..]);
        assert_eq!(batch.validate().unwrap().crc, crc);
    }

    #[test]
    fn empty_is_an_error() {
        assert_eq!(RecordBatch::build(&[], Compression::Gzip), Err(BatchError::Empty));
    }

    #[test]
    fn build_with_offsets_checks_offsets() {
        let rec = |offset: i64| Record {
            offset,
            timestamp_ms: offset * 10,
            key: None,
            value: Some(Bytes::from_static(b"x")),
            headers: vec![],
        };
        let ok = RecordBatch::build_with_offsets(100, 9, &[rec(101), rec(105)], Compression::None).unwrap();
        let h = ok.validate().unwrap();
        assert_eq!((h.base_offset, h.last_offset_delta, h.records_count), (100, 9, 2));
        assert_eq!((h.base_timestamp, h.max_timestamp), (1010, 1050));
        let offsets: Vec<i64> = ok.records().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [101, 105]);

        for bad in [vec![rec(99)], vec![rec(110)], vec![rec(105), rec(101)], vec![rec(101), rec(101)]] {
            let err = RecordBatch::build_with_offsets(100, 9, &bad, Compression::None).unwrap_err();
            assert!(matches!(err, BatchError::InvalidInput(_)), "{err}");
        }
        assert!(matches!(
            RecordBatch::build_with_offsets(100, -1, &[], Compression::None),
            Err(BatchError::InvalidInput(_))
        ));

        let empty = RecordBatch::build_with_offsets(100, 9, &[], Compression::Zstd).unwrap();
        assert_eq!(empty.len(), BATCH_HEADER_SIZE);
        let h = empty.validate().unwrap();
        assert_eq!((h.records_count, h.last_offset(), h.attributes), (0, 109, 0));
        assert_eq!(empty.records().unwrap(), vec![]);
    }

    #[test]
    fn build_with_producer_sets_the_producer_fields() {
        let rec = |offset: i64| Record { offset, timestamp_ms: 7, key: None, value: None, headers: vec![] };
        let batch =
            RecordBatch::build_with_producer(10, 1, &[rec(10), rec(11)], Compression::None, (5, 3, i32::MAX)).unwrap();
        let h = batch.validate().unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (5, 3, i32::MAX));
        assert_eq!((h.base_offset, h.last_offset_delta, h.records_count, h.attributes), (10, 1, 2, 0));
        assert_eq!(h.partition_leader_epoch, NO_PARTITION_LEADER_EPOCH);
        let plain = RecordBatch::build_with_offsets(10, 1, &[rec(10), rec(11)], Compression::None).unwrap();
        let p = plain.validate().unwrap();
        assert_eq!(
            (p.producer_id, p.producer_epoch, p.base_sequence),
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE)
        );
        assert!(matches!(
            RecordBatch::build_with_producer(10, 0, &[rec(11)], Compression::None, (5, 3, 0)),
            Err(BatchError::InvalidInput(_))
        ));
    }

    #[test]
    fn rebuild_keeps_producer_state() {
        let first = RecordBatch::build(
            &[
                NewRecord { key: Some(Bytes::from_static(b"a")), timestamp_ms: 5, ..Default::default() },
                NewRecord { key: Some(Bytes::from_static(b"b")), timestamp_ms: 7, ..Default::default() },
            ],
            Compression::Lz4,
        )
        .unwrap();
        let template = BatchHeader {
            base_offset: 40,
            partition_leader_epoch: 3,
            attributes: first.header().attributes | 0x10,
            producer_id: 77,
            producer_epoch: 2,
            base_sequence: 9,
            ..first.header()
        };
        let mut records = first.records().unwrap();
        records.remove(0);
        for r in &mut records {
            r.offset += 40;
        }
        let again = RecordBatch::rebuild(&template, &records).unwrap();
        let h = again.validate().unwrap();
        assert_eq!(h.base_offset, 40);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.records_count, 1);
        assert_eq!(h.partition_leader_epoch, 3);
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 2, 9));
        assert!(h.is_transactional());
        assert_eq!(h.compression(), Ok(Compression::Lz4));
        assert_eq!(again.records().unwrap(), records);
    }
}
