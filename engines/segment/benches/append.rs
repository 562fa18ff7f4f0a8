//! `append`: one partition, 1 KiB records in batches of 64 (about 64 KiB each), `flush.policy=os`, the default
//! 1 GiB `segment.bytes` (no roll happens within a sample), against plain sequential `write(2)` of a buffer of
//! the same size to a fresh file in the same temp dir.
//!
//! - `segment`: one producer (the calling thread) appends.
//! - `segment_4p`: [`PRODUCERS`] threads append to the same one partition, taking the next batch from a shared
//!   counter, so the partition's serialization (offset assignment and the write) is what is measured. Its
//!   baseline is the same `raw_write` of the same bytes from one thread: what the file can take at best.
//!
//! Every sample appends to a fresh engine and topic, created (and its partition loaded and its indexes started
//! with two untimed appends) before the timing starts and removed after it stops, just as the baseline writes a
//! fresh file and removes it afterwards. The engine is dropped without `shutdown`, which would fsync the data.
//! The batches are built once up front; each append passes a clone (a reference-counted `Bytes`).
//!
//! After the criterion group, the same two measurements run again in alternation ([`baseline::paired`]),
//! [`PAIRED_ROUNDS`] rounds of [`PAIRED_BATCHES`] batches each, and the medians and the per-round ratio are
//! printed: on a shared machine that ratio is steadier than one of two criterion runs taken seconds apart.
//!
//! Run with `cargo bench -p janus-segment --bench append`.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use janus_api::{Compression, Engine, NewRecord, RecordBatch, TopicPartition, TopicSpec, now_ms};
use janus_bench_support::{self as baseline, Stopwatch, Timing};
use janus_segment::{SegmentEngine, SegmentOptions};

/// Value size of every record.
const RECORD_BYTES: usize = 1024;
/// Records per batch: 64 KiB of values.
const RECORDS_PER_BATCH: usize = 64;
/// Distinct batches cycled through (their contents differ; their sizes are equal).
const DISTINCT_BATCHES: usize = 16;
/// Appends made to a fresh partition before the timing starts: the first loads the partition, the second writes
/// the first index entries.
const UNTIMED_APPENDS: usize = 2;
/// Producer threads of the `segment_4p` case.
const PRODUCERS: usize = 4;
/// Rounds of the paired measurement (engine and baseline alternating).
const PAIRED_ROUNDS: usize = 40;
/// Batches appended (and chunks written) per paired round: about 16 MiB.
const PAIRED_BATCHES: u64 = 256;

/// A batch of [`RECORDS_PER_BATCH`] records of [`RECORD_BYTES`] bytes each, filled from `seed`.
fn build_batch(seed: usize) -> RecordBatch {
    let ts = now_ms();
    let records: Vec<NewRecord> = (0..RECORDS_PER_BATCH)
        .map(|i| NewRecord {
            value: Some(Bytes::from(vec![(seed * 31 + i) as u8; RECORD_BYTES])),
            timestamp_ms: ts,
            ..NewRecord::default()
        })
        .collect();
    RecordBatch::build(&records, Compression::None).expect("benchmark batch builds")
}

/// Appends `iters` batches to the one partition of a fresh engine over `root/engine-<sample>` and returns the
/// time the appends took. The engine is then dropped without `shutdown` (which would fsync what was written)
/// and its directory removed, as the baseline removes its file.
fn engine_sample(root: &Path, batches: &[RecordBatch], sample: usize, iters: u64, producers: usize) -> Timing {
    let dir = root.join(format!("engine-{sample}"));
    let engine = SegmentEngine::open(&dir, SegmentOptions::default()).expect("open engine");
    engine.create_topic(&TopicSpec::new("append", 1)).expect("create topic");
    let tp = TopicPartition::new("append", 0);
    // Loads the partition (creating its first segment) and writes the first entry of each index, which maps in
    // the preallocated index files (a one-off cost per segment, reported in the README, not what is measured).
    for batch in &batches[..UNTIMED_APPENDS] {
        engine.append(&tp, batch.clone()).expect("untimed append").durable.wait().expect("os policy is ready");
    }
    let next = AtomicU64::new(0);
    let produce = || {
        // Bounded: every thread stops once the shared counter passes `iters`.
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= iters {
                break;
            }
            let appended = engine.append(&tp, batches[i as usize % batches.len()].clone()).expect("append");
            appended.durable.wait().expect("os policy is ready");
            black_box(appended.base_offset);
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
        // The calling thread's CPU time says nothing about the producers': not measured.
        Timing { wall: watch.stop().wall, cpu: Duration::ZERO }
    };
    let end = engine.offsets(&tp).expect("offsets").log_end;
    assert_eq!(end as u64, (UNTIMED_APPENDS as u64 + iters) * RECORDS_PER_BATCH as u64, "offsets are dense");
    drop(engine);
    std::fs::remove_dir_all(&dir).expect("remove engine dir");
    timing
}

fn append(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..DISTINCT_BATCHES).map(build_batch).collect();
    let batch_len = batches[0].len();
    assert!(batches.iter().all(|b| b.len() == batch_len));
    let chunk = batches[0].as_bytes().to_vec();
    let dir = tempfile::tempdir().expect("temp dir");
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir(&raw_dir).expect("raw dir");

    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(batch_len as u64));
    let mut sample = 0;
    group.bench_function("segment", |b| {
        b.iter_custom(|iters| {
            sample += 1;
            engine_sample(dir.path(), &batches, sample, iters, 1).wall
        })
    });
    group.bench_function("segment_4p", |b| {
        b.iter_custom(|iters| {
            sample += 1;
            engine_sample(dir.path(), &batches, sample, iters, PRODUCERS).wall
        })
    });
    group.bench_function("raw_write", |b| {
        b.iter_custom(|iters| raw_sample(&raw_dir, &chunk, iters).wall);
    });
    group.finish();

    if baseline::paired_enabled() {
        let bytes = PAIRED_BATCHES * batch_len as u64;
        for (name, producers) in [("segment", 1), ("segment_4p", PRODUCERS)] {
            let p = baseline::paired(
                PAIRED_ROUNDS,
                bytes,
                || {
                    sample += 1;
                    engine_sample(dir.path(), &batches, sample, PAIRED_BATCHES, producers)
                },
                || raw_sample(&raw_dir, &chunk, PAIRED_BATCHES),
            );
            println!("paired append ({name} vs raw_write, {PAIRED_BATCHES} batches a round): {p}");
        }
    }
}

/// The baseline: `iters` writes of `chunk` to a fresh file.
fn raw_sample(dir: &Path, chunk: &[u8], iters: u64) -> Timing {
    baseline::raw_append_timed(dir, chunk, iters * chunk.len() as u64).expect("raw append")
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    append(&mut c);
    c.final_summary();
}
