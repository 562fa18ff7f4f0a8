//! `read_sendfile`: a consumer's sequential read of a whole partition (256 MiB of 64 KiB batches, written up
//! front and warm in the page cache) through `Engine::read` with a 1 MiB `max_bytes`, each slice shipped with
//! `janus_transfer::send_file_range` to a loopback tokio socket whose other end a thread drains, following `next_offset` to the
//! log end; against plain blocking `sendfile(2)` of a cached file of the same size to another loopback socket
//! drained the same way. An iteration ends when the last byte has been read by the draining thread.
//!
//! After the criterion group, the same two passes run again in alternation ([`baseline::paired`],
//! [`PAIRED_ROUNDS`] rounds) and the medians and the per-round ratio are printed.
//!
//! `Engine::read` is called on the runtime thread (it only reads batch headers with `pread`), which is fine for
//! a benchmark with a single-threaded runtime and nothing else to run.
//!
//! Run with `cargo bench -p janus-segment --bench read_sendfile`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput};
use janus_api::{
    Compression, Engine, NewRecord, ReadSlice, RecordBatch, TopicPartition, TopicSpec, now_ms,
};
use janus_bench_support::{self as baseline, LoopbackDrain, Stopwatch, cached_file};
use janus_segment::{SegmentEngine, SegmentOptions};
use janus_transfer::send_file_range;

/// Bytes of values written to the partition before reading.
const PARTITION_BYTES: usize = 256 << 20;
/// Value size of every record.
const RECORD_BYTES: usize = 1024;
/// Records per batch.
const RECORDS_PER_BATCH: usize = 64;
/// `max_bytes` of every read.
const MAX_BYTES: usize = 1 << 20;
/// Rounds of the paired measurement (one whole pass of each a round).
const PAIRED_ROUNDS: usize = 10;

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

/// Reads the whole partition and sends every slice; returns the bytes sent.
async fn read_all(engine: &SegmentEngine, tp: &TopicPartition, socket: &tokio::net::TcpStream) -> u64 {
    let mut offset = engine.offsets(tp).expect("offsets").log_start;
    let mut sent = 0;
    loop {
        match engine.read(tp, offset, MAX_BYTES).expect("read") {
            ReadSlice::Empty { .. } => return sent,
            ReadSlice::File { file, position, len, next_offset } => {
                sent += send_file_range(socket, &file, position, u64::from(len)).await.expect("sendfile");
                offset = next_offset;
            }
            ReadSlice::Mapped { .. } => panic!("the segment engine returned a mapped slice"),
        }
    }
}

fn read_sendfile(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = SegmentEngine::open(&dir.path().join("engine"), SegmentOptions::default()).expect("open engine");
    engine.create_topic(&TopicSpec::new("read", 1)).expect("create topic");
    let tp = TopicPartition::new("read", 0);
    let batches: Vec<RecordBatch> = (0..16).map(build_batch).collect();
    let count = PARTITION_BYTES / (RECORD_BYTES * RECORDS_PER_BATCH);
    for i in 0..count {
        engine.append(&tp, batches[i % batches.len()].clone()).expect("append").durable.wait().expect("os policy");
    }
    let total_bytes = (count * batches[0].len()) as u64;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("tokio runtime");
    let engine_drain = LoopbackDrain::new().expect("loopback pair");
    let socket = {
        let std_socket = engine_drain.clone_sender().expect("socket clone");
        std_socket.set_nonblocking(true).expect("non-blocking");
        let _entered = runtime.enter();
        tokio::net::TcpStream::from_std(std_socket).expect("tokio socket")
    };
    // One untimed pass pulls any page not yet cached back in and checks the byte count.
    let first = runtime.block_on(read_all(&engine, &tp, &socket));
    assert_eq!(first, total_bytes, "one pass must send the whole partition");
    engine_drain.wait_received(first, Duration::from_secs(60)).expect("drained");

    let raw_drain = LoopbackDrain::new().expect("loopback pair");
    let raw_file = cached_file(dir.path(), total_bytes).expect("cached file");

    let mut group = c.benchmark_group("read_sendfile");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(total_bytes));
    let engine_pass = || {
        let watch = Stopwatch::start();
        let target = engine_drain.received() + total_bytes;
        let sent = runtime.block_on(read_all(&engine, &tp, &socket));
        assert_eq!(sent, total_bytes);
        engine_drain.wait_received(target, Duration::from_secs(60)).expect("drained");
        watch.stop()
    };
    group.bench_function("segment", |b| b.iter_custom(|iters| (0..iters).map(|_| engine_pass().wall).sum()));
    group.bench_function("raw_sendfile", |b| {
        b.iter_custom(|iters| {
            (0..iters).map(|_| raw_drain.raw_sendfile(&raw_file, total_bytes).expect("sendfile")).sum()
        })
    });
    group.finish();

    if baseline::paired_enabled() {
        let p = baseline::paired(PAIRED_ROUNDS, total_bytes, engine_pass, || {
            raw_drain.raw_sendfile_timed(&raw_file, total_bytes).expect("sendfile")
        });
        println!("paired read_sendfile (segment vs raw_sendfile, {total_bytes} bytes a round): {p}");
    }
    drop(socket);
    engine.shutdown().expect("shutdown");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    read_sendfile(&mut c);
    c.final_summary();
}
