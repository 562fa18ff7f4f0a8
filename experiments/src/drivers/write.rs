//! In-process writes through the `Engine` trait: producer threads appending prebuilt batches round-robin
//! over the partitions, closed loop or paced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use janus_api::{Engine, TopicPartition, TopicSpec};

use crate::data::Prebuilt;
use crate::measure::{self, Pacer, Phase, Took};

/// When a write phase stops: after this many messages or this long, whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Messages to write in all.
    pub messages: u64,
    /// Longest time to keep writing.
    pub duration: Duration,
}

/// What a write phase did.
#[derive(Debug)]
pub struct Written {
    /// Messages acknowledged.
    pub messages: u64,
    /// Payload bytes acknowledged.
    pub payload_bytes: u64,
    /// Batch bytes appended (what the engine was handed).
    pub batch_bytes: u64,
    /// Time and CPU taken.
    pub took: Took,
    /// Latency of each append until it was durable as the topic's flush policy promises (µs); from the due
    /// time when paced.
    pub latency: Histogram<u64>,
}

/// Every partition of `specs`, in a fixed order.
pub fn partitions(specs: &[TopicSpec]) -> Vec<TopicPartition> {
    specs.iter().flat_map(|s| (0..s.partitions).map(move |p| TopicPartition::new(s.name.clone(), p))).collect()
}

/// Totals of one producer thread.
#[derive(Default)]
struct Totals {
    messages: u64,
    payload_bytes: u64,
    batch_bytes: u64,
}

/// Runs `producers` threads appending `batches` (cycled) round-robin over every partition of `specs` until
/// `limit`. With `paced_batches_per_s`, appends follow an open-loop schedule shared by all producers.
pub fn write(
    engine: &Arc<dyn Engine>,
    specs: &[TopicSpec],
    producers: usize,
    batches: &Arc<Vec<Prebuilt>>,
    limit: Limit,
    paced_batches_per_s: Option<f64>,
) -> Result<Written> {
    let targets = Arc::new(partitions(specs));
    let per_batch = batches.first().map_or(1, |b| b.messages.max(1));
    let total_batches = limit.messages.div_ceil(per_batch);
    let claimed = Arc::new(AtomicU64::new(0));
    let pacer = paced_batches_per_s.map(Pacer::new);
    let deadline = Instant::now() + limit.duration;
    let phase = Phase::start();
    let threads: Vec<_> = (0..producers)
        .map(|id| {
            let (engine, targets, batches, claimed) =
                (Arc::clone(engine), Arc::clone(&targets), Arc::clone(batches), Arc::clone(&claimed));
            std::thread::Builder::new()
                .name(format!("producer-{id}"))
                .spawn(move || produce(&*engine, &targets, &batches, &claimed, total_batches, deadline, pacer))
        })
        .collect::<std::io::Result<_>>()
        .context("starting producer threads")?;
    let mut out = Totals::default();
    let mut latency = measure::histogram();
    for thread in threads {
        let (totals, hist) = thread.join().map_err(|_| anyhow!("a producer thread panicked"))??;
        out.messages += totals.messages;
        out.payload_bytes += totals.payload_bytes;
        out.batch_bytes += totals.batch_bytes;
        latency.add(&hist).context("merging histograms")?;
    }
    Ok(Written {
        messages: out.messages,
        payload_bytes: out.payload_bytes,
        batch_bytes: out.batch_bytes,
        took: phase.stop(),
        latency,
    })
}

/// One producer: claims batch numbers until `total` or the deadline; batch `n` goes to partition `n mod P`.
fn produce(
    engine: &dyn Engine,
    targets: &[TopicPartition],
    batches: &[Prebuilt],
    claimed: &AtomicU64,
    total: u64,
    deadline: Instant,
    pacer: Option<Pacer>,
) -> Result<(Totals, Histogram<u64>)> {
    let mut totals = Totals::default();
    let mut hist = measure::histogram();
    loop {
        let n = claimed.fetch_add(1, Ordering::Relaxed);
        if n >= total || Instant::now() >= deadline {
            return Ok((totals, hist));
        }
        let start = match pacer {
            Some(p) => p.wait(n),
            None => Instant::now(),
        };
        let prebuilt = &batches[n as usize % batches.len()];
        let tp = &targets[n as usize % targets.len()];
        let appended = engine.append(tp, prebuilt.batch.clone()).with_context(|| format!("appending to {tp}"))?;
        appended.durable.wait().with_context(|| format!("waiting for {tp} to be durable"))?;
        measure::record(&mut hist, start.elapsed());
        totals.messages += prebuilt.messages;
        totals.payload_bytes += prebuilt.payload_bytes;
        totals.batch_bytes += prebuilt.batch.as_bytes().len() as u64;
    }
}
