//! The Kafka RecordBatch v2 codec: the one input format of both engines and the on-disk unit of the
//! segment engine.
//!
//! - [`header`]: the fixed 61-byte header, its field positions and attribute bits;
//! - [`varint`]: zigzag varints;
//! - [`record`]: one record, encoded and parsed in place;
//! - [`compression`]: the five codecs;
//! - [`RecordBatch`]: one batch's bytes, built, checked ([`RecordBatch::validate`]) and decoded;
//! - [`split_batches`]: walking concatenated batches; [`decode_batches`]: their records, checked.

#[allow(clippy::module_inception)]
mod batch;
mod builder;
pub mod compression;
mod error;
pub mod header;
mod iter;
pub mod record;
pub mod varint;

pub use batch::RecordBatch;
pub use compression::Compression;
pub use error::BatchError;
pub use header::{BATCH_HEADER_SIZE, BatchHeader, LOG_OVERHEAD, MAGIC_V2};
pub use iter::{BatchIter, decode_batches, split_batches};
pub use record::{Header, NewRecord, Record, RecordView};
