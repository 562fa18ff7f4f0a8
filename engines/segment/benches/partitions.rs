//! `partitions`: append throughput with 1, 100, 1,000 and 10,000 partitions of one topic written round-robin,
//! 64 KiB batches of 1 KiB records, under `flush.policy=sync` and `flush.policy=os`.
//!
//! - `segment_sync/P`: [`SYNC_PRODUCERS`] producer threads take the next partition in turn, append and wait on
//!   `Appended::durable`, so the engine's group commit can share one flush round between them.
//! - `segment_os/P`: one producer, acknowledged on the page-cache write.
//! - `raw_files/P`: baseline of the same shape without the engine: `write(2)` of the same buffer round-robin to
//!   P plain files in the same temp dir (the files keep growing across samples, as the partitions do). When the
//!   descriptor limit allows these and the engine's partitions to be open at once, they are created beside the
//!   partitions and the `os` run is paired with them too; otherwise they are measured after the engine is gone.
//! - `raw_write` and `raw_write_fdatasync`: the single-file baselines (a fresh file per sample, `write(2)` of
//!   the same buffer, the latter with an `fdatasync(2)` after each write).
//!
//! Under `os` the partitions (and the raw files) keep growing from sample to sample; so that no sample shares the
//! disk with, or is throttled for, the write-back of an earlier one, `sync(1)` writes back what is dirty before
//! each sample and each paired round (untimed). The single-file baselines need no such step: they remove their
//! file after each sample. Even so, on this machine appending to files that already hold gigabytes costs several
//! times more than appending to a fresh file, for plain `write(2)` as much as for the engine (see the README);
//! `raw_files/P` is the baseline that grows the same way.
//!
//! For each P the topic is created once and every partition loaded with a few small untimed appends (enough to
//! write the first index entries); then `sync(1)` writes back everything dirty so that the timed part starts
//! from a clean page cache; the `sync` run comes first (it adds little data), the `os` run continues the same
//! round-robin on the same topic. The engine uses `max_index_bytes` = [`INDEX_BYTES`] instead of the default
//! 10 MiB: with the default, the first write into each freshly mapped index makes the kernel read ahead (and
//! zero-fill) 8 MiB of it, 16 MiB of page cache per partition, which for 10,000 partitions is more memory
//! than this machine has (see the README). An iteration is one 64 KiB append (or raw write).
//!
//! After each engine run, the same appends run again in alternation with a baseline ([`baseline::paired`],
//! [`PAIRED_ROUNDS`] rounds; `sync` against `raw_write_fdatasync`, `os` against `raw_write` and, when they
//! are open at the same time, `raw_files/P`) and the medians and the per-round ratios are printed.
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
use janus_bench_support::{self as baseline, RoundRobinFiles, Stopwatch, Timing};
use janus_segment::{SegmentEngine, SegmentOptions};

/// The partition counts measured, largest first: its setup (30,000 files) is the slowest and suffers most from
/// files removed shortly before.
const PARTITION_COUNTS: [u32; 4] = [10_000, 1_000, 100, 1];
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
/// Descriptors kept free for everything but partitions and raw files (sockets, criterion's files, ...).
const FD_MARGIN: u64 = 256;
/// Topic name.
const TOPIC: &str = "parts";
/// Rounds of each paired measurement (engine and a baseline alternating).
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

/// Writes back every dirty page of the machine, so that a timed part neither shares the disk with write-back left
/// over from setup or earlier samples nor gets throttled for dirty data it did not write.
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

/// Raises the soft descriptor limit to `needed` if the hard limit allows; returns whether `needed` descriptors
/// are available.
fn raise_fd_limit(needed: u64) -> bool {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return false };
    soft >= needed || (hard >= needed && setrlimit(Resource::RLIMIT_NOFILE, needed, hard).is_ok())
}

fn partitions(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..DISTINCT_BATCHES).map(|s| build_batch(s, RECORDS_PER_BATCH)).collect();
    let batch_len = batches[0].len();
    let chunk = batches[0].as_bytes().to_vec();
    let root = tempfile::tempdir().expect("temp dir");
    let paired = baseline::paired_enabled();
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

    let mut kept = Vec::new();
    for partitions in PARTITION_COUNTS {
        let started = Instant::now();
        // The raw files are created beside the engine's partitions when the descriptor limit allows both sets to be
        // open (then the `os` run is also paired with them), else after the engine is dropped.
        let together = raise_fd_limit(2 * partitions as u64 + FD_MARGIN);
        let mut files = together.then(|| RoundRobinFiles::create(&raw_dir, partitions as usize).expect("raw files"));
        let engine_dir = root.path().join(format!("engine-{partitions}"));
        let topic = Topic::create(&engine_dir, partitions);
        let created = started.elapsed();
        sync_all();
        eprintln!(
            "partitions: {partitions} partitions created and loaded in {created:?}, then sync(1) in {:?} (untimed)",
            started.elapsed() - created
        );

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
            b.iter_custom(|iters| {
                sync_all();
                topic.run(&batches, 1, iters).wall
            })
        });
        if paired {
            let p = baseline::paired(
                PAIRED_ROUNDS,
                PAIRED_OS_BATCHES * batch_len as u64,
                || {
                    sync_all();
                    topic.run(&batches, 1, PAIRED_OS_BATCHES)
                },
                || baseline::raw_append_timed(&raw_dir, &chunk, PAIRED_OS_BATCHES * chunk.len() as u64).expect("raw"),
            );
            println!("paired partitions/os/{partitions} (segment_os vs raw_write): {p}");
            if let Some(files) = files.as_mut() {
                let p = baseline::paired(
                    PAIRED_ROUNDS,
                    PAIRED_OS_BATCHES * batch_len as u64,
                    || {
                        sync_all();
                        topic.run(&batches, 1, PAIRED_OS_BATCHES)
                    },
                    || {
                        sync_all();
                        files.append_timed(&chunk, PAIRED_OS_BATCHES).expect("raw files")
                    },
                );
                println!("paired partitions/os/{partitions} (segment_os vs raw_files/{partitions}): {p}");
            }
        }
        // Dropped without `shutdown` (which would write back everything appended); the segments and the raw
        // files are emptied rather than removed, and everything is removed at the end (see `truncate_logs`).
        drop(topic);
        truncate_logs(&engine_dir);
        let mut files = match files {
            Some(files) => files,
            None => {
                let files = RoundRobinFiles::create(&raw_dir, partitions as usize).expect("raw files");
                sync_all();
                files
            }
        };
        group.bench_function(BenchmarkId::new("raw_files", partitions), |b| {
            b.iter_custom(|iters| {
                sync_all();
                files.append(&chunk, iters).expect("raw files")
            })
        });
        files.truncate_all().expect("truncate raw files");
        kept.push(files);
    }
    group.finish();
    let started = Instant::now();
    drop(kept);
    drop(root);
    eprintln!("partitions: files removed in {:?} (untimed)", started.elapsed());
}

/// Truncates every `.log` under `dir` to zero bytes: frees the data appended (dropping what was not yet written
/// back) without removing files. On this machine's ext4, creating files shortly after removing many others is
/// slow (the inode allocator skips recently freed inodes one by one), so files are removed only at the end.
fn truncate_logs(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("engine dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            truncate_logs(&path);
        } else if path.extension().is_some_and(|e| e == "log") {
            std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(0)).expect("truncate log");
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    partitions(&mut c);
    c.final_summary();
}
