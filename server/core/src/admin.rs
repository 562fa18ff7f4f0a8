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

/// Refuses the names of the broker's own retry and dead-letter topics.
fn reserved_name(name: &str) -> Result<(), BrokerError> {
    if name.starts_with('%') {
        return Err(BrokerError::invalid(format!(
            "topic names starting with '%' are reserved for the broker's retry and dead-letter topics: '{name}'"
        )));
    }
    Ok(())
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
        reserved_name(&name)?;
        self.blocking(move |r| r.create_topic(&name, engine, partitions, overrides)).await
    }

    /// Checks a creation as [`Core::create_topic`] would, creating nothing; returns the engine, partitions
    /// and effective config the topic would get.
    pub async fn validate_topic(
        &self,
        name: String,
        engine: Option<EngineKind>,
        partitions: u32,
        overrides: BTreeMap<String, String>,
    ) -> Result<(EngineKind, u32, janus_api::TopicConfig), BrokerError> {
        reserved_name(&name)?;
        self.blocking(move |r| r.validate_topic(&name, engine, partitions, overrides)).await
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

    /// Advances one partition's log start to `before` (Kafka's DeleteRecords; -1: the log end), so the
    /// records below it can no longer be read and their files go at the next retention pass. Returns the new
    /// log start. An offset past the log end is OFFSET_OUT_OF_RANGE; one at or below the start changes nothing.
    pub async fn delete_records(&self, topic: &str, partition: u32, before: i64) -> Result<i64, BrokerError> {
        let topic = self.topic(topic)?;
        let tp = topic.check_partition(partition)?;
        if before < -1 {
            return Err(BrokerError::new(
                crate::error::ErrorCode::OffsetOutOfRange,
                format!(
                    "cannot delete records before offset {before}: give an offset of 0 or more, or -1 for the log end"
                ),
            ));
        }
        self.blocking(move |r| {
            let engine = r.engine(topic.engine);
            let before = if before == -1 { engine.offsets(&tp)?.log_end } else { before };
            let start = engine.delete_records_before(&tp, before)?;
            tracing::info!(topic = %tp.topic, partition = tp.partition, log_start = start, "records deleted");
            Ok(start)
        })
        .await
    }
}
