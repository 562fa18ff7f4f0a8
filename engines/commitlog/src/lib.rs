//! The RocketMQ-model storage engine: every topic appends to one shared CommitLog; a ConsumeQueue per queue
//! indexes it by queue offset and tag; IndexFiles index it by key. Storage only: no network code, no
//! knowledge of the server.
//!
//! ```text
//! <dir>/commitlog/<20-digit start offset>            fixed-size, mapped, one writer   (commitlog, writer, mapped)
//! <dir>/consumequeue/<topic>/<queue>/<20-digit>     20-byte entries                  (consume_queue)
//! <dir>/index/<20-digit creation ms>                 key hash slots + entry chains    (index_file)
//! <dir>/checkpoint, abort, deleted_topics            recovery state                   (checkpoint)
//! ```
//!
//! Modules, from the bottom up (each uses only modules of its own bullet and of the bullets before it;
//! nothing but `engine` names the engine):
//!
//! - [`format`](mod@format): the CommitLog record format and the Kafka record <-> CommitLog message mapping (public,
//!   with its byte-exact tests);
//! - `mapped`: one mapped file with a readable end (the invariant that makes the mapping sound); `commitlog`:
//!   the chain of files and its allocator thread; `stage`: the staged writer's run of bytes (`pwritev`);
//!   `writer`: the single writer (reserve, write, publish, roll back); `consume_queue`, `index_file`, `lru`, `checkpoint`: the other files;
//! - `state`: the shared handles (stores, writer, open topics and queues, flags), passed explicitly;
//! - `dispatch` (batch -> messages -> ConsumeQueue/IndexFile entries), `append`, `read` (mapped regions;
//!   decoding them and re-encoding them as Kafka batches), `lookup` (timestamps, keys), `retention`,
//!   `recovery`, `flusher` (group commit and checkpoints);
//! - `engine`: [`CommitLogEngine`], which implements [`janus_api::Engine`] and the capabilities
//!   [`janus_api::TagFilter`] and [`janus_api::KeyLookup`] (it cannot compact: the CommitLog is shared);
//! - [`options`]: broker-wide settings by key; [`inspect`]: reading the files with the engine closed.
//!
//! `append` validates the batch, writes one message per record under the writer mutex (staged and written with
//! `pwritev` by default, or through the mapping),
//! dispatches ConsumeQueue and IndexFile entries inline, and publishes. Reads return mapped regions
//! ([`janus_api::ReadSlice::Mapped`]); shipping them to a socket is the server's transfer layer's job.
//!
//! Topic configs live in memory only (the server's metadata store owns them): `open_topic` adopts what is
//! on disk, `create_topic` refuses a name whose ConsumeQueue directory exists, and messages of topics not
//! opened stay in the CommitLog, unreachable until their topic is opened. `delete_topic` (and
//! `purge_topic`, which also works on a topic that is not open) removes the ConsumeQueues and records a
//! tombstone (the CommitLog offset at deletion, in `deleted_topics`) so that recovery never brings the old
//! messages back; their bytes go with retention, as in RocketMQ.

mod append;
mod checkpoint;
mod commitlog;
mod consume_queue;
mod dispatch;
mod engine;
mod flusher;
pub mod format;
mod index_file;
pub mod inspect;
mod lookup;
mod lru;
pub(crate) mod mapped;
pub mod options;
mod read;
mod recovery;
mod retention;
mod stage;
mod state;
mod writer;

pub use engine::CommitLogEngine;
pub use options::CommitLogOptions;
