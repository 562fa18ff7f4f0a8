//! The metrics the core records (through the process-wide `metrics` facade) and their descriptions; the
//! runtime installs the Prometheus recorder and serves it. Names:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `janus_messages_in_total`, `janus_bytes_in_total` | counter | `topic` |
//! | `janus_messages_out_total`, `janus_bytes_out_total` | counter | `topic` |
//! | `janus_request_duration_seconds` | histogram | `rpc`, `code` (recorded by the faces) |
//! | `janus_flush_duration_seconds` | histogram | `engine` (time a `wait_durable` produce waited for the disk) |
//! | `janus_disk_bytes` | gauge | `engine` (allocated bytes under the engine's directory) |
//! | `janus_volume_free_bytes`, `janus_volume_size_bytes`, `janus_volume_min_free_bytes` | gauge | `volume` (mount point), `holds` (engine or `meta`) |
//! | `janus_consumer_lag` | gauge | `group`, `topic`, `partition` |
//! | `janus_group_members`, `janus_group_generation` | gauge | `group` |
//! | `janus_group_state` | gauge | `group`, `state` (1 for the group's state, 0 for the others) |
//! | `janus_group_rebalances_total` | counter | `group` (rebalances since the broker started) |
//! | `janus_inflight_bytes`, `janus_inflight_bytes_limit` | gauge | |
//! | `janus_inflight_waits_total` | counter | |
//! | `janus_subscribe_buffered_bytes` | gauge | |
//! | `janus_retention_deleted_files_total`, `janus_retention_deleted_bytes_total` | counter | `engine` |
//! | `janus_compacted_segments_total` | counter | |
//! | `janus_topics` | gauge | |
//! | `janus_response_bytes_total` | counter | `face`, `path` (`sendfile`: sent from a file by `sendfile(2)`, no user-space copy; `write`: written from memory) |
//! | `process_cpu_seconds_total` | counter | (user + system CPU of the whole process, read at each scrape; see [`render_process`]) |

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::groups::GroupState;

/// Describes every metric to the installed recorder (call once after installing it).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("janus_messages_in_total", "Messages appended, per topic");
    describe_counter!("janus_bytes_in_total", "Record batch bytes appended, per topic");
    describe_counter!(
        "janus_producer_duplicates_total",
        "Retried batches of idempotent producers answered with their first offsets instead of stored again, per topic"
    );
    describe_counter!("janus_messages_out_total", "Messages returned to consumers, per topic");
    describe_counter!("janus_bytes_out_total", "Message bytes returned to consumers, per topic");
    describe_histogram!("janus_request_duration_seconds", "gRPC request latency, per RPC and status code");
    describe_histogram!("janus_flush_duration_seconds", "Time produce requests waited for the disk, per engine");
    describe_gauge!("janus_disk_bytes", "Bytes allocated on disk, per engine");
    describe_gauge!("janus_volume_free_bytes", "Free bytes on the volume of each data directory");
    describe_gauge!("janus_volume_size_bytes", "Size of the volume of each data directory");
    describe_gauge!("janus_volume_min_free_bytes", "Free-space guard of the volume: produce is refused below it");
    describe_gauge!("janus_consumer_lag", "Log end offset minus committed offset, per group and partition");
    describe_gauge!("janus_group_members", "Members of each consumer group");
    describe_gauge!("janus_group_generation", "Generation of each consumer group");
    describe_gauge!("janus_group_state", "1 for the state each consumer group is in, 0 for the others");
    describe_counter!("janus_group_rebalances_total", "Rebalances of each consumer group since the broker started");
    describe_gauge!("janus_inflight_bytes", "Bytes held by in-flight requests");
    describe_gauge!("janus_inflight_bytes_limit", "Broker-wide in-flight byte budget");
    describe_counter!("janus_inflight_waits_total", "Requests that waited for in-flight byte budget");
    describe_gauge!("janus_subscribe_buffered_bytes", "Bytes read for subscriptions and not yet taken by gRPC");
    describe_gauge!("janus_topics", "Topics");
    describe_counter!(
        "janus_response_bytes_total",
        "Response bytes sent, per face and path: sendfile (from a file, no user-space copy) or write (from memory)"
    );
}

/// How a face sent response bytes to a socket (the `path` label of `janus_response_bytes_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendPath {
    /// `sendfile(2)` from a file: the bytes never entered the broker's memory.
    Sendfile,
    /// `write(2)`/`writev(2)` from the broker's memory.
    Write,
}

impl SendPath {
    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            SendPath::Sendfile => "sendfile",
            SendPath::Write => "write",
        }
    }
}

/// Counts response bytes a face sent by `path`.
pub fn record_sent(face: &'static str, path: SendPath, bytes: u64) {
    counter!("janus_response_bytes_total", "face" => face, "path" => path.name()).increment(bytes);
}

/// Counts produced messages and bytes.
pub fn record_in(topic: &str, messages: u64, bytes: u64) {
    counter!("janus_messages_in_total", "topic" => topic.to_string()).increment(messages);
    counter!("janus_bytes_in_total", "topic" => topic.to_string()).increment(bytes);
}

/// Counts a batch of the idempotent producer that was a retry of one already stored (not stored again).
pub fn record_duplicate(topic: &str) {
    counter!("janus_producer_duplicates_total", "topic" => topic.to_string()).increment(1);
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

/// Sets the space of the volume holding one data directory.
pub fn set_volume(report: &crate::disk::VolumeReport) {
    let labels = [("volume", report.space.mount_point.display().to_string()), ("holds", report.holds.to_string())];
    gauge!("janus_volume_free_bytes", &labels).set(report.space.free as f64);
    gauge!("janus_volume_size_bytes", &labels).set(report.space.total as f64);
    gauge!("janus_volume_min_free_bytes", &labels).set(report.min_free as f64);
}

const GROUP_STATES: [GroupState; 5] = [
    GroupState::Empty,
    GroupState::PreparingRebalance,
    GroupState::CompletingRebalance,
    GroupState::Stable,
    GroupState::Dead,
];

/// Sets a consumer group's gauges; `rebalances` is its count since the broker started.
pub fn set_group(group: &str, state: GroupState, members: usize, generation: i32, rebalances: u64) {
    gauge!("janus_group_members", "group" => group.to_string()).set(members as f64);
    gauge!("janus_group_generation", "group" => group.to_string()).set(f64::from(generation));
    for s in GROUP_STATES {
        let on = if s == state { 1.0 } else { 0.0 };
        gauge!("janus_group_state", "group" => group.to_string(), "state" => s.name()).set(on);
    }
    counter!("janus_group_rebalances_total", "group" => group.to_string()).absolute(rebalances);
}

/// Zeroes a forgotten group's member gauge.
pub fn forget_group(group: &str) {
    gauge!("janus_group_members", "group" => group.to_string()).set(0.0);
}

/// Sets a group's lag on one partition.
pub fn set_lag(group: &str, topic: &str, partition: u32, lag: i64) {
    // A broadcasting member's offsets namespace `<group>\u{1}<member>` shows as `<group>/<member>`.
    gauge!("janus_consumer_lag", "group" => group.replace('\u{1}', "/"), "topic" => topic.to_string(),
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

/// User plus system CPU seconds this process has used (`getrusage(RUSAGE_SELF)`); `None` if the call fails.
pub fn process_cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

/// The process metrics in Prometheus text format, measured now (the metrics endpoint appends them to every
/// scrape): `process_cpu_seconds_total`, the standard name of the Prometheus client libraries. It is
/// rendered here rather than recorded through the `metrics` facade, whose counters are integers.
pub fn render_process() -> String {
    match process_cpu_seconds() {
        Some(cpu) => format!(
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"
        ),
        None => String::new(),
    }
}

/// Sets the topic count.
pub fn set_topics(n: usize) {
    gauge!("janus_topics").set(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_is_rendered_and_grows() {
        let before = process_cpu_seconds().expect("getrusage works");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_cpu_seconds().expect("getrusage works");
        assert!(after > before, "{before} -> {after}");
        let text = render_process();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");
        let value = text.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).expect("a sample");
        assert!(value.parse::<f64>().expect("a number") >= after, "{text}");
    }
}
