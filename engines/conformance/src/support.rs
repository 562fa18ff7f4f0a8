//! What the cases share: a deterministic random source, the expected content of a partition, record
//! comparison, a full read that checks every step, and [`Ctx`], one engine over one temporary directory
//! together with what the case has sent to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use janus_api::{
    Appended, Compression, Durable, Engine, Header, NewRecord, Offsets, ReadSlice, Record, RecordBatch, StorageError,
    TopicPartition, TopicSpec,
};
use tempfile::TempDir;

use crate::Harness;

/// `max_bytes` for reads that should return as much as the engine gives in one go.
pub(crate) const BIG_READ: usize = 1 << 20;

/// Asserts that `$result` is an `Err` matching `$pat` (with an optional guard); the remaining arguments
/// are a `format!` description of the call, used in the panic message.
macro_rules! expect_err {
    ($result:expr, $pat:pat $(if $guard:expr)?, $($what:tt)+) => {
        match $result {
            Err($pat) $(if $guard)? => {}
            Err(other) => panic!(
                "{}: expected an error matching `{}`, got: {other} ({other:?})",
                format!($($what)+),
                stringify!($pat $(if $guard)?),
            ),
            Ok(value) => panic!(
                "{}: expected an error matching `{}`, got Ok({value:?})",
                format!($($what)+),
                stringify!($pat $(if $guard)?),
            ),
        }
    };
}
pub(crate) use expect_err;

/// A small deterministic random source (SplitMix64), so every run of a case sends the same data.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A source seeded from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// A source seeded from a name (each case gets its own stream).
    pub(crate) fn named(name: &str) -> Self {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng::new(h)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    /// True once in `n` times on average.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// `len` random bytes (any values, including 0x00, 0x01 and 0x02).
    pub(crate) fn bytes(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }

    /// `len` random ASCII letters and digits.
    pub(crate) fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len).map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize] as char).collect()
    }
}

/// An ordinary record: a null or short ASCII key, a non-empty binary value of `value_len` bytes (at least
/// 1), and zero to two headers with short non-empty ASCII values. (Edge cases such as null values, empty
/// keys or binary header values are the business of `record_fields_round_trip`.)
pub(crate) fn plain_record(rng: &mut Rng, timestamp_ms: i64, value_len: usize) -> NewRecord {
    let key = if rng.one_in(4) { None } else { Some(Bytes::from(format!("key-{}", rng.below(10_000)))) };
    let header_count = rng.below(3);
    let headers = (0..header_count)
        .map(|i| {
            let len = rng.range(1, 12);
            Header::new(format!("h{i}"), Bytes::from(rng.text(len)))
        })
        .collect();
    NewRecord { key, value: Some(rng.bytes(value_len.max(1))), headers, timestamp_ms }
}

/// Builds an uncompressed batch, panicking on the (test-side) error.
pub(crate) fn build(records: &[NewRecord]) -> RecordBatch {
    build_with(records, Compression::None)
}

/// Builds a batch with `compression`, panicking on the (test-side) error.
pub(crate) fn build_with(records: &[NewRecord], compression: Compression) -> RecordBatch {
    RecordBatch::build(records, compression).unwrap_or_else(|e| panic!("test bug: cannot build a batch: {e}"))
}

/// What a partition should hold: every record ever appended (offset = index), the appended batches, and the
/// log start offset.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    /// Record `i` has offset `i`.
    pub records: Vec<NewRecord>,
    /// Each append's first and last offset, in order.
    pub batches: Vec<(i64, i64)>,
    /// The first readable offset.
    pub log_start: i64,
}

impl Log {
    /// The offset the next append gets.
    pub(crate) fn log_end(&self) -> i64 {
        self.records.len() as i64
    }

    /// The expected offsets.
    pub(crate) fn offsets(&self) -> Offsets {
        Offsets { log_start: self.log_start, log_end: self.log_end() }
    }

    /// Records an append; returns its first and last offset.
    pub(crate) fn push(&mut self, records: &[NewRecord]) -> (i64, i64) {
        let base = self.log_end();
        self.records.extend_from_slice(records);
        let last = self.log_end() - 1;
        self.batches.push((base, last));
        (base, last)
    }

    /// Forgets everything at and after `end` (what a recovery cut off).
    pub(crate) fn truncate(&mut self, end: i64) {
        self.records.truncate(end as usize);
        self.batches.retain(|&(base, _)| base < end);
        if let Some(last) = self.batches.last_mut() {
            last.1 = last.1.min(end - 1);
        }
        self.log_start = self.log_start.min(end);
    }

    /// The index in `batches` of the append that holds `offset`.
    pub(crate) fn batch_of(&self, offset: i64) -> usize {
        self.batches.partition_point(|&(_, last)| last < offset)
    }

    /// The last append: its first and last offset.
    pub(crate) fn last_batch(&self) -> (i64, i64) {
        *self.batches.last().expect("test bug: the log is empty")
    }

    /// Kafka's answer to a timestamp lookup: the first offset at or after `from` whose timestamp is at or
    /// after `target`, scanning in offset order.
    pub(crate) fn offset_for_timestamp(&self, from: i64, target: i64) -> Option<i64> {
        let from = from.clamp(0, self.log_end()) as usize;
        self.records[from..].iter().position(|r| r.timestamp_ms >= target).map(|i| (from + i) as i64)
    }

    /// Timestamps worth looking up: around a sample of the readable records' timestamps, and beyond both
    /// ends.
    pub(crate) fn timestamp_targets(&self) -> Vec<i64> {
        let live = &self.records[(self.log_start as usize).min(self.records.len())..];
        let mut targets = Vec::new();
        let step = (live.len() / 40).max(1);
        for r in live.iter().step_by(step).chain(live.last()) {
            targets.extend([r.timestamp_ms - 1, r.timestamp_ms, r.timestamp_ms + 1]);
        }
        if let (Some(min), Some(max)) =
            (live.iter().map(|r| r.timestamp_ms).min(), live.iter().map(|r| r.timestamp_ms).max())
        {
            targets.extend([min - 1_000, min, max, max + 1, max + 86_400_000]);
        }
        targets.push(0);
        targets
    }
}

fn show_bytes(b: &Option<Bytes>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => {
            let mut s = format!("{} bytes [", b.len());
            for byte in b.iter().take(16) {
                let _ = write!(s, "{byte:02x}");
            }
            if b.len() > 16 {
                s.push_str("..");
            }
            s.push(']');
            s
        }
    }
}

fn show_headers(h: &[Header]) -> String {
    let parts: Vec<String> = h.iter().map(|h| format!("{:?}={}", h.key, show_bytes(&h.value))).collect();
    format!("[{}]", parts.join(", "))
}

/// How `actual` differs from `expected` at `offset`, or `None` if it does not.
pub(crate) fn record_diff(actual: &Record, offset: i64, expected: &NewRecord) -> Option<String> {
    let mut diffs = Vec::new();
    if actual.offset != offset {
        diffs.push(format!("offset {} instead of {offset}", actual.offset));
    }
    if actual.timestamp_ms != expected.timestamp_ms {
        diffs.push(format!("timestamp {} instead of {}", actual.timestamp_ms, expected.timestamp_ms));
    }
    if actual.key != expected.key {
        diffs.push(format!("key {} instead of {}", show_bytes(&actual.key), show_bytes(&expected.key)));
    }
    if actual.value != expected.value {
        diffs.push(format!("value {} instead of {}", show_bytes(&actual.value), show_bytes(&expected.value)));
    }
    if actual.headers != expected.headers {
        diffs.push(format!("headers {} instead of {}", show_headers(&actual.headers), show_headers(&expected.headers)));
    }
    if diffs.is_empty() { None } else { Some(diffs.join("; ")) }
}

/// Asserts that `actual` are exactly `expected`, the first at offset `first`.
#[track_caller]
pub(crate) fn check_records(what: &str, tp: &TopicPartition, actual: &[Record], first: i64, expected: &[NewRecord]) {
    for (i, (a, x)) in actual.iter().zip(expected).enumerate() {
        let offset = first + i as i64;
        if let Some(diff) = record_diff(a, offset, x) {
            panic!("{what}: {tp} offset {offset} differs from what was appended: {diff}");
        }
    }
    if actual.len() != expected.len() {
        panic!(
            "{what}: {tp} returned {} records from offset {first}, expected {} (offsets {first}..{})",
            actual.len(),
            expected.len(),
            first + expected.len() as i64
        );
    }
}

/// Decodes a slice's records at or after `from`, panicking with context on a decode error.
#[track_caller]
pub(crate) fn slice_records<E: Engine>(
    what: &str,
    e: &E,
    tp: &TopicPartition,
    slice: &ReadSlice,
    from: i64,
) -> Vec<Record> {
    e.decode_records(slice, from)
        .unwrap_or_else(|e| panic!("{what}: the slice read from {tp} at {from} does not decode: {e} ({slice:?})"))
}

/// Reads `[from, to)` of `tp` (where `to` is the log end), `max_bytes` at a time, following `next_offset`,
/// and checks every step (see [`read_range`]); then checks that the reads ended exactly at `to` and that a
/// read at `to` is empty. Returns the records.
#[track_caller]
pub(crate) fn read_all<E: Engine>(
    what: &str,
    e: &E,
    tp: &TopicPartition,
    from: i64,
    to: i64,
    max_bytes: usize,
) -> Vec<Record> {
    let (records, next) = read_range(what, e, tp, from, to, max_bytes);
    assert_eq!(next, to, "{what}: reading {tp} from {from} went past the log end {to}");
    check_read_at_end(what, e, tp, to);
    records
}

/// Reads `tp` from `from` until at least `to`, `max_bytes` at a time, following `next_offset`, and checks
/// every step: each read returns records starting exactly at the offset asked for, dense, with
/// `next_offset` just after the last one. Returns the records and the offset after them (which may pass
/// `to` if the log grows meanwhile).
#[track_caller]
pub(crate) fn read_range<E: Engine>(
    what: &str,
    e: &E,
    tp: &TopicPartition,
    from: i64,
    to: i64,
    max_bytes: usize,
) -> (Vec<Record>, i64) {
    let mut out = Vec::new();
    let mut offset = from;
    let mut reads = 0i64;
    while offset < to {
        reads += 1;
        assert!(reads <= to - from + 1, "{what}: reading {tp} from {from} to {to} makes no progress at {offset}");
        let slice = e
            .read(tp, offset, max_bytes)
            .unwrap_or_else(|err| panic!("{what}: read of {tp} at {offset} (max_bytes {max_bytes}) failed: {err}"));
        let records = slice_records(what, e, tp, &slice, offset);
        check_read_step(what, tp, offset, &slice, &records);
        offset = slice.next_offset();
        out.extend(records);
    }
    (out, offset)
}

/// Checks one read below the log end: at least one record, the first at `offset`, dense, and
/// `next_offset` right after the last.
#[track_caller]
pub(crate) fn check_read_step(what: &str, tp: &TopicPartition, offset: i64, slice: &ReadSlice, records: &[Record]) {
    let Some(last) = records.last() else {
        panic!("{what}: read of {tp} at {offset}, below the log end, returned no records: {slice:?}");
    };
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            r.offset,
            offset + i as i64,
            "{what}: read of {tp} at {offset}: record {i} has offset {} (records must be dense from the offset asked for)",
            r.offset
        );
    }
    assert_eq!(
        slice.next_offset(),
        last.offset + 1,
        "{what}: read of {tp} at {offset}: next_offset must follow the last record returned ({})",
        last.offset
    );
}

/// Checks that a read at the log end `end` returns an empty slice whose `next_offset` is `end`.
#[track_caller]
pub(crate) fn check_read_at_end<E: Engine>(what: &str, e: &E, tp: &TopicPartition, end: i64) {
    let slice = e
        .read(tp, end, BIG_READ)
        .unwrap_or_else(|err| panic!("{what}: read of {tp} at the log end {end} failed: {err}"));
    assert!(slice.is_empty(), "{what}: read of {tp} at the log end {end} returned {} bytes", slice.byte_len());
    assert_eq!(slice.next_offset(), end, "{what}: read of {tp} at the log end: next_offset");
    assert!(slice_records(what, e, tp, &slice, end).is_empty(), "{what}: read of {tp} at the log end returned records");
}

/// Checks that reading `offset` is `OffsetOutOfRange` naming the offset and the current range.
#[track_caller]
pub(crate) fn check_out_of_range<E: Engine>(what: &str, e: &E, tp: &TopicPartition, offset: i64, range: Offsets) {
    expect_err!(
        e.read(tp, offset, BIG_READ),
        StorageError::OffsetOutOfRange { offset: o, start, end, .. }
            if o == offset && start == range.log_start && end == range.log_end,
        "{what}: read of {tp} at {offset} with offsets {}..{}",
        range.log_start,
        range.log_end
    );
}

/// Waits for `durable` on a helper thread for at most `limit`; panics if it fails or takes longer.
pub(crate) fn wait_bounded(what: &str, durable: Durable, limit: Duration) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(durable.wait());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what}: Appended::durable failed: {e}"),
        Err(_) => panic!("{what}: Appended::durable did not complete within {limit:?}"),
    }
}

/// One engine over one temporary directory, the topics created in it, and what was sent to each
/// partition. Every helper checks what it can and panics with the case name on a mismatch.
pub(crate) struct Ctx<'h, H: Harness> {
    /// `None` between a drop (crash) and the next open. Declared first: dropped before the directory.
    engine: Option<H::E>,
    /// The harness.
    pub h: &'h H,
    /// The case name, for messages.
    pub case: &'static str,
    /// The topics to re-register after a restart.
    pub specs: BTreeMap<String, TopicSpec>,
    /// What each partition should hold.
    pub logs: BTreeMap<TopicPartition, Log>,
    /// The case's random source.
    pub rng: Rng,
    /// The timestamp the next generated record gets (starts at the wall clock, one millisecond per record).
    pub clock: i64,
    /// The restarts so far ("drop" without shutdown, "clean restart"), for messages.
    history: Vec<&'static str>,
    dir: TempDir,
}

impl<'h, H: Harness> Ctx<'h, H> {
    /// Opens a fresh engine over a new temporary directory.
    pub(crate) fn new(h: &'h H, case: &'static str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("janus-conformance-{case}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("{case}: cannot create a temporary directory: {e}"));
        let engine = h.open(dir.path()).unwrap_or_else(|e| panic!("{case}: Harness::open on an empty directory: {e}"));
        Ctx {
            engine: Some(engine),
            h,
            case,
            specs: BTreeMap::new(),
            logs: BTreeMap::new(),
            rng: Rng::named(case),
            clock: janus_api::now_ms(),
            history: Vec::new(),
            dir,
        }
    }

    /// The case name and the restarts so far, for messages.
    pub(crate) fn what(&self) -> String {
        if self.history.is_empty() {
            self.case.to_string()
        } else {
            format!("{} (after restarts: {})", self.case, self.history.join(", "))
        }
    }

    /// The engine's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The open engine.
    #[track_caller]
    pub(crate) fn e(&self) -> &H::E {
        self.engine.as_ref().expect("test bug: the engine is not open")
    }

    /// A spec named `name` from the harness's base config with `overrides` applied.
    pub(crate) fn spec(&self, name: &str, partitions: u32, overrides: &[(&str, &str)]) -> TopicSpec {
        let config = self
            .h
            .base_config()
            .with_overrides(overrides.iter().copied())
            .unwrap_or_else(|e| panic!("{}: test bug: bad config override: {e}", self.case));
        TopicSpec { name: name.to_string(), partitions, config }
    }

    /// Creates a topic from `spec`, checks it is empty, and starts tracking it. Returns its partitions.
    pub(crate) fn create(&mut self, spec: TopicSpec) -> Vec<TopicPartition> {
        self.e().create_topic(&spec).unwrap_or_else(|e| panic!("{}: create_topic {}: {e}", self.case, spec.name));
        self.track(spec)
    }

    /// Starts tracking a topic that is already open in the engine; checks its partitions are empty.
    pub(crate) fn track(&mut self, spec: TopicSpec) -> Vec<TopicPartition> {
        let tps: Vec<TopicPartition> = (0..spec.partitions).map(|p| TopicPartition::new(&spec.name, p)).collect();
        for tp in &tps {
            let o = self.e().offsets(tp).unwrap_or_else(|e| panic!("{}: offsets of new {tp}: {e}", self.case));
            assert_eq!(o, Offsets { log_start: 0, log_end: 0 }, "{}: a new topic's {tp} must be empty", self.case);
            self.logs.insert(tp.clone(), Log::default());
        }
        self.specs.insert(spec.name.clone(), spec);
        tps
    }

    /// Creates a topic of `partitions` from the base config with `overrides`.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: u32,
        overrides: &[(&str, &str)],
    ) -> Vec<TopicPartition> {
        let spec = self.spec(name, partitions, overrides);
        self.create(spec)
    }

    /// Stops tracking a topic (after deleting it).
    pub(crate) fn forget(&mut self, topic: &str) {
        self.specs.remove(topic);
        self.logs.retain(|tp, _| tp.topic != topic);
    }

    /// The expected content of `tp`.
    #[track_caller]
    pub(crate) fn log(&self, tp: &TopicPartition) -> &Log {
        self.logs.get(tp).unwrap_or_else(|| panic!("test bug: {tp} is not tracked"))
    }

    /// The expected content of `tp`, to change.
    #[track_caller]
    pub(crate) fn log_mut(&mut self, tp: &TopicPartition) -> &mut Log {
        self.logs.get_mut(tp).unwrap_or_else(|| panic!("test bug: {tp} is not tracked"))
    }

    /// The next record timestamp.
    pub(crate) fn next_ts(&mut self) -> i64 {
        let t = self.clock;
        self.clock += 1;
        t
    }

    /// `n` ordinary records with value sizes in `value_len` and rising timestamps.
    pub(crate) fn records(&mut self, n: usize, value_len: std::ops::RangeInclusive<usize>) -> Vec<NewRecord> {
        (0..n)
            .map(|_| {
                let ts = self.next_ts();
                let len = self.rng.range(*value_len.start(), *value_len.end());
                plain_record(&mut self.rng, ts, len)
            })
            .collect()
    }

    /// Appends `records` as one uncompressed batch and checks the offsets assigned; returns them.
    #[track_caller]
    pub(crate) fn append(&mut self, tp: &TopicPartition, records: &[NewRecord]) -> (i64, i64) {
        let a = self.append_batch(tp, build(records), records);
        drop(a.durable);
        (a.base_offset, a.last_offset)
    }

    /// Appends `batch`, which holds `records`, checks that its offsets follow the log end, and records it.
    #[track_caller]
    pub(crate) fn append_batch(&mut self, tp: &TopicPartition, batch: RecordBatch, records: &[NewRecord]) -> Appended {
        let expected = self.log(tp).log_end();
        let n = records.len() as i64;
        let a = self
            .e()
            .append(tp, batch)
            .unwrap_or_else(|e| panic!("{}: append of {n} records to {tp} at {expected}: {e}", self.what()));
        assert_eq!(
            (a.base_offset, a.last_offset),
            (expected, expected + n - 1),
            "{}: offsets assigned to an append of {n} records to {tp} with log end {expected}",
            self.what()
        );
        self.log_mut(tp).push(records);
        a
    }

    /// Appends ordinary batches (1 to 8 records of 50 to 1500 bytes, timestamps rising with an occasional
    /// step back) to each of `tps` in turn until each has received about `bytes` bytes of batches.
    pub(crate) fn fill(&mut self, tps: &[TopicPartition], bytes: u64) {
        let mut written = vec![0u64; tps.len()];
        while written.iter().any(|&w| w < bytes) {
            for (i, tp) in tps.iter().enumerate() {
                if written[i] >= bytes {
                    continue;
                }
                let n = self.rng.range(1, 8);
                let mut records = self.records(n, 50..=1500);
                for r in &mut records {
                    if self.rng.one_in(10) {
                        // A producer with a slower clock: timestamps are not monotonic.
                        r.timestamp_ms -= self.rng.range(1, 100) as i64;
                    }
                }
                let batch = build(&records);
                written[i] += batch.len() as u64;
                let a = self.append_batch(tp, batch, &records);
                drop(a.durable);
            }
        }
    }

    /// Drops the engine without `shutdown()`: a crash (the page cache survives). After a `shutdown()`, the
    /// drop that completes a clean restart.
    pub(crate) fn crash(&mut self) {
        if self.engine.take().is_some() {
            if self.history.last() == Some(&"shutdown") {
                self.history.pop();
                self.history.push("clean restart");
            } else {
                self.history.push("drop");
            }
        }
    }

    /// Opens the engine again over the same directory without opening any topic.
    pub(crate) fn open_engine(&mut self) {
        assert!(self.engine.is_none(), "test bug: the engine is already open");
        let engine =
            self.h.open(self.dir.path()).unwrap_or_else(|e| panic!("{}: Harness::open to reopen: {e}", self.case));
        self.engine = Some(engine);
    }

    /// Opens the engine again and re-registers every tracked topic. The log start offset may come back
    /// lower than it was (engines need not persist it), but never higher, and never above the log end;
    /// the expected log start follows the engine's.
    pub(crate) fn reopen(&mut self) {
        self.open_engine();
        for spec in self.specs.values() {
            self.e()
                .open_topic(spec)
                .unwrap_or_else(|e| panic!("{}: open_topic {} after reopen: {e}", self.case, spec.name));
        }
        let case = self.case;
        let tps: Vec<TopicPartition> = self.logs.keys().cloned().collect();
        for tp in tps {
            let o =
                self.e().offsets(&tp).unwrap_or_else(|e| panic!("{}: offsets of {tp} after reopen: {e}", self.case));
            let log = self.log_mut(&tp);
            assert!(
                0 <= o.log_start && o.log_start <= log.log_start,
                "{}: after a restart {tp} starts at {}, but it started at {} before (it may only fall back to \
                 data still on disk)",
                case,
                o.log_start,
                log.log_start
            );
            log.log_start = o.log_start;
        }
    }

    /// `shutdown()`, drop, reopen.
    pub(crate) fn clean_restart(&mut self) {
        self.e().shutdown().unwrap_or_else(|e| panic!("{}: shutdown: {e}", self.what()));
        self.history.push("shutdown");
        self.crash();
        self.reopen();
    }

    /// Drop without `shutdown()`, reopen.
    pub(crate) fn crash_restart(&mut self) {
        self.crash();
        self.reopen();
    }

    /// Checks `tp`'s offsets and reads it all (1 MiB at a time), comparing with what was sent.
    #[track_caller]
    pub(crate) fn check(&self, tp: &TopicPartition) {
        self.check_reading(tp, BIG_READ);
    }

    /// Checks `tp`'s offsets and reads it all, `max_bytes` at a time, comparing with what was sent.
    #[track_caller]
    pub(crate) fn check_reading(&self, tp: &TopicPartition, max_bytes: usize) {
        let log = self.log(tp);
        let what = self.what();
        let o = self.e().offsets(tp).unwrap_or_else(|e| panic!("{what}: offsets of {tp}: {e}"));
        assert_eq!(o, log.offsets(), "{what}: offsets of {tp}");
        let got = read_all(&what, self.e(), tp, o.log_start, o.log_end, max_bytes);
        check_records(&what, tp, &got, o.log_start, &log.records[o.log_start as usize..]);
    }

    /// Checks every tracked partition.
    #[track_caller]
    pub(crate) fn check_all(&self) {
        for tp in self.logs.keys() {
            self.check(tp);
        }
    }

    /// Checks `offset_for_timestamp` on `tp` against the first-offset-at-or-after answer.
    #[track_caller]
    pub(crate) fn check_timestamps(&self, tp: &TopicPartition) {
        let log = self.log(tp);
        for target in log.timestamp_targets() {
            let expected = log.offset_for_timestamp(log.log_start, target);
            let got = self
                .e()
                .offset_for_timestamp(tp, target)
                .unwrap_or_else(|e| panic!("{}: offset_for_timestamp({tp}, {target}): {e}", self.what()));
            assert_eq!(
                got,
                expected,
                "{}: offset_for_timestamp({tp}, {target}) must be the first offset at or after the log start {} \
                 whose timestamp is >= {target}",
                self.what(),
                log.log_start
            );
        }
    }

    /// Checks timestamp lookups on every tracked partition.
    #[track_caller]
    pub(crate) fn check_all_timestamps(&self) {
        for tp in self.logs.keys() {
            self.check_timestamps(tp);
        }
    }
}
