//! Metrics: names, recording helpers, and the Prometheus text endpoint.
//!
//! The recorder is process-wide (the `metrics` facade has one global recorder); every broker of a process
//! serves it on its own metrics address. Names:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `janus_messages_in_total`, `janus_bytes_in_total` | counter | `topic` |
//! | `janus_messages_out_total`, `janus_bytes_out_total` | counter | `topic` |
//! | `janus_request_duration_seconds` | histogram | `rpc`, `code` |
//! | `janus_flush_duration_seconds` | histogram | `engine` (time a `wait_durable` produce waited for the disk) |
//! | `janus_disk_bytes` | gauge | `engine` (allocated bytes under the engine's directory) |
//! | `janus_consumer_lag` | gauge | `group`, `topic`, `partition` |
//! | `janus_inflight_bytes`, `janus_inflight_bytes_limit` | gauge | |
//! | `janus_inflight_waits_total` | counter | |
//! | `janus_subscribe_buffered_bytes` | gauge | |
//! | `janus_retention_deleted_files_total`, `janus_retention_deleted_bytes_total` | counter | `engine` |
//! | `janus_compacted_segments_total` | counter | |
//! | `janus_topics` | gauge | |

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle; `None` if another recorder
/// was installed first by someone else.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets refused; histograms become summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; the metrics endpoint will be empty");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("janus_messages_in_total", "Messages appended, per topic");
    describe_counter!("janus_bytes_in_total", "Record batch bytes appended, per topic");
    describe_counter!("janus_messages_out_total", "Messages returned to consumers, per topic");
    describe_counter!("janus_bytes_out_total", "Message bytes returned to consumers, per topic");
    describe_histogram!("janus_request_duration_seconds", "gRPC request latency, per RPC and status code");
    describe_histogram!("janus_flush_duration_seconds", "Time produce requests waited for the disk, per engine");
    describe_gauge!("janus_disk_bytes", "Bytes allocated on disk, per engine");
    describe_gauge!("janus_consumer_lag", "Log end offset minus committed offset, per group and partition");
    describe_gauge!("janus_inflight_bytes", "Bytes held by in-flight requests");
    describe_gauge!("janus_inflight_bytes_limit", "Broker-wide in-flight byte budget");
    describe_counter!("janus_inflight_waits_total", "Requests that waited for in-flight byte budget");
    describe_gauge!("janus_subscribe_buffered_bytes", "Bytes read for subscriptions and not yet taken by gRPC");
    describe_gauge!("janus_topics", "Topics");
}

/// Counts produced messages and bytes.
pub fn record_in(topic: &str, messages: u64, bytes: u64) {
    counter!("janus_messages_in_total", "topic" => topic.to_string()).increment(messages);
    counter!("janus_bytes_in_total", "topic" => topic.to_string()).increment(bytes);
}

/// Counts consumed messages and bytes.
pub fn record_out(topic: &str, messages: u64, bytes: u64) {
    counter!("janus_messages_out_total", "topic" => topic.to_string()).increment(messages);
    counter!("janus_bytes_out_total", "topic" => topic.to_string()).increment(bytes);
}

/// Records how long a produce waited for its data to be durable.
pub fn record_flush(engine: &'static str, elapsed: Duration) {
    histogram!("janus_flush_duration_seconds", "engine" => engine).record(elapsed.as_secs_f64());
}

/// Sets the disk use of an engine.
pub fn set_disk_bytes(engine: &'static str, bytes: u64) {
    gauge!("janus_disk_bytes", "engine" => engine).set(bytes as f64);
}

/// Sets a group's lag on one partition.
pub fn set_lag(group: &str, topic: &str, partition: u32, lag: i64) {
    gauge!("janus_consumer_lag", "group" => group.to_string(), "topic" => topic.to_string(),
        "partition" => partition.to_string())
    .set(lag as f64);
}

/// Sets the in-flight byte gauge.
pub fn set_inflight_bytes(bytes: u64) {
    gauge!("janus_inflight_bytes").set(bytes as f64);
}

/// Sets the in-flight byte budget gauge.
pub fn set_inflight_limit(bytes: u64) {
    gauge!("janus_inflight_bytes_limit").set(bytes as f64);
}

/// Counts one wait for in-flight budget.
pub fn inflight_wait() {
    counter!("janus_inflight_waits_total").increment(1);
}

/// Adds to (or, negative, subtracts from) the subscription buffer gauge.
pub fn add_subscribe_buffered(delta: f64) {
    gauge!("janus_subscribe_buffered_bytes").increment(delta);
}

/// Counts what a retention pass deleted.
pub fn record_retention(engine: &'static str, files: usize, bytes: u64) {
    counter!("janus_retention_deleted_files_total", "engine" => engine).increment(files as u64);
    counter!("janus_retention_deleted_bytes_total", "engine" => engine).increment(bytes);
}

/// Counts segments rewritten by compaction.
pub fn record_compaction(segments: usize) {
    counter!("janus_compacted_segments_total").increment(segments as u64);
}

/// Sets the topic count.
pub fn set_topics(n: usize) {
    gauge!("janus_topics").set(n as f64);
}

/// Measures one RPC; records `janus_request_duration_seconds` with the status code when finished.
#[derive(Debug)]
pub struct RpcTimer {
    rpc: &'static str,
    started: Instant,
}

impl RpcTimer {
    /// Starts timing `rpc`.
    pub fn start(rpc: &'static str) -> Self {
        RpcTimer { rpc, started: Instant::now() }
    }

    /// Records the outcome and passes it through.
    pub fn finish<T>(self, result: Result<T, tonic::Status>) -> Result<T, tonic::Status> {
        let code = match &result {
            Ok(_) => "ok",
            Err(s) => code_name(s.code()),
        };
        histogram!("janus_request_duration_seconds", "rpc" => self.rpc, "code" => code)
            .record(self.started.elapsed().as_secs_f64());
        result
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// Bytes allocated on disk by every file under `dir` (0 if it does not exist).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total = total.saturating_add(meta.blocks().saturating_mul(512));
            }
        }
    }
    total
}

/// Serves `GET /metrics` (any path) in Prometheus text format until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    handle: Option<PrometheusHandle>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (mut stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    match stream.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            len += n;
                            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                    }
                }
            })
            .await;
            if read.is_err() || len == 0 {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let (status, body) = if head.starts_with("GET ") || head.starts_with("HEAD ") {
                ("200 OK", handle.as_ref().map(PrometheusHandle::render).unwrap_or_default())
            } else {
                ("405 Method Not Allowed", String::from("only GET is supported\n"))
            };
            let body = if head.starts_with("HEAD ") { String::new() } else { body };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Runs the recorder's upkeep (histogram bucket rotation) — call periodically.
pub fn upkeep(handle: &Option<PrometheusHandle>) {
    if let Some(h) = handle {
        h.run_upkeep();
    }
}
