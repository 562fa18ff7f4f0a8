//! Broker configuration: embedded defaults, an optional TOML file, `JANUS_*` environment variables and
//! command-line overrides, validated into one [`BrokerConfig`].
//!
//! Precedence, lowest first: built-in defaults, the TOML file, the environment, then [`ConfigOverrides`]
//! (the `janusd` flags). Every key lives at a path of the TOML file; the environment variable for a path is
//! `JANUS_` followed by the path in upper case with `.` (a section boundary) written as `__`:
//!
//! | TOML | environment | meaning |
//! |---|---|---|
//! | `data_dir` | `JANUS_DATA_DIR` | data directory (`meta/`, `segment/`, `commitlog/`) |
//! | `grpc_addr` | `JANUS_GRPC_ADDR` | gRPC listen address (port 0 picks a free port) |
//! | `metrics_addr` | `JANUS_METRICS_ADDR` | Prometheus HTTP listen address |
//! | `retention_check_interval_ms` | `JANUS_RETENTION_CHECK_INTERVAL_MS` | Kafka's `log.retention.check.interval.ms` |
//! | `default_engine` | `JANUS_DEFAULT_ENGINE` | engine of topics created without one (`segment`) |
//! | `metrics_interval_ms` | `JANUS_METRICS_INTERVAL_MS` | how often disk use and consumer lag are measured |
//! | `shutdown_timeout_ms` | `JANUS_SHUTDOWN_TIMEOUT_MS` | how long shutdown waits for in-flight requests |
//! | `response_compression` | `JANUS_RESPONSE_COMPRESSION` | compress responses for clients that accept it (off) |
//! | `response_compression_min_bytes` | `JANUS_RESPONSE_COMPRESSION_MIN_BYTES` | smallest Fetch response compressed |
//! | `[topic_defaults] retention_ms` | `JANUS_TOPIC_DEFAULTS__RETENTION_MS` | broker default of the topic key `retention.ms` |
//! | `[commitlog] file_bytes` | `JANUS_COMMITLOG__FILE_BYTES` | `commitlog.file.bytes` |
//! | `[segment] index_bytes` | `JANUS_SEGMENT__INDEX_BYTES` | segment engine `segment.index.bytes` |
//! | `max_partitions` | `JANUS_MAX_PARTITIONS` | `max.partitions`: partitions over all topics (100,000) |
//! | `[limits] inflight_bytes` | `JANUS_LIMITS__INFLIGHT_BYTES` | broker-wide in-flight byte budget |
//! | `[groups] initial_rebalance_delay_ms` | `JANUS_GROUPS__INITIAL_REBALANCE_DELAY_MS` | Kafka's `group.initial.rebalance.delay.ms` |
//! | `[groups] min_session_timeout_ms` | `JANUS_GROUPS__MIN_SESSION_TIMEOUT_MS` | `group.min.session.timeout.ms` |
//! | `[groups] max_session_timeout_ms` | `JANUS_GROUPS__MAX_SESSION_TIMEOUT_MS` | `group.max.session.timeout.ms` |
//! | `[groups] heartbeat_interval_ms` | `JANUS_GROUPS__HEARTBEAT_INTERVAL_MS` | `group.heartbeat.interval.ms` |
//! | `[groups] offsets_retention_ms` | `JANUS_GROUPS__OFFSETS_RETENTION_MS` | `offsets.retention.ms` |
//! | `[messaging] delay_levels` | `JANUS_MESSAGING__DELAY_LEVELS` | RocketMQ's `messageDelayLevel` |
//! | `[messaging] timer_max_delay_ms`, `timer_precision_ms` | `JANUS_MESSAGING__TIMER_MAX_DELAY_MS`, ... | `timer.max.delay.ms`, `timer.precision.ms` |
//! | `[messaging] default_invisible_ms`, `min_invisible_ms`, `max_invisible_ms` | `JANUS_MESSAGING__...` | receive's invisible duration: default 60 s, 10 s to 12 h |
//! | `[messaging] max_reconsume_times`, `max_inflight_leases` | `JANUS_MESSAGING__...` | `max.reconsume.times` (16); leased messages across the broker |
//! | `[kafka] enabled`, `listen`, `advertised` | `JANUS_KAFKA__LISTEN`, ... | the Kafka listener: on, `127.0.0.1:9092`, the address Metadata gives (the bound one) |
//! | `[kafka] auto_create_topics` | `JANUS_KAFKA__AUTO_CREATE_TOPICS` | Kafka's `auto.create.topics.enable` (on) |
//!
//! `[topic_defaults]` holds a broker-wide default for every per-topic key (`partitions` and the keys of
//! [`janus_api::config::TOPIC_CONFIG_KEYS`]); a key's `.` is written `_` (`flush_policy`, `retention_ms`,
//! ...). In the file the dotted spelling (`"retention.ms" = 1000`) is accepted too; the `_` spelling wins
//! when both are given, so the environment overrides either. Unknown keys and out-of-range values are
//! refused with an error naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use janus_api::topic::MAX_PARTITIONS;
use janus_api::{EngineKind, TopicConfig};
use janus_core::groups::GroupConfig;

mod kafka;
mod messaging;
use janus_core::topics::{DEFAULT_MAX_PARTITIONS, EngineOptions, TopicDefaults};
pub use kafka::KafkaSection;
pub use messaging::MessagingSection;
use serde::Deserialize;

/// A refused configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key is unknown or its value is out of range.
    #[error("invalid config '{key}' = '{value}': {allowed}")]
    Invalid {
        /// The key, as written in the TOML file (`limits.inflight_bytes`, `topic_defaults.retention_ms`).
        key: String,
        /// The value given.
        value: String,
        /// What the key accepts.
        allowed: String,
    },
    /// The file could not be read or parsed, or a value has the wrong type.
    #[error("could not load the configuration: {0}")]
    Load(String),
}

impl ConfigError {
    fn invalid(key: impl Into<String>, value: impl ToString, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), value: value.to_string(), allowed: allowed.into() }
    }

    /// The key this error is about, when it names one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Load(_) => None,
        }
    }
}

/// The TOML spelling of an engine key in its section: the engine's own key without the section's prefix,
/// `.` written `_` (`commitlog.file.bytes` -> `file_bytes`, `consumequeue.file.entries` ->
/// `consumequeue_file_entries`).
fn section_key(section: &str, engine_key: &str) -> String {
    let key = engine_key.strip_prefix(section).and_then(|k| k.strip_prefix('.')).unwrap_or(engine_key);
    key.replace('.', "_")
}

/// Memory and concurrency limits (`[limits]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest gRPC message the broker decodes (tonic's `max_decoding_message_size`).
    pub max_request_bytes: usize,
    /// The broker's memory budget: bytes held by requests once decoded, by fetch reads and by
    /// subscriptions' read-ahead; requests beyond it wait, and a single request larger than it is refused.
    pub inflight_bytes: u64,
    /// The same budget per client connection.
    pub connection_inflight_bytes: u64,
    /// Requests processed at once per connection.
    pub concurrency_per_connection: usize,
    /// HTTP/2 streams a client may open at once per connection.
    pub max_concurrent_streams: u32,
    /// Engine calls running at once on blocking threads.
    pub blocking_threads: usize,
    /// Responses a subscription buffers ahead of its reader.
    pub subscribe_buffer: usize,
    /// Bytes a subscription buffers ahead of its reader (a single larger response is still read, alone);
    /// buffered bytes also count against `inflight_bytes`.
    pub subscribe_buffer_bytes: u64,
    /// Bytes per fetch or subscription response when the request says 0.
    pub default_fetch_bytes: u32,
    /// Largest `max_bytes` a fetch may ask for (larger requests are clamped).
    pub max_fetch_bytes: u32,
    /// Longest `max_wait_ms` a fetch may ask for (larger requests are clamped).
    pub max_fetch_wait_ms: u32,
    /// A connection that has not sent the HTTP/2 preface and its first frame within this many
    /// milliseconds is closed.
    pub handshake_timeout_ms: u64,
    /// HTTP/2 keep-alive: a PING after this many idle milliseconds (0: none).
    pub http2_keepalive_interval_ms: u64,
    /// A connection whose PING is not answered within this many milliseconds is closed (0: the default
    /// of 20 s).
    pub http2_keepalive_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_request_bytes: 16 * 1024 * 1024,
            inflight_bytes: 256 * 1024 * 1024,
            connection_inflight_bytes: 64 * 1024 * 1024,
            concurrency_per_connection: 256,
            max_concurrent_streams: 1024,
            blocking_threads: 64,
            subscribe_buffer: 4,
            subscribe_buffer_bytes: 4 * 1024 * 1024,
            default_fetch_bytes: 1024 * 1024,
            max_fetch_bytes: 4 * 1024 * 1024,
            max_fetch_wait_ms: 60_000,
            handshake_timeout_ms: 10_000,
            http2_keepalive_interval_ms: 60_000,
            http2_keepalive_timeout_ms: 20_000,
        }
    }
}

fn check_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        Err(ConfigError::invalid(key, value, format!("an integer from {min} to {max}")))
    } else {
        Ok(())
    }
}

impl LimitsSection {
    /// Refuses values the broker cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const GIB: u64 = 1 << 30;
        check_range("limits.max_request_bytes", self.max_request_bytes as u64, 1024, GIB)?;
        check_range("limits.inflight_bytes", self.inflight_bytes, 1024, u32::MAX as u64)?;
        check_range("limits.connection_inflight_bytes", self.connection_inflight_bytes, 1024, u32::MAX as u64)?;
        check_range("limits.concurrency_per_connection", self.concurrency_per_connection as u64, 1, 1_000_000)?;
        check_range("limits.max_concurrent_streams", self.max_concurrent_streams as u64, 1, 1_000_000)?;
        check_range("limits.blocking_threads", self.blocking_threads as u64, 1, 4096)?;
        check_range("limits.subscribe_buffer", self.subscribe_buffer as u64, 1, 1024)?;
        check_range("limits.subscribe_buffer_bytes", self.subscribe_buffer_bytes, 1024, u32::MAX as u64)?;
        check_range("limits.default_fetch_bytes", self.default_fetch_bytes as u64, 1, GIB)?;
        check_range("limits.max_fetch_bytes", self.max_fetch_bytes as u64, 1, GIB)?;
        check_range("limits.max_fetch_wait_ms", self.max_fetch_wait_ms as u64, 0, 3_600_000)?;
        check_range("limits.handshake_timeout_ms", self.handshake_timeout_ms, 1, 3_600_000)?;
        check_range("limits.http2_keepalive_interval_ms", self.http2_keepalive_interval_ms, 0, 86_400_000)?;
        check_range("limits.http2_keepalive_timeout_ms", self.http2_keepalive_timeout_ms, 0, 3_600_000)?;
        Ok(())
    }
}

/// Consumer groups (`[groups]`): Kafka's broker keys of the group coordinator.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsSection {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits for more
    /// members to join (3 s; 0 in tests).
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`: the shortest session timeout a member may ask for (6 s).
    pub min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`: the longest session timeout a member may ask for (30 min).
    pub max_session_timeout_ms: u64,
    /// `group.heartbeat.interval.ms`: how often a broker-assigned member is told to heartbeat (3 s).
    pub heartbeat_interval_ms: u64,
    /// `offsets.retention.ms`: the committed offsets of a group that stayed empty this long are deleted
    /// (7 days).
    pub offsets_retention_ms: u64,
    /// `group.max.size`: the most members one group may have (1000).
    pub max_size: u64,
}

impl Default for GroupsSection {
    fn default() -> Self {
        GroupsSection {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            heartbeat_interval_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            max_size: 1000,
        }
    }
}

impl GroupsSection {
    /// Refuses values the coordinator cannot work with: each within its range, the minimum session timeout
    /// at most the maximum, and the heartbeat interval below the minimum session timeout (a member must get
    /// more than one heartbeat in before it is expelled).
    pub fn validate(&self) -> Result<(), ConfigError> {
        const DAY_MS: u64 = 86_400_000;
        check_range("groups.initial_rebalance_delay_ms", self.initial_rebalance_delay_ms, 0, 300_000)?;
        check_range("groups.min_session_timeout_ms", self.min_session_timeout_ms, 1, DAY_MS)?;
        check_range("groups.max_session_timeout_ms", self.max_session_timeout_ms, self.min_session_timeout_ms, DAY_MS)?;
        check_range("groups.heartbeat_interval_ms", self.heartbeat_interval_ms, 1, self.min_session_timeout_ms - 1)?;
        check_range("groups.offsets_retention_ms", self.offsets_retention_ms, 1, 3_650 * DAY_MS)?;
        check_range("groups.max_size", self.max_size, 1, 1_000_000)?;
        Ok(())
    }

    /// The coordinator's settings.
    pub fn group_config(&self) -> GroupConfig {
        let ms = Duration::from_millis;
        let d = GroupConfig::default();
        let min = ms(self.min_session_timeout_ms);
        let max = ms(self.max_session_timeout_ms);
        GroupConfig {
            initial_rebalance_delay: ms(self.initial_rebalance_delay_ms),
            min_session_timeout: min,
            max_session_timeout: max,
            default_session_timeout: d.default_session_timeout.clamp(min, max),
            default_rebalance_timeout: d.default_rebalance_timeout,
            heartbeat_interval: ms(self.heartbeat_interval_ms),
            offsets_retention: ms(self.offsets_retention_ms),
            max_members: self.max_size as usize,
        }
    }
}

/// Disk space (`[storage]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// The free-space guard (`storage.min.free.bytes` in the engines' terms): below this many free bytes on
    /// a volume the broker writes to, produce is refused with RESOURCE_EXHAUSTED, and the commitlog engine
    /// preallocates no file that would cross it. Unset: 1 GiB or 5% of the volume, whichever is smaller;
    /// 0: no guard (only a really full disk refuses writes).
    pub min_free_bytes: Option<u64>,
}

/// The whole broker configuration. `Default` is the embedded defaults (no file needed).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Data directory: `meta/` (RocksDB), `segment/`, `commitlog/`.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Prometheus metrics HTTP listen address.
    pub metrics_addr: SocketAddr,
    /// Engine of topics created without one: `segment` or `commitlog`.
    pub default_engine: String,
    /// Broker-wide defaults of the per-topic keys, as written (see the module docs); validated by
    /// [`BrokerConfig::topic_defaults`].
    pub topic_defaults: BTreeMap<String, String>,
    /// Commitlog engine settings (`[commitlog]`), by key; see [`BrokerConfig::engine_options`].
    pub commitlog: BTreeMap<String, String>,
    /// Segment engine settings (`[segment]`), by key; see [`BrokerConfig::engine_options`].
    pub segment: BTreeMap<String, String>,
    /// `max.partitions`: the most partitions over all topics of the broker.
    pub max_partitions: u64,
    /// Memory and concurrency limits.
    pub limits: LimitsSection,
    /// Disk space.
    pub storage: StorageSection,
    /// The consumer-group coordinator.
    pub groups: GroupsSection,
    /// RocketMQ delivery: timers, receive/ack, retries.
    pub messaging: MessagingSection,
    /// The Kafka wire-protocol listener.
    pub kafka: KafkaSection,
    /// How often retention (and compaction) runs, in milliseconds.
    pub retention_check_interval_ms: u64,
    /// How often disk use and consumer lag are measured, in milliseconds.
    pub metrics_interval_ms: u64,
    /// How long a graceful shutdown waits for in-flight requests before closing them, in milliseconds
    /// (3 s: long-polls and subscriptions end at once, but a client that stops reading keeps its HTTP/2
    /// stream open, and waiting Kubernetes' whole 30 s grace period for it got the pod killed uncleanly).
    pub shutdown_timeout_ms: u64,
    /// Compress gRPC responses for clients that accept it (gzip or zstd). Off by default: produced data is
    /// usually compressed already, and CPU is the scarcer resource (issue 11: 20 idle gzip subscribers
    /// pinned both cores).
    pub response_compression: bool,
    /// With `response_compression` on, Fetch responses smaller than this are sent uncompressed.
    pub response_compression_min_bytes: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("./data"),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 7070)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 7071)),
            default_engine: "segment".to_string(),
            topic_defaults: BTreeMap::new(),
            commitlog: BTreeMap::new(),
            segment: BTreeMap::new(),
            max_partitions: DEFAULT_MAX_PARTITIONS,
            limits: LimitsSection::default(),
            storage: StorageSection::default(),
            groups: GroupsSection::default(),
            messaging: MessagingSection::default(),
            kafka: KafkaSection::default(),
            retention_check_interval_ms: 5 * 60 * 1000,
            metrics_interval_ms: 10_000,
            shutdown_timeout_ms: 3_000,
            response_compression: false,
            response_compression_min_bytes: 64 * 1024,
        }
    }
}

/// What the command line (or a test) sets over the file and the environment.
#[derive(Clone, Debug, Default)]
pub struct ConfigOverrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--grpc-addr`.
    pub grpc_addr: Option<SocketAddr>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// Any other key by its TOML path (`limits.inflight_bytes`, `topic_defaults.retention_ms`).
    pub set: Vec<(String, String)>,
}

/// Environment variables of the `janus` CLI that janusd ignores rather than refusing as unknown keys.
const CLIENT_ENV: &[&str] = &["JANUS_BROKER"];

impl BrokerConfig {
    /// Loads the configuration: defaults, then `config_file` (TOML) if given, then `JANUS_*` environment
    /// variables, then `overrides`; and validates it.
    pub fn load(config_file: Option<&Path>, overrides: &ConfigOverrides) -> Result<Self, ConfigError> {
        Self::load_with_env(config_file, None, overrides)
    }

    /// Like [`BrokerConfig::load`], reading the environment from `env` instead of the process when given
    /// (variable name to value, names with the `JANUS_` prefix).
    pub fn load_with_env(
        config_file: Option<&Path>,
        env: Option<BTreeMap<String, String>>,
        overrides: &ConfigOverrides,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!("config file {} does not exist", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        // `JANUS_BROKER` and the like belong to the `janus` CLI, which often shares a shell with janusd.
        let env = env.unwrap_or_else(|| std::env::vars().filter(|(k, _)| k.starts_with("JANUS_")).collect());
        let env = env.into_iter().filter(|(k, _)| !CLIENT_ENV.contains(&k.as_str())).collect();
        let environment =
            config::Environment::with_prefix("JANUS").prefix_separator("_").separator("__").source(Some(env));
        builder = builder.add_source(environment);
        let set = |b: config::ConfigBuilder<_>, k: &str, v: String| {
            b.set_override(k, v).map_err(|e| ConfigError::Load(format!("override of '{k}': {e}")))
        };
        if let Some(d) = &overrides.data_dir {
            builder = set(builder, "data_dir", d.to_string_lossy().into_owned())?;
        }
        if let Some(a) = overrides.grpc_addr {
            builder = set(builder, "grpc_addr", a.to_string())?;
        }
        if let Some(a) = overrides.metrics_addr {
            builder = set(builder, "metrics_addr", a.to_string())?;
        }
        for (k, v) in &overrides.set {
            builder = set(builder, k, v.clone())?;
        }
        let built = builder.build().map_err(|e| ConfigError::Load(e.to_string()))?;
        let config: BrokerConfig = built.try_deserialize().map_err(|e| ConfigError::Load(describe_load_error(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "", "a directory path"));
        }
        if let Err(e) = self.default_engine.parse::<janus_api::EngineKind>() {
            return Err(ConfigError::invalid("default_engine", &self.default_engine, e));
        }
        self.topic_defaults()?;
        self.engine_options()?;
        check_range("max_partitions", self.max_partitions, 1, u64::from(u32::MAX))?;
        self.limits.validate()?;
        self.groups.validate()?;
        self.messaging.validate()?;
        self.kafka.validate()?;
        check_range("retention_check_interval_ms", self.retention_check_interval_ms, 1, 86_400_000)?;
        check_range("metrics_interval_ms", self.metrics_interval_ms, 1, 86_400_000)?;
        check_range("shutdown_timeout_ms", self.shutdown_timeout_ms, 0, 3_600_000)?;
        Ok(())
    }

    /// The broker-wide topic defaults, validated: `[topic_defaults]` keys in either spelling (`retention_ms`
    /// or `retention.ms`; the first wins when both are present).
    pub fn topic_defaults(&self) -> Result<TopicDefaults, ConfigError> {
        let mut normalized: BTreeMap<String, (String, &String, bool)> = BTreeMap::new();
        for (key, value) in &self.topic_defaults {
            let underscore = !key.contains('.');
            let dotted = key.replace('_', ".");
            match normalized.get(&dotted) {
                Some((_, _, true)) if !underscore => {}
                _ => {
                    normalized.insert(dotted, (key.clone(), value, underscore));
                }
            }
        }
        let mut defaults =
            TopicDefaults { partitions: 1, config: TopicConfig::default(), max_partitions: self.max_partitions };
        for (dotted, (written, value, _)) in normalized {
            let path = format!("topic_defaults.{written}");
            if dotted == "partitions" {
                let n: u32 =
                    value.trim().parse().ok().filter(|n| (1..=MAX_PARTITIONS).contains(n)).ok_or_else(|| {
                        ConfigError::invalid(&path, value, format!("an integer from 1 to {MAX_PARTITIONS}"))
                    })?;
                defaults.partitions = n;
                continue;
            }
            defaults.config.set(&dotted, value).map_err(|e| ConfigError::invalid(&path, value, e.allowed))?;
        }
        Ok(defaults)
    }
}

impl BrokerConfig {
    /// The engines' settings from `[segment]` and `[commitlog]`, each key checked by its engine's own rules.
    /// A key is the engine's key name without the section prefix, `.` written `_` (`[commitlog] file_bytes`
    /// is `commitlog.file.bytes`); the dotted engine name is accepted too.
    pub fn engine_options(&self) -> Result<EngineOptions, ConfigError> {
        let mut options = EngineOptions::default();
        let sections = [(EngineKind::Segment, &self.segment), (EngineKind::Commitlog, &self.commitlog)];
        for (kind, values) in sections {
            let section = kind.as_str();
            let keys = EngineOptions::keys(kind);
            for (key, value) in values {
                let path = format!("{section}.{key}");
                let Some(engine_key) = keys.iter().find(|k| section_key(section, k) == *key || **k == key) else {
                    let known: Vec<String> = keys.iter().map(|k| section_key(section, k)).collect();
                    return Err(ConfigError::invalid(
                        &path,
                        value,
                        format!("unknown config key; [{section}] accepts {}", known.join(", ")),
                    ));
                };
                options
                    .set(kind, engine_key, value.trim())
                    .map_err(|e| ConfigError::invalid(&path, value, format!("{} ({engine_key})", e.allowed)))?;
            }
        }
        if let Some(min_free) = self.storage.min_free_bytes {
            let value = min_free.to_string();
            options.set(EngineKind::Commitlog, "storage.min.free.bytes", &value).map_err(|e| {
                ConfigError::invalid(
                    "storage.min_free_bytes",
                    &value,
                    format!("{} (storage.min.free.bytes)", e.allowed),
                )
            })?;
        }
        Ok(options)
    }
}

/// Makes the `config` crate's deserialization errors say which key they are about.
fn describe_load_error(e: config::ConfigError) -> String {
    let text = e.to_string();
    if text.contains("unknown field") {
        format!("{text} (unknown config key; check the spelling in the file and the JANUS_* environment variables)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn load(file: Option<&str>, vars: &[(&str, &str)], o: &ConfigOverrides) -> Result<BrokerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("janusd.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        BrokerConfig::load_with_env(file.map(|_| path.as_path()), env(vars), o)
    }

    #[test]
    fn no_file_gives_the_embedded_defaults() {
        let c = load(None, &[], &ConfigOverrides::default()).unwrap();
        assert_eq!(c, BrokerConfig::default());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:7070");
        assert_eq!(c.metrics_addr.to_string(), "127.0.0.1:7071");
        assert_eq!(c.retention_check_interval_ms, 300_000);
        let d = c.topic_defaults().unwrap();
        assert_eq!(d.partitions, 1);
        assert_eq!(d.config, TopicConfig::default());
    }

    #[test]
    fn file_then_env_then_flags() {
        let file = r#"
            data_dir = "/var/lib/janus"
            grpc_addr = "0.0.0.0:9000"
            retention_check_interval_ms = 1000
            [topic_defaults]
            partitions = 3
            retention_ms = 5000
            "flush.policy" = "sync"
            [commitlog]
            file_bytes = 65536
            [limits]
            inflight_bytes = 4096
            [groups]
            initial_rebalance_delay_ms = 3000
            heartbeat_interval_ms = 500
        "#;
        let vars = [
            ("JANUS_GRPC_ADDR", "127.0.0.1:9001"),
            ("JANUS_TOPIC_DEFAULTS__RETENTION_MS", "7000"),
            ("JANUS_COMMITLOG__PREWARM", "true"),
            ("JANUS_GROUPS__INITIAL_REBALANCE_DELAY_MS", "0"),
            ("OTHER_VAR", "ignored"),
        ];
        let o = ConfigOverrides { grpc_addr: Some("127.0.0.1:0".parse().unwrap()), ..Default::default() };
        let c = load(Some(file), &vars, &o).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/janus"));
        assert_eq!(c.grpc_addr.to_string(), "127.0.0.1:0");
        assert_eq!(c.retention_check_interval_ms, 1000);
        let engines = c.engine_options().unwrap();
        assert_eq!(engines.commitlog().file_bytes, 65536);
        assert!(engines.commitlog().prewarm);
        assert_eq!(c.limits.inflight_bytes, 4096);
        assert_eq!(c.groups.initial_rebalance_delay_ms, 0);
        assert_eq!(c.groups.heartbeat_interval_ms, 500);
        assert_eq!(c.groups.max_session_timeout_ms, GroupsSection::default().max_session_timeout_ms);
        let d = c.topic_defaults().unwrap();
        assert_eq!(d.partitions, 3);
        assert_eq!(d.config.retention_ms, Some(7000));
        assert_eq!(d.config.flush_policy, janus_api::FlushPolicy::Sync);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = load(Some("nope = 1"), &[], &ConfigOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let ok = load(None, &[("JANUS_BROKER", "http://127.0.0.1:7070")], &ConfigOverrides::default());
        assert!(ok.is_ok(), "the CLI's JANUS_BROKER must not stop janusd: {ok:?}");
        let err = load(None, &[("JANUS_LIMITS__NOPE", "1")], &ConfigOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = load(Some("[topic_defaults]\nretention_mss = 1"), &[], &ConfigOverrides::default()).unwrap_err();
        assert_eq!(err.key(), Some("topic_defaults.retention_mss"), "{err}");
        assert!(err.to_string().contains("unknown config key"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_range() {
        let cases: &[(&str, &str, &str)] = &[
            ("[topic_defaults]\nflush_policy = \"often\"", "topic_defaults.flush_policy", "os, interval, sync"),
            ("[topic_defaults]\npartitions = 0", "topic_defaults.partitions", "1 to 100000"),
            ("[commitlog]\nfile_bytes = 10", "commitlog.file_bytes", "4096"),
            ("[limits]\nblocking_threads = 0", "limits.blocking_threads", "1 to 4096"),
            ("[segment]\nindex_bytes = 1", "segment.index_bytes", "64"),
            ("retention_check_interval_ms = 0", "retention_check_interval_ms", "1 to"),
            ("[groups]\nmax_session_timeout_ms = 1000", "groups.max_session_timeout_ms", "6000 to"),
            ("[groups]\nheartbeat_interval_ms = 6000", "groups.heartbeat_interval_ms", "1 to 5999"),
        ];
        for (file, key, allowed) in cases {
            let err = load(Some(file), &[], &ConfigOverrides::default()).unwrap_err();
            assert_eq!(err.key(), Some(*key), "{err}");
            assert!(err.to_string().contains(allowed), "{err}");
        }
        let err = load(None, &[("JANUS_GRPC_ADDR", "not-an-address")], &ConfigOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("grpc_addr"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err =
            BrokerConfig::load_with_env(Some(Path::new("/nonexistent/janusd.toml")), env(&[]), &Default::default())
                .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/janusd.toml"), "{err}");
    }
}
