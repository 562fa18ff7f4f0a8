//! The lease table of receive/ack (RocketMQ 5's "pop"): per group and partition, a cursor (the next
//! offset to hand out) and the messages handed out and not yet acknowledged, each with its invisible
//! deadline, attempt and a random nonce that its receipt handle must carry.
//!
//! The group's committed offset is the lowest offset still leased (or the cursor when none is), so lag and
//! offset tools stay meaningful while messages are in flight. Memory is one map entry per leased message,
//! bounded by `max_inflight_leases`; acknowledged messages cost nothing. The table lives in memory: after
//! a restart, receiving resumes from the committed offset, so unacknowledged messages (and acknowledged ones
//! above the lowest unacknowledged) are delivered again: at-least-once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::{BrokerError, ErrorCode};

/// One partition as seen by one group: `(group, topic, partition)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    /// The receiving group.
    pub group: Arc<str>,
    /// The topic (a user topic or the group's retry topic).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
}

/// A message handed out and not yet acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// What the receipt handle must carry.
    pub nonce: u64,
    /// When it becomes visible again (then it is retried).
    pub deadline: Instant,
    /// Which delivery this is (1 for the first).
    pub attempt: u32,
    /// Being moved to the retry or dead-letter topic: no longer ackable, still holding the committed offset.
    pub retrying: bool,
}

#[derive(Debug)]
struct Queue {
    cursor: i64,
    leased: BTreeMap<i64, Lease>,
    /// The committed offset last written to the store.
    stored: i64,
}

impl Queue {
    fn low(&self) -> i64 {
        self.leased.keys().next().copied().unwrap_or(self.cursor)
    }
}

/// Every group's leases, behind the messaging layer's lock.
#[derive(Debug, Default)]
pub struct LeaseTable {
    queues: HashMap<QueueKey, Queue>,
    expiries: BTreeSet<(Instant, QueueKey, i64)>,
    inflight: usize,
}

fn invalid_handle(why: &str) -> BrokerError {
    BrokerError::new(ErrorCode::InvalidReceiptHandle, format!("the receipt handle is not current: {why}"))
}

impl LeaseTable {
    /// Messages leased across the broker.
    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// The cursor of a queue, if the table knows it.
    pub fn cursor(&self, key: &QueueKey) -> Option<i64> {
        self.queues.get(key).map(|q| q.cursor)
    }

    /// Starts tracking a queue at its committed offset (no-op if tracked).
    pub fn open(&mut self, key: &QueueKey, committed: i64) {
        self.queues.entry(key.clone()).or_insert(Queue {
            cursor: committed,
            leased: BTreeMap::new(),
            stored: committed,
        });
    }

    /// Moves a queue's cursor to `to`, if it is still at `expected` (another receiver may have moved it).
    pub fn advance(&mut self, key: &QueueKey, expected: i64, to: i64) -> bool {
        match self.queues.get_mut(key) {
            Some(q) if q.cursor == expected => {
                q.cursor = q.cursor.max(to);
                true
            }
            _ => false,
        }
    }

    /// Leases `offset` of `key` (below its cursor) until `deadline`.
    pub fn lease(&mut self, key: &QueueKey, offset: i64, attempt: u32, deadline: Instant) -> u64 {
        let nonce = new_nonce();
        if let Some(q) = self.queues.get_mut(key) {
            q.leased.insert(offset, Lease { nonce, deadline, attempt, retrying: false });
            self.expiries.insert((deadline, key.clone(), offset));
            self.inflight += 1;
        }
        nonce
    }

    fn current(&mut self, key: &QueueKey, offset: i64, nonce: u64, now: Instant) -> Result<&mut Lease, BrokerError> {
        let lease = self
            .queues
            .get_mut(key)
            .and_then(|q| q.leased.get_mut(&offset))
            .ok_or_else(|| invalid_handle("the message was acknowledged, or the broker restarted since"))?;
        if lease.nonce != nonce {
            return Err(invalid_handle("a later receive or change of invisible duration replaced it"));
        }
        if lease.retrying || lease.deadline <= now {
            return Err(invalid_handle("its invisible duration ended and the message is being redelivered"));
        }
        Ok(lease)
    }

    /// Acknowledges a leased message; refused unless the handle is current.
    pub fn ack(&mut self, key: &QueueKey, offset: i64, nonce: u64, now: Instant) -> Result<(), BrokerError> {
        let deadline = self.current(key, offset, nonce, now)?.deadline;
        self.remove(key, offset, deadline);
        Ok(())
    }

    /// Gives a leased message a new deadline and nonce (the old handle stops working).
    pub fn extend(
        &mut self,
        key: &QueueKey,
        offset: i64,
        nonce: u64,
        now: Instant,
        deadline: Instant,
    ) -> Result<(u64, u32), BrokerError> {
        let lease = self.current(key, offset, nonce, now)?;
        let old = lease.deadline;
        lease.deadline = deadline;
        lease.nonce = new_nonce();
        let (nonce, attempt) = (lease.nonce, lease.attempt);
        self.expiries.remove(&(old, key.clone(), offset));
        self.expiries.insert((deadline, key.clone(), offset));
        Ok((nonce, attempt))
    }

    /// Marks a current lease as being retried now (a nack); returns its attempt.
    pub fn start_retry(&mut self, key: &QueueKey, offset: i64, nonce: u64, now: Instant) -> Result<u32, BrokerError> {
        let lease = self.current(key, offset, nonce, now)?;
        lease.retrying = true;
        let (deadline, attempt) = (lease.deadline, lease.attempt);
        self.expiries.remove(&(deadline, key.clone(), offset));
        Ok(attempt)
    }

    /// Takes leases whose deadline passed, marking them as being retried: `(queue, offset, attempt)`.
    pub fn take_expired(&mut self, now: Instant, max: usize) -> Vec<(QueueKey, i64, u32)> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(first) = self.expiries.first() else { break };
            if first.0 > now {
                break;
            }
            let (_, key, offset) = self.expiries.pop_first().expect("checked above");
            if let Some(lease) = self.queues.get_mut(&key).and_then(|q| q.leased.get_mut(&offset)) {
                lease.retrying = true;
                out.push((key, offset, lease.attempt));
            }
        }
        out
    }

    /// Ends a retry: the message was written to the retry or dead-letter topic, so it is done here.
    pub fn finish_retry(&mut self, key: &QueueKey, offset: i64) {
        if let Some(q) = self.queues.get_mut(key)
            && q.leased.remove(&offset).is_some()
        {
            self.inflight -= 1;
        }
    }

    /// Puts a failed retry back in flight, to be tried again at `deadline`.
    pub fn abort_retry(&mut self, key: &QueueKey, offset: i64, deadline: Instant) {
        if let Some(lease) = self.queues.get_mut(key).and_then(|q| q.leased.get_mut(&offset)) {
            lease.retrying = false;
            lease.deadline = deadline;
            self.expiries.insert((deadline, key.clone(), offset));
        }
    }

    fn remove(&mut self, key: &QueueKey, offset: i64, deadline: Instant) {
        if let Some(q) = self.queues.get_mut(key)
            && q.leased.remove(&offset).is_some()
        {
            self.inflight -= 1;
            self.expiries.remove(&(deadline, key.clone(), offset));
        }
    }

    /// The committed offset of a queue: its lowest leased offset, or its cursor.
    pub fn committed(&self, key: &QueueKey) -> Option<i64> {
        self.queues.get(key).map(Queue::low)
    }

    /// Queues whose committed offset moved since it was last stored, with the new value; marks them stored.
    pub fn take_moved(&mut self) -> Vec<(QueueKey, i64)> {
        let mut out = Vec::new();
        for (key, q) in &mut self.queues {
            let low = q.low();
            if low != q.stored {
                q.stored = low;
                out.push((key.clone(), low));
            }
        }
        out
    }

    /// Marks committed offsets taken by [`LeaseTable::take_moved`] as not stored (their write failed), so
    /// the next pass writes them again.
    pub fn unstore(&mut self, keys: &[QueueKey]) {
        for key in keys {
            if let Some(q) = self.queues.get_mut(key) {
                q.stored = i64::MIN;
            }
        }
    }

    /// Forgets every queue of `topic` (deleted) and their leases.
    pub fn forget_topic(&mut self, topic: &str) {
        let gone: Vec<QueueKey> = self.queues.keys().filter(|k| &*k.topic == topic).cloned().collect();
        for key in gone {
            if let Some(q) = self.queues.remove(&key) {
                self.inflight -= q.leased.len();
                for (offset, lease) in q.leased {
                    self.expiries.remove(&(lease.deadline, key.clone(), offset));
                }
            }
        }
    }

    /// The earliest deadline of a lease, for the expiry task's sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.expiries.first().map(|e| e.0)
    }
}

/// A fresh random nonce (OS randomness: a receipt handle cannot be guessed from another).
fn new_nonce() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::time::SystemTime::now())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key() -> QueueKey {
        QueueKey { group: "g".into(), topic: "t".into(), partition: 0 }
    }

    #[test]
    fn committed_offset_is_the_lowest_unacknowledged() {
        let (mut t, k, now) = (LeaseTable::default(), key(), Instant::now());
        t.open(&k, 10);
        let later = now + Duration::from_secs(60);
        let nonces: Vec<u64> = (10..15).map(|o| t.lease(&k, o, 1, later)).collect();
        assert!(t.advance(&k, 10, 15));
        assert_eq!(t.committed(&k), Some(10));
        t.ack(&k, 12, nonces[2], now).unwrap();
        assert_eq!(t.committed(&k), Some(10), "acking above the lowest does not move it");
        t.ack(&k, 10, nonces[0], now).unwrap();
        t.ack(&k, 11, nonces[1], now).unwrap();
        assert_eq!(t.committed(&k), Some(13));
        assert_eq!(t.take_moved(), vec![(k.clone(), 13)]);
        assert!(t.take_moved().is_empty());
        assert_eq!(t.inflight(), 2);
    }

    #[test]
    fn stale_wrong_and_expired_handles_change_nothing() {
        let (mut t, k, now) = (LeaseTable::default(), key(), Instant::now());
        t.open(&k, 0);
        let n = t.lease(&k, 0, 1, now + Duration::from_secs(10));
        t.advance(&k, 0, 1);
        assert_eq!(t.ack(&k, 0, n ^ 1, now).unwrap_err().code(), ErrorCode::InvalidReceiptHandle);
        let (n2, _) = t.extend(&k, 0, n, now, now + Duration::from_secs(20)).unwrap();
        assert!(t.ack(&k, 0, n, now).is_err(), "the replaced handle is stale");
        assert!(t.take_expired(now + Duration::from_secs(15), 10).is_empty(), "the extension holds");
        let expired = t.take_expired(now + Duration::from_secs(21), 10);
        assert_eq!(expired, vec![(k.clone(), 0, 1)]);
        assert!(t.ack(&k, 0, n2, now).is_err(), "a message being retried cannot be acked");
        assert_eq!(t.committed(&k), Some(0), "still holds the committed offset while it is retried");
        t.finish_retry(&k, 0);
        assert_eq!(t.committed(&k), Some(1));
        assert_eq!(t.inflight(), 0);
    }

    #[test]
    fn a_moved_cursor_refuses_a_second_advance_from_the_same_place() {
        let (mut t, k) = (LeaseTable::default(), key());
        t.open(&k, 5);
        assert!(t.advance(&k, 5, 9));
        assert!(!t.advance(&k, 5, 7), "a receiver that read from 5 lost the race");
        assert_eq!(t.cursor(&k), Some(9));
    }
}
