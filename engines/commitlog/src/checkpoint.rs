//! Small state files: the checkpoint, the abort marker, deleted-topic tombstones and per-queue log starts.
//!
//! - `checkpoint`: where the CommitLog is flushed to, where the ConsumeQueues and IndexFiles are flushed to
//!   (as a CommitLog offset: every message below it has durable entries), the newest store time, and every
//!   queue's end at that point. Text, one field per line, ending with a CRC-32 line; replaced atomically.
//! - `abort`: created at open, removed by a clean shutdown. Present at open means the last run crashed.
//! - `deleted_topics`: `topic physical-offset` lines. Messages of a deleted topic below that offset belong
//!   to the old topic and are never dispatched again (a re-created topic starts empty).
//! - `consumequeue/<topic>/<queue>/logstart`: the queue's log start set by `delete_records_before`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use janus_api::{IoResultExt, StorageError};

use janus_api::fsutil::{sync_dir, write_atomic};

/// File name of the checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// File name of the abort marker.
pub const ABORT_FILE: &str = "abort";
/// File name of the tombstones.
pub const TOMBSTONES_FILE: &str = "deleted_topics";
/// File name of a queue's log start.
pub const LOG_START_FILE: &str = "logstart";

const MAGIC_LINE: &str = "janus-commitlog-checkpoint 1";

/// The checkpoint's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// CommitLog bytes below this are on disk.
    pub commitlog_flushed: u64,
    /// Every message below this CommitLog offset has its ConsumeQueue and IndexFile entries on disk.
    pub dispatch_flushed: u64,
    /// The newest STORETIMESTAMP written.
    pub last_store_ms: i64,
    /// Each queue's end (next offset) at `dispatch_flushed`.
    pub queues: BTreeMap<(String, u32), i64>,
}

/// Writes `content` to `dir/name` atomically (see [`write_atomic`]).
fn write_in(dir: &Path, name: &str, content: &[u8]) -> Result<(), StorageError> {
    write_atomic(&dir.join(name), content)
}

fn read_optional(path: &Path) -> Result<Option<String>, StorageError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

impl Checkpoint {
    /// The text of the checkpoint file.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(64 + self.queues.len() * 40);
        s.push_str(MAGIC_LINE);
        s.push('\n');
        s.push_str(&format!("commitlog {}\n", self.commitlog_flushed));
        s.push_str(&format!("dispatch {}\n", self.dispatch_flushed));
        s.push_str(&format!("store_ms {}\n", self.last_store_ms));
        for ((topic, queue), next) in &self.queues {
            s.push_str(&format!("queue {next} {queue} {topic}\n"));
        }
        let crc = crc32fast::hash(s.as_bytes());
        s.push_str(&format!("crc {crc:08x}\n"));
        s
    }

    /// Parses checkpoint text; `None` when it is not a complete, intact checkpoint.
    pub fn decode(text: &str) -> Option<Checkpoint> {
        let body_end = text.rfind("crc ")?;
        let (body, tail) = text.split_at(body_end);
        let crc = u32::from_str_radix(tail.trim().strip_prefix("crc ")?, 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != MAGIC_LINE {
            return None;
        }
        let mut c = Checkpoint::default();
        for line in lines {
            let mut parts = line.splitn(4, ' ');
            match parts.next()? {
                "commitlog" => c.commitlog_flushed = parts.next()?.parse().ok()?,
                "dispatch" => c.dispatch_flushed = parts.next()?.parse().ok()?,
                "store_ms" => c.last_store_ms = parts.next()?.parse().ok()?,
                "queue" => {
                    let next: i64 = parts.next()?.parse().ok()?;
                    let queue: u32 = parts.next()?.parse().ok()?;
                    let topic = parts.next()?.to_string();
                    c.queues.insert((topic, queue), next);
                }
                _ => return None,
            }
        }
        Some(c)
    }

    /// Reads `dir/checkpoint`; `None` if absent or damaged (then recovery scans from the start).
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>, StorageError> {
        let path = dir.join(CHECKPOINT_FILE);
        Ok(read_optional(&path)?.and_then(|text| {
            let c = Checkpoint::decode(&text);
            if c.is_none() {
                tracing::warn!(path = %path.display(), "ignoring a damaged checkpoint");
            }
            c
        }))
    }

    /// Replaces `dir/checkpoint`.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        write_in(dir, CHECKPOINT_FILE, self.encode().as_bytes())
    }
}

/// Whether the abort marker exists.
pub fn abort_marker_exists(dir: &Path) -> bool {
    dir.join(ABORT_FILE).exists()
}

/// Creates the abort marker (durably).
pub fn create_abort_marker(dir: &Path) -> Result<(), StorageError> {
    write_in(dir, ABORT_FILE, b"janus commitlog engine running\n")
}

/// Removes the abort marker (durably).
pub fn remove_abort_marker(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(ABORT_FILE);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Reads the tombstones of deleted topics.
pub fn read_tombstones(dir: &Path) -> Result<HashMap<String, u64>, StorageError> {
    let mut out = HashMap::new();
    if let Some(text) = read_optional(&dir.join(TOMBSTONES_FILE))? {
        for line in text.lines() {
            if let Some((topic, phys)) = line.split_once(' ')
                && let Ok(phys) = phys.trim().parse()
            {
                out.insert(topic.to_string(), phys);
            }
        }
    }
    Ok(out)
}

/// Replaces the tombstones file.
pub fn write_tombstones(dir: &Path, tombstones: &HashMap<String, u64>) -> Result<(), StorageError> {
    let mut lines: Vec<String> = tombstones.iter().map(|(t, p)| format!("{t} {p}\n")).collect();
    lines.sort();
    write_in(dir, TOMBSTONES_FILE, lines.concat().as_bytes())
}

/// Reads a queue's persisted log start.
pub fn read_log_start(queue_dir: &Path) -> Result<Option<i64>, StorageError> {
    Ok(read_optional(&queue_dir.join(LOG_START_FILE))?.and_then(|t| t.trim().parse().ok()))
}

/// Persists a queue's log start.
pub fn write_log_start(queue_dir: &Path, start: i64) -> Result<(), StorageError> {
    fs::create_dir_all(queue_dir).at(queue_dir)?;
    write_in(queue_dir, LOG_START_FILE, format!("{start}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_damage_is_refused() {
        let mut c = Checkpoint { commitlog_flushed: 10, dispatch_flushed: 8, last_store_ms: 5, ..Default::default() };
        c.queues.insert(("a.b".into(), 3), 7);
        let text = c.encode();
        assert!(
            text.starts_with("janus-commitlog-checkpoint 1\ncommitlog 10\ndispatch 8\nstore_ms 5\nqueue 7 3 a.b\n")
        );
        assert_eq!(Checkpoint::decode(&text), Some(c.clone()));
        assert_eq!(Checkpoint::decode(&text.replace("queue 7", "queue 8")), None);
        assert_eq!(Checkpoint::decode(&text[..text.len() - 3]), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), None);
        c.write(dir.path()).unwrap();
        assert_eq!(Checkpoint::read(dir.path()).unwrap(), Some(c));
        let mut t = HashMap::new();
        t.insert("x".to_string(), 99u64);
        write_tombstones(dir.path(), &t).unwrap();
        assert_eq!(read_tombstones(dir.path()).unwrap(), t);
        write_log_start(&dir.path().join("q"), 12).unwrap();
        assert_eq!(read_log_start(&dir.path().join("q")).unwrap(), Some(12));
        create_abort_marker(dir.path()).unwrap();
        assert!(abort_marker_exists(dir.path()));
        remove_abort_marker(dir.path()).unwrap();
        assert!(!abort_marker_exists(dir.path()));
    }
}
