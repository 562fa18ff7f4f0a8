//! Topic administration as every face calls it: create, alter, delete, list and describe.

use std::collections::BTreeMap;
use std::sync::Arc;

use janus_api::{EngineKind, TopicPartition};

use crate::Core;
use crate::error::BrokerError;
use crate::topics::Topic;

/// The readable range of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRange {
    /// The partition.
    pub partition: u32,
    /// The first offset that can be read.
    pub log_start: i64,
    /// The offset the next append will get.
    pub log_end: i64,
}

impl Core {
    /// Creates a topic on `engine` (`None`: the broker default) with `partitions` (0: the broker default)
    /// and config overrides.
    pub async fn create_topic(
        &self,
        name: String,
        engine: Option<EngineKind>,
        partitions: u32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        if name.starts_with('%') {
            return Err(BrokerError::invalid(format!(
                "topic names starting with '%' are reserved for the broker's retry and dead-letter topics: '{name}'"
            )));
        }
        self.blocking(move |r| r.create_topic(&name, engine, partitions, overrides)).await
    }

    /// Sets config keys of a topic (the others keep their values).
    pub async fn alter_topic(
        &self,
        name: String,
        changes: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        self.blocking(move |r| r.alter_topic(&name, &changes)).await
    }

    /// Deletes a topic, its data and the offsets committed for it.
    pub async fn delete_topic(&self, name: String) -> Result<(), BrokerError> {
        let n = name.clone();
        self.blocking(move |r| r.delete_topic(&n)).await?;
        // Messages received from it and not yet acknowledged are gone with it.
        janus_api::sync::lock(&self.messaging.leases).forget_topic(&name);
        Ok(())
    }

    /// Every live topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.registry.topics()
    }

    /// A topic and the readable range of each of its partitions.
    pub async fn describe_topic(&self, name: &str) -> Result<(Arc<Topic>, Vec<PartitionRange>), BrokerError> {
        let topic = self.topic(name)?;
        let t = Arc::clone(&topic);
        let partitions = self
            .blocking(move |r| {
                let engine = r.engine(t.engine);
                (0..t.partitions)
                    .map(|p| {
                        let o = engine.offsets(&TopicPartition::new(t.name.clone(), p))?;
                        Ok(PartitionRange { partition: p, log_start: o.log_start, log_end: o.log_end })
                    })
                    .collect::<Result<Vec<_>, BrokerError>>()
            })
            .await?;
        Ok((topic, partitions))
    }
}
