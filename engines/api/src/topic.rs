//! Topic and partition names, the engine kinds, and the spec a topic is created from.

use std::fmt;

use crate::config::TopicConfig;
use crate::error::StorageError;

/// The longest topic name accepted (Kafka's limit: a partition directory name must fit in 255 bytes).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// The most partitions (or queues) one topic may have.
pub const MAX_PARTITIONS: u32 = 100_000;

/// Which storage engine stores a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// The Kafka model: a directory of segment files per partition.
    Segment,
    /// The RocketMQ model: one shared CommitLog plus a ConsumeQueue per queue.
    Commitlog,
}

impl EngineKind {
    /// The name used in configs, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Segment => "segment",
            EngineKind::Commitlog => "commitlog",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "segment" => Ok(EngineKind::Segment),
            "commitlog" => Ok(EngineKind::Commitlog),
            other => Err(format!("unknown engine '{other}': expected 'segment' or 'commitlog'")),
        }
    }
}

/// One partition (Kafka) or queue (RocketMQ) of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition (queue) number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// Names partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What a topic is created from: its name, partition count and config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic name (see [`validate_topic_name`]).
    pub name: String,
    /// How many partitions (queues) it has.
    pub partitions: u32,
    /// Its per-topic config, already validated.
    pub config: TopicConfig,
}

impl TopicSpec {
    /// A spec with the built-in default config.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        TopicSpec { name: name.into(), partitions, config: TopicConfig::default() }
    }

    /// Checks the name and the partition count.
    pub fn validate(&self) -> Result<(), StorageError> {
        validate_topic_name(&self.name)?;
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(crate::config::ConfigError::new(
                "partitions",
                self.partitions.to_string(),
                format!("must be between 1 and {MAX_PARTITIONS}"),
            )
            .into());
        }
        Ok(())
    }
}

/// Prefixes of the topics the broker creates for RocketMQ delivery (`%RETRY%<group>+<topic>`,
/// `%DLQ%<group>`); users cannot create names that start with `%`.
pub const INTERNAL_TOPIC_PREFIXES: [&str; 2] = ["%RETRY%", "%DLQ%"];

/// Checks a topic name against Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`;
/// the broker's internal names (an [`INTERNAL_TOPIC_PREFIXES`] prefix, then those characters and `+`) too.
pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
    let (body, extra) = match INTERNAL_TOPIC_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        Some(rest) => (rest, b'+'),
        None => (name, b'.'),
    };
    let reason = if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("the name is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not allowed")
    } else if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' || b == extra)
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidTopicName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "orders", "Orders.v2", "a_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok} should be accepted");
        }
        for ok in ["%DLQ%group-1", "%RETRY%g+orders.v2"] {
            assert!(validate_topic_name(ok).is_ok(), "{ok} should be accepted");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(250), "%x", "a+b", "%DLQ%", "%DLQ%a/b"] {
            let err = validate_topic_name(bad).unwrap_err();
            assert!(matches!(err, StorageError::InvalidTopicName { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn partition_count_is_bounded() {
        assert!(TopicSpec::new("t", 1).validate().is_ok());
        assert!(TopicSpec::new("t", 0).validate().is_err());
        assert!(TopicSpec::new("t", MAX_PARTITIONS + 1).validate().is_err());
    }

    #[test]
    fn engine_kind_parses() {
        assert_eq!("segment".parse::<EngineKind>().unwrap(), EngineKind::Segment);
        assert_eq!("commitlog".parse::<EngineKind>().unwrap(), EngineKind::Commitlog);
        assert!("kafka".parse::<EngineKind>().is_err());
    }
}
