//! Scratch profiler harness (not committed).
use bytes::Bytes;
use janus_api::{Compression, Engine, NewRecord, RecordBatch, TopicConfig, TopicPartition, TopicSpec};
use janus_commitlog::{CommitLogEngine, CommitLogOptions};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let queues: u32 = args[1].parse().unwrap();
    let staged: bool = args[2].parse().unwrap();
    let secs: f64 = args[3].parse().unwrap();
    let threads: usize = args.get(4).map_or(1, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<NewRecord> = (0..64)
        .map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(vec![(i % 251) as u8; 1024])),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect();
    let one = RecordBatch::build(&records, Compression::None).unwrap();
    let opts = CommitLogOptions {
        staged_writes: staged,
        file_bytes: 256 << 20,
        consumequeue_open_files: 10_240,
        index_slots: 1 << 16,
        index_entries: 1 << 20,
        ..CommitLogOptions::default()
    };
    let e = std::sync::Arc::new(CommitLogEngine::open(dir.path(), opts).unwrap());
    let cfg = TopicConfig::default()
        .with_overrides([("flush.policy", "os"), ("retention.ms", "-1"), ("max.message.bytes", "1048576")])
        .unwrap();
    e.create_topic(&TopicSpec { config: cfg, ..TopicSpec::new("q", queues) }).unwrap();
    let tps: Vec<TopicPartition> = (0..queues).map(|q| TopicPartition::new("q", q)).collect();
    for tp in &tps {
        drop(e.append(tp, one.clone()).unwrap().durable);
    }
    eprintln!("setup done");
    let start = Instant::now();
    let n = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (e, tps, one, n) = (&e, &tps, &one, &n);
            s.spawn(move || {
                let mut next = t * tps.len() / threads;
                let mut written = 0u64;
                while start.elapsed() < Duration::from_secs_f64(secs) {
                    for _ in 0..64 {
                        drop(e.append(&tps[next], one.clone()).unwrap().durable);
                        next = (next + 1) % tps.len();
                        written += one.len() as u64;
                    }
                    if written > (1 << 30) / threads as u64 && t == 0 {
                        // keep disk bounded: not timed precisely, rare
                    }
                }
                n.fetch_add(written, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    let el = start.elapsed().as_secs_f64();
    let bytes = n.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "engine queues={queues} staged={staged} threads={threads}: {:.0} MB/s ({} MB)",
        bytes as f64 / el / 1e6,
        bytes / 1_000_000
    );
    if std::env::var("NORAW").is_ok() {
        e.shutdown().unwrap();
        return;
    }
    let buf = vec![7u8; one.len()];
    let d = janus_bench_support::raw_append(dir.path(), &buf, bytes.min(4 << 30)).unwrap();
    println!("raw write: {:.0} MB/s", bytes.min(4 << 30) as f64 / d.as_secs_f64() / 1e6);
    e.shutdown().unwrap();
}
