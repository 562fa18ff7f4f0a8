//! Segment-engine behaviour beyond the shared conformance suite: rolls, index layout, compaction, group
//! commit and capabilities.

mod common;

use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{batch, files, keyed, open, read_all, spec, value};
use janus_api::batch::split_batches;
use janus_api::{Compaction, Engine, ReadSlice, StorageError, TopicPartition, now_ms};
use janus_segment::SegmentOptions;
use janus_segment::index::{OFFSET_ENTRY_SIZE, OffsetEntry, TIME_ENTRY_SIZE, TimeEntry};
use janus_transfer::send_file_range;

#[test]
fn rolls_when_the_segment_is_older_than_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("aged", 1, &[("segment.ms", "1")])).unwrap();
    let tp = TopicPartition::new("aged", 0);
    for i in 0..3 {
        engine.append(&tp, batch(&format!("b{i}"), 2, now_ms())).unwrap().durable.wait().unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(files(dir.path(), &tp, "log").len(), 3, "each append after 1 ms starts a new segment");
    assert_eq!(read_all(&engine, &tp).len(), 6);
}

#[test]
fn rolls_when_an_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // 64-byte indexes hold 8 offset entries and 5 time entries; interval 0 indexes every batch but the first.
    let engine = open(dir.path(), SegmentOptions { max_index_bytes: 64, ..SegmentOptions::default() });
    engine.create_topic(&spec("idx", 1, &[("index.interval.bytes", "0")])).unwrap();
    let tp = TopicPartition::new("idx", 0);
    for i in 0..40 {
        engine.append(&tp, batch(&format!("b{i}"), 1, 1_000 + i)).unwrap();
    }
    let logs = files(dir.path(), &tp, "log");
    assert!(logs.len() >= 6, "expected rolls on full indexes, got {} segments", logs.len());
    let values: Vec<_> = read_all(&engine, &tp).iter().map(|r| value(r).unwrap()).collect();
    assert_eq!(values, (0..40).map(|i| format!("b{i}-0")).collect::<Vec<_>>());
    assert_eq!(engine.offset_for_timestamp(&tp, 1_025).unwrap(), Some(25));
}

#[test]
fn rolls_before_a_relative_offset_would_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("far", 0);
    {
        let engine = open(dir.path(), SegmentOptions::default());
        engine.create_topic(&spec("far", 1, &[])).unwrap();
        engine.append(&tp, batch("a", 1, 1)).unwrap();
        engine.shutdown().unwrap();
    }
    // Add a batch far ahead (as compaction can leave), so the next offsets sit near 2^31 past the base.
    let log = &files(dir.path(), &tp, "log")[0];
    let far = (i32::MAX as i64) - 4;
    let mut bytes = fs::read(log).unwrap();
    bytes.extend_from_slice(batch("b", 1, 2).with_base_offset(far).as_bytes());
    fs::write(log, bytes).unwrap();
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap(); // make the engine re-validate the file
    let engine = open(dir.path(), SegmentOptions::default());
    engine.open_topic(&spec("far", 1, &[])).unwrap();
    assert_eq!(engine.offsets(&tp).unwrap().log_end, far + 1);
    let appended = engine.append(&tp, batch("c", 10, 3)).unwrap();
    assert_eq!(appended.base_offset, far + 1);
    let logs = files(dir.path(), &tp, "log");
    assert_eq!(logs.len(), 2, "the batch would end past base + i32::MAX: a new segment");
    assert!(logs[1].ends_with(format!("{:020}.log", far + 1)));
    let all = read_all(&engine, &tp);
    assert_eq!(all.iter().map(|r| r.offset).collect::<Vec<_>>()[..3], [0, far, far + 1]);
}

#[test]
fn index_entries_follow_kafkas_interval_rule_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("ix", 0);
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("ix", 1, &[("index.interval.bytes", "4096")])).unwrap();
    for i in 0..80 {
        // Timestamps rise except every fifth batch, which goes back in time.
        let ts = if i % 5 == 4 { 10 } else { 1_000 + i };
        engine.append(&tp, batch(&format!("{i:0>900}"), 1, ts)).unwrap();
    }
    engine.shutdown().unwrap();
    // Recompute what the indexes must hold from the .log itself.
    let log = fs::read(&files(dir.path(), &tp, "log")[0]).unwrap();
    let (mut expected_index, mut expected_time) = (Vec::new(), Vec::new());
    let (mut since, mut max_ts, mut max_ts_offset, mut last_time) = (0usize, -1i64, 0i64, i64::MIN);
    let mut pos = 0usize;
    for item in split_batches(&log) {
        let (h, raw) = item.unwrap();
        if h.max_timestamp > max_ts {
            (max_ts, max_ts_offset) = (h.max_timestamp, h.last_offset());
        }
        if since > 4096 {
            expected_index
                .extend(OffsetEntry { relative_offset: h.last_offset() as u32, position: pos as u32 }.encode());
            if max_ts > last_time {
                expected_time.extend(TimeEntry { timestamp: max_ts, relative_offset: max_ts_offset as u32 }.encode());
                last_time = max_ts;
            }
            since = 0;
        }
        since += raw.len();
        pos += raw.len();
    }
    let index = fs::read(&files(dir.path(), &tp, "index")[0]).unwrap();
    let time = fs::read(&files(dir.path(), &tp, "timeindex")[0]).unwrap();
    assert!(expected_index.len() / OFFSET_ENTRY_SIZE >= 8, "the test should produce several entries");
    assert_eq!(index, expected_index, "offset index (trimmed at shutdown)");
    assert_eq!(time, expected_time, "time index (trimmed at shutdown)");
    assert_eq!(time.len() % TIME_ENTRY_SIZE, 0);
}

#[test]
fn reads_return_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("r", 0);
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("r", 1, &[])).unwrap();
    let sizes: Vec<usize> =
        (0..3).map(|i| engine.append(&tp, batch(&format!("{i:0>500}"), 4, 1)).map(|_| 0).unwrap()).collect();
    assert_eq!(sizes.len(), 3);
    let one = engine.read(&tp, 0, 1).unwrap();
    let batch_len = one.byte_len();
    assert!(batch_len > 1, "one whole batch even though max_bytes is 1");
    assert_eq!(one.next_offset(), 4);
    let two = engine.read(&tp, 5, batch_len * 2 + batch_len / 2).unwrap();
    assert_eq!(two.byte_len(), batch_len * 2, "only whole batches fit");
    assert_eq!(two.next_offset(), 12);
    assert_eq!(engine.decode_records(&two, 5).unwrap().first().unwrap().offset, 5);
    assert!(matches!(engine.read(&tp, 12, 100).unwrap(), ReadSlice::Empty { next_offset: 12 }));
}

#[test]
fn the_segment_engine_compacts_but_has_no_tag_filter_or_key_index() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), SegmentOptions::default());
    assert!(engine.compaction().is_some());
    assert!(engine.tag_filter().is_none(), "segment topics are filtered by the consumer");
    assert!(engine.key_lookup().is_none());
}

#[test]
fn slices_of_the_other_engine_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), SegmentOptions::default());
    let mapped = ReadSlice::Mapped { regions: vec![bytes::Bytes::from_static(b"not a batch")], next_offset: 1 };
    assert!(matches!(engine.decode_records(&mapped, 0), Err(StorageError::Unsupported(_))));
    assert!(matches!(engine.encode_batches(&mapped), Err(StorageError::Unsupported(_))));
    let empty = ReadSlice::Empty { next_offset: 3 };
    assert!(engine.decode_records(&empty, 0).unwrap().is_empty());
    assert!(engine.encode_batches(&empty).unwrap().is_empty());
}

#[test]
fn compaction_keeps_the_newest_value_per_key_and_expires_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("c", 0);
    let overrides = [("cleanup.policy", "compact"), ("segment.bytes", "1024"), ("delete.retention.ms", "60000")];
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("c", 1, &overrides)).unwrap();
    let t0 = now_ms();
    for round in 0..5 {
        for k in 0..10 {
            engine.append(&tp, keyed(&format!("k{k}"), Some(&format!("v{round}")), t0)).unwrap();
        }
    }
    engine.append(&tp, keyed("k3", None, t0)).unwrap();
    // Push everything above into closed segments.
    for i in 0..20 {
        engine.append(&tp, keyed(&format!("tail{i}"), Some("x"), t0)).unwrap();
    }
    let before = read_all(&engine, &tp);
    let end = engine.offsets(&tp).unwrap().log_end;
    let rewritten = engine.compact(t0).unwrap();
    assert!(rewritten > 0, "closed segments held superseded records");
    let after = read_all(&engine, &tp);
    assert_eq!(engine.offsets(&tp).unwrap().log_end, end, "offsets never move");
    let latest: std::collections::HashMap<_, _> = before.iter().map(|r| (r.key.clone().unwrap(), r.offset)).collect();
    for r in &after {
        assert_eq!(latest[r.key.as_ref().unwrap()], r.offset, "only the newest record of each key survives");
    }
    assert_eq!(after.len(), latest.len(), "every key keeps its newest record");
    let k3: Vec<_> = after.iter().filter(|r| r.key.as_deref() == Some(b"k3".as_slice())).collect();
    assert_eq!(k3.len(), 1);
    assert!(k3[0].value.is_none(), "the tombstone is kept within delete.retention.ms");
    // Past delete.retention.ms the tombstone goes too; the survivors still read back after a restart.
    engine.compact(t0 + 120_000).unwrap();
    engine.shutdown().unwrap();
    drop(engine);
    let engine = open(dir.path(), SegmentOptions::default());
    engine.open_topic(&spec("c", 1, &overrides)).unwrap();
    let last = read_all(&engine, &tp);
    assert!(last.iter().all(|r| r.key.as_deref() != Some(b"k3".as_slice())), "expired tombstone removed");
    assert_eq!(last.len(), latest.len() - 1);
    for r in last.iter().filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"k"))) {
        assert_eq!(value(r).as_deref(), Some("v4"), "key {:?}", r.key);
    }
    assert!(files(dir.path(), &tp, "cleaned").is_empty());
}

#[test]
fn compacted_topics_refuse_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("c", 1, &[("cleanup.policy", "compact")])).unwrap();
    let record = janus_api::NewRecord { value: Some("v".into()), ..Default::default() };
    let keyless = janus_api::RecordBatch::build(&[record], janus_api::Compression::None).unwrap();
    let err = engine.append(&TopicPartition::new("c", 0), keyless).unwrap_err();
    assert!(matches!(err, StorageError::InvalidRecord(_)), "{err}");
    assert_eq!(engine.offsets(&TopicPartition::new("c", 0)).unwrap().log_end, 0);
}

#[test]
fn an_interrupted_compaction_leaves_the_old_segment_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("c", 0);
    {
        let engine = open(dir.path(), SegmentOptions::default());
        engine.create_topic(&spec("c", 1, &[])).unwrap();
        engine.append(&tp, keyed("a", Some("1"), 5)).unwrap();
    }
    // A crash after writing the .cleaned file but before the rename.
    let cleaned = dir.path().join("c-0").join(format!("{:020}.log.cleaned", 0));
    fs::write(&cleaned, b"half-written compaction output").unwrap();
    let engine = open(dir.path(), SegmentOptions::default());
    engine.open_topic(&spec("c", 1, &[])).unwrap();
    assert_eq!(value(&read_all(&engine, &tp)[0]).as_deref(), Some("1"));
    assert!(!cleaned.exists(), "leftover compaction output is removed at load");
}

#[test]
fn concurrent_sync_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(dir.path(), SegmentOptions::default()));
    engine.create_topic(&spec("s", 4, &[("flush.policy", "sync")])).unwrap();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let engine = Arc::clone(&engine);
            thread::spawn(move || {
                for i in 0..50 {
                    let tp = TopicPartition::new("s", t % 4);
                    engine.append(&tp, batch(&format!("t{t}-{i}"), 2, 1)).unwrap().durable.wait().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let rounds = engine.flush_rounds();
    assert!(rounds > 0 && rounds < 400, "400 acknowledged sync appends took {rounds} flush rounds");
    let total: usize = (0..4).map(|p| read_all(&engine, &TopicPartition::new("s", p)).len()).sum();
    assert_eq!(total, 800);
}

#[test]
fn sendfile_ships_a_read_slice_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("net", 0);
    let engine = open(dir.path(), SegmentOptions::default());
    engine.create_topic(&spec("net", 1, &[])).unwrap();
    for i in 0..200 {
        engine.append(&tp, batch(&format!("{i:0>2000}"), 8, 1)).unwrap();
    }
    let slice = engine.read(&tp, 0, 4 * 1024 * 1024).unwrap();
    let expected = slice.to_bytes().unwrap();
    assert!(expected.len() > 1024 * 1024, "large enough to fill the socket buffer and exercise partial sends");
    let ReadSlice::File { file, position, len, .. } = slice.clone() else { panic!("segment reads are file ranges") };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let received = rt.block_on(async move {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            sock.read_to_end(&mut buf).await.unwrap();
            buf
        });
        let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let sent = send_file_range(&sock, &file, position, len as u64).await.unwrap();
        assert_eq!(sent, len as u64);
        drop(sock);
        reader.await.unwrap()
    });
    assert_eq!(received, expected.to_vec());
}

#[test]
fn concurrent_flushes_and_topic_deletes_never_fail_on_the_checkpoint_files() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(
        dir.path(),
        SegmentOptions { checkpoint_interval: Duration::from_millis(1), ..SegmentOptions::default() },
    ));
    for t in 0..4 {
        engine.create_topic(&spec(&format!("t{t}"), 2, &[])).unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let engine = Arc::clone(&engine);
            thread::spawn(move || {
                let tp = TopicPartition::new(format!("t{t}"), 0);
                for i in 0..50 {
                    engine.append(&tp, batch(&format!("v{i}"), 1, now_ms())).unwrap();
                    engine.flush().unwrap();
                }
                engine.delete_topic(&tp.topic).unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().expect("no flush or delete failed on a checkpoint file");
    }
    engine.shutdown().unwrap();
}

#[test]
fn concurrent_appends_to_one_partition_get_dense_offsets_across_rolls_and_survive_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("one", 0);
    const THREADS: u32 = 6;
    const PER_THREAD: usize = 60;
    // Small segments and indexes, so that rolls (by size and by full index) fall inside writers' groups.
    let options = SegmentOptions { max_index_bytes: 96, ..SegmentOptions::default() };
    let mut acked: Vec<(i64, i64, String)> = {
        let engine = Arc::new(open(dir.path(), options.clone()));
        engine.create_topic(&spec("one", 1, &[("segment.bytes", "2048"), ("index.interval.bytes", "0")])).unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let engine = Arc::clone(&engine);
                let tp = tp.clone();
                thread::spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let name = format!("t{t}-{i}");
                            let n = 1 + (i % 3);
                            let a = engine.append(&tp, batch(&name, n, 1_000 + i as i64)).unwrap();
                            a.durable.wait().unwrap();
                            assert_eq!(a.last_offset - a.base_offset + 1, n as i64);
                            (a.base_offset, a.last_offset, name)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let acked: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        // No shutdown: the next open recovers every segment as after a crash.
        acked
    };
    acked.sort();
    let mut next = 0;
    for (base, last, _) in &acked {
        assert_eq!(*base, next, "offsets are dense and every append got its own range");
        next = last + 1;
    }
    assert!(files(dir.path(), &tp, "log").len() > 5, "the appends rolled several segments");
    let engine = open(dir.path(), options);
    engine.open_topic(&spec("one", 1, &[("segment.bytes", "2048"), ("index.interval.bytes", "0")])).unwrap();
    let records = read_all(&engine, &tp);
    assert_eq!(records.len() as i64, next);
    for (base, last, name) in &acked {
        for (i, offset) in (*base..=*last).enumerate() {
            let r = &records[offset as usize];
            assert_eq!((r.offset, value(r).unwrap()), (offset, format!("{name}-{i}")));
        }
    }
}
