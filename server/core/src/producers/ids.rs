//! Producer ids and epochs: issued durably by the metadata store ([`crate::meta::producers`]), remembered
//! here so the produce path checks a batch's id and epoch without a store read per batch.

use std::collections::HashMap;
use std::sync::Mutex;

use janus_api::{now_ms, sync};

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::meta::MetaStore;
use crate::meta::producers::IssuedProducer;

/// The most issued ids kept in memory; beyond it the cache is cleared and refilled from the store.
const CACHED_IDS: usize = 100_000;

/// Issued producer ids' current epochs, as far as this broker has looked them up.
#[derive(Debug, Default)]
pub struct ProducerIds {
    epochs: Mutex<HashMap<i64, i16>>,
    /// Serialises issuing (the store's issue and bump read, then write).
    issue: tokio::sync::Mutex<()>,
}

impl ProducerIds {
    /// Checks that `producer_id` was issued and `epoch` is its current epoch: `UnknownProducerId` for an id
    /// never issued, `InvalidProducerEpoch` for an older epoch (fenced) or one never issued.
    pub fn check(&self, meta: &MetaStore, producer_id: i64, epoch: i16) -> Result<(), BrokerError> {
        let cached = sync::lock(&self.epochs).get(&producer_id).copied();
        let current = match cached {
            Some(e) => e,
            None => {
                let issued = meta.issued_producer(producer_id)?.ok_or_else(|| {
                    BrokerError::new(
                        ErrorCode::UnknownProducerId,
                        format!("producer id {producer_id} was never issued by this broker; ask for one first"),
                    )
                })?;
                self.remember(&issued);
                issued.epoch
            }
        };
        match epoch.cmp(&current) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(BrokerError::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {producer_id} epoch {epoch} is fenced: its current epoch is {current} (another \
                     session of this producer took over)"
                ),
            )),
            std::cmp::Ordering::Greater => Err(BrokerError::new(
                ErrorCode::InvalidProducerEpoch,
                format!("producer {producer_id} epoch {epoch} was never issued (the current epoch is {current})"),
            )),
        }
    }

    fn remember(&self, issued: &IssuedProducer) {
        let mut epochs = sync::lock(&self.epochs);
        if epochs.len() >= CACHED_IDS {
            epochs.clear();
        }
        epochs.insert(issued.producer_id, issued.epoch);
    }
}

impl Core {
    /// Kafka's InitProducerId for an idempotent producer: a new producer id with epoch 0, or, given the id
    /// and epoch a producer holds, the same id with the next epoch (fencing the old epoch). An id the
    /// broker never issued, or an epoch that is not the id's current one, is refused; an id whose epoch
    /// cannot grow gets a new id.
    pub async fn init_producer_id(&self, existing: Option<(i64, i16)>) -> Result<IssuedProducer, BrokerError> {
        let ids = std::sync::Arc::clone(&self.producer_ids);
        let _issuing = ids.issue.lock().await;
        let ids2 = std::sync::Arc::clone(&ids);
        let issued = self
            .blocking(move |r| {
                let meta = r.meta();
                if let Some((id, epoch)) = existing {
                    ids2.check(meta, id, epoch)?;
                    if let Some(bumped) = meta.bump_producer_epoch(id)? {
                        return Ok(bumped);
                    }
                }
                Ok(meta.issue_producer_id(now_ms())?)
            })
            .await?;
        ids.remember(&issued);
        Ok(issued)
    }
}
