//! Scheduled messages in RocksDB, in the shape of RocketMQ's RocksDB timer store (RIP-82): column family
//! `timers` keyed by due time (i64 big-endian, so keys sort by time) and message id, holding the whole
//! message and where it goes; `timer_ids` maps an id to its due time, for cancelling by id.
//!
//! Writes go through the WAL without `sync` unless the caller asks: a kill -9 loses nothing (the WAL is in
//! the page cache), a power loss may lose the last writes unless the producer asked for durability.

use janus_api::NewRecord;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};

use super::message_codec::{decode_message, encode_message};
use super::{MetaError, MetaStore};

const CF_TIMERS: &str = "timers";
const CF_TIMER_IDS: &str = "timer_ids";
/// Memtable size of each timer column family: small, so pending timers cost disk, not memory.
const WRITE_BUFFER_BYTES: usize = 8 << 20;

/// The column families this module adds, with bounded memtables.
pub(super) fn column_families() -> [ColumnFamilyDescriptor; 2] {
    let opts = || {
        let mut o = Options::default();
        o.set_write_buffer_size(WRITE_BUFFER_BYTES);
        o.set_max_write_buffer_number(2);
        o
    };
    [ColumnFamilyDescriptor::new(CF_TIMERS, opts()), ColumnFamilyDescriptor::new(CF_TIMER_IDS, opts())]
}

/// A scheduled message.
#[derive(Clone, Debug, PartialEq)]
pub struct TimerEntry {
    /// When it is due, milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// Its message id (`UNIQ_KEY`).
    pub id: String,
    /// The topic it is delivered to.
    pub topic: String,
    /// The partition it is delivered to.
    pub partition: u32,
    /// The message.
    pub record: NewRecord,
}

fn timer_key(due_ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&due_ms.max(0).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl TimerEntry {
    /// The stored value (the key holds the due time and id).
    fn encode_value(&self) -> Vec<u8> {
        encode_message(&self.topic, self.partition, &self.record)
    }

    fn decode(key: &[u8], value: &[u8]) -> Result<TimerEntry, String> {
        let (due, id) = key.split_at_checked(8).ok_or("key shorter than 8 bytes")?;
        let due_ms = i64::from_be_bytes(due.try_into().map_err(|_| "bad key")?);
        let id = std::str::from_utf8(id).map_err(|_| "id is not UTF-8")?.to_string();
        let (topic, partition, record) = decode_message(value)?;
        Ok(TimerEntry { due_ms, id, topic, partition, record })
    }
}

fn write_opts(sync: bool) -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(sync);
    w
}

impl MetaStore {
    /// Stores scheduled messages (an entry with the id and due time of a stored one replaces it); `sync`
    /// waits for the disk.
    pub fn put_timers(&self, entries: &[TimerEntry], sync: bool) -> Result<(), MetaError> {
        let (timers, ids) = (self.cf(CF_TIMERS)?, self.cf(CF_TIMER_IDS)?);
        let mut batch = WriteBatch::default();
        for e in entries {
            batch.put_cf(timers, timer_key(e.due_ms, &e.id), e.encode_value());
            batch.put_cf(ids, e.id.as_bytes(), e.due_ms.to_be_bytes());
        }
        self.db.write_opt(batch, &write_opts(sync)).map_err(|e| self.err(e))
    }

    /// At most `limit` scheduled messages due in `from_ms..=up_to_ms`, in due order; with `after_id`, only
    /// those after the message (`from_ms`, `after_id`) in that order (where the previous full round ended:
    /// the scan then starts past the round's deletions instead of stepping over them).
    pub fn due_timers(
        &self,
        from_ms: i64,
        after_id: Option<&str>,
        up_to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerEntry>, MetaError> {
        let cf = self.cf(CF_TIMERS)?;
        let mut opts = ReadOptions::default();
        let lower = match after_id {
            Some(id) => {
                let mut k = timer_key(from_ms, id);
                k.push(0);
                k
            }
            None => from_ms.max(0).to_be_bytes().to_vec(),
        };
        opts.set_iterate_lower_bound(lower);
        opts.set_iterate_upper_bound((up_to_ms.max(0) + 1).to_be_bytes().to_vec());
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(cf, opts, IteratorMode::Start).take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(TimerEntry::decode(&k, &v).map_err(|detail| MetaError::Corrupt {
                what: CF_TIMERS,
                key: String::from_utf8_lossy(&k).into_owned(),
                detail,
            })?);
        }
        Ok(out)
    }

    /// The due time of the first scheduled message at or after `from_ms`.
    pub fn next_timer_due(&self, from_ms: i64) -> Result<Option<i64>, MetaError> {
        let cf = self.cf(CF_TIMERS)?;
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(from_ms.max(0).to_be_bytes().to_vec());
        match self.db.iterator_cf_opt(cf, opts, IteratorMode::Start).next() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item.map_err(|e| self.err(e))?;
                Ok(k.get(..8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes))
            }
        }
    }

    /// Removes delivered messages (by due time and id), without waiting for the disk.
    pub fn remove_timers<'a>(&self, keys: impl Iterator<Item = (i64, &'a str)>) -> Result<(), MetaError> {
        let (timers, ids) = (self.cf(CF_TIMERS)?, self.cf(CF_TIMER_IDS)?);
        let mut batch = WriteBatch::default();
        for (due, id) in keys {
            batch.delete_cf(timers, timer_key(due, id));
            batch.delete_cf(ids, id.as_bytes());
        }
        self.db.write_opt(batch, &write_opts(false)).map_err(|e| self.err(e))
    }

    /// The pending message with id `id`, if any.
    pub fn timer_by_id(&self, id: &str) -> Result<Option<TimerEntry>, MetaError> {
        let ids = self.cf(CF_TIMER_IDS)?;
        let Some(due) = self.db.get_cf(ids, id.as_bytes()).map_err(|e| self.err(e))? else { return Ok(None) };
        let due = i64::from_be_bytes(due.as_slice().try_into().map_err(|_| MetaError::Corrupt {
            what: CF_TIMER_IDS,
            key: id.to_string(),
            detail: "value is not 8 bytes".into(),
        })?);
        let key = timer_key(due, id);
        match self.db.get_cf(self.cf(CF_TIMERS)?, &key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => TimerEntry::decode(&key, &v).map(Some).map_err(|detail| MetaError::Corrupt {
                what: CF_TIMERS,
                key: id.to_string(),
                detail,
            }),
        }
    }

    /// Removes the pending message `entry` durably (cancelling it).
    pub fn cancel_timer(&self, entry: &TimerEntry) -> Result<(), MetaError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_TIMERS)?, timer_key(entry.due_ms, &entry.id));
        batch.delete_cf(self.cf(CF_TIMER_IDS)?, entry.id.as_bytes());
        self.db.write_opt(batch, &write_opts(true)).map_err(|e| self.err(e))
    }

    /// How many messages are scheduled: a scan of the id index (8-byte values, so start-up does not read
    /// every pending message); run once at startup.
    pub fn count_timers(&self) -> Result<u64, MetaError> {
        let cf = self.cf(CF_TIMER_IDS)?;
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            item.map_err(|e| self.err(e))?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use janus_api::Header;

    use super::*;

    #[test]
    fn due_rounds_resume_after_the_last_message_and_cancel_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path()).unwrap();
        let entry = |due_ms, id: String| TimerEntry {
            due_ms,
            id,
            topic: "t".into(),
            partition: 0,
            record: NewRecord { key: None, value: None, headers: vec![], timestamp_ms: 0 },
        };
        let mut all: Vec<TimerEntry> = (0..25).map(|i| entry(1000, format!("id{i:02}"))).collect();
        all.push(entry(2000, "late".into()));
        meta.put_timers(&all, false).unwrap();
        assert_eq!(meta.count_timers().unwrap(), 26);
        let (mut seen, mut after) = (Vec::new(), None::<(i64, String)>);
        loop {
            let (from, id) = after.clone().map_or((0, None), |(d, i)| (d, Some(i)));
            let round = meta.due_timers(from, id.as_deref(), 1500, 10).unwrap();
            let Some(last) = round.last() else { break };
            after = Some((last.due_ms, last.id.clone()));
            meta.remove_timers(round.iter().map(|e| (e.due_ms, e.id.as_str()))).unwrap();
            seen.extend(round.into_iter().map(|e| e.id));
        }
        assert_eq!(seen, (0..25).map(|i| format!("id{i:02}")).collect::<Vec<_>>(), "each once, in order");
        assert_eq!(meta.next_timer_due(0).unwrap(), Some(2000));
        let late = meta.timer_by_id("late").unwrap().unwrap();
        meta.cancel_timer(&late).unwrap();
        assert_eq!(meta.timer_by_id("late").unwrap(), None);
        assert_eq!(meta.count_timers().unwrap(), 0);
    }

    #[test]
    fn entries_round_trip_through_their_encoding() {
        let e = TimerEntry {
            due_ms: 1_780_000_000_000,
            id: "ABC".into(),
            topic: "orders".into(),
            partition: 7,
            record: NewRecord {
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: vec![Header::new("TAGS", "a".as_bytes().to_vec()), Header { key: "n".into(), value: None }],
                timestamp_ms: 5,
            },
        };
        let back = TimerEntry::decode(&timer_key(e.due_ms, &e.id), &e.encode_value()).unwrap();
        assert_eq!(back, e);
        let value = e.encode_value();
        for cut in [0, 1, 5, value.len() - 1] {
            assert!(TimerEntry::decode(&timer_key(1, "x"), &value[..cut]).is_err(), "cut at {cut}");
        }
    }
}
