//! `janus bench produce|consume`: throughput and latency of one client, and the broker's CPU cost.
//!
//! Produce latency is measured per produce request (from sending a batch to its acknowledgement; per
//! stream in stream mode). Consume latency is measured per response batch: the interval between two
//! consecutive batches handed to the application (at steady state, the time one batch takes end to end).
//! Both are recorded in an HDR histogram in microseconds. MB is 10^6 bytes, GB 10^9 bytes, of message values.
//!
//! The broker's CPU is read from its own metrics: `process_cpu_seconds_total` scraped from `--metrics` just
//! before and just after the measured phase. The difference is divided by the GB of values moved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{
    BenchCommand, BenchConsumeArgs, BenchProduceArgs, BenchReadMode, BenchRecordCodec, BenchSendMode, BenchWireFormat,
};
use super::broker_cpu::{CpuProbe, ScrapeError};
use super::{CliError, Io};
use crate::client::Client;
use crate::consumer::{ConsumerConfig, FetchMode, ReadFormat};
use crate::producer::{ProducerConfig, RecordCompression, RequestObserver, SendMode, WireFormat};
use crate::record::ProducerRecord;
use crate::types::Position;

pub(crate) async fn run(client: &Client, cmd: BenchCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let (report, json) = match cmd {
        BenchCommand::Produce(args) => {
            let json = args.common.json;
            (produce(client, args).await?, json)
        }
        BenchCommand::Consume(args) => {
            let json = args.common.json;
            (consume(client, args).await?, json)
        }
    };
    let text = if json { report.json().to_string() } else { report.line() };
    writeln!(io.stdout, "{text}").map_err(CliError::io("writing output"))
}

/// What one benchmark run measured.
struct Report {
    /// `produce` or `consume`.
    what: &'static str,
    /// `unary`, `stream`, `subscribe` or `fetch`.
    mode: &'static str,
    messages: u64,
    /// Bytes of message values.
    bytes: u64,
    elapsed: Duration,
    /// What one latency sample is, in one word: `request`, `stream` or `batch`.
    latency_unit: &'static str,
    /// The same, for the summary line.
    latency_label: &'static str,
    hist: Histogram<u64>,
    /// The broker's CPU seconds during the run, or why they are unknown.
    broker_cpu: Result<f64, ScrapeError>,
}

impl Report {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.secs()
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs() / 1e6
    }

    /// Latency quantile in ms (p50, p99, p99.9) or the maximum (`q` = 1).
    fn ms(&self, q: f64) -> f64 {
        let us = if q >= 1.0 { self.hist.max() } else { self.hist.value_at_quantile(q) };
        us as f64 / 1000.0
    }

    /// Broker CPU seconds per GB (10^9 bytes) of values; `None` without CPU figure or without bytes.
    fn cpu_per_gb(&self) -> Option<f64> {
        match (&self.broker_cpu, self.bytes) {
            (Ok(cpu), bytes) if bytes > 0 => Some(cpu / (bytes as f64 / 1e9)),
            _ => None,
        }
    }

    /// The human-readable summary line.
    fn line(&self) -> String {
        let cpu = match (&self.broker_cpu, self.cpu_per_gb()) {
            (Ok(cpu), Some(per_gb)) => format!("broker CPU {cpu:.3} s, {per_gb:.2} s/GB"),
            (Ok(cpu), None) => format!("broker CPU {cpu:.3} s"),
            (Err(e), _) => format!("broker CPU unavailable: {e}"),
        };
        format!(
            "bench {}: {} messages, {} bytes in {:.3} s: {:.0} msg/s, {:.1} MB/s; latency per {} (n={}): \
             p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; {cpu}",
            self.what,
            self.messages,
            self.bytes,
            self.secs(),
            self.msgs_per_s(),
            self.mb_per_s(),
            self.latency_label,
            self.hist.len(),
            self.ms(0.50),
            self.ms(0.99),
            self.ms(0.999),
            self.ms(1.0),
        )
    }

    /// The report as one JSON object (figures that are unknown are `null`, and `broker_cpu_error` says why).
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "what": self.what,
            "mode": self.mode,
            "messages": self.messages,
            "bytes": self.bytes,
            "seconds": self.secs(),
            "msgs_per_s": self.msgs_per_s(),
            "mb_per_s": self.mb_per_s(),
            "latency_unit": self.latency_unit,
            "latency_ms": {
                "p50": self.ms(0.50),
                "p99": self.ms(0.99),
                "p999": self.ms(0.999),
                "max": self.ms(1.0),
                "count": self.hist.len(),
            },
            "broker_cpu_s": self.broker_cpu.as_ref().ok(),
            "broker_cpu_s_per_gb": self.cpu_per_gb(),
            "broker_cpu_error": self.broker_cpu.as_ref().err().map(ToString::to_string),
        })
    }
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

async fn produce(client: &Client, args: BenchProduceArgs) -> Result<Report, CliError> {
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
    let record_compression = match args.record_compression {
        BenchRecordCodec::None => RecordCompression::None,
        BenchRecordCodec::Gzip => RecordCompression::Gzip,
        BenchRecordCodec::Snappy => RecordCompression::Snappy,
        BenchRecordCodec::Lz4 => RecordCompression::Lz4,
        BenchRecordCodec::Zstd => RecordCompression::Zstd,
    };
    let format = match args.format {
        BenchWireFormat::Batches => WireFormat::Batches,
        BenchWireFormat::Messages => WireFormat::Messages,
    };
    let config = ProducerConfig {
        format,
        record_compression,
        batch_bytes: args.batch_bytes.max(1),
        linger: Duration::from_millis(args.linger_ms),
        max_buffered_bytes: (64 * 1024 * 1024).max(args.batch_bytes.saturating_mul(4 * c.concurrency)),
        max_in_flight: c.concurrency,
        wait_durable: args.durable,
        compression: Some(args.compression),
        mode,
        observer: Some(observer),
        message_ids: args.message_ids,
        idempotent: !args.no_idempotence,
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    // Check that the topic exists before drawing a progress bar.
    client.describe_topic(&c.topic).await?;
    let value = payload(c.size);
    let cpu = CpuProbe::start(&c.metrics).await;
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
    let broker_cpu = cpu.finish().await;
    bar.finish_and_clear();
    let acked: u64 = appends.iter().map(|a| a.count()).sum();
    let hist = hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (mode, latency_unit, latency_label) = match mode {
        SendMode::Unary => ("unary", "request", "produce request"),
        SendMode::Stream => ("stream", "stream", "produce stream"),
    };
    Ok(Report {
        what: "produce",
        mode,
        messages: acked,
        bytes: acked * c.size as u64,
        elapsed,
        latency_unit,
        latency_label,
        hist,
        broker_cpu,
    })
}

async fn consume(client: &Client, args: BenchConsumeArgs) -> Result<Report, CliError> {
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
    let cpu = CpuProbe::start(&c.metrics).await;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(consumers);
    for i in 0..consumers {
        let mine: Vec<u32> = partitions.iter().copied().filter(|p| *p as usize % consumers == i).collect();
        let config = ConsumerConfig {
            format: match args.format {
                BenchWireFormat::Batches => ReadFormat::Batches,
                BenchWireFormat::Messages => ReadFormat::Messages,
            },
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
    let broker_cpu = cpu.finish().await;
    bar.finish_and_clear();
    let got = total.load(Ordering::Relaxed);
    if got < c.messages {
        return Err(CliError::Failed(format!(
            "only {got} of {} messages arrived (nothing new for {} ms); produce them first with `janus bench produce`",
            c.messages, args.timeout_ms
        )));
    }
    let (mode, latency_label) = match args.mode {
        BenchReadMode::Subscribe => ("subscribe", "Subscribe response batch (interval between batches)"),
        BenchReadMode::Fetch => ("fetch", "Fetch response batch (interval between batches)"),
    };
    Ok(Report {
        what: "consume",
        mode,
        messages: got,
        bytes,
        elapsed,
        latency_unit: "batch",
        latency_label,
        hist,
        broker_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::broker_cpu::CPU_METRIC;
    #[test]
    fn the_report_has_every_figure() {
        let mut hist = histogram();
        for us in [1_000, 2_000, 3_000, 50_000] {
            hist.record(us).unwrap();
        }
        let mut report = Report {
            what: "produce",
            mode: "unary",
            messages: 1000,
            bytes: 500_000_000,
            elapsed: Duration::from_secs(2),
            latency_unit: "request",
            latency_label: "produce request",
            hist,
            broker_cpu: Ok(1.5),
        };
        let j = report.json();
        assert_eq!(j["mb_per_s"], 250.0);
        assert_eq!(j["msgs_per_s"], 500.0);
        assert_eq!(j["broker_cpu_s"], 1.5);
        assert_eq!(j["broker_cpu_s_per_gb"], 3.0);
        assert!(j["broker_cpu_error"].is_null());
        assert_eq!(j["latency_ms"]["count"], 4);
        assert!(j["latency_ms"]["max"].as_f64().unwrap() >= 50.0);
        let line = report.line();
        assert!(
            line.contains("500 msg/s, 250.0 MB/s") && line.contains("p99.9") && line.contains("3.00 s/GB"),
            "{line}"
        );
        report.broker_cpu = Err(ScrapeError::Missing);
        let j = report.json();
        assert!(j["broker_cpu_s"].is_null() && j["broker_cpu_s_per_gb"].is_null());
        assert!(j["broker_cpu_error"].as_str().unwrap().contains(CPU_METRIC));
        assert!(report.line().contains("broker CPU unavailable: the metrics have no"), "{}", report.line());
    }
}
