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
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::args::{
    BenchCommand, BenchConsumeArgs, BenchProduceArgs, BenchReadMode, BenchRecordCodec, BenchSendMode, BenchWireFormat,
};
use super::{CliError, Io};
use crate::client::Client;
use crate::consumer::{ConsumerConfig, FetchMode, ReadFormat};
use crate::producer::{ProducerConfig, RecordCompression, RequestObserver, SendMode, WireFormat};
use crate::record::ProducerRecord;
use crate::types::Position;

/// The broker's CPU counter (user + system seconds of the broker process).
const CPU_METRIC: &str = "process_cpu_seconds_total";
/// How long one scrape of the metrics endpoint may take, connection included.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metrics response read.
const SCRAPE_MAX_BYTES: u64 = 64 * 1024 * 1024;

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

/// Why the broker's CPU counter could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("invalid metrics URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting, sending or reading failed.
    #[error("{context} {addr}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// HOST:PORT.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The endpoint did not answer within [`SCRAPE_TIMEOUT`].
    #[error("the metrics endpoint {0} did not answer within {SCRAPE_TIMEOUT:?}")]
    Timeout(String),
    /// The answer is not `HTTP/1.x 200`.
    #[error("the metrics endpoint answered {0:?}")]
    Status(String),
    /// The metrics have no sample of the counter.
    #[error("the metrics have no {CPU_METRIC} (a janusd older than this client?)")]
    Missing,
    /// The counter's sample is not a finite number.
    #[error("{CPU_METRIC} has the value {0:?}, not a finite number")]
    BadValue(String),
    /// The counter is lower after the run than before it.
    #[error("{CPU_METRIC} went down from {before} to {after} during the run (was the broker restarted?)")]
    WentDown {
        /// Before the run.
        before: f64,
        /// After the run.
        after: f64,
    },
}

/// Splits `http://HOST[:PORT][/PATH]` into `HOST:PORT` (port 80 by default) and the path (`/` by default).
pub(crate) fn split_url(url: &str) -> Result<(String, String), ScrapeError> {
    let invalid = |why| ScrapeError::InvalidUrl { url: url.to_string(), why };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(invalid("only http:// is supported")),
        None => return Err(invalid("expected http://HOST:PORT/PATH")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace) {
        return Err(invalid("expected a host (and port) after http://"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the path may not contain spaces or control characters"));
    }
    // A port follows the last ':' unless that ':' is inside an IPv6 literal ("[::1]").
    let has_port = match authority.rsplit_once(':') {
        Some((host, _)) if host.starts_with('[') && !host.ends_with(']') => false,
        Some((_, port)) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(invalid("the port is not a number"));
        }
        Some(_) => true,
        None => false,
    };
    let addr = if has_port { authority.to_string() } else { format!("{authority}:80") };
    Ok((addr, path.to_string()))
}

/// GETs `url` (plain HTTP/1.0, so the body is neither chunked nor kept alive) and returns the body.
async fn get(url: &str) -> Result<String, ScrapeError> {
    let (addr, path) = split_url(url)?;
    let io = |context| {
        let addr = addr.clone();
        move |source| ScrapeError::Io { context, addr, source }
    };
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(&addr).await.map_err(io("cannot connect to the metrics endpoint"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io("sending the metrics request to"))?;
        let mut response = Vec::new();
        (&mut stream)
            .take(SCRAPE_MAX_BYTES)
            .read_to_end(&mut response)
            .await
            .map_err(io("reading the metrics from"))?;
        Ok::<_, ScrapeError>(response)
    };
    let response =
        tokio::time::timeout(SCRAPE_TIMEOUT, exchange).await.map_err(|_| ScrapeError::Timeout(addr.clone()))??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    let code = status.split_whitespace().nth(1);
    if !status.starts_with("HTTP/1.") || code != Some("200") {
        return Err(ScrapeError::Status(status.chars().take(200).collect()));
    }
    Ok(body.to_string())
}

/// The value of the first sample of the metric `name` in Prometheus text format (labels, if any, are
/// skipped; a timestamp after the value is ignored).
pub(crate) fn parse_metric(text: &str, name: &str) -> Result<f64, ScrapeError> {
    for line in text.lines() {
        let line = line.trim_start();
        let Some(rest) = line.strip_prefix(name) else { continue };
        let rest = match rest.chars().next() {
            Some('{') => match labels_end(rest) {
                Some(end) => &rest[end..],
                None => continue,
            },
            Some(c) if c == ' ' || c == '\t' => rest,
            // Another metric whose name starts with `name`, or a bare name.
            _ => continue,
        };
        let value = rest.split_whitespace().next().unwrap_or_default();
        return match value.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(ScrapeError::BadValue(value.chars().take(100).collect())),
        };
    }
    Err(ScrapeError::Missing)
}

/// The index just past the `}` closing the label set that `s` starts with (label values are quoted and
/// may contain `}` and escaped quotes); `None` if it is not closed.
fn labels_end(s: &str) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Scrapes the broker's CPU counter from `url`.
async fn broker_cpu(url: &str) -> Result<f64, ScrapeError> {
    parse_metric(&get(url).await?, CPU_METRIC)
}

/// The broker CPU counter read before the measured phase.
struct CpuProbe {
    url: String,
    before: Result<f64, ScrapeError>,
}

impl CpuProbe {
    /// Reads the counter now (call just before the measured phase).
    async fn start(url: &str) -> CpuProbe {
        CpuProbe { url: url.to_string(), before: broker_cpu(url).await }
    }

    /// Reads the counter again (call just after the measured phase) and returns the CPU seconds in between.
    async fn finish(self) -> Result<f64, ScrapeError> {
        let before = self.before?;
        let after = broker_cpu(&self.url).await?;
        if after < before {
            return Err(ScrapeError::WentDown { before, after });
        }
        Ok(after - before)
    }
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

    /// A scrape of janusd: the recorder's metrics, then the process metrics.
    const SCRAPE: &str = "# TYPE janus_topics gauge\njanus_topics 3\n\n\
        # HELP process_cpu_seconds_total_x A decoy whose name starts with the counter's.\n\
        process_cpu_seconds_total_x 99\n\
        # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
        # TYPE process_cpu_seconds_total counter\n\
        process_cpu_seconds_total 12.375\n";

    #[test]
    fn the_cpu_counter_is_parsed() {
        assert_eq!(parse_metric(SCRAPE, CPU_METRIC).unwrap(), 12.375);
        // Labels (with a quoted brace) and a timestamp are skipped.
        let labelled = "process_cpu_seconds_total{job=\"a}\\\"b\"} 4.5 1700000000000\n";
        assert_eq!(parse_metric(labelled, CPU_METRIC).unwrap(), 4.5);
        assert_eq!(parse_metric("process_cpu_seconds_total 1e3", CPU_METRIC).unwrap(), 1000.0);
    }

    #[test]
    fn a_missing_or_bad_counter_is_an_error_not_a_panic() {
        assert!(matches!(parse_metric("", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(
            parse_metric("# TYPE process_cpu_seconds_total counter\n", CPU_METRIC),
            Err(ScrapeError::Missing)
        ));
        assert!(matches!(parse_metric("process_cpu_seconds_total_x 1\n", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(parse_metric("process_cpu_seconds_total{a=\"1\" 2\n", CPU_METRIC), Err(ScrapeError::Missing)));
        assert!(matches!(parse_metric("process_cpu_seconds_total\n", CPU_METRIC), Err(ScrapeError::Missing)));
        for bad in ["process_cpu_seconds_total abc", "process_cpu_seconds_total NaN", "process_cpu_seconds_total +Inf"]
        {
            assert!(matches!(parse_metric(bad, CPU_METRIC), Err(ScrapeError::BadValue(_))), "{bad}");
        }
        assert!(matches!(parse_metric("process_cpu_seconds_total ", CPU_METRIC), Err(ScrapeError::BadValue(_))));
    }

    #[test]
    fn metrics_urls_are_split() {
        let ok = |u: &str| split_url(u).unwrap();
        assert_eq!(ok("http://127.0.0.1:7071/metrics"), ("127.0.0.1:7071".into(), "/metrics".into()));
        assert_eq!(ok("HTTP://localhost:9/"), ("localhost:9".into(), "/".into()));
        assert_eq!(ok("http://example"), ("example:80".into(), "/".into()));
        assert_eq!(ok("http://[::1]:7071/m?x=1"), ("[::1]:7071".into(), "/m?x=1".into()));
        assert_eq!(ok("http://[::1]/"), ("[::1]:80".into(), "/".into()));
        for bad in [
            "https://h:1/",
            "127.0.0.1:7071",
            "http://",
            "http:///x",
            "http://h:x/",
            "http://h:/",
            "http://u@h/",
            "http://h/a b",
        ] {
            assert!(matches!(split_url(bad), Err(ScrapeError::InvalidUrl { .. })), "{bad}");
        }
    }

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
