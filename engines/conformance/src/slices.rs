//! What an engine does with the slices it returned: decode them into records (`decode_records`) and turn
//! them into Kafka RecordBatch v2 bytes (`encode_batches`), with and without a tag filter, keeping the
//! producer fields of idempotent producers' batches.

use bytes::Bytes;
use janus_api::batch::{decode_batches, split_batches};
use janus_api::{
    BatchHeader, Compression, Engine, Header, NewRecord, ReadSlice, Record, RecordBatch, TopicPartition, headers,
};

use crate::Harness;
use crate::support::{BIG_READ, Ctx, build_with, check_records, slice_records};

/// Splits `bytes` into batches and checks each: it decodes with its CRC intact, and its records fill its
/// offset range densely (`records_count == lastOffsetDelta + 1`, offsets `base..=last`). Returns how many
/// batches there are.
#[track_caller]
fn check_batches(what: &str, bytes: &Bytes) -> usize {
    let mut count = 0;
    for item in split_batches(bytes) {
        let (header, raw) = item.unwrap_or_else(|e| panic!("{what}: encoded batches do not split: {e}"));
        let records = decode_batches(&bytes.slice_ref(raw), i64::MIN)
            .unwrap_or_else(|e| panic!("{what}: batch {count} does not decode: {e}"));
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        let dense: Vec<i64> = (header.base_offset..=header.last_offset()).collect();
        assert_eq!(offsets, dense, "{what}: batch {count} must hold its offsets densely");
        count += 1;
    }
    count
}

/// Encodes `slice`, checks the batches, and checks that decoding them from `from` gives exactly what
/// `decode_records` gives. Returns the decoded records and the number of batches.
#[track_caller]
fn check_round_trip<E: Engine>(
    what: &str,
    e: &E,
    tp: &TopicPartition,
    slice: &ReadSlice,
    from: i64,
) -> (Vec<Record>, usize) {
    let direct = slice_records(what, e, tp, slice, from);
    let encoded = e.encode_batches(slice).unwrap_or_else(|err| panic!("{what}: encode_batches of {tp}: {err}"));
    let batches = check_batches(what, &encoded);
    let via_batches =
        decode_batches(&encoded, from).unwrap_or_else(|err| panic!("{what}: encoded batches of {tp}: {err}"));
    assert_eq!(
        via_batches, direct,
        "{what}: {tp} from {from}: decoding the encoded batches differs from decode_records"
    );
    (direct, batches)
}

/// `decode_records` returns exactly the records at or after the offset it is given, whatever the slice
/// starts with (reads from the middle of an appended batch included), and nothing for an empty slice;
/// `encode_batches` of the same slice decodes to the same records (offsets, timestamps, keys, values and
/// headers), as whole, dense, checksummed batches; an empty slice encodes to no bytes.
pub fn decode_and_encode_slices<H: Harness>(h: &H) {
    let case = "decode_and_encode_slices";
    let mut c = Ctx::new(h, case);
    let tp = c.create_topic("slices", 1, &[]).remove(0);
    for n in [3, 1, 5, 2, 4] {
        let mut records = c.records(n, 10..=200);
        records[0].headers.push(Header::new("h", Bytes::from_static(b"\x00\x01\x02")));
        c.append(&tp, &records);
    }
    let log = c.log(&tp).clone();
    let end = log.log_end();
    for offset in 0..end {
        let what = format!("{case}: read at {offset}");
        let slice = c.e().read(&tp, offset, BIG_READ).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (records, batches) = check_round_trip(&what, c.e(), &tp, &slice, offset);
        check_records(&what, &tp, &records, offset, &log.records[offset as usize..]);
        assert_eq!(records.len() as i64, end - offset, "{what}: one big read returns everything to the log end");
        assert!(batches >= 1, "{what}: at least one batch");
        // Decoding from further on skips the records before it, even inside one batch.
        let later = (offset + 2).min(end);
        let tail = slice_records(&what, c.e(), &tp, &slice, later);
        check_records(&what, &tp, &tail, later, &log.records[later as usize..]);
        assert_eq!(tail.len() as i64, end - later, "{what}: decode_records from {later}");
    }
    let empty = c.e().read(&tp, end, BIG_READ).unwrap_or_else(|e| panic!("{case}: read at the log end: {e}"));
    assert!(slice_records(case, c.e(), &tp, &empty, end).is_empty(), "{case}: an empty slice decodes to nothing");
    let bytes =
        c.e().encode_batches(&empty).unwrap_or_else(|e| panic!("{case}: encode_batches of an empty slice: {e}"));
    assert!(bytes.is_empty(), "{case}: an empty slice encodes to {} bytes", bytes.len());
}

/// For engines with a tag filter: a tagged read decodes to exactly the messages carrying one of the tags,
/// and encodes to one batch per run of contiguous offsets that decodes to the same records, from the
/// read's offset and from the middle of a run. Engines without one skip this case.
pub fn encode_batches_under_a_tag_filter<H: Harness>(h: &H) {
    let case = "encode_batches_under_a_tag_filter";
    let mut c = Ctx::new(h, case);
    let tp = c.create_topic("tagged", 1, &[]).remove(0);
    if c.e().tag_filter().is_none() {
        return;
    }
    // Tags by offset: runs of "a" separated by other tags and untagged messages.
    let tags = ["a", "a", "b", "a", "", "a", "a", "a", "c", "a"];
    let t0 = c.next_ts();
    let records: Vec<NewRecord> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: if t.is_empty() { vec![] } else { vec![Header::new(headers::TAGS, t.to_string())] },
            timestamp_ms: t0 + i as i64,
        })
        .collect();
    c.append(&tp, &records);
    let wanted = vec!["a".to_string()];
    let filter = c.e().tag_filter().unwrap_or_else(|| panic!("{case}: tag_filter() changed"));
    for (from, runs) in [(0i64, 4usize), (1, 4), (6, 2)] {
        let what = format!("{case}: tagged read at {from}");
        let slice = filter.read_tagged(&tp, from, BIG_READ, &wanted).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(slice.next_offset(), tags.len() as i64, "{what}: next_offset moves past what was skipped");
        let (got, batches) = check_round_trip(&what, c.e(), &tp, &slice, from);
        let expected: Vec<i64> = (from..tags.len() as i64).filter(|&o| tags[o as usize] == "a").collect();
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), expected, "{what}: offsets returned");
        for r in &got {
            let sent = &records[r.offset as usize];
            assert_eq!((&r.key, &r.value, &r.headers), (&sent.key, &sent.value, &sent.headers), "{what}: {}", r.offset);
            assert_eq!(r.timestamp_ms, sent.timestamp_ms, "{what}: timestamp of {}", r.offset);
        }
        assert_eq!(batches, runs, "{what}: one batch per run of contiguous offsets");
    }
}

/// An idempotent producer's fields: producer id, epoch, base sequence.
type Producer = (i64, i16, i32);

/// One appended batch: its first and last offset, and its producer fields if it had any.
type Sent = (i64, i64, Option<Producer>);

/// Appends `n` records as one batch, with `producer`'s fields when given, compressed with `codec`.
fn append_producer_batch<H: Harness>(
    c: &mut Ctx<'_, H>,
    tp: &TopicPartition,
    n: usize,
    producer: Option<Producer>,
    codec: Compression,
) -> Sent {
    let records = c.records(n, 10..=200);
    let mut batch = build_with(&records, codec);
    if let Some((producer_id, producer_epoch, base_sequence)) = producer {
        let template = BatchHeader { producer_id, producer_epoch, base_sequence, ..batch.header() };
        let decoded = batch.records().unwrap_or_else(|e| panic!("test bug: cannot decode a built batch: {e}"));
        batch = RecordBatch::rebuild(&template, &decoded).unwrap_or_else(|e| panic!("test bug: cannot rebuild: {e}"));
    }
    let a = c.append_batch(tp, batch, &records);
    drop(a.durable);
    (a.base_offset, a.last_offset, producer)
}

/// Reads all of `tp` from its start (following `next_offset`), encodes every slice, and checks that each
/// batch in `sent` with producer fields comes back as one batch with the same base offset, record count,
/// producer id, epoch and base sequence, and that every record of a batch without them comes back in a
/// batch whose producer id is -1.
#[track_caller]
fn check_producer_batches<H: Harness>(c: &Ctx<'_, H>, tp: &TopicPartition, sent: &[Sent]) {
    let what = c.what();
    let end = c.log(tp).log_end();
    let mut encoded: Vec<BatchHeader> = Vec::new();
    let mut offset = 0;
    while offset < end {
        let slice =
            c.e().read(tp, offset, BIG_READ).unwrap_or_else(|e| panic!("{what}: read of {tp} at {offset}: {e}"));
        check_round_trip(&what, c.e(), tp, &slice, offset);
        let bytes = c.e().encode_batches(&slice).unwrap_or_else(|e| panic!("{what}: encode_batches at {offset}: {e}"));
        for item in split_batches(&bytes) {
            let (header, _) = item.unwrap_or_else(|e| panic!("{what}: encoded batches do not split: {e}"));
            encoded.push(header);
        }
        assert!(slice.next_offset() > offset, "{what}: read of {tp} at {offset} makes no progress");
        offset = slice.next_offset();
    }
    for &(base, last, producer) in sent {
        match producer {
            Some((producer_id, epoch, sequence)) => {
                let h = encoded
                    .iter()
                    .find(|h| h.base_offset == base)
                    .unwrap_or_else(|| panic!("{what}: no encoded batch starts at {base}, where a producer's did"));
                assert_eq!(
                    (h.producer_id, h.producer_epoch, h.base_sequence, h.records_count, h.last_offset()),
                    (producer_id, epoch, sequence, (last - base + 1) as i32, last),
                    "{what}: the batch at {base} (producer id, epoch, base sequence, records, last offset)"
                );
            }
            None => {
                for o in base..=last {
                    let h = encoded
                        .iter()
                        .find(|h| (h.base_offset..=h.last_offset()).contains(&o))
                        .unwrap_or_else(|| panic!("{what}: no encoded batch holds offset {o}"));
                    assert_eq!(h.producer_id, -1, "{what}: offset {o} was appended without a producer id");
                }
            }
        }
    }
}

/// `encode_batches` gives back each batch appended with a producer id (idempotent producer) as one batch
/// with its base offset, record count, producer id, epoch and base sequence (a base sequence near
/// `i32::MAX` included), among batches appended without one, which come back with producer id -1; the
/// same holds after a clean restart and after a crash. (The broker rebuilds its producer state from this.)
pub fn encode_batches_keeps_producer_fields<H: Harness>(h: &H) {
    let case = "encode_batches_keeps_producer_fields";
    let mut c = Ctx::new(h, case);
    let tp = c.create_topic("producers", 1, &[]).remove(0);
    let plan: [(usize, Option<Producer>, Compression); 11] = [
        (3, Some((1000, 0, 0)), Compression::None),
        (2, None, Compression::None),
        (1, None, Compression::None),
        (4, Some((1000, 0, 3)), Compression::None),
        (5, Some((2001, 7, i32::MAX - 2)), Compression::None),
        (1, Some((0, 0, i32::MAX)), Compression::None),
        (2, None, Compression::Lz4),
        (3, Some((i64::MAX, i16::MAX, 17)), Compression::Lz4),
        (1, Some((3, 1, 0)), Compression::None),
        (2, Some((3, 2, 0)), Compression::None),
        (1, None, Compression::None),
    ];
    let mut sent: Vec<Sent> =
        plan.iter().map(|&(n, p, codec)| append_producer_batch(&mut c, &tp, n, p, codec)).collect();
    check_producer_batches(&c, &tp, &sent);
    c.check(&tp);

    c.clean_restart();
    check_producer_batches(&c, &tp, &sent);
    sent.push(append_producer_batch(&mut c, &tp, 2, Some((1000, 1, 0)), Compression::None));
    sent.push(append_producer_batch(&mut c, &tp, 1, None, Compression::None));
    check_producer_batches(&c, &tp, &sent);

    c.crash_restart();
    check_producer_batches(&c, &tp, &sent);
    c.check(&tp);
}
