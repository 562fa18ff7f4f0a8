//! File and directory names: `<topic>-<partition>/` directories holding `<20-digit base offset>.log`,
//! `.index` and `.timeindex` files.

use std::path::{Path, PathBuf};

use janus_api::TopicPartition;

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = "log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of a compacted segment being written, before it is swapped in.
pub const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of a partition directory that is being deleted.
pub const DELETE_DIR_SUFFIX: &str = ".deleting";

/// The directory name of a partition: `<topic>-<partition>`.
pub fn partition_dir_name(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

/// Parses `<topic>-<partition>` (the topic may itself contain '-'); `None` for anything else.
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || janus_api::validate_topic_name(topic).is_err() {
        return None;
    }
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) || partition.len() > 6 {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

/// The path of a segment file: `<dir>/<20-digit base offset>.<suffix>`.
pub fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Parses `<20-digit base offset>.<suffix>` into the base offset and suffix.
pub fn parse_segment_file(name: &str) -> Option<(i64, &str)> {
    let (digits, suffix) = name.split_once('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dirs_round_trip_even_with_dashes_in_topics() {
        for tp in [TopicPartition::new("orders", 0), TopicPartition::new("a-1", 12), TopicPartition::new("x", 99999)] {
            assert_eq!(parse_partition_dir(&partition_dir_name(&tp)), Some(tp));
        }
        for bad in ["orders", "orders-", "-1", "orders-x", "or/ders-1", "t-1.deleting", "t-1234567"] {
            assert_eq!(parse_partition_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn segment_names_are_twenty_digits() {
        let p = segment_file(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_segment_file("00000000000000000042.log"), Some((42, "log")));
        assert_eq!(parse_segment_file("00000000000000000042.log.cleaned"), Some((42, "log.cleaned")));
        assert_eq!(parse_segment_file("42.log"), None);
    }
}
