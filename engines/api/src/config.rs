//! Per-topic configuration: the Kafka-style dotted keys, their defaults and their allowed ranges.
//!
//! Every key has a built-in default ([`TopicConfig::default`]); a broker may override the defaults and a
//! topic may override the broker. An unknown key or a value out of range is refused with a
//! [`ConfigError`] naming the key and what is allowed.

use std::fmt;
use std::time::Duration;

/// Milliseconds in a day.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// A refused config key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{value}' for config '{key}': {allowed}")]
pub struct ConfigError {
    /// The key that was set.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What the key accepts.
    pub allowed: String,
}

impl ConfigError {
    /// Builds an error for `key = value` explaining what is `allowed`.
    pub fn new(key: impl Into<String>, value: impl Into<String>, allowed: impl Into<String>) -> Self {
        ConfigError { key: key.into(), value: value.into(), allowed: allowed.into() }
    }
}

/// One engine-wide option key (an engine's `*Options::set`): its name and the values it accepts, so that
/// every refusal names the key and its allowed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionKey {
    /// The key, e.g. `checkpoint.interval.ms`.
    pub name: &'static str,
    /// What it accepts, in words (`an integer from 1 to 86400000`).
    pub allowed: &'static str,
    /// The smallest integer accepted.
    pub min: u64,
    /// The largest integer accepted.
    pub max: u64,
}

impl OptionKey {
    /// `n` if it lies in `min..=max`.
    pub fn check(&self, n: u64) -> Result<u64, ConfigError> {
        if n < self.min || n > self.max { Err(ConfigError::new(self.name, n.to_string(), self.allowed)) } else { Ok(n) }
    }

    /// Parses `value` as an integer in `min..=max`.
    pub fn parse(&self, value: &str) -> Result<u64, ConfigError> {
        let refused = || ConfigError::new(self.name, value, self.allowed);
        let n: u64 = value.trim().parse().map_err(|_| refused())?;
        self.check(n).map_err(|_| refused())
    }

    /// Parses `value` as `true` or `false`.
    pub fn parse_bool(&self, value: &str) -> Result<bool, ConfigError> {
        match value.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::new(self.name, value, self.allowed)),
        }
    }

    /// The error for a key that is none of `known` (the keys of `engine`, e.g. "segment engine").
    pub fn unknown(key: &str, value: &str, engine: &str, known: &[&str]) -> ConfigError {
        ConfigError::new(key, value, format!("unknown {engine} key; known keys: {}", known.join(", ")))
    }
}

/// When appended data is forced to disk, and so when `Appended::durable` completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge after the page-cache write; the operating system flushes (Kafka's default).
    Os,
    /// `fsync` at least every `flush.interval.ms`; `durable` completes at the next such flush.
    Interval,
    /// `fsync` before `durable` completes; concurrent appends share one `fsync` (group commit).
    Sync,
}

impl FlushPolicy {
    /// The config value naming this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushPolicy::Os => "os",
            FlushPolicy::Interval => "interval",
            FlushPolicy::Sync => "sync",
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to old data of a segment topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete whole segments past the retention limits.
    Delete,
    /// Keep the newest record of each key (log compaction).
    Compact,
}

impl CleanupPolicy {
    /// The config value naming this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        }
    }
}

/// The validated per-topic settings. Build one with [`TopicConfig::default`] and [`TopicConfig::set`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// `flush.policy`.
    pub flush_policy: FlushPolicy,
    /// `flush.interval.ms`: the longest gap between two flushes under the `interval` policy.
    pub flush_interval_ms: u64,
    /// `retention.ms`: delete data older than this; `None` (-1) keeps it forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest data while a partition is larger; `None` (-1) means no limit.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: u32,
    /// `segment.bytes`: roll a segment before it would grow past this (segment engine).
    pub segment_bytes: u32,
    /// `segment.ms`: roll a segment once it is this old (segment engine).
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes appended between two offset-index entries (segment engine).
    pub index_interval_bytes: u32,
    /// `cleanup.policy` (segment engine).
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long compaction keeps tombstones (segment engine).
    pub delete_retention_ms: u64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            flush_policy: FlushPolicy::Os,
            flush_interval_ms: 1000,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            max_message_bytes: 1024 * 1024,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
        }
    }
}

/// One per-topic key: its name and what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The dotted key name.
    pub name: &'static str,
    /// A one-line description of the value it takes, as shown in errors and docs.
    pub allowed: &'static str,
}

/// Every per-topic key [`TopicConfig::set`] accepts (`partitions` is part of the topic spec instead).
pub const TOPIC_CONFIG_KEYS: &[ConfigKey] = &[
    ConfigKey { name: "flush.policy", allowed: "one of os, interval, sync" },
    ConfigKey { name: "flush.interval.ms", allowed: "an integer from 1 to 86400000" },
    ConfigKey { name: "retention.ms", allowed: "-1 (forever) or an integer from 1 to 9223372036854775807" },
    ConfigKey { name: "retention.bytes", allowed: "-1 (no limit) or an integer from 1 to 9223372036854775807" },
    ConfigKey { name: "max.message.bytes", allowed: "an integer from 64 to 1073741824" },
    ConfigKey { name: "segment.bytes", allowed: "an integer from 1024 to 2147483647" },
    ConfigKey { name: "segment.ms", allowed: "an integer from 1 to 9223372036854775807" },
    ConfigKey { name: "index.interval.bytes", allowed: "an integer from 0 to 2147483647" },
    ConfigKey { name: "cleanup.policy", allowed: "one of delete, compact" },
    ConfigKey { name: "delete.retention.ms", allowed: "an integer from 0 to 9223372036854775807" },
];

fn allowed_for(key: &str) -> Option<&'static str> {
    TOPIC_CONFIG_KEYS.iter().find(|k| k.name == key).map(|k| k.allowed)
}

fn parse_int(key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
    let refuse = || ConfigError::new(key, value, allowed_for(key).unwrap_or("an integer"));
    let n: i64 = value.trim().parse().map_err(|_| refuse())?;
    if n < min || n > max { Err(refuse()) } else { Ok(n) }
}

/// Parses a value where -1 means "no limit".
fn parse_limit(key: &str, value: &str) -> Result<Option<u64>, ConfigError> {
    if value.trim() == "-1" {
        return Ok(None);
    }
    parse_int(key, value, 1, i64::MAX).map(|n| Some(n as u64))
}

/// How far the records of a compressed batch may decompress beyond `max.message.bytes`.
pub const DECOMPRESSION_MARGIN: usize = 1024 * 1024;

impl TopicConfig {
    /// The most bytes a batch's records may decompress to on this topic: `max.message.bytes` plus
    /// [`DECOMPRESSION_MARGIN`], so a request within the topic's limit cannot make the broker allocate much
    /// more than that (the codec's own ceiling, 256 MiB, is for data already stored).
    pub fn max_decompressed_bytes(&self) -> usize {
        self.max_message_bytes as usize + DECOMPRESSION_MARGIN
    }

    /// Sets one key from its string value, refusing unknown keys and out-of-range values.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let v = value.trim();
        match key {
            "flush.policy" => {
                self.flush_policy = match v {
                    "os" => FlushPolicy::Os,
                    "interval" => FlushPolicy::Interval,
                    "sync" => FlushPolicy::Sync,
                    _ => return Err(ConfigError::new(key, value, allowed_for(key).unwrap_or_default())),
                }
            }
            "flush.interval.ms" => self.flush_interval_ms = parse_int(key, v, 1, DAY_MS as i64)? as u64,
            "retention.ms" => self.retention_ms = parse_limit(key, v)?,
            "retention.bytes" => self.retention_bytes = parse_limit(key, v)?,
            "max.message.bytes" => self.max_message_bytes = parse_int(key, v, 64, 1 << 30)? as u32,
            "segment.bytes" => self.segment_bytes = parse_int(key, v, 1024, i32::MAX as i64)? as u32,
            "segment.ms" => self.segment_ms = parse_int(key, v, 1, i64::MAX)? as u64,
            "index.interval.bytes" => self.index_interval_bytes = parse_int(key, v, 0, i32::MAX as i64)? as u32,
            "cleanup.policy" => {
                self.cleanup_policy = match v {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    _ => return Err(ConfigError::new(key, value, allowed_for(key).unwrap_or_default())),
                }
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_int(key, v, 0, i64::MAX)? as u64,
            _ => {
                let known: Vec<&str> = TOPIC_CONFIG_KEYS.iter().map(|k| k.name).collect();
                return Err(ConfigError::new(
                    key,
                    value,
                    format!("unknown config key; known keys: {}", known.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Returns a copy of `self` with every `(key, value)` pair applied in order.
    pub fn with_overrides<'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = self.clone();
        for (key, value) in pairs {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Every key with its current value, in the order of [`TOPIC_CONFIG_KEYS`]; `set` accepts each back.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let limit = |v: Option<u64>| v.map_or("-1".to_string(), |n| n.to_string());
        vec![
            ("flush.policy", self.flush_policy.as_str().to_string()),
            ("flush.interval.ms", self.flush_interval_ms.to_string()),
            ("retention.ms", limit(self.retention_ms)),
            ("retention.bytes", limit(self.retention_bytes)),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("index.interval.bytes", self.index_interval_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.as_str().to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
        ]
    }

    /// `flush.interval.ms` as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_keys_parse_in_range_and_name_themselves_when_refusing() {
        let key = OptionKey { name: "x.ms", allowed: "an integer from 1 to 10", min: 1, max: 10 };
        assert_eq!(key.parse(" 7 ").unwrap(), 7);
        for bad in ["0", "11", "-1", "seven", ""] {
            let err = key.parse(bad).unwrap_err();
            assert_eq!(
                (err.key.as_str(), err.value.as_str(), err.allowed.as_str()),
                ("x.ms", bad, "an integer from 1 to 10")
            );
        }
        assert_eq!(key.check(11).unwrap_err().value, "11");
        assert!(key.parse_bool("true").unwrap() && !key.parse_bool("false").unwrap());
        assert!(key.parse_bool("yes").is_err());
        let err = OptionKey::unknown("y", "1", "test engine", &["x.ms", "z"]);
        assert_eq!(err.to_string(), "invalid value '1' for config 'y': unknown test engine key; known keys: x.ms, z");
    }

    #[test]
    fn every_key_round_trips_through_pairs() {
        let config = TopicConfig::default()
            .with_overrides([
                ("flush.policy", "interval"),
                ("flush.interval.ms", "250"),
                ("retention.ms", "-1"),
                ("retention.bytes", "1048576"),
                ("max.message.bytes", "2048"),
                ("segment.bytes", "65536"),
                ("segment.ms", "60000"),
                ("index.interval.bytes", "0"),
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "10"),
            ])
            .unwrap();
        let pairs = config.to_pairs();
        assert_eq!(pairs.len(), TOPIC_CONFIG_KEYS.len());
        let back = TopicConfig::default().with_overrides(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.retention_ms, None);
        assert_eq!(back.flush_policy, FlushPolicy::Interval);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = TopicConfig::default().set("segment.size", "1").unwrap_err();
        assert_eq!(err.key, "segment.size");
        assert!(err.to_string().contains("unknown config key"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_range() {
        for (key, value) in [
            ("segment.bytes", "10"),
            ("segment.bytes", "4294967296"),
            ("max.message.bytes", "abc"),
            ("retention.ms", "0"),
            ("retention.ms", "-2"),
            ("flush.policy", "always"),
            ("flush.interval.ms", "0"),
        ] {
            let err = TopicConfig::default().set(key, value).unwrap_err();
            assert_eq!(err.key, key);
            assert_eq!(err.value, value);
            assert_eq!(Some(err.allowed.as_str()), allowed_for(key), "{err}");
        }
    }
}
