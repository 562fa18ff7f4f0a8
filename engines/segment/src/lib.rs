//! The segment engine: Kafka's storage model.
//!
//! Every partition is a directory `<topic>-<partition>/` holding a chain of segments, each a `.log` of
//! RecordBatch v2 batches stored byte-exact (so fetches can `sendfile` them), a sparse `.index` (relative
//! offset -> file position, an entry every `index.interval.bytes`) and a `.timeindex` (max timestamp ->
//! offset). Segments roll by size, age, full index or relative-offset overflow; retention deletes whole
//! closed segments; compaction rewrites closed segments keeping each key's newest record.
//!
//! Partitions load lazily and only recently used ones keep files open ([`SegmentOptions::max_open_partitions`]);
//! a crash is detected by the missing clean-shutdown marker and repaired per partition from its recovery point.
//!
//! Storage only: reads return [`janus_api::ReadSlice::File`] ranges of whole stored batches, and shipping
//! them to a socket (`sendfile`) is the server's transfer layer's job. [`SegmentEngine`] implements
//! [`janus_api::Engine`] (`decode_records` decodes the stored batches, `encode_batches` returns them as they
//! are, `purge_topic` also removes partition directories of topics that are not open) and offers the
//! [`janus_api::Compaction`] capability; it has no tag filter and no key index.
//!
//! Modules: [`engine`] (topics, partitions, the trait), [`log`] (one partition's segment chain), [`segment`]
//! (one segment's files), [`index`] (offset and time indexes), [`naming`] (file and directory names),
//! [`checkpoint`] (offset checkpoint files), [`flusher`] (group commit), [`compaction`], and [`options`]
//! (engine-wide settings by key, [`options::OPTION_KEYS`]).

pub mod checkpoint;
pub mod compaction;
pub mod engine;
pub mod flusher;
pub mod index;
pub mod log;
pub mod naming;
pub mod options;
pub mod segment;

pub use engine::SegmentEngine;
pub use options::SegmentOptions;
