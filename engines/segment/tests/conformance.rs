//! The shared conformance suite, run against the segment engine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use janus_api::batch::split_batches;
use janus_api::{StorageError, TopicConfig, TopicPartition};
use janus_conformance::{Harness, RecordLocation};
use janus_segment::{SegmentEngine, SegmentOptions};

/// Small segments (so tests roll often) and small indexes.
struct SegmentHarness;

const SEGMENT_BYTES: u32 = 64 * 1024;

fn partition_dir(dir: &Path, tp: &TopicPartition) -> PathBuf {
    dir.join(format!("{}-{}", tp.topic, tp.partition))
}

fn files_with_suffix(dir: &Path, suffixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| suffixes.contains(&e)))
        .collect();
    files.sort();
    Ok(files)
}

impl Harness for SegmentHarness {
    type E = SegmentEngine;

    fn open(&self, dir: &Path) -> Result<SegmentEngine, StorageError> {
        let options = SegmentOptions { max_index_bytes: 16 * 1024, ..SegmentOptions::default() };
        SegmentEngine::open(dir, options)
    }

    fn base_config(&self) -> TopicConfig {
        TopicConfig::default().with_overrides([("segment.bytes", "65536"), ("index.interval.bytes", "1024")]).unwrap()
    }

    fn last_record(&self, dir: &Path, tp: &TopicPartition) -> io::Result<RecordLocation> {
        for log in files_with_suffix(&partition_dir(dir, tp), &["log"])?.into_iter().rev() {
            let bytes = fs::read(&log)?;
            let mut last = None;
            let mut iter = split_batches(&bytes);
            for item in &mut iter {
                let Ok((_, raw)) = item else { break };
                let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
                last = Some(start as u64..(start + raw.len()) as u64);
            }
            if let Some(range) = last {
                // The CRC covers everything from the attributes field (byte 21) to the end of the batch.
                let checked_byte = range.start + 21 + (range.end - range.start - 21) / 2;
                return Ok(RecordLocation { path: log, range, checked_byte });
            }
        }
        Err(io::Error::new(io::ErrorKind::NotFound, format!("no batch stored for {tp}")))
    }

    fn index_files(&self, dir: &Path, tp: &TopicPartition) -> io::Result<Vec<PathBuf>> {
        files_with_suffix(&partition_dir(dir, tp), &["index", "timeindex"])
    }

    fn file_bytes(&self) -> u64 {
        SEGMENT_BYTES as u64
    }
}

janus_conformance::conformance_tests!(SegmentHarness);
