//! The RocketMQ-model storage engine: every topic appends to one shared CommitLog; a ConsumeQueue per queue
//! indexes it by queue offset and tag; IndexFiles index it by key.
//!
//! ```text
//! <dir>/commitlog/<20-digit start offset>            fixed-size, mapped, one writer   (commitlog.rs, mapped.rs)
//! <dir>/consumequeue/<topic>/<queue>/<20-digit>     20-byte entries                  (consume_queue.rs)
//! <dir>/index/<20-digit creation ms>                 key hash slots + entry chains    (index_file.rs)
//! <dir>/checkpoint, abort, deleted_topics            recovery state                   (checkpoint.rs)
//! ```
//!
//! - Record format and the Kafka record mapping: `crate::format`.
//! - `append` validates the batch, writes one message per record through the mapping under the writer
//!   mutex, dispatches ConsumeQueue and IndexFile entries inline, publishes ([`dispatch`]).
//! - Flush policies and group commit: [`flusher`]. Recovery: [`recovery`]. Retention: [`retention`].
//! - Reads return mapped regions ([`janus_api::ReadSlice::Mapped`]); shipping them to a socket is not the
//!   engine's business (the server's transfer layer does it).
//! - Lookups: [`lookup`] (timestamps; [`KeyLookup`] for keys).
//!
//! Topic configs live in memory only (the server's metadata store owns them): `open_topic` adopts what is
//! on disk, `create_topic` refuses a name whose ConsumeQueue directory exists, and messages of topics not
//! opened stay in the CommitLog, unreachable until their topic is opened. `delete_topic` removes the
//! ConsumeQueues and records a tombstone (the CommitLog offset at deletion, in `deleted_topics`) so that
//! recovery never brings the old messages back; their bytes go with retention, as in RocketMQ.

pub mod checkpoint;
pub mod commitlog;
pub mod consume_queue;
pub mod dispatch;
mod engine;
pub mod flusher;
pub mod format;
pub mod index_file;
pub mod inspect;
pub mod lookup;
pub mod lru;
pub mod mapped;
pub mod options;
pub mod recovery;
pub mod retention;

pub use engine::CommitLogEngine;
pub use options::CommitLogOptions;
