//! The metadata store: topics, consumer-group offsets and group state in RocksDB.
//!
//! Column families:
//! - `topics`: topic name -> JSON [`TopicRecord`] (engine, partition count, config overrides, state);
//! - `group_offsets`: `group \0 topic \0 partition (u32 BE)` -> committed offset (i64 BE);
//! - `group_state`: group name -> JSON [`GroupState`];
//! - `group_meta`: group name -> the coordinator's JSON record of the group (members, generation, assignments);
//! - `timers` and `timer_ids`: scheduled messages in due order, and their ids (see [`timers`]);
//! - `producer_ids`: the idempotent producer's issued ids and epochs (see [`producers`]).
//!
//! Every write goes through the WAL with `sync`, so what a call returned survives a crash of the process
//! or the machine. A topic's `state` makes create and delete crash-safe (see [`TopicState`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

const CF_TOPICS: &str = "topics";
const CF_GROUP_OFFSETS: &str = "group_offsets";
const CF_GROUP_STATE: &str = "group_state";
const CF_GROUP_META: &str = "group_meta";
const CFS: [&str; 4] = [CF_TOPICS, CF_GROUP_OFFSETS, CF_GROUP_STATE, CF_GROUP_META];

mod message_codec;
pub mod producers;
pub mod timers;
pub mod transactions;

/// The longest group name accepted, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 255;

/// A metadata store failure.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// RocksDB failed.
    #[error("metadata store (RocksDB at {path}): {detail}")]
    Db {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's message.
        detail: String,
    },
    /// A stored value could not be decoded.
    #[error("metadata store: corrupt {what} record for '{key}': {detail}")]
    Corrupt {
        /// Which column family.
        what: &'static str,
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// Where a topic is in its life cycle. `Creating` and `Deleting` are written before the engine is touched
/// and replaced when it is done, so startup can finish or undo a step a crash interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicState {
    /// Being created: the engine may hold some of its files. Startup removes it (the create was never
    /// acknowledged).
    Creating,
    /// Created and usable.
    Live,
    /// Being deleted: startup finishes the deletion.
    Deleting,
}

/// What the metadata store knows about a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// The topic name.
    pub name: String,
    /// `segment` or `commitlog`.
    pub engine: String,
    /// Partition (queue) count.
    pub partitions: u32,
    /// Per-topic config overrides (dotted keys); the other keys follow the broker defaults.
    pub overrides: BTreeMap<String, String>,
    /// Life-cycle state.
    pub state: TopicState,
    /// When the topic was created, in ms since the epoch.
    pub created_ms: i64,
}

/// What the metadata store knows about a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// When the group first committed, in ms since the epoch.
    pub created_ms: i64,
    /// When it last committed or reset offsets.
    pub updated_ms: i64,
    /// Its `max.reconsume.times` when set for the group (receive/ack: redeliveries before a message is
    /// dead-lettered); `None`: the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconsume_times: Option<u32>,
}

/// One committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset (the next message the group will read).
    pub offset: i64,
    /// What the committer stored with it (Kafka's offset metadata); empty when none.
    pub metadata: String,
}

/// The RocksDB-backed metadata store.
pub struct MetaStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn sync_writes() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn offset_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + topic.len() + 6);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn parse_offset_entry(key: &[u8], value: &[u8]) -> Option<CommittedOffset> {
    let (rest, partition) = key.split_at_checked(key.len().checked_sub(4)?)?;
    let rest = rest.strip_suffix(&[0])?;
    let sep = rest.iter().position(|b| *b == 0)?;
    let group = std::str::from_utf8(&rest[..sep]).ok()?;
    let topic = std::str::from_utf8(&rest[sep + 1..]).ok()?;
    // The value: the offset (8 bytes, big-endian), then the metadata's UTF-8 bytes, if any.
    let (offset, metadata) = value.split_at_checked(8)?;
    Some(CommittedOffset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition: u32::from_be_bytes(partition.try_into().ok()?),
        offset: i64::from_be_bytes(offset.try_into().ok()?),
        metadata: std::str::from_utf8(metadata).ok()?.to_string(),
    })
}

/// Checks a consumer-group name: 1 to 255 bytes, no control characters.
pub fn validate_group_name(group: &str) -> Result<(), String> {
    if group.is_empty() {
        Err("the group name is empty".into())
    } else if group.len() > MAX_GROUP_NAME_LEN {
        Err(format!("the group name is longer than {MAX_GROUP_NAME_LEN} bytes"))
    } else if group.chars().any(char::is_control) {
        Err("the group name contains control characters".into())
    } else {
        Ok(())
    }
}

impl MetaStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<MetaStore, MetaError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_keep_log_file_num(4);
        let cfs = CFS
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()))
            .into_iter()
            .chain(timers::column_families())
            .chain(producers::column_families())
            .chain(transactions::column_families());
        let db = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| MetaError::Db { path: dir.to_path_buf(), detail: e.into_string() })?;
        Ok(MetaStore { db, path: dir.to_path_buf() })
    }

    fn err(&self, e: rocksdb::Error) -> MetaError {
        MetaError::Db { path: self.path.clone(), detail: e.into_string() }
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, MetaError> {
        self.db.cf_handle(name).ok_or_else(|| MetaError::Db {
            path: self.path.clone(),
            detail: format!("column family {name} is missing"),
        })
    }

    /// Every topic record, in name order.
    pub fn topics(&self) -> Result<Vec<TopicRecord>, MetaError> {
        let cf = self.cf(CF_TOPICS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let record: TopicRecord = serde_json::from_slice(&value).map_err(|e| MetaError::Corrupt {
                what: CF_TOPICS,
                key: String::from_utf8_lossy(&key).into_owned(),
                detail: e.to_string(),
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Writes (replaces) a topic record, durably.
    pub fn put_topic(&self, record: &TopicRecord) -> Result<(), MetaError> {
        let cf = self.cf(CF_TOPICS)?;
        let value = serde_json::to_vec(record).map_err(|e| MetaError::Corrupt {
            what: CF_TOPICS,
            key: record.name.clone(),
            detail: e.to_string(),
        })?;
        self.db.put_cf_opt(cf, record.name.as_bytes(), value, &sync_writes()).map_err(|e| self.err(e))
    }

    /// Removes a topic record, every offset committed for the topic and its producer snapshots, durably and
    /// atomically.
    pub fn remove_topic(&self, name: &str) -> Result<(), MetaError> {
        let topics = self.cf(CF_TOPICS)?;
        let offsets = self.cf(CF_GROUP_OFFSETS)?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(topics, name.as_bytes());
        for o in self.all_offsets()? {
            if o.topic == name {
                batch.delete_cf(offsets, offset_key(&o.group, &o.topic, o.partition));
            }
        }
        producers::delete_snapshots(self, &mut batch, name)?;
        self.db.write_opt(batch, &sync_writes()).map_err(|e| self.err(e))
    }

    /// Commits offsets of `group` for `topic` and updates the group's state, durably and atomically.
    pub fn commit_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(u32, i64)],
        now_ms: i64,
    ) -> Result<(), MetaError> {
        let entries: Vec<(u32, i64, &str)> = offsets.iter().map(|&(p, o)| (p, o, "")).collect();
        self.commit_offsets_with_metadata(group, topic, &entries, now_ms)
    }

    /// Commits `(partition, offset, metadata)` of `group` for `topic` and updates the group's state, durably
    /// and atomically.
    pub fn commit_offsets_with_metadata(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(u32, i64, &str)],
        now_ms: i64,
    ) -> Result<(), MetaError> {
        let cf_offsets = self.cf(CF_GROUP_OFFSETS)?;
        let cf_state = self.cf(CF_GROUP_STATE)?;
        let state = match self.group_state(group)? {
            Some(s) => GroupState { updated_ms: now_ms, ..s },
            None => GroupState { created_ms: now_ms, updated_ms: now_ms, max_reconsume_times: None },
        };
        let mut batch = WriteBatch::default();
        for (partition, offset, metadata) in offsets {
            let mut value = Vec::with_capacity(8 + metadata.len());
            value.extend_from_slice(&offset.to_be_bytes());
            value.extend_from_slice(metadata.as_bytes());
            batch.put_cf(cf_offsets, offset_key(group, topic, *partition), value);
        }
        let value = serde_json::to_vec(&state).map_err(|e| MetaError::Corrupt {
            what: CF_GROUP_STATE,
            key: group.to_string(),
            detail: e.to_string(),
        })?;
        batch.put_cf(cf_state, group.as_bytes(), value);
        self.db.write_opt(batch, &sync_writes()).map_err(|e| self.err(e))
    }

    /// Sets a group's `max.reconsume.times`, durably.
    pub fn set_max_reconsume_times(&self, group: &str, times: u32, now_ms: i64) -> Result<(), MetaError> {
        let cf = self.cf(CF_GROUP_STATE)?;
        let state = match self.group_state(group)? {
            Some(s) => GroupState { max_reconsume_times: Some(times), ..s },
            None => GroupState { created_ms: now_ms, updated_ms: now_ms, max_reconsume_times: Some(times) },
        };
        let value = serde_json::to_vec(&state).map_err(|e| MetaError::Corrupt {
            what: CF_GROUP_STATE,
            key: group.to_string(),
            detail: e.to_string(),
        })?;
        self.db.put_cf_opt(cf, group.as_bytes(), value, &sync_writes()).map_err(|e| self.err(e))
    }

    /// A group's state, if it ever committed.
    pub fn group_state(&self, group: &str) -> Result<Option<GroupState>, MetaError> {
        let cf = self.cf(CF_GROUP_STATE)?;
        match self.db.get_cf(cf, group.as_bytes()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| MetaError::Corrupt {
                what: CF_GROUP_STATE,
                key: group.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// Every group that ever committed, in name order.
    pub fn groups(&self) -> Result<Vec<String>, MetaError> {
        let cf = self.cf(CF_GROUP_STATE)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, _) = item.map_err(|e| self.err(e))?;
            out.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok(out)
    }

    /// The offsets `group` committed, optionally only for `topic`, in (topic, partition) order.
    pub fn group_offsets(&self, group: &str, topic: Option<&str>) -> Result<Vec<CommittedOffset>, MetaError> {
        let mut prefix = group.as_bytes().to_vec();
        prefix.push(0);
        if let Some(t) = topic {
            prefix.extend_from_slice(t.as_bytes());
            prefix.push(0);
        }
        self.offsets_with_prefix(&prefix)
    }

    /// The offsets of every group whose name starts with `prefix`, in key order.
    pub fn offsets_of_groups_starting_with(&self, prefix: &str) -> Result<Vec<CommittedOffset>, MetaError> {
        self.offsets_with_prefix(prefix.as_bytes())
    }

    fn offsets_with_prefix(&self, prefix: &[u8]) -> Result<Vec<CommittedOffset>, MetaError> {
        let cf = self.cf(CF_GROUP_OFFSETS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward)) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            if !key.starts_with(prefix) {
                break;
            }
            let entry = parse_offset_entry(&key, &value).ok_or_else(|| MetaError::Corrupt {
                what: CF_GROUP_OFFSETS,
                key: String::from_utf8_lossy(&key).into_owned(),
                detail: "malformed key or value".into(),
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// Every committed offset of every group.
    pub fn all_offsets(&self) -> Result<Vec<CommittedOffset>, MetaError> {
        let cf = self.cf(CF_GROUP_OFFSETS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            match parse_offset_entry(&key, &value) {
                Some(entry) => out.push(entry),
                None => tracing::warn!(key = %String::from_utf8_lossy(&key), "skipping a malformed offset record"),
            }
        }
        Ok(out)
    }

    /// Every stored coordinator record: (group name, value).
    pub fn group_records(&self) -> Result<Vec<(String, Vec<u8>)>, MetaError> {
        let cf = self.cf(CF_GROUP_META)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            out.push((String::from_utf8_lossy(&key).into_owned(), value.to_vec()));
        }
        Ok(out)
    }

    /// Writes (replaces) the coordinator's record of a group, durably.
    pub fn put_group_record(&self, group: &str, value: &[u8]) -> Result<(), MetaError> {
        let cf = self.cf(CF_GROUP_META)?;
        self.db.put_cf_opt(cf, group.as_bytes(), value, &sync_writes()).map_err(|e| self.err(e))
    }

    /// Removes the coordinator's record of a group, durably.
    pub fn delete_group_record(&self, group: &str) -> Result<(), MetaError> {
        let cf = self.cf(CF_GROUP_META)?;
        self.db.delete_cf_opt(cf, group.as_bytes(), &sync_writes()).map_err(|e| self.err(e))
    }

    /// Removes the offsets and the state of offset namespace `group`, durably and atomically.
    pub fn delete_group_offsets(&self, group: &str) -> Result<(), MetaError> {
        let offsets = self.cf(CF_GROUP_OFFSETS)?;
        let state = self.cf(CF_GROUP_STATE)?;
        let mut batch = WriteBatch::default();
        for o in self.group_offsets(group, None)? {
            batch.delete_cf(offsets, offset_key(&o.group, &o.topic, o.partition));
        }
        batch.delete_cf(state, group.as_bytes());
        self.db.write_opt(batch, &sync_writes()).map_err(|e| self.err(e))
    }

    /// Flushes memtables and the WAL to disk (before a clean shutdown).
    pub fn flush(&self) -> Result<(), MetaError> {
        self.db.flush_wal(true).map_err(|e| self.err(e))?;
        for name in CFS {
            self.db.flush_cf(self.cf(name)?).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Flushes and stops RocksDB's background work; the store is closed when dropped.
    pub fn close(&self) -> Result<(), MetaError> {
        let result = self.flush();
        self.db.cancel_all_background_work(true);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, state: TopicState) -> TopicRecord {
        TopicRecord {
            name: name.into(),
            engine: "segment".into(),
            partitions: 3,
            overrides: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            state,
            created_ms: 1,
        }
    }

    #[test]
    fn topics_offsets_and_groups_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = MetaStore::open(dir.path()).unwrap();
            m.put_topic(&record("a", TopicState::Live)).unwrap();
            m.put_topic(&record("b", TopicState::Creating)).unwrap();
            m.commit_offsets("g1", "a", &[(0, 5), (2, 7)], 10).unwrap();
            m.commit_offsets("g1", "ab", &[(1, 9)], 11).unwrap();
            m.commit_offsets("g2", "a", &[(0, 1)], 12).unwrap();
            m.close().unwrap();
        }
        let m = MetaStore::open(dir.path()).unwrap();
        assert_eq!(m.topics().unwrap(), vec![record("a", TopicState::Live), record("b", TopicState::Creating)]);
        let a: Vec<_> =
            m.group_offsets("g1", Some("a")).unwrap().into_iter().map(|o| (o.partition, o.offset)).collect();
        assert_eq!(a, vec![(0, 5), (2, 7)]);
        assert_eq!(m.group_offsets("g1", None).unwrap().len(), 3);
        assert_eq!(m.groups().unwrap(), vec!["g1", "g2"]);
        assert_eq!(
            m.group_state("g1").unwrap(),
            Some(GroupState { created_ms: 10, updated_ms: 11, max_reconsume_times: None })
        );
        m.remove_topic("a").unwrap();
        assert_eq!(m.topics().unwrap().len(), 1);
        assert!(m.group_offsets("g1", Some("a")).unwrap().is_empty());
        assert_eq!(m.group_offsets("g1", Some("ab")).unwrap().len(), 1);
        assert!(m.group_offsets("g2", None).unwrap().is_empty());
    }

    #[test]
    fn group_names_are_checked() {
        assert!(validate_group_name("orders-consumers").is_ok());
        assert!(validate_group_name("").is_err());
        assert!(validate_group_name("a\0b").is_err());
        assert!(validate_group_name(&"g".repeat(256)).is_err());
    }
}
