//! Measuring: process CPU time, latency histograms, open-loop pacing, and the metric names every driver uses.
//!
//! Metric names (keys of [`crate::results::Case::metrics`]); MB is 10^6 bytes, GB 10^9:
//! - `mb_per_s`, `msgs_per_s`: payload (message values) moved per second of wall time;
//! - `cpu_s_per_gb`: CPU seconds (user + system, every thread of this process, from `getrusage`) per GB of
//!   payload;
//! - `ratio_to_baseline`: `wire_mb_per_s` (bytes handed to the engine or shipped to the socket; `mb_per_s`
//!   when a driver has no wire figure) over the matching baseline of the same round (append for writes,
//!   sendfile for reads);
//! - `p50_ms`, `p99_ms`, `p999_ms`, `max_ms`: latency percentiles;
//! - driver-specific ones, documented with each driver.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// CPU time (user + system) of every thread of this process so far (`getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> Duration {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
            tv(usage.user_time()) + tv(usage.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Resident memory of this process in MB (10^6 bytes): `VmRSS` of `/proc/self/status`; `None` where it cannot
/// be read. For `grpc` cases this is the broker and the load generator together, and it includes the pages of
/// files the process maps (the commitlog's files, RocksDB's tables).
pub fn rss_mb() -> Option<f64> {
    status_mb("VmRSS")
}

/// Anonymous resident memory of this process in MB: `RssAnon` of `/proc/self/status` (heap and stacks,
/// without mapped file pages).
pub fn rss_anon_mb() -> Option<f64> {
    status_mb("RssAnon")
}

/// A `kB` field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kib(&status, field).map(|kib| kib as f64 * 1024.0 / 1e6)
}

/// The value of `field` (e.g. `VmRSS`) in a `/proc/<pid>/status` text, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Wall and process CPU time of one measured phase.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    wall: Instant,
    cpu: Duration,
}

/// What a [`Phase`] took.
#[derive(Clone, Copy, Debug)]
pub struct Took {
    /// Wall-clock time.
    pub wall: Duration,
    /// Process CPU time (all threads).
    pub cpu: Duration,
}

impl Phase {
    /// Starts timing.
    pub fn start() -> Phase {
        Phase { wall: Instant::now(), cpu: process_cpu() }
    }

    /// Stops timing.
    pub fn stop(&self) -> Took {
        Took { wall: self.wall.elapsed(), cpu: process_cpu().saturating_sub(self.cpu) }
    }
}

/// The throughput metrics of `messages` messages carrying `bytes` payload bytes in `took`.
pub fn throughput(messages: u64, bytes: u64, took: Took) -> BTreeMap<String, f64> {
    let secs = took.wall.as_secs_f64().max(1e-9);
    let mut m = BTreeMap::new();
    m.insert("messages".into(), messages as f64);
    m.insert("mb_per_s".into(), bytes as f64 / secs / 1e6);
    m.insert("msgs_per_s".into(), messages as f64 / secs);
    m.insert("seconds".into(), secs);
    if bytes > 0 {
        m.insert("cpu_s_per_gb".into(), took.cpu.as_secs_f64() / (bytes as f64 / 1e9));
    }
    m
}

/// A latency histogram in microseconds: 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records `latency` (clamped into the histogram's range).
pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, hist.high());
    // The value is clamped into range, so recording cannot fail.
    let _ = hist.record(us);
}

/// The latency metrics of a histogram in milliseconds (none when it is empty).
pub fn latency_metrics(hist: &Histogram<u64>) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if hist.is_empty() {
        return m;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    m.insert("p50_ms".into(), ms(hist.value_at_quantile(0.50)));
    m.insert("p99_ms".into(), ms(hist.value_at_quantile(0.99)));
    m.insert("p999_ms".into(), ms(hist.value_at_quantile(0.999)));
    m.insert("max_ms".into(), ms(hist.max()));
    m.insert("latency_samples".into(), hist.len() as f64);
    m
}

/// Open-loop pacing: the `n`th operation is due at `start + n / rate`, whatever happened to earlier ones.
///
/// Latency is measured from the due time, not from when the operation was actually sent, so an operation
/// that waited behind a slow one is charged the wait (the correction for coordinated omission: a closed
/// loop that simply measured each call would hide the queueing that a real open-loop client sees).
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    interval: Duration,
}

impl Pacer {
    /// Paces `per_second` operations per second from now.
    pub fn new(per_second: f64) -> Pacer {
        Pacer { start: Instant::now(), interval: Duration::from_secs_f64(1.0 / per_second.max(1e-3)) }
    }

    /// When operation `n` is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + self.interval.mul_f64(n as f64)
    }

    /// Sleeps until operation `n` is due (returns at once if it is late) and returns its due time.
    pub fn wait(&self, n: u64) -> Instant {
        let due = self.due(n);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_grows_with_work() {
        let before = process_cpu();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(process_cpu() > before);
    }

    #[test]
    fn throughput_metrics_are_per_second_and_per_gb() {
        let m = throughput(1000, 2_000_000_000, Took { wall: Duration::from_secs(2), cpu: Duration::from_secs(1) });
        assert_eq!(m["mb_per_s"], 1000.0);
        assert_eq!(m["msgs_per_s"], 500.0);
        assert_eq!(m["cpu_s_per_gb"], 0.5);
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let status = "Name:\tx\nVmHWM:\t  9 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 77 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(12345));
        assert_eq!(status_kib(status, "RssAnon"), Some(77));
        assert_eq!(status_kib(status, "Rss"), None);
        assert_eq!(status_kib("Name:\tx\n", "VmRSS"), None);
        assert!(rss_mb().is_some_and(|mb| mb > 0.0));
        assert!(rss_anon_mb().is_some_and(|mb| mb > 0.0));
    }

    #[test]
    fn latency_is_charged_from_the_due_time() {
        let pacer = Pacer::new(1000.0);
        assert_eq!(pacer.due(10) - pacer.due(0), Duration::from_millis(10));
        let mut hist = histogram();
        // An operation due at 0 that completes 5 ms later counts 5 ms, however late it was sent.
        record(&mut hist, Duration::from_millis(5));
        record(&mut hist, Duration::from_millis(1));
        let m = latency_metrics(&hist);
        assert!((m["max_ms"] - 5.0).abs() < 0.01);
        assert!((m["p50_ms"] - 1.0).abs() < 0.01);
    }
}
