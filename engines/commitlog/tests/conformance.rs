//! The shared conformance suite, run against the commitlog engine with small files: once writing through the
//! mapping, once with staged (`pwritev`, the default) writes.

use std::io;
use std::path::{Path, PathBuf};

use janus_api::{StorageError, TopicPartition};
use janus_commitlog::{CommitLogEngine, CommitLogOptions, inspect};
use janus_conformance::{Harness, RecordLocation};

/// CommitLog file size in these tests.
const FILE_BYTES: u64 = 256 * 1024;

struct CommitLogHarness {
    staged_writes: bool,
}

impl Harness for CommitLogHarness {
    type E = CommitLogEngine;

    fn open(&self, dir: &Path) -> Result<CommitLogEngine, StorageError> {
        let options = CommitLogOptions {
            file_bytes: FILE_BYTES,
            consumequeue_file_entries: 256,
            consumequeue_open_files: 64,
            index_slots: 512,
            index_entries: 2048,
            staged_writes: self.staged_writes,
            ..CommitLogOptions::default()
        };
        CommitLogEngine::open(dir, options)
    }

    fn last_record(&self, dir: &Path, tp: &TopicPartition) -> io::Result<RecordLocation> {
        let l = inspect::last_message(dir, tp)?;
        Ok(RecordLocation { path: l.path, range: l.range, checked_byte: l.checked_byte })
    }

    fn index_files(&self, dir: &Path, tp: &TopicPartition) -> io::Result<Vec<PathBuf>> {
        inspect::consume_queue_files(dir, tp)
    }

    fn file_bytes(&self) -> u64 {
        FILE_BYTES
    }
}

mod mapped_writes {
    janus_conformance::conformance_tests!(super::CommitLogHarness { staged_writes: false });
}

mod staged_writes {
    janus_conformance::conformance_tests!(super::CommitLogHarness { staged_writes: true });
}
