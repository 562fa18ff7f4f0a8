//! Bad input: every rejected append must fail with the right error and leave nothing written (the log end
//! unchanged, the next good append at the expected offset, and no trace after a crash and recovery).

use bytes::Bytes;
use janus_api::batch::header::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET, MAX_TIMESTAMP_OFFSET, RECORDS_COUNT_OFFSET, compute_crc,
};
use janus_api::topic::MAX_PARTITIONS;
use janus_api::{
    BatchError, Compression, Engine, NewRecord, Record, RecordBatch, StorageError, TopicConfig, TopicPartition,
    TopicSpec,
};

use crate::Harness;
use crate::support::{Ctx, build, build_with, expect_err};

/// A context with a topic `bad` of two partitions, a few batches in partition 0.
fn setup<'h, H: Harness>(h: &'h H, case: &'static str) -> (Ctx<'h, H>, TopicPartition) {
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("bad", 2, &[]);
    for n in [1, 4, 2] {
        let records = c.records(n, 10..=300);
        c.append(&tps[0], &records);
    }
    (c, tps[0].clone())
}

/// The bytes of a good batch of `n` records.
fn good_bytes<H: Harness>(c: &mut Ctx<'_, H>, n: usize) -> Vec<u8> {
    let records = c.records(n, 10..=300);
    build(&records).as_bytes().to_vec()
}

/// Recomputes the CRC after editing bytes it covers.
fn fix_crc(bytes: &mut [u8]) {
    let crc = compute_crc(bytes);
    bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

fn put_i32(bytes: &mut [u8], at: usize, value: i32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn get_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Offers `bytes` as a batch to `tp` and checks it is refused with a batch error `expected` accepts, by
/// `RecordBatch::from_bytes` (its framing check) or else by `append`, and that the offsets did not move.
#[track_caller]
fn refuse<H: Harness>(
    c: &Ctx<'_, H>,
    tp: &TopicPartition,
    what: &str,
    bytes: Vec<u8>,
    expected: impl Fn(&BatchError) -> bool,
) {
    let case = c.case;
    match RecordBatch::from_bytes(Bytes::from(bytes)) {
        Err(err) => assert!(expected(&err), "{case}: {what}: RecordBatch::from_bytes refused it, but with {err:?}"),
        Ok(batch) => match c.e().append(tp, batch) {
            Err(StorageError::InvalidBatch(err)) => {
                assert!(expected(&err), "{case}: {what}: append refused it, but with InvalidBatch({err:?})")
            }
            Err(other) => panic!("{case}: {what}: append must fail with InvalidBatch, not {other} ({other:?})"),
            Ok(a) => panic!("{case}: {what}: append accepted it at {}..={}", a.base_offset, a.last_offset),
        },
    }
    let o = c.e().offsets(tp).unwrap_or_else(|e| panic!("{case}: offsets: {e}"));
    assert_eq!(o, c.log(tp).offsets(), "{case}: {what}: a refused append must not move the offsets");
}

/// After refusals: a good append gets the expected offset, and after a crash every partition holds
/// exactly the good appends.
fn nothing_written<H: Harness>(c: &mut Ctx<'_, H>, tp: &TopicPartition) {
    let records = c.records(2, 10..=100);
    c.append(tp, &records);
    c.check_all();
    c.crash_restart();
    c.check_all();
    let records = c.records(1, 10..=100);
    c.append(tp, &records);
    c.check_all();
}

/// Case 9: a batch whose CRC does not match its bytes (a flipped byte in the records, in a header field
/// the CRC covers, or in the CRC itself; uncompressed and compressed) is refused with
/// `InvalidBatch(CrcMismatch)`.
pub fn corrupt_crc_rejected<H: Harness>(h: &H) {
    let (mut c, tp) = setup(h, "corrupt_crc_rejected");
    let good = good_bytes(&mut c, 3);
    let crc = |e: &BatchError| matches!(e, BatchError::CrcMismatch { .. });
    for (what, at) in [
        ("last record byte", good.len() - 1),
        ("maxTimestamp", MAX_TIMESTAMP_OFFSET + 7),
        ("the CRC field", CRC_OFFSET),
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        refuse(&c, &tp, &format!("a flipped byte in {what}"), bad, crc);
    }
    let records = c.records(5, 100..=300);
    let mut compressed = build_with(&records, Compression::Lz4).as_bytes().to_vec();
    let at = compressed.len() - 3;
    compressed[at] ^= 0x01;
    refuse(&c, &tp, "a flipped byte in an lz4 batch", compressed, crc);
    nothing_written(&mut c, &tp);
}

/// Case 9: a batch whose magic byte is not 2 is refused with `BadMagic`, by `RecordBatch::from_bytes` or
/// by the engine.
pub fn wrong_magic_rejected<H: Harness>(h: &H) {
    let (mut c, tp) = setup(h, "wrong_magic_rejected");
    let good = good_bytes(&mut c, 3);
    for magic in [1u8, 0, 3, 0xff] {
        let mut bad = good.clone();
        bad[MAGIC_OFFSET] = magic;
        refuse(&c, &tp, &format!("magic {magic}"), bad, |e| *e == BatchError::BadMagic(magic as i8));
    }
    nothing_written(&mut c, &tp);
}

/// Case 9: malformed batches are refused with `InvalidBatch` (or by `RecordBatch::from_bytes`): truncated,
/// a wrong length field, a records count that does not match the records, an undefined codec, a codec
/// bit over uncompressed records, bytes after the last record, and a batch of no records (all with a
/// correct CRC where the CRC covers the change). Batches whose record offset deltas leave gaps are either
/// refused or stored with dense offsets.
pub fn malformed_batches_rejected<H: Harness>(h: &H) {
    let (mut c, tp) = setup(h, "malformed_batches_rejected");
    let good = good_bytes(&mut c, 3);
    let any = |_: &BatchError| true;

    refuse(&c, &tp, "a batch cut short by one byte", good[..good.len() - 1].to_vec(), any);
    refuse(&c, &tp, "a header alone", good[..61].to_vec(), any);
    let length = get_i32(&good, LENGTH_OFFSET);
    for (what, value) in
        [("a length field 100 too large", length + 100), ("a length field below 49", 10), ("a negative length", -1)]
    {
        let mut bad = good.clone();
        put_i32(&mut bad, LENGTH_OFFSET, value);
        refuse(&c, &tp, what, bad, any);
    }
    for (what, count) in [("one record more than it holds", 4), ("one record less", 2), ("a negative count", -1)] {
        let mut bad = good.clone();
        put_i32(&mut bad, RECORDS_COUNT_OFFSET, count);
        fix_crc(&mut bad);
        refuse(&c, &tp, &format!("a records count of {what}"), bad, any);
    }
    let mut bad = good.clone();
    bad[ATTRIBUTES_OFFSET + 1] |= 5;
    fix_crc(&mut bad);
    refuse(&c, &tp, "codec 5", bad, |e| *e == BatchError::UnsupportedCompression(5));
    let mut bad = good.clone();
    bad[ATTRIBUTES_OFFSET + 1] |= 1;
    fix_crc(&mut bad);
    refuse(&c, &tp, "the gzip bit over uncompressed records", bad, any);
    let mut bad = good.clone();
    bad.extend_from_slice(&[0xde, 0xad, 0xbe]);
    put_i32(&mut bad, LENGTH_OFFSET, length + 3);
    fix_crc(&mut bad);
    refuse(&c, &tp, "three bytes after the last record", bad, any);
    let empty = RecordBatch::build_with_offsets(0, 0, &[], Compression::None).expect("header-only batch");
    refuse(&c, &tp, "a batch of no records", empty.as_bytes().to_vec(), any);

    // Offset deltas with gaps: refusing is right (Kafka does), so is storing the records at dense offsets;
    // storing a hole is not.
    for (what, last_delta, deltas) in
        [("lastOffsetDelta 5 over three records", 5, [0, 1, 2]), ("offset deltas 0, 2, 4", 4, [0, 2, 4])]
    {
        let fresh = c.records(3, 10..=100);
        let records: Vec<Record> = fresh
            .iter()
            .zip(deltas)
            .map(|(r, d)| Record {
                offset: d,
                timestamp_ms: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            })
            .collect();
        let batch = RecordBatch::build_with_offsets(0, last_delta, &records, Compression::None)
            .expect("test bug: gapped batch");
        let end = c.log(&tp).log_end();
        match c.e().append(&tp, batch) {
            Err(StorageError::InvalidBatch(_)) => {}
            Err(other) => panic!("malformed_batches_rejected: {what}: expected InvalidBatch or success, got {other}"),
            Ok(a) => {
                drop(a.durable);
                assert_eq!(
                    (a.base_offset, a.last_offset),
                    (end, end + 2),
                    "malformed_batches_rejected: {what}: an accepted batch must still get dense offsets"
                );
                c.log_mut(&tp).push(&fresh);
                c.check(&tp);
            }
        }
    }
    nothing_written(&mut c, &tp);
}

/// Case 9: a batch (of one record) larger than `max.message.bytes` is refused with `MessageTooLarge`
/// naming the limit; one below it is accepted.
pub fn oversized_batch_rejected<H: Harness>(h: &H) {
    let case = "oversized_batch_rejected";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("big", 1, &[("max.message.bytes", "4096")]);
    let tp = &tps[0];
    let records = c.records(1, 3000..=3000);
    c.append(tp, &records);
    for size in [8000, 5000, 100_000] {
        let records = c.records(1, size..=size);
        expect_err!(
            c.e().append(tp, build(&records)),
            StorageError::MessageTooLarge { size: s, max } if max == 4096 && s > 4096,
            "{case}: a batch of one {size}-byte record with max.message.bytes = 4096"
        );
        assert_eq!(c.e().offsets(tp).ok(), Some(c.log(tp).offsets()), "{case}: offsets after a refused append");
    }
    nothing_written(&mut c, tp);
}

/// Case 9: a small compressed batch whose records decompress far past the topic's `max.message.bytes` (a
/// "zip bomb") is refused with a compression error before the engine allocates its decompressed size; one
/// that decompresses past `max.message.bytes` but within the margin is stored.
pub fn compression_bomb_rejected<H: Harness>(h: &H) {
    let case = "compression_bomb_rejected";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("bomb", 1, &[("max.message.bytes", "16384")]);
    let tp = &tps[0];
    let record = |len: usize, ts: i64| NewRecord {
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from(vec![0u8; len])),
        headers: vec![],
        timestamp_ms: ts,
    };
    let limit = TopicConfig { max_message_bytes: 16384, ..TopicConfig::default() }.max_decompressed_bytes();
    let bomb = build_with(&[record(limit + 4 * 1024 * 1024, 1)], Compression::Zstd);
    assert!(bomb.len() <= 16384, "{case}: test bug: the bomb must fit max.message.bytes ({} bytes)", bomb.len());
    let too_big = |e: &BatchError| matches!(e, BatchError::Compression { detail, .. } if detail.contains("exceed"));
    refuse(&c, tp, "a 16 KiB-limited topic given records decompressing to 5 MiB", bomb.as_bytes().to_vec(), too_big);
    // Beyond max.message.bytes once decompressed, but within the margin (and within a test-sized CommitLog file).
    let fine = [record(64 * 1024, 2)];
    drop(c.append_batch(tp, build_with(&fine, Compression::Zstd), &fine));
    nothing_written(&mut c, tp);
}

/// Case 9: every call on a topic the engine does not have fails with `UnknownTopic` naming it, and
/// creates nothing.
pub fn unknown_topic_rejected<H: Harness>(h: &H) {
    let (mut c, known) = setup(h, "unknown_topic_rejected");
    let case = c.case;
    let e = c.e();
    for name in ["no-such-topic", "Bad", "bad.", "ba"] {
        let tp = TopicPartition::new(name, 0);
        let unknown = |err: &StorageError| matches!(err, StorageError::UnknownTopic(t) if t == name);
        let records = c.log(&known).records[..1].to_vec();
        expect_err!(e.append(&tp, build(&records)), ref err if unknown(err), "{case}: append to {tp}");
        expect_err!(e.read(&tp, 0, 1024), ref err if unknown(err), "{case}: read of {tp}");
        expect_err!(e.offsets(&tp), ref err if unknown(err), "{case}: offsets of {tp}");
        expect_err!(e.offset_for_timestamp(&tp, 0), ref err if unknown(err), "{case}: offset_for_timestamp on {tp}");
        expect_err!(e.delete_records_before(&tp, 0), ref err if unknown(err), "{case}: delete_records_before on {tp}");
        expect_err!(e.alter_topic(name, &TopicConfig::default()), ref err if unknown(err), "{case}: alter_topic {name}");
        expect_err!(e.delete_topic(name), ref err if unknown(err), "{case}: delete_topic {name}");
    }
    let disk = e.topics_on_disk().unwrap_or_else(|err| panic!("{case}: topics_on_disk: {err}"));
    assert_eq!(disk, vec!["bad".to_string()], "{case}: calls on unknown topics must create nothing");
    nothing_written(&mut c, &known);
}

/// Case 9: every call on a partition the topic does not have fails with `UnknownPartition` naming the
/// topic, the partition and the partition count, and writes nothing.
pub fn unknown_partition_rejected<H: Harness>(h: &H) {
    let (mut c, known) = setup(h, "unknown_partition_rejected");
    let case = c.case;
    let e = c.e();
    for p in [2, 3, 1000, u32::MAX] {
        let tp = TopicPartition::new("bad", p);
        let unknown = |err: &StorageError| {
            matches!(err, StorageError::UnknownPartition { topic, partition, partitions }
                if topic == "bad" && *partition == p && *partitions == 2)
        };
        let records = c.log(&known).records[..1].to_vec();
        expect_err!(e.append(&tp, build(&records)), ref err if unknown(err), "{case}: append to {tp}");
        expect_err!(e.read(&tp, 0, 1024), ref err if unknown(err), "{case}: read of {tp}");
        expect_err!(e.offsets(&tp), ref err if unknown(err), "{case}: offsets of {tp}");
        expect_err!(e.offset_for_timestamp(&tp, 0), ref err if unknown(err), "{case}: offset_for_timestamp on {tp}");
        expect_err!(e.delete_records_before(&tp, 0), ref err if unknown(err), "{case}: delete_records_before on {tp}");
    }
    nothing_written(&mut c, &known);
}

/// Case 9: topic names breaking Kafka's rules are refused with `InvalidTopicName` by `create_topic` and
/// `open_topic`, and leave nothing on disk; names at the edge of the rules (249 characters, dots, dashes,
/// underscores) work.
pub fn invalid_topic_name_rejected<H: Harness>(h: &H) {
    let case = "invalid_topic_name_rejected";
    let mut c = Ctx::new(h, case);
    let long = "x".repeat(250);
    for name in ["", ".", "..", "a/b", "../escape", "a b", "ü", "a\0b", "a\\b", "*", long.as_str()] {
        let spec = c.spec(name, 1, &[]);
        let invalid = |err: &StorageError| matches!(err, StorageError::InvalidTopicName { name: n, .. } if n == name);
        expect_err!(c.e().create_topic(&spec), ref err if invalid(err), "{case}: create_topic {name:?}");
        expect_err!(c.e().open_topic(&spec), ref err if invalid(err), "{case}: open_topic {name:?}");
    }
    let disk = c.e().topics_on_disk().unwrap_or_else(|e| panic!("{case}: topics_on_disk: {e}"));
    assert!(disk.is_empty(), "{case}: refused topics left {disk:?} on disk");
    let mut tps = Vec::new();
    for name in ["x".repeat(249), "a.b_c-D9".to_string(), "-".to_string(), "_".to_string(), "...".to_string()] {
        tps.extend(c.create_topic(&name, 1, &[]));
    }
    for tp in &tps {
        let records = c.records(2, 10..=100);
        c.append(tp, &records);
    }
    c.crash_restart();
    c.check_all();
}

/// Case 9: creating a topic that exists, in memory or only on disk, fails with `TopicExists` and leaves
/// its data alone; opening an open topic fails.
pub fn existing_topic_rejected<H: Harness>(h: &H) {
    let (mut c, known) = setup(h, "existing_topic_rejected");
    let case = c.case;
    let exists = |err: &StorageError| matches!(err, StorageError::TopicExists(t) if t == "bad");
    let same = c.specs["bad"].clone();
    let other = c.spec("bad", 5, &[("retention.ms", "1000")]);
    for spec in [&same, &other] {
        expect_err!(c.e().create_topic(spec), ref err if exists(err), "{case}: create_topic of an open topic");
    }
    c.check_all();
    c.crash();
    c.open_engine();
    for spec in [&same, &other] {
        expect_err!(c.e().create_topic(spec), ref err if exists(err), "{case}: create_topic of a topic on disk");
    }
    c.e().open_topic(&same).unwrap_or_else(|e| panic!("{case}: open_topic: {e}"));
    assert!(c.e().open_topic(&same).is_err(), "{case}: opening an open topic must fail");
    c.check_all();
    nothing_written(&mut c, &known);
}

/// Case 9: `TopicConfig::set` refuses unknown keys and out-of-range values, naming the key and leaving the
/// config unchanged; a spec with no partitions or too many is refused by `create_topic` with
/// `InvalidConfig` and leaves nothing on disk.
pub fn invalid_config_rejected<H: Harness>(h: &H) {
    let case = "invalid_config_rejected";
    for (key, value) in [
        ("no.such.key", "1"),
        ("segment.bytes", "10"),
        ("segment.bytes", "4294967296"),
        ("max.message.bytes", "63"),
        ("max.message.bytes", "many"),
        ("retention.ms", "0"),
        ("retention.ms", "-2"),
        ("retention.bytes", "0"),
        ("flush.policy", "always"),
        ("flush.interval.ms", "0"),
        ("cleanup.policy", "archive"),
    ] {
        let mut config = h.base_config();
        let before = config.clone();
        let Err(err) = config.set(key, value) else { panic!("{case}: {key} = {value} must be refused") };
        assert_eq!(err.key, key, "{case}: the error must name the key");
        assert_eq!(config, before, "{case}: a refused set of {key} must leave the config unchanged");
        assert!(matches!(StorageError::from(err), StorageError::InvalidConfig(_)));
    }
    let mut c = Ctx::new(h, case);
    for partitions in [0, MAX_PARTITIONS + 1] {
        let spec = TopicSpec { name: "parts".into(), partitions, config: h.base_config() };
        expect_err!(
            c.e().create_topic(&spec),
            StorageError::InvalidConfig(ref e) if e.key == "partitions",
            "{case}: create_topic with {partitions} partitions"
        );
    }
    let disk = c.e().topics_on_disk().unwrap_or_else(|e| panic!("{case}: topics_on_disk: {e}"));
    assert!(disk.is_empty(), "{case}: refused topics left {disk:?} on disk");
    let tps = c.create_topic("parts", 1, &[]);
    let records: Vec<NewRecord> = c.records(1, 10..=10);
    c.append(&tps[0], &records);
    c.check_all();
}
