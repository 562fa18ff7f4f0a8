//! Property tests: round trips for arbitrary records and codecs; no panic on arbitrary or damaged bytes.

use bytes::Bytes;
use janus_codec::batch::header::{ATTRIBUTES_OFFSET, BatchHeader, CRC_OFFSET, LOG_OVERHEAD, MAGIC_V2, compute_crc};
use janus_codec::batch::{BATCH_HEADER_SIZE, Compression, Header, NewRecord, Record, RecordBatch, split_batches};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn opt_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn header() -> impl Strategy<Value = Header> {
    (".{0,8}", opt_bytes(16)).prop_map(|(key, value)| Header { key, value })
}

fn new_record() -> impl Strategy<Value = NewRecord> {
    (
        opt_bytes(32),
        opt_bytes(300),
        prop::collection::vec(header(), 0..4),
        prop_oneof![any::<i64>(), 1_600_000_000_000i64..1_800_000_000_000],
    )
        .prop_map(|(key, value, headers, timestamp_ms)| NewRecord { key, value, headers, timestamp_ms })
}

/// Drains an iterator over arbitrary bytes, checking its promises.
fn drain_split(buf: &[u8]) {
    let mut it = split_batches(buf);
    let mut errors = 0;
    let mut total = 0;
    for item in it.by_ref() {
        match item {
            Ok((h, bytes)) => {
                assert_eq!(errors, 0, "no batch after an error");
                assert_eq!(bytes.len(), h.batch_size());
                total += bytes.len();
                // Never panics either.
                if let Ok(b) = RecordBatch::from_bytes(Bytes::copy_from_slice(bytes)) {
                    let _ = b.validate();
                    let _ = b.records();
                }
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    assert_eq!(it.consumed(), total);
    assert_eq!(it.next(), None);
}

fn poke_everything(bytes: Bytes) {
    if let Ok(b) = RecordBatch::from_bytes(bytes.clone()) {
        let _ = b.header();
        let v = b.validate();
        let r = b.records();
        if v.is_ok() {
            assert!(r.is_ok(), "validate accepted what records() rejects: {r:?}");
        }
        let _ = b.for_each_record(|_, _, _| ());
    }
    let _ = BatchHeader::parse(&bytes);
    drain_split(&bytes);
}

/// A batch whose framing and CRC are right but whose attributes, count and records are arbitrary, so
/// that the fuzzing reaches the record parser and the decompressors.
fn framed(attributes: i16, count: i32, last_delta: i32, section: &[u8]) -> Bytes {
    let header = BatchHeader {
        base_offset: 0,
        length: (BATCH_HEADER_SIZE - LOG_OVERHEAD + section.len()) as i32,
        partition_leader_epoch: 0,
        magic: MAGIC_V2,
        crc: 0,
        attributes,
        last_offset_delta: last_delta,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count: count,
    };
    let mut buf = vec![0u8; BATCH_HEADER_SIZE];
    header.write_to(&mut buf);
    buf.extend_from_slice(section);
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(buf)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn build_validate_decode_round_trip(
        records in prop::collection::vec(new_record(), 1..12),
        codec in codec(),
        base in any::<i64>().prop_map(|b| b / 2),
    ) {
        let batch = RecordBatch::build(&records, codec).unwrap().with_base_offset(base);
        let h = batch.validate().unwrap();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.records_count as usize, records.len());
        prop_assert_eq!(h.last_offset_delta as usize, records.len() - 1);
        prop_assert_eq!(h.base_timestamp, records[0].timestamp_ms);
        prop_assert_eq!(h.max_timestamp, records.iter().map(|r| r.timestamp_ms).max().unwrap());
        prop_assert_eq!(h.compression().unwrap(), codec);
        let decoded = batch.records().unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(d.offset, base + i as i64);
            prop_assert_eq!(d.timestamp_ms, r.timestamp_ms);
            prop_assert_eq!(&d.key, &r.key);
            prop_assert_eq!(&d.value, &r.value);
            prop_assert_eq!(&d.headers, &r.headers);
        }

        // Rebuilding from the decoded records (as compaction does) gives the same records back.
        let kept: Vec<Record> = decoded.iter().step_by(2).cloned().collect();
        let again =
            RecordBatch::build_with_offsets(base, h.last_offset_delta, &kept, codec).unwrap();
        let h2 = again.validate().unwrap();
        prop_assert_eq!(h2.last_offset(), h.last_offset());
        prop_assert_eq!(again.records().unwrap(), kept);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        poke_everything(Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_looking_header(
        codec_bits in 0i16..8,
        flags in any::<i16>(),
        count in prop_oneof![0i32..6, any::<i32>()],
        last_delta in prop_oneof![0i32..8, any::<i32>()],
        section in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let attributes = (flags & !7) | codec_bits;
        poke_everything(framed(attributes, count, last_delta, &section));
    }

    #[test]
    fn arbitrary_bytes_inside_a_compressed_stream(
        codec in codec(),
        plain in prop::collection::vec(any::<u8>(), 0..300),
        count in 0i32..6,
    ) {
        // Compress arbitrary "records", so the decompressors succeed and the record parser is fuzzed.
        let mut section = Vec::new();
        janus_codec::batch::compression::compress(codec, &plain, &mut section).unwrap();
        poke_everything(framed(codec.as_bits(), count, 100, &section));
    }

    #[test]
    fn single_byte_corruption_is_caught(
        records in prop::collection::vec(new_record(), 1..5),
        codec in codec(),
        pos_seed in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let good = RecordBatch::build(&records, codec).unwrap().into_bytes();
        let pos = pos_seed % good.len();
        let mut bad = good.to_vec();
        bad[pos] ^= xor;
        let bad = Bytes::from(bad);
        poke_everything(bad.clone());
        // Every byte from the CRC field to the end is protected; so are magic and length.
        if pos >= CRC_OFFSET || (8..12).contains(&pos) || pos == 16 {
            let verdict = RecordBatch::from_bytes(bad).and_then(|b| b.validate());
            prop_assert!(verdict.is_err(), "corruption at byte {} ({:#04x}) not caught", pos, xor);
        }
        // Attributes are covered by the CRC.
        prop_assert!(ATTRIBUTES_OFFSET > CRC_OFFSET);
    }

    #[test]
    fn split_finds_every_batch_and_stops_at_a_cut(
        batches in prop::collection::vec((prop::collection::vec(new_record(), 1..4), codec()), 1..5),
        cut in any::<usize>(),
    ) {
        let mut log = Vec::new();
        let mut ends = Vec::new();
        for (records, codec) in &batches {
            log.extend_from_slice(RecordBatch::build(records, *codec).unwrap().as_bytes());
            ends.push(log.len());
        }
        let whole: Vec<_> = split_batches(&log).collect();
        prop_assert_eq!(whole.len(), batches.len());
        prop_assert!(whole.iter().all(Result::is_ok));

        let cut = cut % (log.len() + 1);
        let mut it = split_batches(&log[..cut]);
        let oks = it.by_ref().take_while(Result::is_ok).count();
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(oks, complete);
        prop_assert_eq!(it.consumed(), if complete == 0 { 0 } else { ends[complete - 1] });
        prop_assert_eq!(it.next(), None);
    }
}
