//! The engine's own tests: tags (with forced hash collisions), keys, blank records across files, recovery
//! after a damaged tail, rebuilt ConsumeQueues, retention across topics, waiting readers and scale.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_api::{
    Compression, Engine, Header, KeyLookup, NewRecord, ReadSlice, RecordBatch, StorageError, TagFilter, TopicConfig,
    TopicPartition, TopicSpec,
};
use janus_commitlog::format::java_string_hash;
use janus_commitlog::{CommitLogEngine, CommitLogOptions, inspect};

fn options() -> CommitLogOptions {
    CommitLogOptions {
        file_bytes: 64 * 1024,
        consumequeue_file_entries: 64,
        consumequeue_open_files: 16,
        index_slots: 64,
        index_entries: 256,
        ..CommitLogOptions::default()
    }
}

fn open(dir: &Path) -> CommitLogEngine {
    CommitLogEngine::open(dir, options()).unwrap()
}

fn record(value: &str, headers: &[(&str, &str)]) -> NewRecord {
    NewRecord {
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: headers.iter().map(|(k, v)| Header::new(*k, v.to_string())).collect(),
        timestamp_ms: 1_000,
    }
}

fn batch(records: &[NewRecord]) -> RecordBatch {
    RecordBatch::build(records, Compression::None).unwrap()
}

fn append(e: &CommitLogEngine, tp: &TopicPartition, records: &[NewRecord]) -> i64 {
    let a = e.append(tp, batch(records)).unwrap();
    drop(a.durable);
    a.base_offset
}

fn strings(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

/// The values of a read from `from` (only messages tagged with one of `tags`, unless it is empty), and
/// its next offset.
fn read_values(e: &CommitLogEngine, tp: &TopicPartition, from: i64, tags: &[&str]) -> (Vec<String>, i64) {
    let slice = if tags.is_empty() {
        e.read(tp, from, 1 << 20).unwrap()
    } else {
        e.read_tagged(tp, from, 1 << 20, &strings(tags)).unwrap()
    };
    let values = e
        .decode_records(&slice, from)
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    (values, slice.next_offset())
}

/// Every value of `tp`, read in steps of `max_bytes`.
fn all_values(e: &CommitLogEngine, tp: &TopicPartition, max_bytes: usize) -> Vec<String> {
    let o = e.offsets(tp).unwrap();
    let mut out = Vec::new();
    let mut at = o.log_start;
    while at < o.log_end {
        let slice = e.read(tp, at, max_bytes).unwrap();
        let recs = e.decode_records(&slice, at).unwrap();
        assert!(!recs.is_empty(), "no progress at {at}");
        assert_eq!(recs[0].offset, at);
        out.extend(recs.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()));
        at = slice.next_offset();
    }
    out
}

#[test]
fn the_commitlog_engine_filters_tags_and_looks_up_keys_but_cannot_compact() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    assert!(e.tag_filter().is_some());
    assert!(e.key_lookup().is_some());
    assert!(e.compaction().is_none(), "one shared CommitLog cannot be compacted per topic");
    // Slices of the segment engine (file ranges) are not this engine's to decode.
    let file = Arc::new(tempfile::tempfile().unwrap());
    let foreign = ReadSlice::File { file, position: 0, len: 0, next_offset: 0 };
    assert!(matches!(e.decode_records(&foreign, 0), Err(StorageError::Unsupported(_))));
    assert!(matches!(e.encode_batches(&foreign), Err(StorageError::Unsupported(_))));
}

#[test]
fn tag_filters_skip_by_hash_and_never_leak_collisions() {
    assert_eq!(java_string_hash(b"Aa"), java_string_hash(b"BB"));
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let tp = TopicPartition::new("tags", 0);
    e.create_topic(&TopicSpec::new("tags", 1)).unwrap();
    let tags = ["Aa", "BB", "TagA", "", "Aa", "BB", "BB", "Aa"];
    let records: Vec<NewRecord> = tags
        .iter()
        .enumerate()
        .map(
            |(i, t)| {
                if t.is_empty() { record(&format!("m{i}"), &[]) } else { record(&format!("m{i}"), &[("TAGS", t)]) }
            },
        )
        .collect();
    append(&e, &tp, &records);

    let (v, next) = read_values(&e, &tp, 0, &["Aa"]);
    assert_eq!(v, ["m0", "m4", "m7"]);
    assert_eq!(next, 8);
    let (v, _) = read_values(&e, &tp, 0, &["BB"]);
    assert_eq!(v, ["m1", "m5", "m6"], "a tag whose hash collides must not leak through");
    let (v, _) = read_values(&e, &tp, 2, &["TagA", "Aa"]);
    assert_eq!(v, ["m2", "m4", "m7"]);
    // Skipped messages split the mapped regions; contiguous matches share one region.
    let slice = e.read_tagged(&tp, 0, 1 << 20, &strings(&["BB"])).unwrap();
    let ReadSlice::Mapped { regions, .. } = &slice else { panic!("expected mapped regions: {slice:?}") };
    assert_eq!(regions.len(), 2, "m1 alone, then m5 and m6 coalesced");
    // Nothing matches: an empty slice that still moves past what was scanned.
    let slice = e.read_tagged(&tp, 0, 1 << 20, &strings(&["Nope"])).unwrap();
    assert!(slice.is_empty());
    assert_eq!(slice.next_offset(), 8);
    // The whole read coalesces into one region.
    let slice = e.read(&tp, 0, 1 << 20).unwrap();
    let ReadSlice::Mapped { regions, next_offset } = &slice else { panic!("expected mapped regions") };
    assert_eq!((regions.len(), *next_offset), (1, 8));
}

#[test]
fn keys_are_found_through_the_index_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TopicSpec::new("keys", 2);
    let before = janus_api::now_ms() - 1000;
    {
        let e = open(dir.path());
        e.create_topic(&spec).unwrap();
        for i in 0..40 {
            let tp = TopicPartition::new("keys", i % 2);
            let mut r = record(&format!("v{i}"), &[("KEYS", &format!("order-{} Aa", i % 5))]);
            r.key = Some(Bytes::from(format!("rk{i}")));
            append(&e, &tp, &[r]);
        }
        // "BB" collides with "Aa" in Java's hash (and so in the IndexFile), but no message carries it.
        assert!(e.lookup_by_key("keys", "BB", 0, i64::MAX, 100).unwrap().is_empty());
        let found = e.lookup_by_key("keys", "order-3", 0, i64::MAX, 100).unwrap();
        let mut values: Vec<String> =
            found.iter().map(|(_, r)| String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned()).collect();
        values.sort();
        assert_eq!(values, ["v13", "v18", "v23", "v28", "v3", "v33", "v38", "v8"]);
        let found = e.lookup_by_key("keys", "rk7", 0, i64::MAX, 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, TopicPartition::new("keys", 1));
        assert_eq!(found[0].1.key.as_deref(), Some(&b"rk7"[..]));
        assert_eq!(e.lookup_by_key("keys", "Aa", 0, i64::MAX, 5).unwrap().len(), 5, "max is honoured");
        assert!(e.lookup_by_key("keys", "rk7", 0, before, 10).unwrap().is_empty(), "outside the time range");
        assert!(matches!(e.lookup_by_key("nope", "rk7", 0, i64::MAX, 1), Err(StorageError::UnknownTopic(_))));
    }
    // After a crash the index still answers, and a deleted then re-created topic does not see old messages.
    let e = open(dir.path());
    e.open_topic(&spec).unwrap();
    assert_eq!(e.lookup_by_key("keys", "rk7", 0, i64::MAX, 10).unwrap().len(), 1);
    e.delete_topic("keys").unwrap();
    e.create_topic(&spec).unwrap();
    assert!(e.lookup_by_key("keys", "rk7", 0, i64::MAX, 10).unwrap().is_empty());
    let mut r = record("new", &[]);
    r.key = Some(Bytes::from_static(b"rk7"));
    append(&e, &TopicPartition::new("keys", 1), &[r]);
    let found = e.lookup_by_key("keys", "rk7", 0, i64::MAX, 10).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1.value.as_deref(), Some(&b"new"[..]));
}

#[test]
fn blank_records_close_files_and_messages_never_straddle_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.file_bytes = 8192;
    let e = CommitLogEngine::open(dir.path(), opts).unwrap();
    let tp = TopicPartition::new("blank", 0);
    e.create_topic(&TopicSpec::new("blank", 1)).unwrap();
    let mut expected = Vec::new();
    for i in 0..60usize {
        let v = format!("{i:03}{}", "x".repeat((i * 389) % 3000));
        append(&e, &tp, &[record(&v, &[])]);
        expected.push(v);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("commitlog")).unwrap().collect();
    assert!(files.len() > 10, "many 8 KiB files: {}", files.len());
    assert_eq!(all_values(&e, &tp, 1), expected);
    assert_eq!(all_values(&e, &tp, 1 << 20), expected);
    // A message that cannot fit in one file is refused and leaves nothing behind.
    let end = e.offsets(&tp).unwrap().log_end;
    let err = e.append(&tp, batch(&[record(&"y".repeat(8200), &[])])).unwrap_err();
    assert!(matches!(err, StorageError::MessageTooLarge { .. }), "{err}");
    assert_eq!(e.offsets(&tp).unwrap().log_end, end);
    e.shutdown().unwrap();
    drop(e);
    let e = CommitLogEngine::open(dir.path(), options_with_file_bytes(8192)).unwrap();
    e.open_topic(&TopicSpec::new("blank", 1)).unwrap();
    assert_eq!(all_values(&e, &tp, 4096), expected);
    // Opening with another file size is refused with a message naming the key.
    drop(e);
    let err = CommitLogEngine::open(dir.path(), options_with_file_bytes(16384)).unwrap_err();
    assert!(err.to_string().contains("commitlog.file.bytes"), "{err}");
}

fn options_with_file_bytes(file_bytes: u64) -> CommitLogOptions {
    CommitLogOptions { file_bytes, ..options() }
}

#[test]
fn dispatcher_catches_up_after_a_crash_with_a_damaged_tail() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [TopicSpec::new("a", 3), TopicSpec::new("b", 2)];
    let tps: Vec<TopicPartition> =
        specs.iter().flat_map(|s| (0..s.partitions).map(|p| TopicPartition::new(s.name.clone(), p))).collect();
    let mut expected: Vec<Vec<String>> = vec![Vec::new(); tps.len()];
    {
        let e = open(dir.path());
        for s in &specs {
            e.create_topic(s).unwrap();
        }
        for round in 0..40 {
            for (i, tp) in tps.iter().enumerate() {
                let v = format!("{tp}-{round}-{}", "z".repeat((round * 31 + i * 7) % 500));
                let mut r = record(&v, &[("TAGS", if round % 2 == 0 { "even" } else { "odd" })]);
                r.key = Some(Bytes::from(format!("{tp}/{round}")));
                append(&e, tp, &[r]);
                expected[i].push(v);
            }
            if round == 20 {
                e.flush().unwrap();
            }
        }
    }
    // Damage the newest message of b-1 (the last one written): every queue keeps what precedes it.
    let last = inspect::last_message(dir.path(), &TopicPartition::new("b", 1)).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&last.path).unwrap();
    f.write_all_at(&[0xAB, 0xCD], last.checked_byte).unwrap();
    drop(f);
    // And lose every ConsumeQueue file of a-0, which recovery rebuilds from the CommitLog.
    for p in inspect::consume_queue_files(dir.path(), &TopicPartition::new("a", 0)).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    let b1 = tps.iter().position(|tp| *tp == TopicPartition::new("b", 1)).unwrap();
    expected[b1].pop();
    let e = open(dir.path());
    for s in &specs {
        e.open_topic(s).unwrap();
    }
    for (i, tp) in tps.iter().enumerate() {
        assert_eq!(all_values(&e, tp, 1000), expected[i], "{tp}");
        let (odd, _) = read_values(&e, tp, 0, &["odd"]);
        assert_eq!(odd.len(), expected[i].len() / 2, "{tp}: tag filter after recovery");
    }
    let found = KeyLookup::lookup_by_key(&e, "a", "a-0/39", 0, i64::MAX, 10).unwrap();
    assert_eq!(found.len(), 1, "keys stay indexed after recovery");
    assert!(KeyLookup::lookup_by_key(&e, "b", "b-1/39", 0, i64::MAX, 10).unwrap().is_empty(), "the cut message");
    // Appends continue where each queue ends.
    for (i, tp) in tps.iter().enumerate() {
        assert_eq!(append(&e, tp, &[record("after", &[])]), expected[i].len() as i64);
    }
}

#[test]
fn retention_is_broker_wide_and_moves_every_queue() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let short = TopicConfig::default().with_overrides([("retention.ms", "1000")]).unwrap();
    let long = TopicConfig::default().with_overrides([("retention.ms", "3600000")]).unwrap();
    e.create_topic(&TopicSpec { config: short, ..TopicSpec::new("short", 1) }).unwrap();
    e.create_topic(&TopicSpec { config: long, ..TopicSpec::new("long", 1) }).unwrap();
    let (s, l) = (TopicPartition::new("short", 0), TopicPartition::new("long", 0));
    for i in 0..200 {
        append(&e, &s, &[record(&format!("s{i}{}", "p".repeat(500)), &[])]);
        append(&e, &l, &[record(&format!("l{i}{}", "p".repeat(500)), &[])]);
    }
    let now = janus_api::now_ms();
    // The largest retention.ms (an hour) applies to both topics.
    assert_eq!(e.enforce_retention(now + 10_000).unwrap().files_deleted, 0);
    let report = e.enforce_retention(now + 7_200_000).unwrap();
    assert!(report.files_deleted >= 2, "{report:?}");
    for tp in [&s, &l] {
        let o = e.offsets(tp).unwrap();
        assert!(o.log_start > 0 && o.log_end == 200, "{tp}: {o:?}");
        assert_eq!(all_values(&e, tp, 1 << 20).len() as i64, o.log_end - o.log_start);
        assert!(matches!(e.read(tp, 0, 100), Err(StorageError::OffsetOutOfRange { .. })));
    }
    let cq_files = inspect::consume_queue_files(dir.path(), &s).unwrap();
    assert!(cq_files.len() < 4, "ConsumeQueue files pointing only at deleted data are gone: {cq_files:?}");
    // The starts survive a restart.
    let starts = [e.offsets(&s).unwrap(), e.offsets(&l).unwrap()];
    e.shutdown().unwrap();
    drop(e);
    let e = open(dir.path());
    e.open_topic(&TopicSpec::new("short", 1)).unwrap();
    e.open_topic(&TopicSpec::new("long", 1)).unwrap();
    assert_eq!([e.offsets(&s).unwrap(), e.offsets(&l).unwrap()], starts);
}

#[test]
fn readers_waiting_for_data_are_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(open(dir.path()));
    let tp = TopicPartition::new("wait", 0);
    e.create_topic(&TopicSpec::new("wait", 1)).unwrap();
    assert!(!e.wait_for_data(&tp, 0, Duration::from_millis(10)).unwrap());
    let waiter = {
        let (e, tp) = (Arc::clone(&e), tp.clone());
        std::thread::spawn(move || e.wait_for_data(&tp, 0, Duration::from_secs(30)).unwrap())
    };
    std::thread::sleep(Duration::from_millis(20));
    append(&e, &tp, &[record("hello", &[])]);
    assert!(waiter.join().unwrap());
}

#[test]
fn options_and_configs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        CommitLogEngine::open(dir.path(), CommitLogOptions { consumequeue_file_entries: 1, ..options() }).unwrap_err();
    assert!(err.to_string().contains("consumequeue.file.entries"), "{err}");
    let e = CommitLogEngine::open(dir.path(), CommitLogOptions { prewarm: true, ..options() }).unwrap();
    let compact = TopicConfig::default().with_overrides([("cleanup.policy", "compact")]).unwrap();
    let spec = TopicSpec { config: compact, ..TopicSpec::new("c", 1) };
    assert!(matches!(e.create_topic(&spec), Err(StorageError::Unsupported(_))));
    // Segment-only keys are accepted and ignored.
    let seg = TopicConfig::default().with_overrides([("segment.bytes", "1048576"), ("segment.ms", "5")]).unwrap();
    e.create_topic(&TopicSpec { config: seg, ..TopicSpec::new("s", 1) }).unwrap();
    let tp = TopicPartition::new("s", 0);
    for i in 0..300 {
        append(&e, &tp, &[record(&format!("{i}{}", "w".repeat(400)), &[])]);
    }
    assert_eq!(all_values(&e, &tp, 1 << 20).len(), 300);
    assert!(e.open_consume_queue_files() <= 16);
}

#[test]
fn ten_thousand_queues_on_one_commitlog() {
    const TOPICS: usize = 1000;
    const QUEUES: u32 = 10;
    // Creating 10,000 directories and 10,000 files costs about 1 ms each on this CI's disk filesystem,
    // which would make this test measure the filesystem; tmpfs (when there is one) keeps it to what the
    // engine itself costs. The files and code paths are the same.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let opts = CommitLogOptions {
        file_bytes: 4 << 20,
        consumequeue_file_entries: 64,
        consumequeue_open_files: 1000,
        index_slots: 1024,
        index_entries: 4096,
        ..CommitLogOptions::default()
    };
    let specs: Vec<TopicSpec> = (0..TOPICS).map(|t| TopicSpec::new(format!("topic-{t:04}"), QUEUES)).collect();
    let started = Instant::now();
    {
        let e = CommitLogEngine::open(dir.path(), opts.clone()).unwrap();
        for s in &specs {
            e.create_topic(s).unwrap();
        }
        for round in 0..2 {
            for s in &specs {
                for q in 0..QUEUES {
                    let tp = TopicPartition::new(s.name.clone(), q);
                    let off = append(&e, &tp, &[record(&format!("{}/{q}/{round}", s.name), &[])]);
                    assert_eq!(off, round);
                }
            }
        }
        assert!(e.open_consume_queue_files() <= 1000, "the LRU bounds open ConsumeQueue files");
        e.shutdown().unwrap();
    }
    let e = CommitLogEngine::open(dir.path(), opts).unwrap();
    for s in &specs {
        e.open_topic(s).unwrap();
    }
    for s in &specs {
        for q in 0..QUEUES {
            let tp = TopicPartition::new(s.name.clone(), q);
            let (v, next) = read_values(&e, &tp, 0, &[]);
            assert_eq!(v, [format!("{}/{q}/0", s.name), format!("{}/{q}/1", s.name)]);
            assert_eq!(next, 2);
        }
    }
    assert!(e.open_consume_queue_files() <= 1000);
    assert_eq!(e.topics_on_disk().unwrap().len(), TOPICS);
    eprintln!("10,000 queues: create, append x2, restart, read back in {:?}", started.elapsed());
}

/// How many pages of `path` are in the page cache.
fn cached_pages(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    // SAFETY: a read-only mapping that is never read: mincore only looks at the page cache behind it.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: `map` covers `len` bytes and `resident` has one byte per page of them.
    let rc = unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, len, resident.as_mut_ptr()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    resident.iter().filter(|b| **b & 1 == 1).count()
}

#[test]
fn a_clean_restart_reads_only_the_written_pages_of_each_consume_queue() {
    // Real-size ConsumeQueue files (300,000 entries, 6 MB, sparse) holding a few entries each. Finding a
    // queue's end at open used to binary-search the whole file through its mapping: each fault in the hole
    // made the kernel read around it (up to the disk's readahead, 8 MiB here: the whole file), so every
    // queue with a message cost 6 MB of zero-filled page cache and mapped pages, and 2,000 of them took
    // 10 s and 475 MB to reopen. Now it reads 1 page (the old search: all 1,465 with 8 MiB of readahead; 11 on
    // tmpfs, which has none).
    let dir = tempfile::tempdir().unwrap();
    let opts = CommitLogOptions { file_bytes: 1 << 20, ..CommitLogOptions::default() };
    let spec = TopicSpec::new("t", 8);
    {
        let e = CommitLogEngine::open(dir.path(), opts.clone()).unwrap();
        e.create_topic(&spec).unwrap();
        for q in 0..8 {
            let tp = TopicPartition::new("t", q);
            for i in 0..3 {
                append(&e, &tp, &[record(&format!("{q}/{i}"), &[])]);
            }
        }
        e.shutdown().unwrap();
    }
    let e = CommitLogEngine::open(dir.path(), opts).unwrap();
    e.open_topic(&spec).unwrap();
    for q in 0..8 {
        let tp = TopicPartition::new("t", q);
        assert_eq!(e.offsets(&tp).unwrap().log_end, 3);
        let file = dir.path().join(format!("consumequeue/t/{q}/00000000000000000000"));
        let pages = cached_pages(&file);
        assert!(pages <= 4, "reopening read {pages} pages of {} (3 entries, in its first page)", file.display());
    }
    for q in 0..8 {
        let (values, next) = read_values(&e, &TopicPartition::new("t", q), 0, &[]);
        assert_eq!(values, [format!("{q}/0"), format!("{q}/1"), format!("{q}/2")]);
        assert_eq!(next, 3);
    }
}

#[test]
fn interval_and_sync_appends_complete_from_the_flusher() {
    let dir = tempfile::tempdir().unwrap();
    // Checkpoints (which also flush) far apart: only the interval and sync flushes can complete these.
    let e =
        CommitLogEngine::open(dir.path(), CommitLogOptions { checkpoint_interval_ms: 3_600_000, ..options() }).unwrap();
    let interval =
        TopicConfig::default().with_overrides([("flush.policy", "interval"), ("flush.interval.ms", "300")]).unwrap();
    let sync = TopicConfig::default().with_overrides([("flush.policy", "sync")]).unwrap();
    e.create_topic(&TopicSpec { config: interval, ..TopicSpec::new("iv", 1) }).unwrap();
    e.create_topic(&TopicSpec { config: sync, ..TopicSpec::new("sy", 1) }).unwrap();
    let wait = |d: janus_api::Durable| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(d.wait()));
        rx.recv_timeout(Duration::from_secs(30)).expect("durable completes").unwrap();
    };
    let a = e.append(&TopicPartition::new("iv", 0), batch(&[record("i", &[])])).unwrap();
    wait(a.durable);
    let waits: Vec<_> = (0..8)
        .map(|i| e.append(&TopicPartition::new("sy", 0), batch(&[record(&i.to_string(), &[])])).unwrap())
        .collect();
    for a in waits {
        wait(a.durable);
    }
}

#[test]
fn a_file_that_would_break_the_free_space_guard_is_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let free = janus_api::volume::space(dir.path()).unwrap().free;
    // A guard larger than the volume's free space: no CommitLog file fits under it.
    let guarded = CommitLogOptions { min_free_bytes: Some(free + (1 << 30)), ..options() };
    let e = CommitLogEngine::open(dir.path(), guarded).unwrap();
    let tp = TopicPartition::new("g", 0);
    e.create_topic(&TopicSpec::new("g", 1)).unwrap();
    let err = e.append(&tp, batch(&[record("x", &[])])).unwrap_err();
    let StorageError::DiskFull { volume: Some(volume), needed: Some(needed), .. } = &err else {
        panic!("expected a full disk naming the volume, got {err:?}")
    };
    assert!(dir.path().canonicalize().unwrap().starts_with(&volume.mount_point), "{err}");
    assert_eq!(*needed, 64 * 1024 + free + (1 << 30));
    let message = err.to_string();
    assert!(message.contains(&format!("volume {} has ", volume.mount_point.display())), "{message}");
    assert!(message.contains("needed"), "{message}");
    // Nothing half-made is left behind, and the partition still reads (empty).
    let files: Vec<_> = std::fs::read_dir(dir.path().join("commitlog")).unwrap().collect();
    assert!(files.is_empty(), "{files:?}");
    assert_eq!(e.offsets(&tp).unwrap().log_end, 0);
    drop(e);

    // With the default guard (at most 1 GiB) on the same volume the same write succeeds after a reopen.
    let e = open(dir.path());
    e.open_topic(&TopicSpec::new("g", 1)).unwrap();
    assert_eq!(append(&e, &tp, &[record("y", &[])]), 0);
    assert_eq!(all_values(&e, &tp, 1 << 20), vec!["y".to_string()]);
}
