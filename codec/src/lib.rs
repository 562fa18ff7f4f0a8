//! Kafka's formats as a client, a broker face and the storage engines all need them, with no storage code:
//!
//! - [`batch`]: the RecordBatch v2 codec (the one input format of both engines and the on-disk unit of the
//!   segment engine; soon also what clients put on the wire);
//! - [`partitioner`]: Kafka's default partitioner for keyed messages (murmur2), so keys land where Kafka's
//!   Java client puts them;
//! - [`message_id`]: message ids in the shape of RocketMQ's `UNIQ_KEY`;
//! - [`headers`]: record header names with a meaning beyond the record (RocketMQ's properties).

pub mod batch;
pub mod headers;
pub mod message_id;
pub mod partitioner;

pub use batch::{BatchError, BatchHeader, Compression, Header, NewRecord, Record, RecordBatch};
