//! What an engine does with the slices it returned: decode them into records (`decode_records`) and turn
//! them into Kafka RecordBatch v2 bytes (`encode_batches`), with and without a tag filter.

use bytes::Bytes;
use janus_api::batch::{decode_batches, split_batches};
use janus_api::{Engine, Header, NewRecord, ReadSlice, Record, TopicPartition, headers};

use crate::Harness;
use crate::support::{BIG_READ, Ctx, check_records, slice_records};

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
