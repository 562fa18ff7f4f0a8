//! The idempotent producer's per-partition state and its checks, as Kafka's `ProducerStateManager` and
//! `ProducerAppendInfo` make them: for each producer id, its epoch and the sequence ranges and offsets of
//! its last [`BATCHES_KEPT`] batches. Pure: no IO, no clock but the one passed in.
//!
//! A batch of producer `pid`, epoch `e`, sequences `first..=last` is:
//! - a **duplicate** when `e` is the producer's epoch and one of its kept batches has the same
//!   `first..=last`: it is not appended again and the append answers with the kept offsets;
//! - refused as **INVALID_PRODUCER_EPOCH** when `e` is older than the producer's epoch;
//! - accepted as the **start of a new epoch** when `e` is newer and `first` is 0 (any other `first` is out of
//!   order);
//! - accepted **in sequence** when `first` follows the last kept sequence (`last + 1`, or 0 after
//!   `i32::MAX`);
//! - accepted at **any sequence** when the partition keeps no state for the producer (new, or expired
//!   after `producer.id.expiration.ms`);
//! - else refused as **OUT_OF_ORDER_SEQUENCE_NUMBER**.

use std::collections::{HashMap, VecDeque};

/// Batches kept per producer and partition (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_KEPT: usize = 5;

/// The last sequence of a batch that starts at `first` and holds `last_offset_delta + 1` records,
/// wrapping after `i32::MAX` to 0 as Kafka's `DefaultRecordBatch.incrementSequence` does.
pub fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    let last = i64::from(first) + i64::from(last_offset_delta.max(0));
    (last % (i64::from(i32::MAX) + 1)) as i32
}

/// Whether `next` directly follows `last`.
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// One appended batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeptBatch {
    /// Its first sequence.
    pub first_sequence: i32,
    /// Its last sequence.
    pub last_sequence: i32,
    /// The offset its first record got.
    pub base_offset: i64,
    /// The offset its last record got.
    pub last_offset: i64,
}

/// What one producer has appended to one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Its current epoch.
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: VecDeque<KeptBatch>,
    /// When it last appended (ms since the Unix epoch), for expiry.
    pub last_append_ms: i64,
}

/// A batch's producer fields, as its header carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// The first sequence.
    pub first_sequence: i32,
    /// The header's last offset delta (records - 1).
    pub last_offset_delta: i32,
}

/// What to do with a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append it (then [`PartitionProducers::record`] its offsets).
    Append,
    /// Already appended: answer with these offsets and append nothing.
    Duplicate(KeptBatch),
    /// Refused: the epoch is older than the producer's (`current`).
    StaleEpoch {
        /// The producer's epoch.
        current: i16,
    },
    /// Refused: the sequence does not follow the producer's last one (`expected`: what would have).
    OutOfOrder {
        /// The first sequence that would have been accepted.
        expected: i32,
    },
}

/// Every producer's state in one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
}

impl PartitionProducers {
    /// How many producers the partition keeps state for.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether it keeps none.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The state of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer's state (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Puts back a producer's state read from a snapshot.
    pub fn restore(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// What to do with `batch`.
    pub fn check(&self, batch: &ProducerBatch) -> Verdict {
        let Some(entry) = self.producers.get(&batch.producer_id) else { return Verdict::Append };
        let last = last_sequence(batch.first_sequence, batch.last_offset_delta);
        if batch.epoch < entry.epoch {
            return Verdict::StaleEpoch { current: entry.epoch };
        }
        if batch.epoch > entry.epoch {
            return if batch.first_sequence == 0 { Verdict::Append } else { Verdict::OutOfOrder { expected: 0 } };
        }
        if let Some(kept) =
            entry.batches.iter().find(|b| b.first_sequence == batch.first_sequence && b.last_sequence == last)
        {
            return Verdict::Duplicate(*kept);
        }
        match entry.batches.back() {
            None => Verdict::Append,
            Some(newest) if in_sequence(newest.last_sequence, batch.first_sequence) => Verdict::Append,
            Some(newest) => Verdict::OutOfOrder { expected: last_sequence(newest.last_sequence, 1) },
        }
    }

    /// Records an appended batch (after [`Verdict::Append`]): a newer epoch replaces the kept batches.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64, now_ms: i64) {
        let entry = self.producers.entry(batch.producer_id).or_insert_with(|| ProducerEntry {
            epoch: batch.epoch,
            batches: VecDeque::with_capacity(BATCHES_KEPT),
            last_append_ms: now_ms,
        });
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(KeptBatch {
            first_sequence: batch.first_sequence,
            last_sequence: last_sequence(batch.first_sequence, batch.last_offset_delta),
            base_offset,
            last_offset,
        });
        entry.last_append_ms = now_ms;
    }

    /// Applies a batch read back from the log (rebuilding state after a restart): the log is the truth, so
    /// it is recorded unless it is already (a replay that starts before a snapshot's end) or belongs to an
    /// epoch older than the producer's.
    pub fn replay(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64, now_ms: i64) {
        match self.check(batch) {
            Verdict::Duplicate(_) | Verdict::StaleEpoch { .. } => {}
            Verdict::Append | Verdict::OutOfOrder { .. } => self.record(batch, base_offset, last_offset, now_ms),
        }
    }

    /// Forgets producers idle since before `cutoff_ms` (Kafka's `producer.id.expiration.ms`); returns how many.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_append_ms >= cutoff_ms);
        before - self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn batch(epoch: i16, first: i32, records: i32) -> ProducerBatch {
        ProducerBatch { producer_id: 7, epoch, first_sequence: first, last_offset_delta: records - 1 }
    }

    /// Checks and, when accepted, records `b` at the partition's end; returns the verdict.
    fn send(p: &mut PartitionProducers, end: &mut i64, b: ProducerBatch) -> Verdict {
        let v = p.check(&b);
        if v == Verdict::Append {
            let n = i64::from(b.last_offset_delta) + 1;
            p.record(&b, *end, *end + n - 1, 0);
            *end += n;
        }
        v
    }

    #[test]
    fn duplicates_get_their_offsets_back_and_gaps_and_old_epochs_are_refused() {
        let (mut p, mut end) = (PartitionProducers::default(), 100);
        assert_eq!(send(&mut p, &mut end, batch(0, 0, 3)), Verdict::Append);
        assert_eq!(send(&mut p, &mut end, batch(0, 3, 2)), Verdict::Append);
        let dup = send(&mut p, &mut end, batch(0, 0, 3));
        assert_eq!(
            dup,
            Verdict::Duplicate(KeptBatch { first_sequence: 0, last_sequence: 2, base_offset: 100, last_offset: 102 })
        );
        assert_eq!(send(&mut p, &mut end, batch(0, 9, 1)), Verdict::OutOfOrder { expected: 5 });
        assert_eq!(
            send(&mut p, &mut end, batch(1, 4, 1)),
            Verdict::OutOfOrder { expected: 0 },
            "new epoch starts at 0"
        );
        assert_eq!(send(&mut p, &mut end, batch(1, 0, 1)), Verdict::Append);
        assert_eq!(send(&mut p, &mut end, batch(0, 5, 1)), Verdict::StaleEpoch { current: 1 });
        assert_eq!(end, 106, "only accepted batches took offsets");
    }

    #[test]
    fn only_the_last_five_batches_are_recognised_as_duplicates() {
        let (mut p, mut end) = (PartitionProducers::default(), 0);
        for i in 0..6 {
            assert_eq!(send(&mut p, &mut end, batch(0, i, 1)), Verdict::Append);
        }
        assert!(matches!(p.check(&batch(0, 1, 1)), Verdict::Duplicate(_)));
        assert_eq!(p.check(&batch(0, 0, 1)), Verdict::OutOfOrder { expected: 6 }, "the sixth-newest is forgotten");
    }

    #[test]
    fn sequences_wrap_after_i32_max_and_unknown_producers_start_anywhere() {
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        let (mut p, mut end) = (PartitionProducers::default(), 0);
        assert_eq!(send(&mut p, &mut end, batch(0, i32::MAX - 1, 2)), Verdict::Append, "no state: any sequence");
        assert_eq!(send(&mut p, &mut end, batch(0, 0, 1)), Verdict::Append, "0 follows i32::MAX");
        assert_eq!(p.expire(1), 1, "idle since 0");
        assert_eq!(send(&mut p, &mut end, batch(0, 77, 1)), Verdict::Append, "expired: any sequence again");
    }

    proptest! {
        /// Any mix of fresh batches and retries of earlier ones stores each sequence once and in order.
        #[test]
        fn retries_never_store_a_sequence_twice(ops in proptest::collection::vec((0u8..4, 1i32..5), 1..60)) {
            let (mut p, mut end) = (PartitionProducers::default(), 0i64);
            let mut sent: Vec<ProducerBatch> = Vec::new();
            let mut stored: Vec<i32> = Vec::new();
            let mut next = 0;
            for (op, records) in ops {
                let b = match (op, sent.len()) {
                    (0, n) if n > 0 => sent[n - 1],
                    (1, n) if n > 1 => sent[n - 2],
                    _ => {
                        let b = batch(0, next, records);
                        next = last_sequence(next, records - 1) + 1;
                        sent.push(b);
                        b
                    }
                };
                if send(&mut p, &mut end, b) == Verdict::Append {
                    stored.extend((0..=b.last_offset_delta).map(|d| b.first_sequence + d));
                }
            }
            let expected: Vec<i32> = (0..next).collect();
            prop_assert_eq!(stored, expected);
        }
    }
}
