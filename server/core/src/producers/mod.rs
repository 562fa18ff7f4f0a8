//! The idempotent producer (Kafka's semantics, for topics of either engine): the per-partition state that
//! makes a retried batch land once. [`state`] holds the checks; wiring them into the produce path, producer
//! ids, persistence (a snapshot plus replay of the log's tail) and the faces come next (issue 15).

pub mod state;

pub use state::{BATCHES_KEPT, KeptBatch, PartitionProducers, ProducerBatch, ProducerEntry, Verdict};
