//! A partition's producer state as stored in the metadata store: the state after every batch below
//! `replay_from`, so loading it and replaying the log from `replay_from` rebuilds the state at the log end.
//!
//! Layout (big-endian): version u8 (1), replay_from i64, producer count u32, then per producer: id i64,
//! epoch i16, last append ms i64, batch count u8, then per batch first sequence i32, last sequence i32,
//! base offset i64, last offset i64.

use std::collections::VecDeque;

use super::state::{BATCHES_KEPT, KeptBatch, PartitionProducers, ProducerEntry};

const VERSION: u8 = 1;

/// A decoded snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The first offset not reflected in `producers`.
    pub replay_from: i64,
    /// The state.
    pub producers: PartitionProducers,
}

/// Encodes `producers`, valid for every batch below `replay_from`.
pub fn encode(replay_from: i64, producers: &PartitionProducers) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + producers.len() * (19 + BATCHES_KEPT * 24));
    out.push(VERSION);
    out.extend_from_slice(&replay_from.to_be_bytes());
    out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
    for (id, entry) in producers.entries() {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&entry.epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_append_ms.to_be_bytes());
        let kept = entry.batches.len().min(BATCHES_KEPT);
        out.push(kept as u8);
        for b in entry.batches.iter().skip(entry.batches.len() - kept) {
            out.extend_from_slice(&b.first_sequence.to_be_bytes());
            out.extend_from_slice(&b.last_sequence.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    out
}

/// Reads big-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Decodes a snapshot; `None` when the bytes are not one this version wrote (the caller then rebuilds
/// the state from the log alone).
pub fn decode(bytes: &[u8]) -> Option<Snapshot> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return None;
    }
    let replay_from = r.i64()?;
    let count = r.u32()?;
    let mut producers = PartitionProducers::default();
    for _ in 0..count {
        let id = r.i64()?;
        let epoch = r.i16()?;
        let last_append_ms = r.i64()?;
        let n = usize::from(r.u8()?);
        if n > BATCHES_KEPT {
            return None;
        }
        let mut batches = VecDeque::with_capacity(n);
        for _ in 0..n {
            batches.push_back(KeptBatch {
                first_sequence: r.i32()?,
                last_sequence: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        producers.restore(id, ProducerEntry { epoch, batches, last_append_ms });
    }
    r.0.is_empty().then_some(Snapshot { replay_from, producers })
}

#[cfg(test)]
mod tests {
    use super::super::state::ProducerBatch;
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_damaged_bytes_are_refused() {
        let mut p = PartitionProducers::default();
        for i in 0..7 {
            let b = ProducerBatch { producer_id: 3, epoch: 1, first_sequence: i * 2, last_offset_delta: 1 };
            p.record(&b, 100 + i64::from(i) * 2, 101 + i64::from(i) * 2, 55);
        }
        p.record(&ProducerBatch { producer_id: 9, epoch: 0, first_sequence: 0, last_offset_delta: 0 }, 120, 120, 66);
        let bytes = encode(121, &p);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, Snapshot { replay_from: 121, producers: p });
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "truncated");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None, "trailing bytes");
        let mut other = bytes;
        other[0] = 2;
        assert_eq!(decode(&other), None, "another version");
        assert_eq!(decode(&[]), None);
    }
}
