//! The `[kafka]` section: the Kafka wire-protocol listener.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// The Kafka listener (`[kafka]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Serve Kafka's wire protocol (on by default).
    pub enabled: bool,
    /// `kafka.listen`: where (127.0.0.1:9092).
    pub listen: SocketAddr,
    /// `kafka.advertised`: the `host:port` Metadata gives clients; empty: the bound address.
    pub advertised: String,
    /// `kafka.auto_create_topics`: Metadata creates the topics it is asked for that do not exist, on the
    /// default engine with the default partitions (Kafka's `auto.create.topics.enable`; on by default).
    pub auto_create_topics: bool,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: String::new(),
            auto_create_topics: true,
        }
    }
}

impl KafkaSection {
    /// Refuses an advertised address that is not `host:port`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.advertised.is_empty() && crate::faces::kafka::split_host_port(&self.advertised).is_none() {
            return Err(ConfigError::invalid("kafka.advertised", &self.advertised, "host:port"));
        }
        Ok(())
    }
}
