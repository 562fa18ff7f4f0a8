//! Helpers shared by the segment engine's tests.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use janus_api::{Compression, Engine, NewRecord, Record, RecordBatch, TopicConfig, TopicPartition, TopicSpec};
use janus_segment::{SegmentEngine, SegmentOptions};

/// A batch of `n` records `<prefix>-<i>` with keys `k<i>` and the given timestamp.
pub fn batch(prefix: &str, n: usize, ts: i64) -> RecordBatch {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{prefix}-{i}"))),
            headers: vec![],
            timestamp_ms: ts,
        })
        .collect();
    RecordBatch::build(&records, Compression::None).unwrap()
}

/// A batch of one record with an explicit key and value (`None` value = tombstone).
pub fn keyed(key: &str, value: Option<&str>, ts: i64) -> RecordBatch {
    let record = NewRecord {
        key: Some(Bytes::from(key.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        headers: vec![],
        timestamp_ms: ts,
    };
    RecordBatch::build(&[record], Compression::None).unwrap()
}

/// Opens an engine with the given options.
pub fn open(dir: &Path, options: SegmentOptions) -> SegmentEngine {
    SegmentEngine::open(dir, options).unwrap()
}

/// A spec with config overrides.
pub fn spec(name: &str, partitions: u32, overrides: &[(&str, &str)]) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        config: TopicConfig::default().with_overrides(overrides.iter().copied()).unwrap(),
    }
}

/// Every record of a partition from its log start, following `next_offset`.
pub fn read_all(engine: &SegmentEngine, tp: &TopicPartition) -> Vec<Record> {
    let offsets = engine.offsets(tp).unwrap();
    let mut out = Vec::new();
    let mut at = offsets.log_start;
    while at < offsets.log_end {
        let slice = engine.read(tp, at, 64 * 1024).unwrap();
        assert!(slice.next_offset() > at, "read at {at} made no progress");
        out.extend(engine.decode_records(&slice, at).unwrap());
        at = slice.next_offset();
    }
    out
}

/// The files of a partition directory with the given extension, sorted.
pub fn files(dir: &Path, tp: &TopicPartition, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join(format!("{}-{}", tp.topic, tp.partition)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// The value of a record as a string.
pub fn value(r: &Record) -> Option<String> {
    r.value.as_ref().map(|v| String::from_utf8(v.to_vec()).unwrap())
}
