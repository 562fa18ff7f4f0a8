//! An open or sealed batch of one partition.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use janus_codec::headers::UNIQ_KEY;
use janus_codec::message_id::new_message_id;
use janus_codec::{Header, NewRecord, RecordBatch};
use janus_proto::v1 as pb;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::watch;

use super::config::{RecordCompression, WireFormat};
use super::delivery::{BatchAck, Outcome, OutcomeSender, outcome_channel};
use super::idempotence::Session;
use crate::error::Result;

/// How sealed batches become requests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestShape {
    /// Ask the broker to answer once the batch is durable.
    pub wait_durable: bool,
    /// Client-built batches or per-record messages.
    pub format: WireFormat,
    /// The codec of client-built batches.
    pub compression: RecordCompression,
    /// Give each message of a client-built batch a message id (`UNIQ_KEY` header) unless it has one (the
    /// broker adds ids to per-record messages itself).
    pub message_ids: bool,
}

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
    /// The topic's `max.message.bytes`: the largest client-built batch the broker takes.
    pub max_batch_bytes: usize,
    /// Resolved once with the broker's answer.
    pub outcome: OutcomeSender,
    /// Buffer space held until the batch is acknowledged.
    pub permits: Option<OwnedSemaphorePermit>,
}

impl Batch {
    /// An empty batch.
    pub fn new(topic: Arc<str>, partition: u32, max_batch_bytes: usize) -> Self {
        let (outcome, _) = outcome_channel();
        Batch {
            topic,
            partition,
            messages: Vec::new(),
            bytes: 0,
            created: Instant::now(),
            max_batch_bytes,
            outcome,
            permits: None,
        }
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

    /// Turns the messages into a request as `shape` says, keeping the acknowledgement part; client-built
    /// batches carry `session`'s producer id and sequences when there is one. A batch that cannot be built
    /// within the topic's limit (one record larger than it) goes as messages, so the broker refuses it
    /// with its own error naming the limit.
    pub fn into_request(self, shape: RequestShape, session: Option<&Session>) -> (pb::ProduceRequest, Pending) {
        let count = self.messages.len();
        let pending = Pending { count, bytes: self.bytes, outcome: self.outcome, _permits: self.permits };
        let mut request = pb::ProduceRequest {
            topic: self.topic.to_string(),
            partition: Some(self.partition),
            messages: Vec::new(),
            wait_durable: shape.wait_durable,
            batches: Vec::new(),
            ..Default::default()
        };
        if shape.format == WireFormat::Batches {
            let mut records = new_records(&self.messages, wall_clock_ms());
            if shape.message_ids {
                for r in &mut records {
                    if !r.headers.iter().any(|h| h.key == UNIQ_KEY) {
                        r.headers.push(Header::new(UNIQ_KEY, Bytes::from(new_message_id())));
                    }
                }
            }
            if let Ok(batches) = RecordBatch::build_within(&records, self.max_batch_bytes, shape.compression) {
                let batches = match session {
                    Some(s) => s.stamp(&self.topic, self.partition, batches),
                    None => batches,
                };
                request.partition = None;
                request.batches =
                    vec![pb::PartitionBatches { partition: self.partition, record_batches: concat(batches) }];
                return (request, pending);
            }
        }
        request.messages = self.messages;
        (request, pending)
    }
}

/// The messages as batch records; a timestamp of 0 becomes `now_ms` (CreateTime set by the client).
fn new_records(messages: &[pb::Message], now_ms: i64) -> Vec<NewRecord> {
    messages
        .iter()
        .map(|m| NewRecord {
            key: m.key.clone(),
            value: m.value.clone(),
            headers: m.headers.iter().map(|h| Header { key: h.key.clone(), value: h.value.clone() }).collect(),
            timestamp_ms: if m.timestamp_ms == 0 { now_ms } else { m.timestamp_ms },
        })
        .collect()
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Batches back to back in one buffer (no copy for the usual single batch).
fn concat(batches: Vec<RecordBatch>) -> Bytes {
    if batches.len() == 1 {
        return batches.into_iter().next().map(RecordBatch::into_bytes).unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(batches.iter().map(RecordBatch::len).sum());
    for b in &batches {
        buf.extend_from_slice(b.as_bytes());
    }
    buf.freeze()
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
