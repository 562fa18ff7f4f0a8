//! Appending and reading: order, offsets, every field of a record, compression, reads from any offset,
//! `max_bytes`, timestamp lookups, and concurrent appends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use janus_api::{Compression, Engine, Header, NewRecord, Offsets, TopicPartition};

use crate::Harness;
use crate::support::{
    BIG_READ, Ctx, Log, build, build_with, check_out_of_range, check_read_at_end, check_read_step, check_records,
    plain_record, read_all, read_range, slice_records,
};

/// Case 1: appends interleaved over four partitions of two topics, crossing many file (segment) rolls,
/// then reads every partition back from offset 0 following `next_offset`, with large and small
/// `max_bytes`, and compares offsets, keys, values, headers and timestamps with what was sent.
pub fn append_and_read_in_order<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "append_and_read_in_order");
    let mut tps = c.create_topic("orders", 3, &[]);
    tps.extend(c.create_topic("events", 1, &[]));
    c.fill(&tps, h.file_bytes() * 5 / 2);
    c.check_all();
    for tp in &tps {
        c.check_reading(tp, 16 * 1024);
    }
    c.check_all_timestamps();
}

/// Case 2: offsets are dense and monotonic: every `Appended` starts at the previous log end and spans
/// exactly its records (batches of 1 and of many records), `offsets()` follows, partitions and topics
/// count independently, and a base offset set by the producer is ignored.
pub fn offsets_are_dense_and_monotonic<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "offsets_are_dense_and_monotonic");
    let tps = c.create_topic("dense", 2, &[]);
    let sizes: [&[usize]; 2] = [&[1, 1, 5, 1, 17, 2, 100, 1, 3, 1], &[3, 1, 1, 64, 1, 7]];
    for step in 0..sizes[0].len().max(sizes[1].len()) {
        for (p, tp) in tps.iter().enumerate() {
            let Some(&n) = sizes[p].get(step) else { continue };
            let records = c.records(n, 1..=40);
            let (base, last) = c.append(tp, &records);
            let o = c.e().offsets(tp).unwrap_or_else(|e| panic!("offsets_are_dense_and_monotonic: offsets: {e}"));
            assert_eq!(
                o,
                Offsets { log_start: 0, log_end: last + 1 },
                "offsets_are_dense_and_monotonic: {tp} after appending {n} records at {base}"
            );
        }
    }
    // The producer's baseOffset is not the broker's business: it assigns its own.
    for producer_base in [1_000_000, -5, 3] {
        let records = c.records(4, 1..=40);
        let batch = build(&records).with_base_offset(producer_base);
        let a = c.append_batch(&tps[0], batch, &records);
        drop(a.durable);
    }
    // A new topic starts at 0 whatever the others hold.
    let fresh = c.create_topic("dense-later", 1, &[]);
    let records = c.records(2, 1..=40);
    assert_eq!(c.append(&fresh[0], &records), (0, 1), "offsets_are_dense_and_monotonic: a new topic starts at 0");
    c.check_all();
    c.crash_restart();
    c.check_all();
}

/// Every field shape a record can have: null and empty keys and values, binary keys and values with the
/// bytes other formats use as separators, headers with null, empty, binary and duplicate values, non-ASCII
/// header keys, timestamps that step back inside a batch, and a large value.
fn edge_records(t0: i64) -> Vec<NewRecord> {
    let binary: Bytes = Bytes::from_static(b"\x00\x01\x02\x03\xff\xfe\n\r\t=;:,\x01\x02");
    vec![
        NewRecord { key: None, value: None, headers: vec![], timestamp_ms: t0 },
        NewRecord { key: Some(Bytes::new()), value: Some(Bytes::new()), headers: vec![], timestamp_ms: t0 + 1 },
        NewRecord { key: Some(binary.clone()), value: Some(binary.clone()), headers: vec![], timestamp_ms: t0 + 2 },
        NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![
                Header { key: "null".into(), value: None },
                Header { key: "empty".into(), value: Some(Bytes::new()) },
                Header { key: "binary".into(), value: Some(binary.clone()) },
                Header::new("dup", "first"),
                Header::new("dup", "second"),
                Header { key: String::new(), value: Some(Bytes::from_static(b"empty key")) },
                Header::new("ключ-🔑", "значение"),
                Header::new("TAGS", "TagA"),
                Header::new("KEYS", "order-1 order-2"),
            ],
            timestamp_ms: t0 + 3,
        },
        // Timestamps need not rise inside a batch.
        NewRecord {
            key: None,
            value: Some(Bytes::from_static(b"older")),
            headers: vec![],
            timestamp_ms: t0 - 86_400_000,
        },
        NewRecord {
            key: None,
            value: None,
            headers: vec![Header { key: "x".into(), value: None }],
            timestamp_ms: t0 + 4,
        },
        NewRecord {
            key: Some(Bytes::from(vec![b'K'; 1000])),
            value: Some(Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>())),
            headers: vec![Header::new("h", Bytes::from(vec![7u8; 3000]))],
            timestamp_ms: t0 + 123_456,
        },
    ]
}

/// Every field of a record survives the engine exactly, whether the records come as one batch or one by
/// one, and after a crash and a clean restart: null versus empty keys, values and header values, binary
/// bytes everywhere, duplicate and non-ASCII header keys, header order, and timestamps.
pub fn record_fields_round_trip<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "record_fields_round_trip");
    let tps = c.create_topic("fields", 1, &[]);
    let tp = &tps[0];
    let records = edge_records(c.clock);
    c.append(tp, &records);
    for r in &records {
        c.append(tp, std::slice::from_ref(r));
    }
    c.check(tp);
    c.check_reading(tp, 1);
    c.crash_restart();
    c.check(tp);
    c.clean_restart();
    c.check(tp);
    c.check_timestamps(tp);
}

/// Batches compressed with every codec (gzip, snappy, lz4, zstd) are accepted and read back record for
/// record, also after a crash.
pub fn compressed_batches_round_trip<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "compressed_batches_round_trip");
    let tps = c.create_topic("compressed", 1, &[]);
    let tp = &tps[0];
    for codec in Compression::ALL {
        for n in [1, 10] {
            let mut records = c.records(n, 10..=400);
            // Compressible values too, so that compression actually shrinks something.
            records[0].value = Some(Bytes::from(vec![b'z'; 2000]));
            let a = c.append_batch(tp, build_with(&records, codec), &records);
            drop(a.durable);
        }
    }
    let edge = edge_records(c.clock);
    let a = c.append_batch(tp, build_with(&edge, Compression::Zstd), &edge);
    drop(a.durable);
    c.check(tp);
    c.check_reading(tp, 1);
    c.check_timestamps(tp);
    c.crash_restart();
    c.check(tp);
    c.check_timestamps(tp);
}

/// Case 3: a read from every offset of a small log, including offsets inside multi-record batches,
/// returns records starting exactly there (after `records(from)` filtering); a read at the log end is
/// empty with `next_offset` the log end; reads past the log end or below the log start are
/// `OffsetOutOfRange`.
pub fn read_from_any_offset<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "read_from_any_offset");
    let tps = c.create_topic("any", 2, &[]);
    let (tp, empty) = (&tps[0], &tps[1]);
    for n in [1, 3, 1, 7, 2, 1, 5] {
        let records = c.records(n, 1..=200);
        c.append(tp, &records);
    }
    let log = c.log(tp).clone();
    let end = log.log_end();
    assert_eq!(end, 20);
    for offset in 0..end {
        for max_bytes in [BIG_READ, 1] {
            let slice = c
                .e()
                .read(tp, offset, max_bytes)
                .unwrap_or_else(|e| panic!("read_from_any_offset: read of {tp} at {offset}: {e}"));
            let records = slice_records("read_from_any_offset", c.e(), tp, &slice, offset);
            check_read_step("read_from_any_offset", tp, offset, &slice, &records);
            let upto = (offset as usize + records.len()).min(log.records.len());
            check_records("read_from_any_offset", tp, &records, offset, &log.records[offset as usize..upto]);
        }
        // Reading from here to the end returns exactly the rest of the log.
        let rest = read_all("read_from_any_offset", c.e(), tp, offset, end, BIG_READ);
        check_records("read_from_any_offset", tp, &rest, offset, &log.records[offset as usize..]);
    }
    check_read_at_end("read_from_any_offset", c.e(), tp, end);
    let range = Offsets { log_start: 0, log_end: end };
    for offset in [end + 1, end + 1000, i64::MAX, -1, i64::MIN] {
        check_out_of_range("read_from_any_offset", c.e(), tp, offset, range);
    }
    // An empty partition: reading at 0 is reading at the log end.
    check_read_at_end("read_from_any_offset", c.e(), empty, 0);
    for offset in [1, -1] {
        check_out_of_range("read_from_any_offset", c.e(), empty, offset, Offsets { log_start: 0, log_end: 0 });
    }
    c.check_all();
}

/// Case 4: whatever `max_bytes` (down to 1), a read returns at least one whole batch (message), more than
/// `max_bytes` only when it is a single batch (message) too large on its own, and following `next_offset`
/// visits every record exactly once.
pub fn max_bytes_makes_progress<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "max_bytes_makes_progress");
    let tps = c.create_topic("progress", 1, &[]);
    let tp = &tps[0];
    for i in 0..40 {
        let n = c.rng.range(1, 6);
        let records = if i % 3 == 0 { c.records(n, 3000..=9000) } else { c.records(n, 10..=100) };
        c.append(tp, &records);
    }
    let log = c.log(tp).clone();
    let end = log.log_end();
    for max_bytes in [1, 100, 1000, 4096, 20_000, BIG_READ] {
        let what = format!("max_bytes_makes_progress (max_bytes {max_bytes})");
        let mut offset = 0;
        let mut all = Vec::new();
        let mut reads = 0;
        while offset < end {
            reads += 1;
            assert!(reads <= end + 1, "{what}: no progress at {offset}");
            let slice =
                c.e().read(tp, offset, max_bytes).unwrap_or_else(|e| panic!("{what}: read of {tp} at {offset}: {e}"));
            let records = slice_records(&what, c.e(), tp, &slice, offset);
            check_read_step(&what, tp, offset, &slice, &records);
            if slice.byte_len() > max_bytes {
                let first = log.batch_of(records[0].offset);
                assert!(
                    records.iter().all(|r| log.batch_of(r.offset) == first),
                    "{what}: a read of {} bytes at {offset} exceeds max_bytes, so it must hold one batch (message) \
                     only, but it holds records {}..={} from several appends",
                    slice.byte_len(),
                    records[0].offset,
                    records.last().map_or(0, |r| r.offset)
                );
            }
            offset = slice.next_offset();
            all.extend(records);
        }
        check_records(&what, tp, &all, 0, &log.records);
    }
}

/// Records with timestamps in `batch_sizes`-sized batches: rising by 10 ms, with every seventh record
/// stepping back below its predecessors and a run of equal timestamps.
fn timestamped_records(c: &mut Ctx<'_, impl Harness>, count: usize, value_len: usize) -> Vec<NewRecord> {
    let t0 = c.clock;
    let records: Vec<NewRecord> = (0..count)
        .map(|i| {
            let mut ts = t0 + 10 * i as i64;
            if i % 7 == 6 {
                ts -= 45;
            }
            if (20..24).contains(&i) {
                ts = t0 + 200;
            }
            plain_record(&mut c.rng, ts, value_len)
        })
        .collect();
    c.clock = t0 + 10 * count as i64 + 1;
    records
}

/// Case 5: `offset_for_timestamp` answers with the first offset (in offset order) whose timestamp is at
/// or after the target, with rising, equal and stepping-back timestamps spread over several files, and
/// `None` past the newest; the same after a clean restart and after a crash.
pub fn offset_for_timestamp<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "offset_for_timestamp");
    let tps = c.create_topic("times", 2, &[]);
    let (tp, empty) = (&tps[0], &tps[1]);
    let value_len = (h.file_bytes() / 12).clamp(100, 200_000) as usize;
    let records = timestamped_records(&mut c, 60, value_len);
    let mut at = 0;
    for n in [1, 5, 2, 1, 3, 4, 1, 1, 6, 2].iter().cycle() {
        if at >= records.len() {
            break;
        }
        let end = (at + n).min(records.len());
        c.append(tp, &records[at..end]);
        at = end;
    }
    let log = c.log(tp);
    let max = log.records.iter().map(|r| r.timestamp_ms).max().unwrap_or_default();
    let min = log.records.iter().map(|r| r.timestamp_ms).min().unwrap_or_default();
    // Exhaustive over the whole span, not just a sample.
    let targets: Vec<i64> = (min - 2..=max + 2).collect();
    let check = |c: &Ctx<'_, H>, when: &str| {
        let log = c.log(tp);
        for &target in &targets {
            let expected = log.offset_for_timestamp(0, target);
            let got = c
                .e()
                .offset_for_timestamp(tp, target)
                .unwrap_or_else(|e| panic!("offset_for_timestamp ({when}): lookup of {target}: {e}"));
            assert_eq!(
                got, expected,
                "offset_for_timestamp ({when}): {tp} at {target} (min {min}, max {max}): expected the first offset \
                 whose timestamp is >= the target"
            );
        }
        assert_eq!(c.e().offset_for_timestamp(tp, max + 1).ok(), Some(None), "{when}: past the newest");
        assert_eq!(c.e().offset_for_timestamp(tp, i64::MAX).ok(), Some(None), "{when}: at i64::MAX");
        assert_eq!(c.e().offset_for_timestamp(empty, min).ok(), Some(None), "{when}: empty partition");
    };
    check(&c, "as written");
    c.clean_restart();
    check(&c, "after a clean restart");
    c.crash_restart();
    check(&c, "after a crash");
    c.check_all();
}

/// Several threads append to two partitions at once while another thread reads them as they grow: every
/// append gets its own dense range, each batch's records stay together and in order, the reader only ever
/// sees records that were appended, and a crash afterwards loses nothing.
pub fn concurrent_appends_and_reads<H: Harness>(h: &H) {
    const WRITERS: usize = 4;
    const APPENDS: usize = 40;
    let mut c = Ctx::new(h, "concurrent_appends_and_reads");
    let tps = c.create_topic("concurrent", 2, &[]);
    let plans: Vec<Vec<Vec<NewRecord>>> = (0..WRITERS)
        .map(|w| {
            (0..APPENDS)
                .map(|i| {
                    let n = c.rng.range(1, 4);
                    let mut records = c.records(n, 20..=300);
                    for (j, r) in records.iter_mut().enumerate() {
                        r.key = Some(Bytes::from(format!("w{w}-a{i}-r{j}")));
                    }
                    records
                })
                .collect()
        })
        .collect();
    let e = c.e();
    let done = AtomicBool::new(false);
    let (results, seen) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen: BTreeMap<TopicPartition, Vec<janus_api::Record>> = BTreeMap::new();
            let mut next = [0i64; 2];
            loop {
                // Read `done` before the offsets, so one more pass after it is set sees everything.
                let finished = done.load(Ordering::Acquire);
                for (p, tp) in tps.iter().enumerate() {
                    let end = e.offsets(tp).unwrap_or_else(|err| panic!("concurrent reader: offsets: {err}")).log_end;
                    if end > next[p] {
                        let (got, after) = read_range("concurrent reader", e, tp, next[p], end, 8 * 1024);
                        next[p] = after;
                        seen.entry(tp.clone()).or_default().extend(got);
                    }
                }
                if finished {
                    return seen;
                }
                std::thread::yield_now();
            }
        });
        let writers: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(w, plan)| {
                let tp = &tps[w % 2];
                s.spawn(move || {
                    plan.iter()
                        .map(|records| {
                            let a = e
                                .append(tp, build(records))
                                .unwrap_or_else(|err| panic!("concurrent writer {w}: append: {err}"));
                            drop(a.durable);
                            assert_eq!(a.last_offset - a.base_offset + 1, records.len() as i64);
                            a.base_offset
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        let results: Vec<Vec<i64>> = writers.into_iter().map(|w| w.join().expect("writer panicked")).collect();
        done.store(true, Ordering::Release);
        (results, reader.join().expect("reader panicked"))
    });
    // Rebuild the expected logs from the offsets each append got.
    let mut by_partition: Vec<BTreeMap<i64, &Vec<NewRecord>>> = vec![BTreeMap::new(), BTreeMap::new()];
    for (w, bases) in results.iter().enumerate() {
        assert!(bases.windows(2).all(|b| b[0] < b[1]), "concurrent: writer {w}'s appends must get rising offsets");
        for (i, &base) in bases.iter().enumerate() {
            let previous = by_partition[w % 2].insert(base, &plans[w][i]);
            assert!(previous.is_none(), "concurrent: two appends got base offset {base}");
        }
    }
    for (p, tp) in tps.iter().enumerate() {
        let mut log = Log::default();
        for (&base, records) in &by_partition[p] {
            assert_eq!(base, log.log_end(), "concurrent: {tp} has a gap or overlap before offset {base}");
            log.push(records);
        }
        let seen_here = seen.get(tp).map(Vec::as_slice).unwrap_or_default();
        check_records("concurrent reader", tp, seen_here, 0, &log.records);
        *c.log_mut(tp) = log;
    }
    c.check_all();
    c.crash_restart();
    c.check_all();
}
