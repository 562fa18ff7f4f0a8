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
