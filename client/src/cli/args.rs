//! The command line, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use super::messaging_args::{DlqCommand, MessageCommand, ReceiveArgs, ScheduleArgs, TimerCommand};
use crate::types::{Compression, Engine, Position};

/// Default broker URL when neither `--broker` nor `JANUS_BROKER` is given.
pub const DEFAULT_BROKER: &str = "http://127.0.0.1:7070";

/// Default metrics URL of `janus bench` when neither `--metrics` nor `JANUS_METRICS` is given: janusd's
/// default `metrics_addr` (`127.0.0.1:7071`).
pub const DEFAULT_METRICS: &str = "http://127.0.0.1:7071/metrics";

/// Command-line client for the Janus broker.
#[derive(Debug, Parser)]
#[command(name = "janus", version, about, propagate_version = true)]
pub struct Cli {
    /// Broker URL.
    #[arg(long, global = true, env = "JANUS_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Produce one message per line of stdin (or --file).
    Produce(ProduceArgs),
    /// Print messages, one per line.
    Consume(ConsumeArgs),
    /// List, describe and reset consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Receive messages for a group (RocketMQ's SimpleConsumer): print, then acknowledge or give back.
    Receive(ReceiveArgs),
    /// A group's dead letters (%DLQ%<group>): list, show, resend to their original topic.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Find messages by id or key.
    #[command(subcommand)]
    Message(MessageCommand),
    /// Scheduled (delayed and timed) messages.
    #[command(subcommand)]
    Timer(TimerCommand),
    /// Transactions (RocketMQ's half messages) not yet decided.
    #[command(subcommand)]
    Txn(TxnCommand),
}

/// `janus txn ...`
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Pending transactions, oldest first: id, producer group, topic, age, checks so far, messages.
    List {
        /// Only this producer group's.
        #[arg(long)]
        group: Option<String>,
    },
    /// Commit a pending transaction.
    Commit {
        /// The transaction id.
        id: String,
    },
    /// Roll back a pending transaction.
    Rollback {
        /// The transaction id.
        id: String,
    },
}

/// `janus topic ...`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Storage engine: segment (Kafka model) or commitlog (RocketMQ model).
        #[arg(long)]
        engine: Engine,
        /// Partition count (default: the broker's `partitions`).
        #[arg(long)]
        partitions: Option<u32>,
        /// A per-topic config override, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List,
    /// Show a topic's configs and each partition's start and end offsets.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Change config keys of a topic.
    Alter {
        /// Topic name.
        name: String,
        /// KEY=VALUE to set (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value, required = true)]
        configs: Vec<(String, String)>,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

/// `janus produce ...`
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic.
    pub topic: String,
    /// Send every message to this partition (default: by key, else spread).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Key of every message.
    #[arg(long)]
    pub key: Option<String>,
    /// Tag of every message (the TAGS header).
    #[arg(long)]
    pub tag: Option<String>,
    /// A header KEY=VALUE on every message (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Wait until the messages are on disk per the topic's flush policy.
    #[arg(long)]
    pub durable: bool,
    /// Read messages from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Request compression: none, gzip or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// Deliver later.
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Send every line as one transaction (half messages), committed at the end of input.
    #[arg(long, conflicts_with_all = ["delay", "delay_level", "deliver_at"])]
    pub transactional: bool,
    /// With --transactional: roll the transaction back at the end of input instead.
    #[arg(long, requires = "transactional")]
    pub rollback: bool,
    /// With --transactional: the producer group (checked by the broker if the transaction stays undecided).
    #[arg(long, default_value = "janus-cli", requires = "transactional")]
    pub producer_group: String,
}

/// Output format of `janus consume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value only, raw bytes.
    Value,
    /// One JSON object per message: partition, offset, timestamp, key, value, headers.
    Json,
}

/// `janus consume ...`
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic.
    pub topic: String,
    /// Read only this partition (default: all, or with --group the partitions the group assigns). With
    /// --group, reads it as no member: resumes from and commits to the group's offsets while the group has
    /// no members.
    #[arg(long)]
    pub partition: Option<u32>,
    /// Consumer group to join: its members share the topic's partitions (each read by one of them),
    /// resume from its committed offsets and commit what was printed; Ctrl-C commits and leaves.
    #[arg(long)]
    pub group: Option<String>,
    /// Join in broadcasting mode: every member reads every partition with its own offsets (give each
    /// member its own --instance-id).
    #[arg(long, requires = "group", conflicts_with = "partition")]
    pub broadcast: bool,
    /// The assignor the group uses: range, roundrobin or sticky (default: the group's; range for a new one).
    #[arg(long, value_name = "NAME", requires = "group", conflicts_with = "partition")]
    pub assignor: Option<String>,
    /// A static member id: restarted within the session timeout, the member gets its partitions back
    /// without a rebalance.
    #[arg(long, value_name = "ID", requires = "group", conflicts_with = "partition")]
    pub instance_id: Option<String>,
    /// The member is expelled after this long without a heartbeat, e.g. 10s, 500ms, 2m (default: the
    /// broker's, 45s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "group", conflicts_with = "partition")]
    pub session_timeout: Option<Duration>,
    /// The name this consumer gives the broker, shown by `janus group describe`.
    #[arg(long, value_name = "NAME", default_value = "janus-cli")]
    pub client_id: String,
    /// Where to start (partitions without a committed offset): earliest, latest, OFFSET or @UNIX_MS.
    #[arg(long, default_value = "earliest")]
    pub from: Position,
    /// Only messages with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Stop after this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Stop when no message arrives for this long (default: wait forever).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Value)]
    pub format: Format,
}

/// `janus group ...`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state and member count.
    List,
    /// A group's state, generation, members, and per partition its owner, committed offset, end offset
    /// and lag.
    Describe {
        /// Group name.
        group: String,
    },
    /// Move a group's committed offsets.
    Reset {
        /// Group name.
        group: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Target: earliest, latest, OFFSET or @UNIX_MS.
        #[arg(long)]
        to: Position,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<u32>,
    },
}

/// `janus bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce N messages of SIZE bytes as fast as possible.
    Produce(BenchProduceArgs),
    /// Consume N messages from the start of the topic as fast as possible.
    Consume(BenchConsumeArgs),
}

/// Options shared by both benchmarks.
#[derive(Debug, Args)]
pub struct BenchCommon {
    /// Topic (must exist).
    pub topic: String,
    /// Number of messages.
    #[arg(long)]
    pub messages: u64,
    /// Message size in bytes (value).
    #[arg(long)]
    pub size: usize,
    /// Produce: sending tasks and requests in flight per partition. Consume: parallel consumers
    /// (partitions are dealt out among them).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The broker's Prometheus endpoint (plain http), scraped before and after the run for the broker's
    /// `process_cpu_seconds_total`. If it cannot be read, the report says why and the run still succeeds.
    #[arg(long = "metrics", value_name = "URL", env = "JANUS_METRICS", default_value = DEFAULT_METRICS)]
    pub metrics: String,
    /// Print one JSON object instead of the summary line.
    #[arg(long)]
    pub json: bool,
}

/// How bench produce ships batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchSendMode {
    /// Unary Produce calls.
    Unary,
    /// ProduceStream calls.
    Stream,
}

/// How bench consume reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchReadMode {
    /// Subscribe streams.
    Subscribe,
    /// Long-poll Fetch calls.
    Fetch,
}

/// What bench requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchWireFormat {
    /// Whole Kafka RecordBatch v2 batches (the fast path).
    Batches,
    /// One protobuf message per record.
    Messages,
}

/// The codec of client-built batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchRecordCodec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// zstd.
    Zstd,
}

/// `janus bench produce ...`
#[derive(Debug, Args)]
pub struct BenchProduceArgs {
    /// Common options.
    #[command(flatten)]
    pub common: BenchCommon,
    /// Send every message to this partition (default: spread over all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Producer batch size in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub batch_bytes: usize,
    /// Producer linger in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Give each message a message id (UNIQ_KEY header), as the library's producer does by default. Off
    /// here: an id adds about 45 bytes to each message, and the committed benchmark figures were measured
    /// without.
    #[arg(long)]
    pub message_ids: bool,
    /// Produce without a producer id (the library's producer is idempotent by default; E11 measures what
    /// that costs).
    #[arg(long)]
    pub no_idempotence: bool,
    /// Unary requests or ProduceStream.
    #[arg(long, value_enum, default_value_t = BenchSendMode::Unary)]
    pub mode: BenchSendMode,
    /// Request compression: none, gzip or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// Wait for the disk (wait_durable).
    #[arg(long)]
    pub durable: bool,
    /// Client-built batches or per-record messages.
    #[arg(long, value_enum, default_value_t = BenchWireFormat::Batches)]
    pub format: BenchWireFormat,
    /// Codec of client-built batches: none, gzip, snappy, lz4 or zstd.
    #[arg(long, value_enum, default_value_t = BenchRecordCodec::None)]
    pub record_compression: BenchRecordCodec,
}

/// `janus bench consume ...`
#[derive(Debug, Args)]
pub struct BenchConsumeArgs {
    /// Common options.
    #[command(flatten)]
    pub common: BenchCommon,
    /// Bytes per broker response (0 = broker default). 1 MiB measured fastest end to end here (1.32-1.36
    /// GB/s against 0.97-1.23 at 4 MiB and 0.87-1.04 at 256 KiB, same run): larger responses cost fresh
    /// pages for every buffer on both sides.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_bytes: u32,
    /// Subscribe streams or Fetch calls.
    #[arg(long, value_enum, default_value_t = BenchReadMode::Subscribe)]
    pub mode: BenchReadMode,
    /// Give up when no message arrives for this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Responses of whole batches or of per-record messages.
    #[arg(long, value_enum, default_value_t = BenchWireFormat::Batches)]
    pub format: BenchWireFormat,
}

/// Parses a duration: a whole number with a unit, `ms`, `s`, `m` or `h` (`10s`, `500ms`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let bad = || format!("expected a whole number with a unit (ms, s, m or h), e.g. 10s or 500ms; got {s:?}");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

/// Parses `KEY=VALUE` (the value may contain `=`; the key may not be empty).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_parse() {
        assert_eq!(parse_key_value("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_key_value("retention.ms=").unwrap(), ("retention.ms".into(), String::new()));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "10", "s", "-1s", "1.5s", "10 days", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_member_flags_need_a_group_and_no_partition() {
        let parse = |args: &[&str]| Cli::try_parse_from(["janus", "consume", "t"].iter().chain(args));
        assert!(parse(&["--group", "g", "--broadcast", "--session-timeout", "10s", "--assignor", "sticky"]).is_ok());
        assert!(parse(&["--broadcast"]).is_err());
        assert!(parse(&["--group", "g", "--partition", "1", "--instance-id", "a"]).is_err());
        assert!(parse(&["--group", "g", "--partition", "1"]).is_ok());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
