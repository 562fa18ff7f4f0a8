//! The conformance suite every Janus storage engine must pass.
//!
//! An engine's own tests implement [`Harness`] (how to open the engine over a directory, and where its
//! files are) and then either list every case as a `#[test]` with one macro call:
//!
//! ```ignore
//! struct SegmentHarness;
//! impl janus_conformance::Harness for SegmentHarness { /* ... */ }
//!
//! janus_conformance::conformance_tests!(SegmentHarness);
//! ```
//!
//! or call [`run_all`], or call the cases one by one (each is a `pub fn case<H: Harness>(h: &H)`).
//!
//! Every case makes its own temporary directory, checks offsets, keys, values, headers and timestamps
//! against what it sent, and panics with a message naming the case, the partition and the offset when the
//! engine disagrees. The assertions are engine-neutral: they hold for the segment engine (Kafka model) and
//! the commitlog engine (RocketMQ model) alike. Terms used in the cases:
//!
//! - *crash*: the engine is dropped without [`Engine::shutdown`]; the page cache survives, so nothing
//!   appended may be lost unless the test damaged the files;
//! - *clean restart*: `shutdown()`, drop, [`Harness::open`];
//! - after either, the suite re-registers its topics with [`Engine::open_topic`] and the same spec (engines
//!   do not store topic configs).
//!
//! [`Engine::shutdown`]: janus_api::Engine::shutdown
//! [`Engine::open_topic`]: janus_api::Engine::open_topic

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use janus_api::{StorageError, TopicConfig, TopicPartition};

mod bad_input;
mod basic;
mod crash;
mod flush;
mod model;
mod restart;
mod retention;
mod slices;
mod support;
mod topics;

pub use bad_input::{
    compression_bomb_rejected, corrupt_crc_rejected, existing_topic_rejected, invalid_config_rejected,
    invalid_topic_name_rejected, malformed_batches_rejected, oversized_batch_rejected, unknown_partition_rejected,
    unknown_topic_rejected, wrong_magic_rejected,
};
pub use basic::{
    append_and_read_in_order, compressed_batches_round_trip, concurrent_appends_and_reads, max_bytes_makes_progress,
    offset_for_timestamp, offsets_are_dense_and_monotonic, read_from_any_offset, record_fields_round_trip,
};
pub use crash::{
    crash_flipped_byte_in_last_record, crash_missing_index_files, crash_truncated_last_record,
    crash_without_damage_loses_nothing, crash_zero_filled_tail, missing_index_files_after_clean_shutdown,
};
pub use flush::{flush_interval_completes, flush_os_is_ready_at_once, flush_sync_concurrent_appends};
pub use model::random_operations_match_model;
pub use restart::{calls_after_shutdown_fail_closed, clean_restart_keeps_everything};
pub use retention::{delete_records_before, retention_by_size, retention_by_time};
pub use slices::{decode_and_encode_slices, encode_batches_keeps_producer_fields, encode_batches_under_a_tag_filter};
pub use topics::{
    delete_topic_removes_data, purge_open_topic, purge_topic_without_files, purge_unopened_topic,
    recreated_topic_survives_crash, topics_on_disk_after_reopen,
};

/// Where one stored record batch (segment engine) or message (commitlog engine) is, so that the crash cases
/// can damage it on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLocation {
    /// The file holding it.
    pub path: PathBuf,
    /// Its byte range in that file.
    pub range: Range<u64>,
    /// One byte inside `range` that the format's checksum covers (flipping it must fail the checksum).
    pub checked_byte: u64,
}

/// What an engine's tests provide so the suite can drive the engine and damage its files.
pub trait Harness: Sync {
    /// The engine under test.
    type E: janus_api::Engine;

    /// Opens (or reopens after a crash or clean shutdown) an engine over `dir`, configured with small files
    /// (a few hundred KiB) so that tests cross file/segment boundaries quickly.
    fn open(&self, dir: &Path) -> Result<Self::E, StorageError>;

    /// The per-topic config the suite should start from (engines may shrink `segment.bytes` etc.).
    fn base_config(&self) -> TopicConfig {
        TopicConfig::default()
    }

    /// Where the newest batch (segment) / newest message (commitlog) of `tp` is stored: its file, its byte
    /// range in that file, and one byte inside it that the format's checksum covers. Called with the engine
    /// dropped.
    fn last_record(&self, dir: &Path, tp: &TopicPartition) -> io::Result<RecordLocation>;

    /// Index files of `tp` that the engine must be able to rebuild from its data files (offset/time indexes,
    /// or ConsumeQueue/IndexFile files). Called with the engine dropped.
    fn index_files(&self, dir: &Path, tp: &TopicPartition) -> io::Result<Vec<PathBuf>>;

    /// An upper bound on the bytes one data file (a segment, or a CommitLog file) holds with the engine
    /// [`Harness::open`] makes and [`Harness::base_config`]. Cases that need several files write a few
    /// times this much, so keep it close to the real size: the suite's run time grows with it.
    fn file_bytes(&self) -> u64 {
        256 * 1024
    }
}

/// Calls `$callback!` with the name of every case, so that [`run_all`] and [`conformance_tests!`] cannot
/// drift apart.
#[doc(hidden)]
#[macro_export]
macro_rules! __janus_conformance_cases {
    ($mode:ident $args:tt) => {
        $crate::__janus_conformance_emit! { $mode $args
            append_and_read_in_order
            offsets_are_dense_and_monotonic
            record_fields_round_trip
            compressed_batches_round_trip
            read_from_any_offset
            max_bytes_makes_progress
            offset_for_timestamp
            concurrent_appends_and_reads
            retention_by_time
            retention_by_size
            delete_records_before
            clean_restart_keeps_everything
            calls_after_shutdown_fail_closed
            crash_without_damage_loses_nothing
            crash_truncated_last_record
            crash_flipped_byte_in_last_record
            crash_zero_filled_tail
            crash_missing_index_files
            missing_index_files_after_clean_shutdown
            corrupt_crc_rejected
            wrong_magic_rejected
            malformed_batches_rejected
            oversized_batch_rejected
            compression_bomb_rejected
            unknown_topic_rejected
            unknown_partition_rejected
            invalid_topic_name_rejected
            existing_topic_rejected
            invalid_config_rejected
            flush_sync_concurrent_appends
            flush_interval_completes
            flush_os_is_ready_at_once
            delete_topic_removes_data
            topics_on_disk_after_reopen
            recreated_topic_survives_crash
            purge_open_topic
            purge_unopened_topic
            purge_topic_without_files
            decode_and_encode_slices
            encode_batches_under_a_tag_filter
            encode_batches_keeps_producer_fields
            random_operations_match_model
        }
    };
}

/// Expands the case list for one use (see [`__janus_conformance_cases!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __janus_conformance_emit {
    (tests ($harness:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                let harness = $harness;
                $crate::$case(&harness);
            }
        )*
    };
    (run ($harness:expr) $($case:ident)*) => {
        $( $crate::run_case(stringify!($case), || $crate::$case($harness)); )*
    };
    (names () $($case:ident)*) => {
        &[$(stringify!($case)),*]
    };
}

/// Expands to one `#[test]` per conformance case, each running that case against the harness that
/// `$harness` evaluates to (evaluated afresh in every test):
///
/// ```ignore
/// janus_conformance::conformance_tests!(SegmentHarness::default());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::__janus_conformance_cases! { tests ($harness) }
    };
    ($harness:expr,) => {
        $crate::conformance_tests!($harness);
    };
}

/// The names of every case, in the order [`run_all`] runs them (each is also a `pub fn` of this crate).
pub const CASE_NAMES: &[&str] = __janus_conformance_cases! { names () };

/// Runs every case in order, printing each name to stderr first; panics on the first failure.
pub fn run_all<H: Harness>(h: &H) {
    __janus_conformance_cases! { run (h) }
}

/// Runs one case, naming it on stderr first (used by [`run_all`]).
#[doc(hidden)]
pub fn run_case(name: &str, case: impl FnOnce()) {
    eprintln!("janus-conformance: {name}");
    let started = std::time::Instant::now();
    case();
    eprintln!("janus-conformance: {name} ok in {:?}", started.elapsed());
}
