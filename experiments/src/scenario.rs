//! Scenario files (`experiments/scenarios/*.toml`): what to run, on which engines, over which sweep, and
//! which charts to draw from the results.
//!
//! A scenario holds one base [`Workload`] and a `[sweep]` table of workload keys, each with a list of values;
//! the harness runs the cartesian product of the sweep (one [`Point`] per combination) on every engine, in
//! alternation, for several rounds. `[quick]` overrides rounds, workload keys and sweep lists for the quick
//! mode that CI runs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What a scenario measures; each kind is one workload driver.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Producers append as fast as they can (or at a target rate); throughput of acknowledged bytes.
    Produce,
    /// Data is written first; consumers then read all of it and ship it to a loopback socket.
    Consume,
    /// Data is written first; several consumer groups then read all of it at once.
    Fanout,
    /// Open-loop producers at a fraction of the engine's peak rate, measured in the same run; ack latency.
    Latency,
    /// Tagged data is written first; a consumer then reads the messages of one tag.
    Tags,
    /// Data is written by a child process that then dies without a clean shutdown; time to reopen.
    Recovery,
    /// A consumer group reads an open-loop stream while a member joins, leaves or is killed; rebalance time
    /// and the pause in consumption.
    Rebalance,
    /// Delayed messages are scheduled (spread over a period, or all due in one second), then consumed as
    /// they are delivered; how late they arrive, and the broker's memory while they are pending.
    Timers,
    /// Data is written first; receivers (RocketMQ 5's SimpleConsumer) then receive and acknowledge all of
    /// it, nacking a fraction of first deliveries; acknowledged messages per second.
    Receive,
}

/// How the harness reaches the engine.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// In this process, through the `Engine` trait.
    Inproc,
    /// Through a `janusd` broker started in this process on 127.0.0.1, over gRPC.
    Grpc,
    /// Through the `janusd` binary run as a child process on 127.0.0.1, reached through one of its faces
    /// (`face`); its CPU is measured alone, from `/proc/<pid>/stat`.
    Janusd,
}

/// Which face of a `janusd` child process a `janusd` case reads through.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Face {
    /// The Kafka face: Fetch requests over Kafka's wire protocol (segment topics by `sendfile(2)`).
    Kafka,
    /// The gRPC face: the client library's fetch, record batches in protobuf responses.
    Grpc,
}

/// Page-cache state of the data when a read phase starts.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Cache {
    /// As the writes left it (in the page cache).
    Warm,
    /// Synced, closed, and evicted with `posix_fadvise(DONTNEED)` before reading.
    Cold,
}

/// What happens to a consumer group in a rebalance case.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupEvent {
    /// One more member starts.
    Join,
    /// One member closes: commits its positions and leaves the group.
    Leave,
    /// One member's tasks are dropped without leaving, as `kill -9` looks to the broker.
    Kill,
}

/// What a produce-modes case asks of the broker per request (E11).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProduceMode {
    /// Client-built batches without a producer id.
    Plain,
    /// The same batches with a producer id and sequences (the idempotent producer).
    Idempotent,
    /// The same messages as protobuf messages: the broker builds the batches and gives each an id.
    Messages,
    /// The same messages as one transaction's half messages, then a commit.
    Transactional,
}

/// How the due times of a timers case are laid out.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimerPattern {
    /// `messages` due evenly over `spread_s` seconds, from shortly after scheduling begins.
    Spread,
    /// `burst_messages` all due in the same second, a few seconds after they are all scheduled.
    Burst,
}

/// The workload of one run; every key can be swept.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Topics, each with `partitions` partitions (queues).
    pub topics: u32,
    /// Partitions (segment) or queues (commitlog) per topic.
    pub partitions: u32,
    /// Message value size in bytes (the smallest, when `message_bytes_max` is set).
    pub message_bytes: usize,
    /// When set, value sizes are uniform in `message_bytes..=message_bytes_max`.
    pub message_bytes_max: Option<usize>,
    /// Messages per appended batch (per produce request over gRPC).
    pub batch_messages: usize,
    /// When set, batches hold as many messages as fit in this many bytes (at least one), instead of
    /// `batch_messages`: for sweeps over message size.
    pub batch_bytes: Option<usize>,
    /// Producer threads (tasks over gRPC).
    pub producers: usize,
    /// Consumer threads (tasks) per group.
    pub consumers: usize,
    /// Consumer groups reading the same data (fan-out).
    pub groups: usize,
    /// The topics' `flush.policy`: `os` or `sync`.
    pub flush: String,
    /// Distinct tags (`TAGS` header) spread over the messages; 0 writes none.
    pub tags: usize,
    /// Fraction of the messages carrying the tag that a tag-filtered read asks for.
    pub selectivity: f64,
    /// Open-loop load as a fraction of the engine's closed-loop peak measured in the same run; absent = closed.
    pub load_fraction: Option<f64>,
    /// Messages to write (in all).
    pub messages: u64,
    /// Stop writing after this many seconds even if fewer messages were written.
    pub duration_s: f64,
    /// Page-cache state for reads.
    pub cache: Cache,
    /// Bytes per read (`max_bytes` of a fetch).
    pub read_bytes: usize,
    /// Commitlog engine only: `commitlog.staged.writes` (encode into a buffer and `pwrite` it, RocketMQ's
    /// `transientStorePoolEnable`: `true`) or write through the mapping (`false`); absent: the engine's
    /// default (staged since issue 12). The segment engine ignores it.
    pub staged_writes: Option<bool>,
    /// Rebalance cases: the open-loop produce rate in messages per second (required there).
    pub rate_msgs_per_s: Option<f64>,
    /// Rebalance cases: what happens to the group once it is stable (required there). The group starts with
    /// `consumers` members.
    pub event: Option<GroupEvent>,
    /// Rebalance cases: seconds of steady consumption between the group becoming stable and the event.
    pub steady_s: f64,
    /// Rebalance cases: a further wait before the event, uniform in `0..event_jitter_s` and drawn per case, so
    /// the event falls at a random point of the members' heartbeat cycle (0: none).
    pub event_jitter_s: f64,
    /// Rebalance cases: the members start this many seconds apart, so their heartbeats are not in step.
    pub join_spacing_s: f64,
    /// Group members: the session timeout they ask for, in ms; absent: the broker's default (45 s).
    pub session_timeout_ms: Option<u64>,
    /// Group members: the assignor they ask for (`range`, `roundrobin`, `sticky`); absent: the group's.
    pub assignor: Option<String>,
    /// The broker's `groups.heartbeat_interval_ms`; absent: its default (3 s).
    pub heartbeat_interval_ms: Option<u64>,
    /// The broker's `groups.initial_rebalance_delay_ms`; absent: its default (3 s).
    pub initial_rebalance_delay_ms: Option<u64>,
    /// Timers cases: how the due times are laid out (required there).
    pub timer_pattern: Option<TimerPattern>,
    /// Timers cases, `spread`: the seconds over which the due times are spread evenly.
    pub spread_s: f64,
    /// Timers cases, `burst`: the messages due in the one second; absent: `messages`.
    pub burst_messages: Option<u64>,
    /// Receive cases: the fraction of first deliveries the receivers nack (chosen by a hash of the
    /// message's partition and offset, so the same positions on both engines and in every round).
    pub nack_fraction: f64,
    /// Produce cases over gRPC: the produce mode; absent: `plain` through the usual produce driver.
    pub produce_mode: Option<ProduceMode>,
    /// `janusd` cases: the face the consumers read through (required there).
    pub face: Option<Face>,
    /// `janusd` consume cases, warm cache: how many times the consumers read all the data, one pass after
    /// the other, so the measured phase is long enough for the broker's CPU clock (10 ms ticks).
    pub read_passes: u32,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            topics: 1,
            partitions: 1,
            message_bytes: 1024,
            message_bytes_max: None,
            batch_messages: 64,
            batch_bytes: None,
            producers: 1,
            consumers: 1,
            groups: 1,
            flush: "os".into(),
            tags: 0,
            selectivity: 1.0,
            load_fraction: None,
            messages: 100_000,
            duration_s: 10.0,
            cache: Cache::Warm,
            read_bytes: 1 << 20,
            staged_writes: None,
            rate_msgs_per_s: None,
            event: None,
            steady_s: 2.0,
            event_jitter_s: 0.0,
            join_spacing_s: 0.0,
            session_timeout_ms: None,
            assignor: None,
            heartbeat_interval_ms: None,
            initial_rebalance_delay_ms: None,
            timer_pattern: None,
            produce_mode: None,
            face: None,
            read_passes: 1,
            spread_s: 600.0,
            burst_messages: None,
            nack_fraction: 0.0,
        }
    }
}

impl Workload {
    /// Refuses combinations the drivers cannot run, with the key at fault.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("topics", self.topics as u64),
            ("partitions", self.partitions as u64),
            ("message_bytes", self.message_bytes as u64),
            ("batch_messages", self.batch_messages as u64),
            ("producers", self.producers as u64),
            ("consumers", self.consumers as u64),
            ("groups", self.groups as u64),
            ("messages", self.messages),
            ("read_bytes", self.read_bytes as u64),
            ("read_passes", u64::from(self.read_passes)),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("workload key `{key}` must be at least 1");
            }
        }
        if let Some(max) = self.message_bytes_max
            && max < self.message_bytes
        {
            bail!("`message_bytes_max` ({max}) is below `message_bytes` ({})", self.message_bytes);
        }
        if !matches!(self.flush.as_str(), "os" | "sync") {
            bail!("`flush` must be \"os\" or \"sync\", not {:?}", self.flush);
        }
        if !(self.selectivity > 0.0 && self.selectivity <= 1.0) {
            bail!("`selectivity` must be in (0, 1], not {}", self.selectivity);
        }
        if let Some(f) = self.load_fraction
            && !(f > 0.0 && f <= 1.0)
        {
            bail!("`load_fraction` must be in (0, 1], not {f}");
        }
        if self.duration_s.is_nan() || self.duration_s <= 0.0 {
            bail!("`duration_s` must be positive");
        }
        if let Some(rate) = self.rate_msgs_per_s
            && !(rate.is_finite() && rate > 0.0)
        {
            bail!("`rate_msgs_per_s` must be positive, not {rate}");
        }
        for (key, value) in [
            ("steady_s", self.steady_s),
            ("event_jitter_s", self.event_jitter_s),
            ("join_spacing_s", self.join_spacing_s),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                bail!("`{key}` must be zero or positive, not {value}");
            }
        }
        if let Some(assignor) = &self.assignor
            && !matches!(assignor.as_str(), "range" | "roundrobin" | "sticky")
        {
            bail!("`assignor` must be \"range\", \"roundrobin\" or \"sticky\", not {assignor:?}");
        }
        if !(self.spread_s.is_finite() && self.spread_s > 0.0) {
            bail!("`spread_s` must be positive, not {}", self.spread_s);
        }
        if !(0.0..1.0).contains(&self.nack_fraction) {
            bail!("`nack_fraction` must be in [0, 1), not {}", self.nack_fraction);
        }
        for (key, value) in [
            ("session_timeout_ms", self.session_timeout_ms),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("burst_messages", self.burst_messages),
        ] {
            if value == Some(0) {
                bail!("workload key `{key}` must be at least 1");
            }
        }
        Ok(())
    }

    /// Messages per batch: from `batch_bytes` when set, else `batch_messages`.
    pub fn messages_per_batch(&self) -> usize {
        match self.batch_bytes {
            Some(bytes) => ((bytes as f64 / self.mean_message_bytes()) as usize).max(1),
            None => self.batch_messages,
        }
    }

    /// Mean value size in bytes.
    pub fn mean_message_bytes(&self) -> f64 {
        match self.message_bytes_max {
            Some(max) => (self.message_bytes + max) as f64 / 2.0,
            None => self.message_bytes as f64,
        }
    }
}

/// One chart of a scenario: a metric against a swept key, one line per engine (and per value of `series`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    /// File stem of the chart.
    pub name: String,
    /// Chart title.
    pub title: String,
    /// The swept workload key on the x axis (numeric).
    pub x: String,
    /// Label of the x axis, with its unit.
    pub x_label: String,
    /// The metric on the y axis (a key of a case's metrics).
    pub y: String,
    /// Label of the y axis, with its unit.
    pub y_label: String,
    /// Another swept key: one line per engine and value of it.
    #[serde(default)]
    pub series: Option<String>,
    /// Logarithmic x axis.
    #[serde(default)]
    pub log_x: bool,
    /// Logarithmic y axis.
    #[serde(default)]
    pub log_y: bool,
}

/// How the report decides which engine wins a point.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// The metric compared.
    pub metric: String,
    /// Whether a larger value wins (throughput) or a smaller one (latency, CPU per GB, recovery time).
    pub higher_is_better: bool,
}

/// Overrides applied in quick mode.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quick {
    /// Rounds in quick mode.
    pub rounds: Option<u32>,
    /// Workload keys replaced in quick mode.
    pub workload: toml::Table,
    /// Sweep lists replaced in quick mode.
    pub sweep: toml::Table,
}

/// A scenario file as written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Short name; results go to `results/<name>/`.
    pub name: String,
    /// Human title, e.g. `E1: write throughput vs partition count`.
    pub title: String,
    /// The question the experiment answers.
    pub question: String,
    /// The workload driver.
    pub kind: Kind,
    /// In-process through the trait, or end to end through janusd.
    pub path: Access,
    /// Engines to compare, run in this order within a round (the order flips every round).
    #[serde(default = "both_engines")]
    pub engines: Vec<String>,
    /// Rounds: each round runs every point on every engine.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// The base workload.
    #[serde(default)]
    pub workload: toml::Table,
    /// Workload keys to sweep, each with its list of values.
    #[serde(default)]
    pub sweep: toml::Table,
    /// Quick-mode overrides.
    #[serde(default)]
    pub quick: Quick,
    /// Charts to draw.
    #[serde(default)]
    pub chart: Vec<Chart>,
    /// How to pick a winner for the report.
    pub verdict: Verdict,
}

fn both_engines() -> Vec<String> {
    vec!["segment".into(), "commitlog".into()]
}

fn default_rounds() -> u32 {
    2
}

/// One combination of swept values, with the workload it gives.
#[derive(Clone, Debug)]
pub struct Point {
    /// The swept keys and their values here, by key.
    pub values: BTreeMap<String, serde_json::Value>,
    /// The full workload.
    pub workload: Workload,
}

/// A swept value as text: strings without their quotes, anything else as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Point {
    /// `key=value` pairs, e.g. `partitions=100 flush=os` (or `base` when nothing is swept).
    pub fn label(&self) -> String {
        if self.values.is_empty() {
            return "base".into();
        }
        self.values.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(" ")
    }
}

/// A loaded scenario: its file and the points to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file as written (with quick overrides applied when loaded for quick mode).
    pub file: ScenarioFile,
    /// The sweep's combinations.
    pub points: Vec<Point>,
}

impl Scenario {
    /// Reads and checks a scenario file; with `quick`, applies its `[quick]` overrides.
    pub fn load(path: &Path, quick: bool) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, path, quick)
    }

    /// Parses scenario text (`source` names it in errors).
    pub fn parse(text: &str, source: &Path, quick: bool) -> Result<Scenario> {
        let mut file: ScenarioFile =
            toml::from_str(text).with_context(|| format!("parsing scenario {}", source.display()))?;
        if quick {
            if let Some(rounds) = file.quick.rounds {
                file.rounds = rounds;
            }
            file.workload.extend(file.quick.workload.clone());
            file.sweep.extend(file.quick.sweep.clone());
        }
        if file.rounds == 0 {
            bail!("{}: `rounds` must be at least 1", source.display());
        }
        for engine in &file.engines {
            if !matches!(engine.as_str(), "segment" | "commitlog") {
                bail!("{}: unknown engine {engine:?} (segment or commitlog)", source.display());
            }
        }
        let points = expand(&file.workload, &file.sweep).with_context(|| format!("in {}", source.display()))?;
        for chart in &file.chart {
            for key in [Some(&chart.x), chart.series.as_ref()].into_iter().flatten() {
                if !file.sweep.contains_key(key) {
                    bail!("{}: chart {} uses {key:?}, which is not swept", source.display(), chart.name);
                }
            }
        }
        Ok(Scenario { file, points })
    }
}

/// The cartesian product of `sweep` over `base`, first key outermost.
fn expand(base: &toml::Table, sweep: &toml::Table) -> Result<Vec<Point>> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in sweep {
        let toml::Value::Array(values) = values else { bail!("sweep key `{key}` must be a list") };
        if values.is_empty() {
            bail!("sweep key `{key}` has an empty list");
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|combo| {
            let mut table = base.clone();
            let mut values = BTreeMap::new();
            for (key, value) in combo {
                values.insert(key.clone(), serde_json::to_value(&value)?);
                table.insert(key, value);
            }
            let workload: Workload =
                toml::Value::Table(table).try_into().context("the workload (after applying the sweep)")?;
            workload.validate()?;
            Ok(Point { values, workload })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
name = "t"
title = "T"
question = "Q?"
kind = "produce"
path = "inproc"
rounds = 3
[workload]
message_bytes = 100
[sweep]
partitions = [1, 10]
flush = ["os", "sync"]
[quick]
rounds = 1
workload = { messages = 10 }
sweep = { partitions = [2] }
[[chart]]
name = "c"
title = "C"
x = "partitions"
x_label = "partitions"
y = "mb_per_s"
y_label = "MB/s"
series = "flush"
[verdict]
metric = "mb_per_s"
higher_is_better = true
"#;

    #[test]
    fn sweeps_expand_to_the_cartesian_product() {
        let s = Scenario::parse(TEXT, Path::new("t.toml"), false).unwrap();
        assert_eq!(s.file.rounds, 3);
        let labels: Vec<String> = s.points.iter().map(Point::label).collect();
        assert_eq!(
            labels,
            ["flush=os partitions=1", "flush=os partitions=10", "flush=sync partitions=1", "flush=sync partitions=10"]
        );
        assert_eq!(s.points[3].workload.partitions, 10);
        assert_eq!(s.points[3].workload.flush, "sync");
        assert_eq!(s.points[0].workload.message_bytes, 100);
    }

    #[test]
    fn quick_mode_applies_its_overrides() {
        let s = Scenario::parse(TEXT, Path::new("t.toml"), true).unwrap();
        assert_eq!(s.file.rounds, 1);
        assert_eq!(s.points.len(), 2);
        assert!(s.points.iter().all(|p| p.workload.partitions == 2 && p.workload.messages == 10));
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let bad = TEXT.replace("message_bytes = 100", "message_bytez = 100");
        let err = format!("{:#}", Scenario::parse(&bad, Path::new("t.toml"), false).unwrap_err());
        assert!(err.contains("message_bytez"), "{err}");
        let bad = TEXT.replace("flush = [\"os\", \"sync\"]", "flush = [\"os\", \"never\"]");
        let err = format!("{:#}", Scenario::parse(&bad, Path::new("t.toml"), false).unwrap_err());
        assert!(err.contains("never"), "{err}");
        let bad = TEXT.replace("series = \"flush\"", "series = \"topics\"");
        let err = format!("{:#}", Scenario::parse(&bad, Path::new("t.toml"), false).unwrap_err());
        assert!(err.contains("not swept"), "{err}");
    }

    #[test]
    fn e5b_is_e5_with_only_the_commitlog_write_path_changed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let e5 = Scenario::load(&dir.join("e5-latency.toml"), false).unwrap();
        let e5b = Scenario::load(&dir.join("e5b-latency-staged.toml"), false).unwrap();
        assert_eq!(e5.points.len(), e5b.points.len());
        for (a, b) in e5.points.iter().zip(&e5b.points) {
            assert!(a.workload.staged_writes == Some(false) && b.workload.staged_writes == Some(true));
            let mut b = b.workload.clone();
            b.staged_writes = Some(false);
            assert_eq!(serde_json::to_value(&a.workload).unwrap(), serde_json::to_value(&b).unwrap());
        }
    }
}
