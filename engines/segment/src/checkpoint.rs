//! Offset checkpoint files (Kafka's text format): a version line `0`, a count line, then one
//! `topic partition offset` line per partition. Written to a temporary file, synced, and renamed over the
//! old one, so a crash leaves either the old or the new checkpoint.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use janus_api::{StorageError, TopicPartition};

/// The only format version.
const VERSION: u32 = 0;

/// Reads a checkpoint; a missing file is an empty map, a damaged one is an error naming the line.
pub fn read(path: &Path) -> Result<HashMap<TopicPartition, i64>, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let corrupt = |detail: String| StorageError::Corrupt { path: path.to_path_buf(), detail };
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some(v) if v == VERSION.to_string() => {}
        other => return Err(corrupt(format!("unsupported checkpoint version {other:?}"))),
    }
    let count: usize =
        lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| corrupt("missing entry count".into()))?;
    let mut map = HashMap::with_capacity(count);
    for (n, line) in lines.enumerate() {
        let mut parts = line.split(' ');
        let parsed = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(topic), Some(p), Some(o), None) => p.parse().ok().zip(o.parse().ok()).map(|(p, o)| (topic, p, o)),
            _ => None,
        };
        let (topic, partition, offset) =
            parsed.ok_or_else(|| corrupt(format!("line {} is malformed: {line:?}", n + 3)))?;
        map.insert(TopicPartition::new(topic, partition), offset);
    }
    if map.len() != count {
        return Err(corrupt(format!("header says {count} entries, found {}", map.len())));
    }
    Ok(map)
}

/// Replaces the checkpoint at `path` with `entries`, durably.
pub fn write(path: &Path, entries: &HashMap<TopicPartition, i64>) -> Result<(), StorageError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    janus_api::fsutil::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read(&path).unwrap().is_empty());
        let entries = HashMap::from([(TopicPartition::new("a-b", 3), 42), (TopicPartition::new("c", 0), 0)]);
        write(&path, &entries).unwrap();
        assert_eq!(read(&path).unwrap(), entries);
        fs::write(&path, "0\n2\na-b 3 42\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("header says 2 entries"), "{err}");
        fs::write(&path, "0\n1\na-b x 42\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("line 3 is malformed"));
        fs::write(&path, "7\n0\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("version"));
    }
}
