//! Commitlog engine benchmarks, each beside the baseline it is judged against (measured in the same run):
//!
//! - `append_64k`: appends of 64 KiB batches of 1 KiB messages (flush=os), written through the mapping,
//!   through a pre-warmed mapping, and staged (`pwrite`), vs plain sequential `write(2)` of 64 KiB buffers to
//!   a file on the same filesystem;
//! - `append_64k_queues`: the same 64 KiB batches round-robin over 1 and 10,000 queues, with each write path,
//!   vs the same raw `write(2)`;
//! - `append_queues`: 16 KiB batches of 1 KiB messages written round-robin over 1, 100, 1,000 and 10,000
//!   queues, flush=os and flush=sync (and 10,000 queues with an LRU holding all their ConsumeQueue files);
//! - `read_to_socket`: sequential 1 MiB reads of mapped regions written to a loopback socket
//!   (`janus_transfer::write_regions`, i.e. `writev` from the mapping) vs `sendfile` of 1 MiB ranges of a
//!   cached file to another loopback socket.
//!
//! The baselines (raw `write(2)`, the cached file, the drained loopback sockets) and the stopwatch are the
//! ones the segment engine's benches use, from `janus-bench-support`.
//!
//! Every bench is bounded (10 samples, a few seconds each). Run: `cargo bench -p janus-commitlog`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use janus_api::{Compression, Engine, NewRecord, ReadSlice, RecordBatch, TopicConfig, TopicPartition, TopicSpec};
use janus_bench_support::{self as baseline, LoopbackDrain, Stopwatch, cached_file};
use janus_commitlog::{CommitLogEngine, CommitLogOptions};

const MESSAGE: usize = 1024;
const BATCH: usize = 64 * 1024;
/// Delete what was written once a bench has written this much, to bound disk use.
const KEEP_BYTES: u64 = 1 << 30;

/// Where bench data goes: a temporary directory (`TMPDIR`, a disk filesystem here).
fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

fn batch(bytes: usize) -> RecordBatch {
    let records: Vec<NewRecord> = (0..bytes / MESSAGE)
        .map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(vec![(i % 251) as u8; MESSAGE])),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect();
    RecordBatch::build(&records, Compression::None).expect("a valid batch")
}

fn options() -> CommitLogOptions {
    CommitLogOptions { file_bytes: 256 << 20, ..CommitLogOptions::default() }
}

fn config(policy: &str) -> TopicConfig {
    TopicConfig::default()
        .with_overrides([("flush.policy", policy), ("retention.ms", "-1"), ("max.message.bytes", "1048576")])
        .expect("a valid config")
}

/// Drops everything appended so far once more than [`KEEP_BYTES`] were written (outside the timing).
fn trim(e: &CommitLogEngine, tps: &[TopicPartition], written: &mut u64) {
    if *written < KEEP_BYTES {
        return;
    }
    for tp in tps {
        let end = e.offsets(tp).expect("offsets").log_end;
        e.delete_records_before(tp, end).expect("delete_records_before");
    }
    e.enforce_retention(janus_api::now_ms()).expect("retention");
    *written = 0;
}

fn append_64k(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_64k");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(BATCH as u64));

    let dir = bench_dir();
    let buf = vec![7u8; BATCH];
    g.bench_function("raw_write", |b| {
        b.iter_custom(|iters| baseline::raw_append(dir.path(), &buf, iters * BATCH as u64).expect("raw write"));
    });

    for (name, prewarm, staged_writes) in
        [("commitlog_os", false, false), ("commitlog_os_prewarm", true, false), ("commitlog_os_staged", false, true)]
    {
        let edir = dir.path().join(name);
        let e = CommitLogEngine::open(&edir, CommitLogOptions { prewarm, staged_writes, ..options() }).expect("open");
        e.create_topic(&TopicSpec { config: config("os"), ..TopicSpec::new("bench", 1) }).expect("topic");
        let tp = TopicPartition::new("bench", 0);
        let one = batch(BATCH);
        let mut written = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                trim(&e, std::slice::from_ref(&tp), &mut written);
                let watch = Stopwatch::start();
                for _ in 0..iters {
                    let a = e.append(&tp, one.clone()).expect("append");
                    drop(a.durable);
                }
                written += iters * BATCH as u64;
                watch.stop().wall
            });
        });
        e.shutdown().expect("shutdown");
        drop(e);
        let _ = std::fs::remove_dir_all(&edir);
    }
    g.finish();
}

/// Opens an engine in `dir` with a topic of `queues` queues (flush=`policy`), each queue holding one message
/// already (so that every ConsumeQueue file exists before timing starts: file creation is a one-off cost).
fn engine_with_queues(
    dir: &std::path::Path,
    options: CommitLogOptions,
    policy: &str,
    queues: u32,
) -> (CommitLogEngine, Vec<TopicPartition>) {
    let e = CommitLogEngine::open(dir, options).expect("open");
    e.create_topic(&TopicSpec { config: config(policy), ..TopicSpec::new("q", queues) }).expect("topic");
    let tps: Vec<TopicPartition> = (0..queues).map(|q| TopicPartition::new("q", q)).collect();
    let small = batch(MESSAGE);
    for tp in &tps {
        drop(e.append(tp, small.clone()).expect("append").durable);
    }
    (e, tps)
}

/// The goal case of issue 12: 64 KiB batches (flush=os) round-robin over 1 and 10,000 queues, with both write
/// paths, beside raw `write(2)` of 64 KiB buffers to one fresh file (the same bytes, the same filesystem).
fn append_64k_queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_64k_queues");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(BATCH as u64));
    let dir = bench_dir();
    let buf = vec![7u8; BATCH];
    g.bench_function("raw_write", |b| {
        b.iter_custom(|iters| baseline::raw_append(dir.path(), &buf, iters * BATCH as u64).expect("raw write"));
    });
    let one = batch(BATCH);
    for (path, staged_writes) in [("mapped", false), ("staged", true)] {
        for queues in [1u32, 10_000] {
            let edir = dir.path().join(format!("{path}-{queues}"));
            let options = CommitLogOptions { staged_writes, consumequeue_open_files: 10_240, ..options() };
            let (e, tps) = engine_with_queues(&edir, options, "os", queues);
            let mut next = 0usize;
            let mut written = 0u64;
            g.bench_with_input(BenchmarkId::new(path, queues), &queues, |b, _| {
                b.iter_custom(|iters| {
                    trim(&e, &tps, &mut written);
                    let watch = Stopwatch::start();
                    for _ in 0..iters {
                        drop(e.append(&tps[next], one.clone()).expect("append").durable);
                        next = (next + 1) % tps.len();
                    }
                    written += iters * BATCH as u64;
                    watch.stop().wall
                });
            });
            e.shutdown().expect("shutdown");
            drop(e);
            let _ = std::fs::remove_dir_all(&edir);
        }
    }
    g.finish();
}

fn append_queues(c: &mut Criterion) {
    const QUEUE_BATCH: usize = 16 * 1024;
    let mut g = c.benchmark_group("append_queues");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(QUEUE_BATCH as u64));
    let dir = bench_dir();
    let one = batch(QUEUE_BATCH);
    // (policy, queues, consumequeue.open.files): the default LRU of 1,000 open ConsumeQueue files, and for
    // 10,000 queues also an LRU that holds them all.
    let cases = [
        ("os", 1u32, 1_000usize),
        ("os", 100, 1_000),
        ("os", 1_000, 1_000),
        ("os", 10_000, 1_000),
        ("os", 10_000, 10_240),
        ("sync", 1, 1_000),
        ("sync", 100, 1_000),
        ("sync", 1_000, 1_000),
        ("sync", 10_000, 1_000),
    ];
    for (policy, queues, open_files) in cases {
        {
            let edir = dir.path().join(format!("{policy}-{queues}-{open_files}"));
            let options = CommitLogOptions { consumequeue_open_files: open_files, ..options() };
            let e = CommitLogEngine::open(&edir, options).expect("open");
            e.create_topic(&TopicSpec { config: config(policy), ..TopicSpec::new("q", queues) }).expect("topic");
            let tps: Vec<TopicPartition> = (0..queues).map(|q| TopicPartition::new("q", q)).collect();
            // Every queue has its ConsumeQueue file before timing starts (file creation is a one-off cost).
            let small = batch(MESSAGE);
            for tp in &tps {
                drop(e.append(tp, small.clone()).expect("append").durable);
            }
            let mut next = 0usize;
            let mut written = 0u64;
            let id = if open_files == 1_000 { queues.to_string() } else { format!("{queues}-lru{open_files}") };
            g.bench_with_input(BenchmarkId::new(policy, id), &queues, |b, _| {
                b.iter_custom(|iters| {
                    trim(&e, &tps, &mut written);
                    let watch = Stopwatch::start();
                    for _ in 0..iters {
                        let a = e.append(&tps[next], one.clone()).expect("append");
                        a.durable.wait().expect("durable");
                        next = (next + 1) % tps.len();
                    }
                    written += iters * QUEUE_BATCH as u64;
                    watch.stop().wall
                });
            });
            e.shutdown().expect("shutdown");
            drop(e);
            let _ = std::fs::remove_dir_all(&edir);
        }
    }
    g.finish();
}

fn read_to_socket(c: &mut Criterion) {
    const READ: usize = 1 << 20;
    const DATA: u64 = 128 << 20;
    let mut g = c.benchmark_group("read_to_socket");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(READ as u64));
    let dir = bench_dir();

    // Baseline: sendfile of a cached file, 1 MiB at a time.
    let file = cached_file(dir.path(), DATA).expect("cached file");
    let raw_drain = LoopbackDrain::new().expect("loopback pair");
    let mut pos = 0u64;
    g.bench_function("sendfile_cached_file", |b| {
        b.iter(|| {
            if pos + READ as u64 > DATA {
                pos = 0;
            }
            janus_transfer::send_file_range_blocking(raw_drain.sender(), &file, pos, READ as u64).expect("sendfile");
            pos += READ as u64;
        });
    });
    drop(raw_drain);

    // The engine: mapped regions, written with writev from the mapping to a tokio socket.
    let e = CommitLogEngine::open(&dir.path().join("engine"), options()).expect("open");
    e.create_topic(&TopicSpec { config: config("os"), ..TopicSpec::new("read", 1) }).expect("topic");
    let tp = TopicPartition::new("read", 0);
    let one = batch(BATCH);
    for _ in 0..DATA / BATCH as u64 {
        drop(e.append(&tp, one.clone()).expect("append").durable);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    let engine_drain = LoopbackDrain::new().expect("loopback pair");
    let std_sock = engine_drain.clone_sender().expect("socket clone");
    std_sock.set_nonblocking(true).expect("non-blocking");
    let sock = rt.block_on(async { tokio::net::TcpStream::from_std(std_sock) }).expect("tokio socket");
    let end = e.offsets(&tp).expect("offsets").log_end;
    let mut offset = 0i64;
    g.bench_function("mapped_regions_writev", |b| {
        b.iter(|| {
            if offset >= end {
                offset = 0;
            }
            let slice = e.read(&tp, offset, READ).expect("read");
            let ReadSlice::Mapped { regions, next_offset } = &slice else { panic!("expected mapped regions") };
            rt.block_on(janus_transfer::write_regions(&sock, regions)).expect("write");
            offset = *next_offset;
        });
    });
    e.shutdown().expect("shutdown");
    g.finish();
}

criterion_group!(benches, append_64k, append_64k_queues, append_queues, read_to_socket);
criterion_main!(benches);
