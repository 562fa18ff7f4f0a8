//! `janus bench produce|consume`: throughput and latency of one client.
//!
//! Produce latency is measured per produce request (from sending a batch to its acknowledgement; per
//! stream in stream mode). Consume latency is measured per response batch: the interval between two
//! consecutive batches handed to the application (at steady state, the time one batch takes end to end).
//! Both are recorded in an HDR histogram in microseconds. MB is 10^6 bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{BenchCommand, BenchConsumeArgs, BenchProduceArgs, BenchReadMode, BenchSendMode};
use super::{CliError, Io};
use crate::client::Client;
use crate::consumer::{ConsumerConfig, FetchMode};
use crate::producer::{ProducerConfig, RequestObserver, SendMode};
use crate::record::ProducerRecord;
use crate::types::Position;

pub(crate) async fn run(client: &Client, cmd: BenchCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let line = match cmd {
        BenchCommand::Produce(args) => produce(client, args).await?,
        BenchCommand::Consume(args) => consume(client, args).await?,
    };
    writeln!(io.stdout, "{line}").map_err(CliError::io("writing output"))
}

fn check_common(messages: u64, size: usize, concurrency: usize) -> Result<(), CliError> {
    if messages == 0 || concurrency == 0 {
        return Err(CliError::Usage("--messages and --concurrency must be at least 1".into()));
    }
    if size > 64 * 1024 * 1024 {
        return Err(CliError::Usage("--size must be at most 64 MiB".into()));
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour, 3 significant digits; the bounds are constants, so creation cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} msgs ({per_sec}, eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// A payload of lowercase letters from a fixed pseudo-random sequence (compressible like text).
fn payload(size: usize) -> Bytes {
    let mut x: u32 = 0x2545_f491;
    let v: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'a' + (x % 26) as u8
        })
        .collect();
    Bytes::from(v)
}

fn summary(
    what: &str,
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    latency_label: &str,
    hist: &Histogram<u64>,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{what}: {messages} messages, {bytes} bytes in {secs:.3} s: {:.0} msg/s, {:.1} MB/s; latency per {latency_label} \
         (n={}): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        messages as f64 / secs,
        bytes as f64 / secs / 1e6,
        hist.len(),
        ms(hist.value_at_quantile(0.50)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.max()),
    )
}

async fn produce(client: &Client, args: BenchProduceArgs) -> Result<String, CliError> {
    let c = &args.common;
    check_common(c.messages, c.size, c.concurrency)?;
    let hist = Arc::new(Mutex::new(histogram()));
    let bar = progress(c.messages);
    let observer: RequestObserver = {
        let (hist, bar) = (hist.clone(), bar.clone());
        Arc::new(move |r| {
            if r.ok {
                let us = r.latency.as_micros().clamp(1, u128::from(u64::MAX)) as u64;
                let _ = hist.lock().unwrap_or_else(|p| p.into_inner()).record(us);
                bar.inc(r.messages as u64);
            }
        })
    };
    let mode = match args.mode {
        BenchSendMode::Unary => SendMode::Unary,
        BenchSendMode::Stream => SendMode::Stream,
    };
    let config = ProducerConfig {
        batch_bytes: args.batch_bytes.max(1),
        linger: Duration::from_millis(args.linger_ms),
        max_buffered_bytes: (64 * 1024 * 1024).max(args.batch_bytes.saturating_mul(4 * c.concurrency)),
        max_in_flight: c.concurrency,
        wait_durable: args.durable,
        compression: Some(args.compression),
        mode,
        observer: Some(observer),
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    // Check that the topic exists before drawing a progress bar.
    client.describe_topic(&c.topic).await?;
    let value = payload(c.size);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(c.concurrency);
    for task in 0..c.concurrency as u64 {
        let share = c.messages / c.concurrency as u64 + u64::from(task < c.messages % c.concurrency as u64);
        let (producer, value, topic, partition) = (producer.clone(), value.clone(), c.topic.clone(), args.partition);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let mut record = ProducerRecord::new(topic.clone(), value.clone());
                record.partition = partition;
                drop(producer.send(record).await?);
            }
            Ok::<(), crate::error::ClientError>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| CliError::Failed(format!("a sending task failed: {e}")))??;
    }
    let appends = producer.close().await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let acked: u64 = appends.iter().map(|a| a.count()).sum();
    let hist = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let label = match mode {
        SendMode::Unary => "produce request",
        SendMode::Stream => "produce stream",
    };
    Ok(summary("bench produce", acked, acked * c.size as u64, elapsed, label, &hist))
}

async fn consume(client: &Client, args: BenchConsumeArgs) -> Result<String, CliError> {
    let c = &args.common;
    check_common(c.messages, c.size, c.concurrency)?;
    let description = client.describe_topic(&c.topic).await?;
    let partitions: Vec<u32> = description.partitions.iter().map(|p| p.partition).collect();
    if partitions.is_empty() {
        return Err(CliError::Failed(format!("topic {} has no partitions", c.topic)));
    }
    let consumers = c.concurrency.min(partitions.len());
    let total = Arc::new(AtomicU64::new(0));
    let bar = progress(c.messages);
    let idle = Duration::from_millis(args.timeout_ms.max(1));
    let mode = match args.mode {
        BenchReadMode::Subscribe => FetchMode::Subscribe,
        BenchReadMode::Fetch => FetchMode::Fetch { max_wait: Duration::from_millis(500) },
    };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(consumers);
    for i in 0..consumers {
        let mine: Vec<u32> = partitions.iter().copied().filter(|p| *p as usize % consumers == i).collect();
        let config = ConsumerConfig {
            partitions: Some(mine),
            start: Position::Earliest,
            max_bytes: args.max_bytes,
            mode,
            auto_commit: None,
            ..ConsumerConfig::default()
        };
        let (client, topic, total, bar, target) =
            (client.clone(), c.topic.clone(), total.clone(), bar.clone(), c.messages);
        tasks.push(tokio::spawn(async move {
            let mut consumer = client.consumer(&topic, config).await?;
            let mut hist = histogram();
            let mut bytes = 0u64;
            let mut last = Instant::now();
            let mut last_data = Instant::now();
            while total.load(Ordering::Relaxed) < target && last_data.elapsed() < idle {
                let Some(batch) = consumer.poll_batch(Some(Duration::from_millis(100))).await? else { continue };
                let now = Instant::now();
                let _ = hist.record((now - last).as_micros().clamp(1, u128::from(u64::MAX)) as u64);
                last = now;
                last_data = now;
                let n = batch.records.len() as u64;
                bytes += batch.records.iter().map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64).sum::<u64>();
                total.fetch_add(n, Ordering::Relaxed);
                bar.inc(n);
            }
            Ok::<_, crate::error::ClientError>((hist, bytes))
        }));
    }
    let mut hist = histogram();
    let mut bytes = 0u64;
    for t in tasks {
        let (h, b) = t.await.map_err(|e| CliError::Failed(format!("a consuming task failed: {e}")))??;
        let _ = hist.add(&h);
        bytes += b;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let got = total.load(Ordering::Relaxed);
    if got < c.messages {
        return Err(CliError::Failed(format!(
            "only {got} of {} messages arrived (nothing new for {} ms); produce them first with `janus bench produce`",
            c.messages, args.timeout_ms
        )));
    }
    let label = match args.mode {
        BenchReadMode::Subscribe => "Subscribe response batch (interval between batches)",
        BenchReadMode::Fetch => "Fetch response batch (interval between batches)",
    };
    Ok(summary("bench consume", got, bytes, elapsed, label, &hist))
}
