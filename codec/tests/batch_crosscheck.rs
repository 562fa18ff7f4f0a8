//! Cross-check of our RecordBatch v2 codec against kafka-protocol's, for every codec, both ways.

use bytes::{Bytes, BytesMut};
use janus_codec::batch::{BatchHeader, Compression, Header, NewRecord, Record, RecordBatch, split_batches};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

fn k_codec(c: Compression) -> KCompression {
    match c {
        Compression::None => KCompression::None,
        Compression::Gzip => KCompression::Gzip,
        Compression::Snappy => KCompression::Snappy,
        Compression::Lz4 => KCompression::Lz4,
        Compression::Zstd => KCompression::Zstd,
    }
}

/// Records with a null key, a tombstone, headers (one with a null value), an empty value, and
/// timestamps that go down as well as up (so deltas are negative for some).
fn sample_records(value_size: usize) -> Vec<NewRecord> {
    let big: Bytes = (0..value_size).map(|i| (i % 97) as u8).collect::<Vec<_>>().into();
    vec![
        NewRecord {
            key: Some(Bytes::from_static(b"key-0")),
            value: Some(big.clone()),
            headers: vec![Header::new("TAGS", "a||b"), Header { key: "nothing".into(), value: None }],
            timestamp_ms: 1_700_000_000_500,
        },
        NewRecord {
            key: None,
            value: Some(Bytes::from_static(b"no key")),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000,
        },
        NewRecord {
            key: Some(Bytes::from_static(b"gone")),
            value: None,
            headers: vec![Header::new("KEYS", "x y")],
            timestamp_ms: 1_700_000_009_999,
        },
        NewRecord {
            key: Some(Bytes::new()),
            value: Some(Bytes::new()),
            headers: vec![Header::new("", ""), Header::new("é", &[0xff, 0x00][..])],
            timestamp_ms: 1_700_000_000_001,
        },
        NewRecord {
            key: Some(Bytes::from_static(b"key-4")),
            value: Some(big),
            headers: vec![],
            timestamp_ms: 1_700_000_000_002,
        },
    ]
}

fn assert_same_as_kafka(ours: &[NewRecord], base: i64, theirs: &[KRecord]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(t.offset, base + i as i64, "offset of record {i}");
        assert_eq!(t.timestamp, o.timestamp_ms, "timestamp of record {i}");
        assert_eq!(t.key, o.key, "key of record {i}");
        assert_eq!(t.value, o.value, "value of record {i}");
        let th: Vec<(&str, Option<&Bytes>)> = t.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())).collect();
        let oh: Vec<(&str, Option<&Bytes>)> = o.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref())).collect();
        assert_eq!(th, oh, "headers of record {i}");
    }
}

#[test]
fn ours_decoded_by_kafka_protocol() {
    for codec in Compression::ALL {
        for (base, value_size) in [(0, 10), (1_000_000_007, 10), (42, 150_000)] {
            let records = sample_records(value_size);
            let batch = RecordBatch::build(&records, codec).unwrap().with_base_offset(base);
            let mut buf = batch.clone().into_bytes();
            let set = RecordBatchDecoder::decode(&mut buf)
                .unwrap_or_else(|e| panic!("{codec}: kafka-protocol rejects our batch: {e:#}"));
            assert!(buf.is_empty(), "{codec}: kafka-protocol left bytes over");
            assert_eq!(set.version, 2);
            assert_eq!(set.compression, k_codec(codec));
            assert_same_as_kafka(&records, base, &set.records);
            for r in &set.records {
                assert_eq!(r.producer_id, -1);
                assert_eq!(r.producer_epoch, -1);
                assert_eq!(r.partition_leader_epoch, -1);
                assert!(!r.transactional && !r.control);
                assert_eq!(r.timestamp_type, TimestampType::Creation);
            }
        }
    }
}

fn kafka_records(base: i64, src: &[NewRecord]) -> Vec<KRecord> {
    src.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut k = KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id: 1234,
                producer_epoch: 5,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                // kafka-protocol keeps records in one batch while offset - sequence stays the same.
                sequence: 100 + i as i32,
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: Default::default(),
            };
            for h in &r.headers {
                k.headers.insert(StrBytes::from_string(h.key.clone()), h.value.clone());
            }
            k
        })
        .collect()
}

fn kafka_encode(records: &[KRecord], codec: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, records, &RecordEncodeOptions { version: 2, compression: k_codec(codec) })
        .unwrap();
    buf.freeze()
}

fn assert_same_records(ours: &[Record], src: &[NewRecord], base: i64) {
    assert_eq!(ours.len(), src.len());
    for (i, (o, s)) in ours.iter().zip(src).enumerate() {
        assert_eq!(o.offset, base + i as i64, "offset of record {i}");
        assert_eq!(o.timestamp_ms, s.timestamp_ms, "timestamp of record {i}");
        assert_eq!(o.key, s.key, "key of record {i}");
        assert_eq!(o.value, s.value, "value of record {i}");
        assert_eq!(o.headers, s.headers, "headers of record {i}");
    }
}

#[test]
fn kafka_protocol_decoded_by_ours() {
    for codec in Compression::ALL {
        for (base, value_size) in [(0, 10), (5_000_000_000, 10), (42, 150_000)] {
            let src = sample_records(value_size);
            let bytes = kafka_encode(&kafka_records(base, &src), codec);
            let batch = RecordBatch::from_bytes(bytes)
                .unwrap_or_else(|e| panic!("{codec}: framing of kafka-protocol's batch: {e}"));
            let h: BatchHeader =
                batch.validate().unwrap_or_else(|e| panic!("{codec}: kafka-protocol's batch is invalid: {e}"));
            assert_eq!(h.base_offset, base);
            assert_eq!(h.records_count, src.len() as i32);
            assert_eq!(h.last_offset_delta, src.len() as i32 - 1);
            assert_eq!(h.compression(), Ok(codec));
            assert_eq!(h.partition_leader_epoch, 7);
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (1234, 5, 100));
            // kafka-protocol uses the smallest timestamp as baseTimestamp; we use the first one.
            assert_eq!(h.base_timestamp, 1_700_000_000_000);
            assert_eq!(h.max_timestamp, 1_700_000_009_999);
            assert_same_records(&batch.records().unwrap(), &src, base);
        }
    }
}

#[test]
fn kafka_protocol_framing_per_codec() {
    let src = sample_records(100_000);
    let recs = kafka_records(0, &src);
    // Snappy: xerial framing (magic, version 1, compatible 1, then 32 KiB chunks).
    let snappy = kafka_encode(&recs, Compression::Snappy);
    assert_eq!(&snappy[61..77], b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
    // LZ4: a standard LZ4 frame (liblz4 with independent blocks).
    let lz4 = kafka_encode(&recs, Compression::Lz4);
    assert_eq!(&lz4[61..65], &[0x04, 0x22, 0x4d, 0x18]);
    // Ours: raw snappy (no xerial magic), and an LZ4 frame.
    let ours = RecordBatch::build(&src, Compression::Snappy).unwrap();
    assert_ne!(&ours.as_bytes()[61..69], b"\x82SNAPPY\x00");
    let ours = RecordBatch::build(&src, Compression::Lz4).unwrap();
    assert_eq!(&ours.as_bytes()[61..65], &[0x04, 0x22, 0x4d, 0x18]);
}

#[test]
fn concatenated_batches_from_both_sides_split() {
    let src = sample_records(20);
    let mut log = Vec::new();
    let mut expected = Vec::new();
    let mut next = 0i64;
    for codec in Compression::ALL {
        let ours = RecordBatch::build(&src, codec).unwrap().with_base_offset(next);
        log.extend_from_slice(ours.as_bytes());
        expected.push((next, ours.len()));
        next += src.len() as i64;
        let theirs = kafka_encode(&kafka_records(next, &src), codec);
        log.extend_from_slice(&theirs);
        expected.push((next, theirs.len()));
        next += src.len() as i64;
    }
    // kafka-protocol reads the whole log.
    let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(log.clone())).unwrap();
    assert_eq!(sets.len(), expected.len());

    let mut it = split_batches(&log);
    let mut seen = Vec::new();
    for item in it.by_ref() {
        let (h, bytes) = item.unwrap();
        let batch = RecordBatch::from_bytes(Bytes::copy_from_slice(bytes)).unwrap();
        assert_eq!(batch.validate().unwrap(), h);
        assert_same_records(&batch.records().unwrap(), &src, h.base_offset);
        seen.push((h.base_offset, bytes.len()));
    }
    assert_eq!(seen, expected);
    assert_eq!(it.consumed(), log.len());
}
