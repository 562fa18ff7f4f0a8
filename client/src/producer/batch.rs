//! An open or sealed batch of one partition.

use std::sync::Arc;
use std::time::Instant;

use janus_proto::v1 as pb;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::watch;

use super::delivery::{BatchAck, Outcome, OutcomeSender, outcome_channel};
use crate::error::Result;

/// Messages for one partition plus what is needed to acknowledge them.
pub(crate) struct Batch {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// The messages, in send order.
    pub messages: Vec<pb::Message>,
    /// Approximate size.
    pub bytes: usize,
    /// When the first message arrived (the linger clock).
    pub created: Instant,
    /// Resolved once with the broker's answer.
    pub outcome: OutcomeSender,
    /// Buffer space held until the batch is acknowledged.
    pub permits: Option<OwnedSemaphorePermit>,
}

impl Batch {
    /// An empty batch.
    pub fn new(topic: Arc<str>, partition: u32) -> Self {
        let (outcome, _) = outcome_channel();
        Batch { topic, partition, messages: Vec::new(), bytes: 0, created: Instant::now(), outcome, permits: None }
    }

    /// Adds a message; returns its index in the batch and a receiver for the outcome.
    pub fn push(
        &mut self,
        message: pb::Message,
        bytes: usize,
        permit: OwnedSemaphorePermit,
    ) -> (usize, watch::Receiver<Outcome>) {
        if self.messages.is_empty() {
            self.created = Instant::now();
        }
        self.messages.push(message);
        self.bytes += bytes;
        match &mut self.permits {
            Some(held) => held.merge(permit),
            None => self.permits = Some(permit),
        }
        (self.messages.len() - 1, self.outcome.subscribe())
    }

    /// Splits off the wire messages, keeping the acknowledgement part.
    pub fn into_request(self, wait_durable: bool) -> (pb::ProduceRequest, Pending) {
        let request = pb::ProduceRequest {
            topic: self.topic.to_string(),
            partition: Some(self.partition),
            messages: self.messages,
            wait_durable,
        };
        let pending =
            Pending { count: request.messages.len(), bytes: self.bytes, outcome: self.outcome, _permits: self.permits };
        (request, pending)
    }
}

/// A sent batch waiting for its acknowledgement.
pub(crate) struct Pending {
    /// Messages in the batch.
    pub count: usize,
    /// Approximate bytes.
    pub bytes: usize,
    outcome: OutcomeSender,
    _permits: Option<OwnedSemaphorePermit>,
}

impl Pending {
    /// Resolves every message future of the batch and releases its buffer space.
    pub fn resolve(self, result: Result<BatchAck>) {
        self.outcome.send_replace(Some(result));
    }
}

/// Splits the broker's ranges for a partition into consecutive per-batch ranges of `counts` messages.
/// Returns `None` when the ranges do not hold exactly `sum(counts)` offsets.
pub(crate) fn split_ranges(ranges: &[(i64, i64)], counts: &[usize]) -> Option<Vec<Vec<(i64, i64)>>> {
    let total: i64 = ranges.iter().map(|(b, l)| l - b + 1).sum();
    if total != counts.iter().sum::<usize>() as i64 || ranges.iter().any(|(b, l)| l < b) {
        return None;
    }
    let mut out = Vec::with_capacity(counts.len());
    let mut iter = ranges.iter().copied();
    let mut current = iter.next();
    for &count in counts {
        let mut need = count as i64;
        let mut mine = Vec::new();
        while need > 0 {
            let (base, last) = current?;
            let available = last - base + 1;
            let take = available.min(need);
            mine.push((base, base + take - 1));
            need -= take;
            current = if take == available { iter.next() } else { Some((base + take, last)) };
        }
        out.push(mine);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_per_batch() {
        let got = split_ranges(&[(0, 4), (10, 14)], &[3, 4, 3]).unwrap();
        assert_eq!(got, vec![vec![(0, 2)], vec![(3, 4), (10, 11)], vec![(12, 14)]]);
        assert_eq!(split_ranges(&[(0, 4)], &[3, 3]), None);
        assert_eq!(split_ranges(&[(0, 9)], &[3]), None);
        assert_eq!(split_ranges(&[], &[]), Some(vec![]));
    }
}
