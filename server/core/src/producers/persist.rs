//! Snapshots of every changed partition's producer state, written every `producer_snapshot_interval`
//! and once more at shutdown, so a restart replays at most that much of each log.

use std::sync::Arc;

use janus_api::{TopicPartition, now_ms, sync};

use super::snapshot;
use crate::Core;
use crate::error::BrokerError;
use crate::topics::Topic;

impl Core {
    /// Snapshots changed producer state until the broker shuts down, then once more (the runtime spawns
    /// this once). Also forgets producers idle longer than `producer.id.expiration.ms`.
    pub async fn run_producer_snapshots(&self) {
        let mut shutdown = self.shutdown_signal();
        let interval = self.messaging.config().producer_snapshot_interval;
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(interval) => false,
                _ = shutdown.wait_for(|s| *s) => true,
            };
            match self.snapshot_producers().await {
                Ok(n) if n > 0 => tracing::debug!(partitions = n, "producer state snapshotted"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not snapshot producer state; trying again"),
            }
            if stopping {
                return;
            }
        }
    }

    /// Writes a snapshot of every partition whose producer state changed since its last one; returns how
    /// many it wrote.
    pub async fn snapshot_producers(&self) -> Result<usize, BrokerError> {
        let expiration_ms = self.messaging.config().producer_id_expiration_ms;
        self.blocking(move |r| {
            let mut written = 0;
            for topic in r.topics() {
                written += snapshot_topic(r, &topic, expiration_ms)?;
            }
            Ok(written)
        })
        .await
    }
}

fn snapshot_topic(r: &crate::topics::Registry, topic: &Arc<Topic>, expiration_ms: i64) -> Result<usize, BrokerError> {
    let engine = r.engine(topic.engine);
    let mut written = 0;
    for (partition, slot) in topic.producers.slots() {
        let bytes = {
            let mut guard = sync::lock(slot);
            let slot = &mut *guard;
            if !slot.dirty {
                continue;
            }
            let Some(state) = slot.state.as_mut() else { continue };
            state.expire(now_ms().saturating_sub(expiration_ms));
            // Under the slot's lock no batch with a producer id is appended, so every such batch below
            // the log end is in the state.
            let end = engine.offsets(&TopicPartition::new(topic.name.clone(), partition))?.log_end;
            slot.dirty = false;
            snapshot::encode(end, state)
        };
        if topic.is_deleted() {
            return Ok(written);
        }
        if let Err(e) = r.meta().put_producer_snapshot(&topic.name, partition, &bytes) {
            if let Some(slot) = topic.producers.slot(partition) {
                sync::lock(slot).dirty = true;
            }
            return Err(e.into());
        }
        if topic.is_deleted() {
            // Deleted while this was written: its removal may have come first, so remove it again.
            r.meta().delete_producer_snapshot(&topic.name, partition)?;
            return Ok(written);
        }
        written += 1;
    }
    Ok(written)
}
