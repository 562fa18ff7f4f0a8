//! 10,000 partitions: open, append to all, restart, read all back, with descriptors and mappings bounded by
//! `max_open_partitions`. Alone in its binary so the descriptor count is this test's own.

mod common;

use std::fs;

use common::{batch, open, read_all, spec, value};
use janus_api::{Engine, TopicPartition, now_ms};
use janus_segment::SegmentOptions;

const PARTITIONS: u32 = 10_000;
const MAX_OPEN: usize = 2_000;

fn open_descriptors() -> usize {
    fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn mappings() -> usize {
    fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0)
}

#[test]
fn ten_thousand_partitions_stay_within_descriptor_and_map_limits() {
    let dir = tempfile::tempdir().unwrap();
    let options = SegmentOptions { max_index_bytes: 4096, max_open_partitions: MAX_OPEN, ..SegmentOptions::default() };
    let (fds_before, maps_before) = (open_descriptors(), mappings());
    let started = std::time::Instant::now();
    {
        let engine = open(dir.path(), options.clone());
        engine.create_topic(&spec("wide", PARTITIONS, &[])).unwrap();
        for p in 0..PARTITIONS {
            let a = engine.append(&TopicPartition::new("wide", p), batch(&format!("p{p}"), 2, now_ms())).unwrap();
            assert_eq!((a.base_offset, a.last_offset), (0, 1));
        }
        assert!(engine.open_partition_count() <= MAX_OPEN, "open: {}", engine.open_partition_count());
        assert!(open_descriptors() < fds_before + MAX_OPEN + 64, "descriptors: {}", open_descriptors());
        assert!(mappings() < maps_before + 2 * MAX_OPEN + 64, "mappings: {}", mappings());
        engine.shutdown().unwrap();
    }
    eprintln!("created, appended and shut down in {:?}", started.elapsed());
    let engine = open(dir.path(), options);
    engine.open_topic(&spec("wide", PARTITIONS, &[])).unwrap();
    for p in (0..PARTITIONS).rev() {
        let tp = TopicPartition::new("wide", p);
        let records = read_all(&engine, &tp);
        assert_eq!(records.len(), 2, "{tp}");
        assert_eq!(value(&records[1]).unwrap(), format!("p{p}-1"));
        let a = engine.append(&tp, batch("again", 1, now_ms())).unwrap();
        assert_eq!(a.base_offset, 2, "{tp}");
    }
    assert!(engine.open_partition_count() <= MAX_OPEN);
    assert!(open_descriptors() < fds_before + MAX_OPEN + 64, "descriptors: {}", open_descriptors());
}
