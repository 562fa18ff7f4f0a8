//! The idempotent producer (Kafka's semantics, for topics of either engine): producer ids and epochs
//! issued by the broker, and per partition the state that makes a retried batch land once.
//!
//! - [`state`]: the checks (duplicate, stale epoch, sequence gap) over a partition's producers.
//! - [`slots`]: each partition's state in memory, loaded from its snapshot plus a replay of the log.
//! - [`snapshot`]: the snapshot's bytes in the metadata store.
//! - [`ids`]: issuing ids and epochs, and checking that a batch's were issued.
//!
//! The checks run in the core's produce path ([`crate::Core::produce_batches`]), so every face that
//! hands the core client-built batches gets them.

pub mod ids;
mod persist;
pub mod slots;
pub mod snapshot;
pub mod state;

pub use ids::ProducerIds;
pub use slots::TopicProducers;
pub use state::{BATCHES_KEPT, KeptBatch, PartitionProducers, ProducerBatch, ProducerEntry, Verdict};
