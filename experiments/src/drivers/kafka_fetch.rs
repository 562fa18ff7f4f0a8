//! A Kafka Fetch load generator (not a client library): one blocking connection to a broker's Kafka face,
//! Fetch v12 requests over every partition not yet read to its end, each partition allowed
//! `partition_max_bytes`, until every partition is read; it counts the record bytes and the records.
//!
//! Like a Kafka consumer it asks for all its partitions in each request and moves each partition's offset to
//! one past the last record of the last whole batch it got. It decodes no record: only the batch headers
//! (base offset, length, last offset delta), so its CPU stays small beside the broker's.

use std::net::{SocketAddr, TcpStream};

use anyhow::{Context, Result, bail, ensure};
use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::kafka_frames::{receive, send};

/// The Fetch version sent.
const VERSION: i16 = 12;
/// `max_bytes` of each request (librdkafka's default `fetch.max.bytes`; the broker caps it lower).
const MAX_BYTES: i32 = 50 << 20;
/// RecordBatch v2: bytes before the `batchLength` field ends (base offset, length).
const LOG_OVERHEAD: usize = 12;
/// RecordBatch v2: where `lastOffsetDelta` sits.
const LAST_OFFSET_DELTA_AT: usize = 23;
/// RecordBatch v2: the header's size.
const BATCH_HEADER: usize = 61;

/// One partition to read, from `offset` to `end` (the log end).
#[derive(Clone, Debug)]
pub struct Target {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to fetch.
    pub offset: i64,
    /// Where to stop: the partition's log end.
    pub end: i64,
}

/// What a read moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Consumed {
    /// Records at or after the offsets asked for.
    pub records: u64,
    /// Record bytes received (the `records` fields, whole batches).
    pub record_bytes: u64,
    /// Fetch requests sent.
    pub requests: u64,
}

/// Reads every target to its end through the Kafka face at `addr`.
pub fn read_to_end(addr: SocketAddr, mut targets: Vec<Target>, partition_max_bytes: i32) -> Result<Consumed> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to the Kafka face at {addr}"))?;
    stream.set_nodelay(true)?;
    let mut read = Consumed::default();
    let mut correlation_id = 0;
    // One receive buffer for every response (see `kafka_frames::receive`).
    let mut buffer = BytesMut::new();
    targets.retain(|t| t.offset < t.end);
    while !targets.is_empty() {
        correlation_id += 1;
        send(&mut stream, ApiKey::Fetch, VERSION, correlation_id, &request(&targets, partition_max_bytes))?;
        let response: FetchResponse = receive(&mut stream, &mut buffer, ApiKey::Fetch, VERSION, correlation_id)?;
        read.requests += 1;
        let mut progressed = false;
        for topic in &response.responses {
            for p in &topic.partitions {
                let Some(target) =
                    targets.iter_mut().find(|t| t.partition == p.partition_index && *t.topic == *topic.topic.0)
                else {
                    bail!("a response for a partition not asked for: {:?} {}", topic.topic, p.partition_index);
                };
                ensure!(p.error_code == 0, "{}/{}: error {}", target.topic, target.partition, p.error_code);
                let records = p.records.clone().unwrap_or_default();
                read.record_bytes += records.len() as u64;
                let (count, next) = walk_batches(&records, target.offset)?;
                read.records += count;
                progressed |= next > target.offset;
                target.offset = target.offset.max(next);
            }
        }
        ensure!(progressed, "a Fetch returned nothing new for {} partitions", targets.len());
        targets.retain(|t| t.offset < t.end);
    }
    Ok(read)
}

/// The Fetch request for `targets`: no wait, no session.
fn request(targets: &[Target], partition_max_bytes: i32) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for t in targets {
        let p = FetchPartition::default()
            .with_partition(t.partition)
            .with_fetch_offset(t.offset)
            .with_partition_max_bytes(partition_max_bytes);
        match topics.iter_mut().find(|f| *f.topic.0 == *t.topic) {
            Some(f) => f.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(t.topic.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(MAX_BYTES).with_topics(topics)
}

/// Walks the whole batches in `records` (a partial last batch is ignored, as clients do): the records at or
/// after `from`, and the offset after the last batch's last record (`from` if there is no whole batch).
pub(crate) fn walk_batches(records: &[u8], from: i64) -> Result<(u64, i64)> {
    let (mut count, mut next, mut at) = (0u64, from, 0usize);
    while records.len() - at >= BATCH_HEADER {
        let header = &records[at..];
        let base = i64::from_be_bytes(header[..8].try_into()?);
        let length = i32::from_be_bytes(header[8..12].try_into()?);
        let size = LOG_OVERHEAD + usize::try_from(length).context("a negative batch length")?;
        if size > header.len() {
            break;
        }
        let delta = i32::from_be_bytes(header[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].try_into()?);
        let last = base + i64::from(delta);
        if last >= next {
            count += u64::try_from(last - base.max(next) + 1)?;
            next = last + 1;
        }
        at += size;
    }
    Ok((count, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake batch: header fields that matter here, `len` bytes in all.
    fn batch(base: i64, delta: i32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&i32::try_from(len - LOG_OVERHEAD).unwrap().to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&delta.to_be_bytes());
        b
    }

    #[test]
    fn batches_are_counted_from_the_offset_asked_for_and_a_partial_one_is_left() {
        let mut records = batch(0, 9, 100);
        records.extend(batch(10, 4, 80));
        records.extend(&batch(15, 4, 90)[..70]);
        // From the middle of the first batch: 5..=9 and 10..=14.
        assert_eq!(walk_batches(&records, 5).unwrap(), (10, 15));
        assert_eq!(walk_batches(&records, 0).unwrap(), (15, 15));
        assert_eq!(walk_batches(&[], 7).unwrap(), (0, 7));
    }
}
