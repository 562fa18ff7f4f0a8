//! The idempotent producer's durable state, in two column families:
//! - `producer_ids`: producer id (i64 big-endian) -> its epoch (i16 big-endian) and when it was issued
//!   (i64 ms). Ids are issued in increasing order from 1 (the next is one past the largest stored), each
//!   written with `sync` before it is handed out, so an id is never issued twice, even across a crash; a
//!   batch that names an id the broker never issued is refused.
//! - `producer_snapshots`: topic, 0, partition (u32 big-endian) -> a snapshot of the partition's producer
//!   state (see `crate::producers::snapshot`), replayed forward from the log on load. Removed with the topic.

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch};

use super::{MetaError, MetaStore, sync_writes};

const CF_PRODUCER_IDS: &str = "producer_ids";
const CF_PRODUCER_SNAPSHOTS: &str = "producer_snapshots";

/// The column families this module adds.
pub(super) fn column_families() -> [ColumnFamilyDescriptor; 2] {
    [
        ColumnFamilyDescriptor::new(CF_PRODUCER_IDS, Options::default()),
        ColumnFamilyDescriptor::new(CF_PRODUCER_SNAPSHOTS, Options::default()),
    ]
}

fn snapshot_key(topic: &str, partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(topic.len() + 5);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Adds to `batch` the removal of every producer snapshot of `topic`.
pub(super) fn delete_snapshots(store: &MetaStore, batch: &mut WriteBatch, topic: &str) -> Result<(), MetaError> {
    let cf = store.cf(CF_PRODUCER_SNAPSHOTS)?;
    let mut from = topic.as_bytes().to_vec();
    from.push(0);
    let mut to = topic.as_bytes().to_vec();
    to.push(1);
    batch.delete_range_cf(cf, from, to);
    Ok(())
}

/// An issued producer id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedProducer {
    /// The id.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// When it was issued, ms since the Unix epoch.
    pub issued_ms: i64,
}

fn encode(p: &IssuedProducer) -> [u8; 10] {
    let mut v = [0u8; 10];
    v[..2].copy_from_slice(&p.epoch.to_be_bytes());
    v[2..].copy_from_slice(&p.issued_ms.to_be_bytes());
    v
}

fn decode(key: &[u8], value: &[u8]) -> Option<IssuedProducer> {
    Some(IssuedProducer {
        producer_id: i64::from_be_bytes(key.try_into().ok()?),
        epoch: i16::from_be_bytes(value.get(..2)?.try_into().ok()?),
        issued_ms: i64::from_be_bytes(value.get(2..10)?.try_into().ok()?),
    })
}

impl MetaStore {
    /// Issues a new producer id with epoch 0, durably. Callers serialise calls (the store does not).
    pub fn issue_producer_id(&self, now_ms: i64) -> Result<IssuedProducer, MetaError> {
        let cf = self.cf(CF_PRODUCER_IDS)?;
        let last = match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => 0,
            Some(item) => {
                let (k, v) = item.map_err(|e| self.err(e))?;
                decode(&k, &v)
                    .ok_or_else(|| MetaError::Corrupt {
                        what: CF_PRODUCER_IDS,
                        key: format!("{k:?}"),
                        detail: "not a producer id record".into(),
                    })?
                    .producer_id
            }
        };
        let issued = IssuedProducer { producer_id: last + 1, epoch: 0, issued_ms: now_ms };
        self.db
            .put_cf_opt(cf, issued.producer_id.to_be_bytes(), encode(&issued), &sync_writes())
            .map_err(|e| self.err(e))?;
        Ok(issued)
    }

    /// Gives an issued producer its next epoch, durably (Kafka's InitProducerId with an existing id and
    /// epoch). Callers serialise calls. `None` if the id was never issued or its epoch is already
    /// `i16::MAX` (then the caller issues a new id, as Kafka does).
    pub fn bump_producer_epoch(&self, producer_id: i64) -> Result<Option<IssuedProducer>, MetaError> {
        let cf = self.cf(CF_PRODUCER_IDS)?;
        let Some(current) = self.issued_producer(producer_id)? else { return Ok(None) };
        let Some(epoch) = current.epoch.checked_add(1) else { return Ok(None) };
        let bumped = IssuedProducer { epoch, ..current };
        self.db.put_cf_opt(cf, producer_id.to_be_bytes(), encode(&bumped), &sync_writes()).map_err(|e| self.err(e))?;
        Ok(Some(bumped))
    }

    /// Stores a partition's producer-state snapshot (not synced: the log it is replayed from is the truth).
    pub fn put_producer_snapshot(&self, topic: &str, partition: u32, snapshot: &[u8]) -> Result<(), MetaError> {
        let cf = self.cf(CF_PRODUCER_SNAPSHOTS)?;
        self.db.put_cf(cf, snapshot_key(topic, partition), snapshot).map_err(|e| self.err(e))
    }

    /// Removes a partition's producer-state snapshot.
    pub fn delete_producer_snapshot(&self, topic: &str, partition: u32) -> Result<(), MetaError> {
        let cf = self.cf(CF_PRODUCER_SNAPSHOTS)?;
        self.db.delete_cf(cf, snapshot_key(topic, partition)).map_err(|e| self.err(e))
    }

    /// A partition's latest producer-state snapshot, if one was stored.
    pub fn producer_snapshot(&self, topic: &str, partition: u32) -> Result<Option<Vec<u8>>, MetaError> {
        let cf = self.cf(CF_PRODUCER_SNAPSHOTS)?;
        self.db.get_cf(cf, snapshot_key(topic, partition)).map_err(|e| self.err(e))
    }

    /// An issued producer id's record, or `None` if the broker never issued it.
    pub fn issued_producer(&self, producer_id: i64) -> Result<Option<IssuedProducer>, MetaError> {
        let cf = self.cf(CF_PRODUCER_IDS)?;
        let key = producer_id.to_be_bytes();
        Ok(self.db.get_cf(cf, key).map_err(|e| self.err(e))?.and_then(|v| decode(&key, &v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_issued_once_in_order_across_reopens_and_unknown_ids_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<i64> = {
            let meta = MetaStore::open(dir.path()).unwrap();
            (0..3).map(|i| meta.issue_producer_id(10 + i).unwrap().producer_id).collect()
        };
        assert_eq!(first, vec![1, 2, 3]);
        let meta = MetaStore::open(dir.path()).unwrap();
        let next = meta.issue_producer_id(20).unwrap();
        assert_eq!((next.producer_id, next.epoch, next.issued_ms), (4, 0, 20));
        assert_eq!(meta.issued_producer(2).unwrap().map(|p| p.issued_ms), Some(11));
        assert_eq!(meta.issued_producer(99).unwrap(), None, "a forged id is unknown");
        assert_eq!(meta.issued_producer(-1).unwrap(), None);
    }
}
