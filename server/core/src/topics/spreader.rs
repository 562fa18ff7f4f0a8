//! Where keyless messages go: every request sends all of its keyless messages to one partition (sticky,
//! so they make one batch), and the next request moves on to the next partition. Keyed messages use
//! Kafka's murmur2 partitioner from `janus_codec::partitioner`, shared with the client.

use std::sync::atomic::{AtomicU32, Ordering};

/// The keyless-message spreader of one topic (see the module docs).
#[derive(Debug, Default)]
pub struct KeylessSpreader {
    next: AtomicU32,
}

impl KeylessSpreader {
    /// A spreader starting at `start` (e.g. a random partition, so restarts do not all begin at 0).
    pub fn starting_at(start: u32) -> Self {
        KeylessSpreader { next: AtomicU32::new(start) }
    }

    /// The partition for one request's keyless messages.
    pub fn pick(&self, partitions: u32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyless_requests_rotate() {
        let s = KeylessSpreader::starting_at(0);
        let picks: Vec<u32> = (0..6).map(|_| s.pick(3)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(s.pick(1), 0);
    }
}
