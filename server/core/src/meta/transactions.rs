//! Transactions (RocketMQ's half messages) in RocksDB, in two column families:
//! - `transactions`: transaction id -> its record (JSON): producer group, topic, times, checks so far and
//!   state. Ids begin with their creation time, so keys sort by age.
//! - `transaction_messages`: id, 0, index (u32 big-endian) -> one half message and its partition.
//!
//! A decided transaction keeps its record (without its messages) for a while, so deciding it again gets
//! a clear answer; [`MetaStore::purge_transactions`] removes old ones.

use janus_api::NewRecord;
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::message_codec::{decode_message, encode_message};
use super::{MetaError, MetaStore};

const CF_TRANSACTIONS: &str = "transactions";
const CF_TRANSACTION_MESSAGES: &str = "transaction_messages";

/// The column families this module adds.
pub(super) fn column_families() -> [ColumnFamilyDescriptor; 2] {
    let opts = || {
        let mut o = Options::default();
        o.set_write_buffer_size(8 << 20);
        o.set_max_write_buffer_number(2);
        o
    };
    [ColumnFamilyDescriptor::new(CF_TRANSACTIONS, opts()), ColumnFamilyDescriptor::new(CF_TRANSACTION_MESSAGES, opts())]
}

/// Where a transaction is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// Undecided: its messages are stored and invisible.
    Pending,
    /// Its messages are being appended to `target` (its topic on commit, `TRANS_CHECK_MAX_TIME_TOPIC` on
    /// discard); before the append each partition's log end was `from`, so after a crash the partitions
    /// are searched from there for what was already appended.
    Completing {
        /// The topic the messages go to.
        target: String,
        /// Per partition of `target`, its log end before the append.
        from: Vec<(u32, i64)>,
        /// A commit (else a discard after the last check).
        commit: bool,
    },
    /// Committed: its messages are in its topic.
    Committed,
    /// Rolled back: its messages are gone.
    RolledBack,
    /// Undecided after the last check: its messages went to `TRANS_CHECK_MAX_TIME_TOPIC`.
    Discarded,
}

/// A transaction's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Its id.
    pub id: String,
    /// The producer group that prepared it (and is asked about it).
    pub producer_group: String,
    /// The topic its messages go to on commit.
    pub topic: String,
    /// When it was prepared, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it is next checked.
    pub next_check_ms: i64,
    /// Checks sent so far.
    pub checks: u32,
    /// How many messages it holds.
    pub messages: u32,
    /// Where it is.
    pub state: TxnState,
    /// When it was decided (0 while pending).
    pub decided_ms: i64,
}

fn message_key(id: &str, index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 5);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn message_range(id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut from = id.as_bytes().to_vec();
    from.push(0);
    let mut to = id.as_bytes().to_vec();
    to.push(1);
    (from, to)
}

fn write_opts(sync: bool) -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(sync);
    w
}

impl MetaStore {
    fn corrupt(what: &'static str, key: &[u8], detail: impl Into<String>) -> MetaError {
        MetaError::Corrupt { what, key: String::from_utf8_lossy(key).into_owned(), detail: detail.into() }
    }

    fn txn_value(record: &TxnRecord) -> Result<Vec<u8>, MetaError> {
        serde_json::to_vec(record).map_err(|e| Self::corrupt(CF_TRANSACTIONS, record.id.as_bytes(), e.to_string()))
    }

    /// Stores a new transaction with its messages (partition, message), atomically; `sync` waits for the disk.
    pub fn put_transaction(
        &self,
        record: &TxnRecord,
        topic: &str,
        messages: &[(u32, NewRecord)],
        sync: bool,
    ) -> Result<(), MetaError> {
        let (txns, msgs) = (self.cf(CF_TRANSACTIONS)?, self.cf(CF_TRANSACTION_MESSAGES)?);
        let mut batch = WriteBatch::default();
        batch.put_cf(txns, record.id.as_bytes(), Self::txn_value(record)?);
        for (i, (partition, m)) in messages.iter().enumerate() {
            batch.put_cf(msgs, message_key(&record.id, i as u32), encode_message(topic, *partition, m));
        }
        self.db.write_opt(batch, &write_opts(sync)).map_err(|e| self.err(e))
    }

    /// Replaces a transaction's record (its messages stay); with a decided state the messages are removed
    /// in the same write.
    pub fn update_transaction(&self, record: &TxnRecord, sync: bool) -> Result<(), MetaError> {
        let (txns, msgs) = (self.cf(CF_TRANSACTIONS)?, self.cf(CF_TRANSACTION_MESSAGES)?);
        let mut batch = WriteBatch::default();
        batch.put_cf(txns, record.id.as_bytes(), Self::txn_value(record)?);
        if matches!(record.state, TxnState::Committed | TxnState::RolledBack | TxnState::Discarded) {
            let (from, to) = message_range(&record.id);
            batch.delete_range_cf(msgs, from, to);
        }
        self.db.write_opt(batch, &write_opts(sync)).map_err(|e| self.err(e))
    }

    /// A transaction's record, if the store has it.
    pub fn transaction(&self, id: &str) -> Result<Option<TxnRecord>, MetaError> {
        let cf = self.cf(CF_TRANSACTIONS)?;
        match self.db.get_cf(cf, id.as_bytes()).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| Self::corrupt(CF_TRANSACTIONS, id.as_bytes(), e.to_string())),
        }
    }

    /// A transaction's messages, in the order they were prepared, each with its partition.
    pub fn transaction_messages(&self, id: &str) -> Result<Vec<(u32, NewRecord)>, MetaError> {
        let cf = self.cf(CF_TRANSACTION_MESSAGES)?;
        let (from, to) = message_range(id);
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(from);
        opts.set_iterate_upper_bound(to);
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(cf, opts, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let (_, partition, record) =
                decode_message(&v).map_err(|d| Self::corrupt(CF_TRANSACTION_MESSAGES, &k, d))?;
            out.push((partition, record));
        }
        Ok(out)
    }

    /// Every transaction record not yet decided (pending or completing), oldest first; run at startup.
    pub fn open_transactions(&self) -> Result<Vec<TxnRecord>, MetaError> {
        let cf = self.cf(CF_TRANSACTIONS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let record: TxnRecord =
                serde_json::from_slice(&v).map_err(|e| Self::corrupt(CF_TRANSACTIONS, &k, e.to_string()))?;
            if matches!(record.state, TxnState::Pending | TxnState::Completing { .. }) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Removes the records of transactions decided before `cutoff_ms`, looking only at those created before
    /// it (keys sort by creation time); returns how many it removed.
    pub fn purge_transactions(&self, cutoff_ms: i64) -> Result<usize, MetaError> {
        let cf = self.cf(CF_TRANSACTIONS)?;
        let mut batch = WriteBatch::default();
        let mut removed = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let Ok(record) = serde_json::from_slice::<TxnRecord>(&v) else { continue };
            if record.created_ms >= cutoff_ms {
                break;
            }
            if record.decided_ms > 0 && record.decided_ms < cutoff_ms {
                batch.delete_cf(cf, &k);
                removed += 1;
            }
        }
        if removed > 0 {
            self.db.write_opt(batch, &write_opts(false)).map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn record(id: &str, created_ms: i64) -> TxnRecord {
        TxnRecord {
            id: id.into(),
            producer_group: "g".into(),
            topic: "t".into(),
            created_ms,
            next_check_ms: created_ms + 6000,
            checks: 0,
            messages: 2,
            state: TxnState::Pending,
            decided_ms: 0,
        }
    }

    #[test]
    fn a_transaction_keeps_its_messages_until_decided_and_old_decided_records_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::open(dir.path()).unwrap();
        let msg = |v: &'static str| NewRecord {
            key: None,
            value: Some(Bytes::from_static(v.as_bytes())),
            headers: vec![],
            timestamp_ms: 5,
        };
        meta.put_transaction(&record("a1", 10), "t", &[(0, msg("x")), (3, msg("y"))], true).unwrap();
        meta.put_transaction(&record("b2", 20), "t", &[(1, msg("z"))], false).unwrap();
        let back = meta.transaction_messages("a1").unwrap();
        assert_eq!(back, vec![(0, msg("x")), (3, msg("y"))]);
        assert_eq!(meta.open_transactions().unwrap().len(), 2);
        let decided = TxnRecord { state: TxnState::Committed, decided_ms: 30, ..record("a1", 10) };
        meta.update_transaction(&decided, true).unwrap();
        assert!(meta.transaction_messages("a1").unwrap().is_empty(), "messages go with the decision");
        assert_eq!(meta.transaction("a1").unwrap(), Some(decided));
        assert_eq!(meta.transaction_messages("b2").unwrap().len(), 1, "others untouched");
        assert_eq!(meta.open_transactions().unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b2"]);
        assert_eq!(meta.purge_transactions(25).unwrap(), 0, "decided at 30: kept");
        assert_eq!(meta.purge_transactions(40).unwrap(), 1);
        assert_eq!(meta.transaction("a1").unwrap(), None);
        assert!(meta.transaction("b2").unwrap().is_some(), "pending: never purged");
    }
}
