//! Where each partition's producer state lives while the broker runs, and how it is rebuilt: loaded
//! lazily, on the first batch with a producer id a partition gets, from its snapshot in the metadata
//! store plus a replay of the log from the snapshot's end (or, with no snapshot, from the first message
//! younger than `producer.id.expiration.ms`). Both engines give back each batch's producer fields
//! (`Engine::encode_batches`), so the replay is the same for both.
//!
//! A slot's mutex is held across check, append and record, so two copies of one batch can never both
//! pass the check; batches without a producer id never take it.

use std::sync::Mutex;

use janus_api::{Engine, StorageError, TopicPartition};
use janus_codec::batch::split_batches;

use super::snapshot;
use super::state::{PartitionProducers, ProducerBatch};
use crate::error::BrokerError;
use crate::meta::MetaStore;

/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;

/// One partition's producer state: `None` until a batch with a producer id needs it.
#[derive(Debug, Default)]
pub struct Slot {
    /// The state, once loaded.
    pub state: Option<PartitionProducers>,
    /// Changed since the last snapshot.
    pub dirty: bool,
}

/// Every partition's slot of one topic.
#[derive(Debug)]
pub struct TopicProducers {
    slots: Vec<Mutex<Slot>>,
}

impl TopicProducers {
    /// Empty slots for `partitions` partitions.
    pub fn new(partitions: u32) -> Self {
        TopicProducers { slots: (0..partitions).map(|_| Mutex::new(Slot::default())).collect() }
    }

    /// The slot of `partition` (which the caller checked exists).
    pub fn slot(&self, partition: u32) -> Option<&Mutex<Slot>> {
        self.slots.get(partition as usize)
    }

    /// Every slot, by partition.
    pub fn slots(&self) -> impl Iterator<Item = (u32, &Mutex<Slot>)> {
        self.slots.iter().enumerate().map(|(p, s)| (p as u32, s))
    }
}

/// Builds the state of `tp` at its log end: the stored snapshot, then the log replayed from the
/// snapshot's end (batches are at most `max_batch_bytes`, the topic's `max.message.bytes`). Producers idle
/// longer than `expiration_ms` are dropped. Stores the result as the partition's snapshot.
pub fn load(
    engine: &dyn Engine,
    meta: &MetaStore,
    tp: &TopicPartition,
    max_batch_bytes: usize,
    expiration_ms: i64,
    now_ms: i64,
) -> Result<PartitionProducers, BrokerError> {
    let offsets = engine.offsets(tp)?;
    let stored = match meta.producer_snapshot(&tp.topic, tp.partition)? {
        None => None,
        Some(bytes) => {
            let decoded = snapshot::decode(&bytes);
            if decoded.is_none() {
                tracing::warn!(topic = %tp.topic, partition = tp.partition,
                    "producer snapshot unreadable; rebuilding the producer state from the log");
            }
            decoded
        }
    };
    let (mut state, from) = match stored {
        Some(s) if s.replay_from <= offsets.log_end => (s.producers, s.replay_from),
        _ => {
            let cutoff = now_ms.saturating_sub(expiration_ms);
            (PartitionProducers::default(), engine.offset_for_timestamp(tp, cutoff)?.unwrap_or(offsets.log_end))
        }
    };
    // Steps of at least two of the largest batches, so a cut-short step always holds a whole one.
    let read_bytes = REPLAY_READ_BYTES.max(max_batch_bytes.saturating_mul(2));
    let replayed = replay(engine, tp, (from.max(offsets.log_start), offsets.log_end), read_bytes, &mut state, now_ms)?;
    state.expire(now_ms.saturating_sub(expiration_ms));
    // A snapshot at once: a crash before the first periodic one then replays from here, not from a point
    // found by the (client-set) timestamps.
    meta.put_producer_snapshot(&tp.topic, tp.partition, &snapshot::encode(offsets.log_end, &state))?;
    tracing::debug!(topic = %tp.topic, partition = tp.partition, from, batches = replayed, producers = state.len(),
        "producer state loaded");
    Ok(state)
}

/// Applies every batch with a producer id in `from..end` to `state`, reading `read_bytes` per step;
/// returns how many it applied.
fn replay(
    engine: &dyn Engine,
    tp: &TopicPartition,
    (from, end): (i64, i64),
    read_bytes: usize,
    state: &mut PartitionProducers,
    now_ms: i64,
) -> Result<usize, BrokerError> {
    let mut offset = from;
    let mut applied = 0;
    while offset < end {
        let slice = match engine.read(tp, offset, read_bytes) {
            Ok(s) => s,
            // Retention removed the rest of what was asked: nothing below the log start matters.
            Err(StorageError::OffsetOutOfRange { start, .. }) if start > offset => {
                offset = start;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let next = slice.next_offset();
        if slice.is_empty() || next <= offset {
            break;
        }
        let bytes = engine.encode_batches(&slice)?;
        let mut headers = Vec::new();
        for item in split_batches(&bytes) {
            let (h, _) = item.map_err(|e| {
                BrokerError::from(StorageError::Corrupt {
                    path: format!("{}-{}", tp.topic, tp.partition).into(),
                    detail: format!("replaying producer state: {e}"),
                })
            })?;
            headers.push(h);
        }
        // A read that stops at its byte budget may cut the last batch short (the commitlog engine rebuilds
        // batches from messages): such a batch is read again, whole, at the start of the next step.
        let mut resume = next;
        if next < end && headers.len() > 1 && headers.last().is_some_and(|h| h.producer_id >= 0) {
            resume = headers.pop().map_or(next, |h| h.base_offset);
        }
        for h in headers {
            if h.producer_id < 0 || h.last_offset() < from {
                continue;
            }
            let batch = ProducerBatch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                first_sequence: h.base_sequence,
                last_offset_delta: h.last_offset_delta,
            };
            state.replay(&batch, h.base_offset, h.last_offset(), now_ms);
            applied += 1;
        }
        offset = resume;
    }
    Ok(applied)
}
