//! `partitions`: append throughput with 1, 100, 1,000 and 10,000 partitions of one topic written round-robin,
//! 64 KiB batches of 1 KiB records, under `flush.policy=sync` and `flush.policy=os`.
//!
//! - `segment_sync/P`: [`SYNC_PRODUCERS`] producer threads take the next partition in turn, append and wait on
//!   `Appended::durable`, so the engine's group commit can share one flush round between them.
//! - `segment_os/P`: one producer, acknowledged on the page-cache write.
//! - `raw_files/P`: baseline of the same shape without the engine: `write(2)` of the same buffer round-robin to
//!   P plain files in the same temp dir (the files keep growing across samples, as the partitions do).
//! - `raw_write` and `raw_write_fdatasync`: the single-file baselines (a fresh file per sample, `write(2)` of
//!   the same buffer, the latter with an `fdatasync(2)` after each write).
//!
//! For each P the topic is created once and every partition loaded with a few small untimed appends (enough to
//! write the first index entries); then `sync(1)` writes back everything dirty so that the timed part starts
//! from a clean page cache; the `sync` run comes first (it adds little data), the `os` run continues the same
//! round-robin on the same topic. The engine uses `max_index_bytes` = [`INDEX_BYTES`] instead of the default
//! 10 MiB: with the default, the first write into each freshly mapped index makes the kernel read ahead (and
//! zero-fill) 8 MiB of it, 16 MiB of page cache per partition, which for 10,000 partitions is more memory
//! than this machine has (see the README). An iteration is one 64 KiB append (or raw write).
//!
//! After each engine run, the same appends run again in alternation with the single-file baseline
//! ([`baseline::paired`], [`PAIRED_ROUNDS`] rounds) and the medians and the per-round ratio are printed.
//!
//! Run with `cargo bench -p janus-segment --bench partitions`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use janus_api::{
    Compression, Engine, FlushPolicy, NewRecord, RecordBatch, TopicConfig, TopicPartition, TopicSpec, now_ms,
};
use janus_conformance::baseline::{self, RoundRobinFiles, Stopwatch, Timing};
use janus_segment::{SegmentEngine, SegmentOptions};

/// The partition counts measured.
const PARTITION_COUNTS: [u32; 4] = [1, 100, 1_000, 10_000];
/// Producer threads under `flush.policy=sync`.
const SYNC_PRODUCERS: usize = 4;
/// Preallocated size of each index of an active segment: 8,192 offset entries, one per 64 KiB batch at the
/// default `index.interval.bytes`, so 512 MiB of batches before an index fills.
const INDEX_BYTES: usize = 64 * 1024;
/// Value size of every record.
const RECORD_BYTES: usize = 1024;
/// Records per batch.
const RECORDS_PER_BATCH: usize = 64;
/// Distinct batches cycled through.
const DISTINCT_BATCHES: usize = 16;
/// Small appends made to every partition before timing: more than `index.interval.bytes` (4 KiB), so that the
/// first index entries are written.
const TOUCH_APPENDS: usize = 6;
/// Topic name.
const TOPIC: &str = "parts";
/// Rounds of each paired measurement (engine and single-file baseline alternating).
const PAIRED_ROUNDS: usize = 10;
/// Batches per paired round under `flush.policy=os` (32 MiB).
const PAIRED_OS_BATCHES: u64 = 512;
/// Batches per paired round under `flush.policy=sync` (4 MiB).
const PAIRED_SYNC_BATCHES: u64 = 64;

fn build_batch(seed: usize, records: usize) -> RecordBatch {
    let ts = now_ms();
    let records: Vec<NewRecord> = (0..records)
        .map(|i| NewRecord {
            value: Some(Bytes::from(vec![(seed * 31 + i) as u8; RECORD_BYTES])),
            timestamp_ms: ts,
            ..NewRecord::default()
        })
        .collect();
    RecordBatch::build(&records, Compression::None).expect("benchmark batch builds")
}

/// Writes back every dirty page of the machine, so that a timed part does not share the disk with writeback
/// left over from setup.
fn sync_all() {
    let status = std::process::Command::new("sync").status().expect("run sync(1)");
    assert!(status.success(), "sync(1) failed");
}

/// The engine side for one partition count: a topic of `partitions` partitions and the round-robin cursor.
struct Topic {
    engine: SegmentEngine,
    partitions: u32,
    /// The next append's sequence number; its partition is `cursor % partitions`.
    cursor: AtomicU64,
}

impl Topic {
    fn create(dir: &Path, partitions: u32) -> Topic {
        let options = SegmentOptions { max_index_bytes: INDEX_BYTES, ..SegmentOptions::default() };
        let engine = SegmentEngine::open(dir, options).expect("open engine");
        let mut spec = TopicSpec::new(TOPIC, partitions);
        spec.config.flush_policy = FlushPolicy::Sync;
        engine.create_topic(&spec).expect("create topic");
        // One-record batches (about 1 KiB each), enough that each partition's indexes get their first entry:
        // loading a partition and starting its indexes are one-off costs, not what is measured.
        let small = build_batch(0, 1);
        for p in 0..partitions {
            let tp = TopicPartition::new(TOPIC, p);
            for _ in 0..TOUCH_APPENDS {
                engine.append(&tp, small.clone()).expect("touch").durable.wait().expect("durable");
            }
        }
        Topic { engine, partitions, cursor: AtomicU64::new(0) }
    }

    fn set_policy(&self, policy: FlushPolicy) {
        let config = TopicConfig { flush_policy: policy, ..TopicConfig::default() };
        self.engine.alter_topic(TOPIC, &config).expect("alter topic");
    }

    /// Appends the next `iters` batches round-robin, each waiting on its append's `durable` handle: on the calling
    /// thread when `producers` is 1 (the [`Timing`] then has its CPU time), else from that many threads (CPU time
    /// zero: not measured). Returns the time from the start until every append is done.
    fn run(&self, batches: &[RecordBatch], producers: usize, iters: u64) -> Timing {
        let end = self.cursor.load(Ordering::Acquire) + iters;
        let produce = || {
            loop {
                let seq = self.cursor.fetch_add(1, Ordering::AcqRel);
                if seq >= end {
                    break;
                }
                let tp = TopicPartition::new(TOPIC, (seq % self.partitions as u64) as u32);
                let batch = batches[seq as usize % batches.len()].clone();
                self.engine.append(&tp, batch).expect("append").durable.wait().expect("durable");
            }
        };
        let watch = Stopwatch::start();
        let timing = if producers == 1 {
            produce();
            watch.stop()
        } else {
            std::thread::scope(|s| {
                for _ in 0..producers {
                    s.spawn(produce);
                }
            });
            Timing { wall: watch.stop().wall, cpu: Duration::ZERO }
        };
        // Producers that saw the end overshot the cursor by one each; the next run continues from `end`.
        self.cursor.store(end, Ordering::Release);
        timing
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, batch_len: usize) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(batch_len as u64));
}

fn partitions(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..DISTINCT_BATCHES).map(|s| build_batch(s, RECORDS_PER_BATCH)).collect();
    let batch_len = batches[0].len();
    let chunk = batches[0].as_bytes().to_vec();
    let root = tempfile::tempdir().expect("temp dir");
    let paired = paired_enabled();

    let mut group = c.benchmark_group("partitions");
    configure(&mut group, batch_len);
    let raw_dir = root.path().join("raw");
    std::fs::create_dir(&raw_dir).expect("raw dir");
    group.bench_function("raw_write", |b| {
        b.iter_custom(|iters| baseline::raw_append(&raw_dir, &chunk, iters * chunk.len() as u64).expect("raw"))
    });
    group.bench_function("raw_write_fdatasync", |b| {
        b.iter_custom(|iters| baseline::raw_append_sync(&raw_dir, &chunk, iters * chunk.len() as u64).expect("raw"))
    });

    for partitions in PARTITION_COUNTS {
        let engine_dir = root.path().join(format!("engine-{partitions}"));
        let started = Instant::now();
        let topic = Topic::create(&engine_dir, partitions);
        sync_all();
        eprintln!("partitions: {partitions} partitions created and loaded in {:?} (untimed)", started.elapsed());

        group.bench_function(BenchmarkId::new("segment_sync", partitions), |b| {
            b.iter_custom(|iters| topic.run(&batches, SYNC_PRODUCERS, iters).wall)
        });
        if paired {
            let p = baseline::paired(
                PAIRED_ROUNDS,
                PAIRED_SYNC_BATCHES * batch_len as u64,
                || topic.run(&batches, SYNC_PRODUCERS, PAIRED_SYNC_BATCHES),
                || {
                    let bytes = PAIRED_SYNC_BATCHES * chunk.len() as u64;
                    let t = baseline::raw_append_sync_timed(&raw_dir, &chunk, bytes).expect("raw");
                    Timing { cpu: Duration::ZERO, ..t }
                },
            );
            println!("paired partitions/sync/{partitions} (segment_sync vs raw_write_fdatasync): {p}");
        }
        topic.set_policy(FlushPolicy::Os);
        group.bench_function(BenchmarkId::new("segment_os", partitions), |b| {
            b.iter_custom(|iters| topic.run(&batches, 1, iters).wall)
        });
        if paired {
            let p = baseline::paired(
                PAIRED_ROUNDS,
                PAIRED_OS_BATCHES * batch_len as u64,
                || topic.run(&batches, 1, PAIRED_OS_BATCHES),
                || baseline::raw_append_timed(&raw_dir, &chunk, PAIRED_OS_BATCHES * chunk.len() as u64).expect("raw"),
            );
            println!("paired partitions/os/{partitions} (segment_os vs raw_write): {p}");
        }
        let started = Instant::now();
        topic.engine.shutdown().expect("shutdown");
        drop(topic);
        std::fs::remove_dir_all(&engine_dir).expect("remove engine dir");
        eprintln!("partitions: {partitions} partitions shut down and removed in {:?} (untimed)", started.elapsed());

        let mut files = RoundRobinFiles::create(&raw_dir, partitions as usize).expect("raw files");
        sync_all();
        group.bench_function(BenchmarkId::new("raw_files", partitions), |b| {
            b.iter_custom(|iters| files.append(&chunk, iters).expect("raw files"))
        });
    }
    group.finish();
}

/// Whether to run the paired rounds: only in a real benchmark run (`cargo bench`), not under `cargo test
/// --benches`, `--profile-time` or `--list`.
fn paired_enabled() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time" || a == "--list")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    partitions(&mut c);
    c.final_summary();
}
