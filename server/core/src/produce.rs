//! Produce: route a request's messages to partitions, validate them, build RecordBatch v2 batches within
//! the topic's `max.message.bytes`, append them on the blocking pool, and (when asked) wait until they are
//! durable under the topic's flush policy.
//!
//! Routing: an explicit partition wins; else Kafka's murmur2 of the key; keyless messages of one request
//! all go to one partition and the next request's to the next one. Appends to different partitions are not
//! atomic: if one fails, the request fails and the partitions appended before it keep their messages (a
//! retry may duplicate them: at-least-once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use janus_api::{Appended, Compression, Durable, NewRecord, RecordBatch, TopicPartition, now_ms};
use janus_codec::partitioner::partition_for_key;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::limits::InflightPermit;
use crate::metrics;
use crate::topics::Topic;

/// Bytes of a batch header (RecordBatch v2).
const BATCH_OVERHEAD: usize = 61;

/// One produce request, as every face hands it to the core.
#[derive(Clone, Debug)]
pub struct ProduceRequest {
    /// The topic.
    pub topic: String,
    /// Every message to this partition when set; else routed by key.
    pub partition: Option<u32>,
    /// The messages; a `timestamp_ms` of 0 means the broker's clock.
    pub messages: Vec<NewRecord>,
    /// Answer only once the messages are durable under the topic's flush policy.
    pub wait_durable: bool,
}

/// The offsets one partition's appends of a request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionAppend {
    /// The partition.
    pub partition: u32,
    /// Offset of the first message appended.
    pub base_offset: i64,
    /// Offset of the last message appended.
    pub last_offset: i64,
}

fn record_size_estimate(r: &NewRecord) -> usize {
    let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len) + 5;
    let headers: usize = r.headers.iter().map(|h| h.key.len() + field(&h.value) + 5).sum();
    field(&r.key) + field(&r.value) + headers + 25
}

/// Builds batches of `records` each within `max` bytes; a single record that cannot fit is refused.
fn build_batches(
    topic: &str,
    records: &[NewRecord],
    max: usize,
    out: &mut Vec<RecordBatch>,
) -> Result<(), BrokerError> {
    let mut start = 0;
    let mut size = BATCH_OVERHEAD;
    for (i, r) in records.iter().enumerate() {
        let s = record_size_estimate(r);
        if i > start && size + s > max {
            build_exact(topic, &records[start..i], max, out)?;
            start = i;
            size = BATCH_OVERHEAD;
        }
        size += s;
    }
    if start < records.len() {
        build_exact(topic, &records[start..], max, out)?;
    }
    Ok(())
}

fn build_exact(topic: &str, records: &[NewRecord], max: usize, out: &mut Vec<RecordBatch>) -> Result<(), BrokerError> {
    let batch = RecordBatch::build(records, Compression::None)
        .map_err(|e| BrokerError::invalid(format!("cannot encode the messages: {e}")))?;
    if batch.len() <= max {
        out.push(batch);
        return Ok(());
    }
    if records.len() == 1 {
        return Err(BrokerError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "a message of {} bytes (as a record batch) exceeds max.message.bytes = {max} of topic '{topic}'",
                batch.len()
            ),
        ));
    }
    let mid = records.len() / 2;
    build_exact(topic, &records[..mid], max, out)?;
    build_exact(topic, &records[mid..], max, out)
}

/// Groups the request's messages by partition, in request order within each partition, giving timestamps
/// of 0 the broker's clock.
fn route(topic: &Topic, req: ProduceRequest) -> Result<BTreeMap<u32, Vec<NewRecord>>, BrokerError> {
    if req.messages.is_empty() {
        return Err(BrokerError::invalid("the produce request has no messages"));
    }
    if let Some(p) = req.partition {
        topic.check_partition(p)?;
    }
    let now = now_ms();
    let keyless = req.partition.unwrap_or_else(|| topic.spreader.pick(topic.partitions));
    let mut by_partition: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
    for (i, mut m) in req.messages.into_iter().enumerate() {
        if m.timestamp_ms < 0 {
            return Err(BrokerError::invalid(format!(
                "message {i} has timestamp_ms {}: use 0 for the broker's clock or milliseconds since the epoch",
                m.timestamp_ms
            )));
        }
        let partition = match (req.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, topic.partitions),
            (None, None) => keyless,
        };
        if m.timestamp_ms == 0 {
            m.timestamp_ms = now;
        }
        by_partition.entry(partition).or_default().push(m);
    }
    Ok(by_partition)
}

impl Core {
    /// Produces `req`. The face admitted the request's memory before decoding it (see [`Core::admit`]) and
    /// hands that admission over, so it is held until the request is answered.
    pub async fn produce(
        &self,
        admission: InflightPermit,
        req: ProduceRequest,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let _admission = admission;
        let topic = self.topic(&req.topic)?;
        self.disk.check(topic.engine)?;
        let wait_durable = req.wait_durable;
        let max = topic.config().max_message_bytes as usize;
        let routed = route(&topic, req)?;
        let mut batches: Vec<(u32, RecordBatch)> = Vec::new();
        for (partition, records) in &routed {
            let mut out = Vec::new();
            build_batches(&topic.name, records, max, &mut out)?;
            batches.extend(out.into_iter().map(|b| (*partition, b)));
        }
        drop(routed);
        let t = Arc::clone(&topic);
        let done = self.blocking(move |r| append_all(r.engine(t.engine), &t, batches)).await?;
        let mut appends = Vec::with_capacity(done.len());
        let mut durables: Vec<Durable> = Vec::with_capacity(done.len());
        for (partition, appended) in done {
            appends.push(PartitionAppend {
                partition,
                base_offset: appended.base_offset,
                last_offset: appended.last_offset,
            });
            durables.push(appended.durable);
        }
        if wait_durable {
            let started = Instant::now();
            for d in durables {
                d.await?;
            }
            metrics::record_flush(topic.engine.as_str(), started.elapsed());
        }
        Ok(appends)
    }
}

/// Appends `batches` in order (blocking), waking the partitions' waiters after each append.
fn append_all(
    engine: &dyn janus_api::Engine,
    topic: &Topic,
    batches: Vec<(u32, RecordBatch)>,
) -> Result<Vec<(u32, Appended)>, BrokerError> {
    let mut done = Vec::with_capacity(batches.len());
    let (mut messages, mut bytes) = (0u64, 0u64);
    for (partition, batch) in batches {
        let len = batch.len() as u64;
        let count = batch.record_count().max(0) as u64;
        let appended = match engine.append(&TopicPartition::new(topic.name.clone(), partition), batch) {
            Ok(a) => a,
            Err(e) => {
                metrics::record_in(&topic.name, messages, bytes);
                return Err(e.into());
            }
        };
        topic.notify_append(partition, appended.last_offset + 1);
        messages += count;
        bytes += len;
        done.push((partition, appended));
    }
    metrics::record_in(&topic.name, messages, bytes);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> NewRecord {
        NewRecord { key: None, value: Some(Bytes::from(vec![7u8; n])), headers: vec![], timestamp_ms: 1 }
    }

    #[test]
    fn batches_split_under_the_limit_and_keep_order() {
        let records: Vec<NewRecord> = (0..100).map(|_| rec(100)).collect();
        let mut out = Vec::new();
        build_batches("t", &records, 1024, &mut out).unwrap();
        assert!(out.len() > 10);
        assert!(out.iter().all(|b| b.len() <= 1024));
        assert_eq!(out.iter().map(|b| b.record_count() as usize).sum::<usize>(), 100);
    }

    #[test]
    fn a_single_oversized_message_is_refused() {
        let mut out = Vec::new();
        let err = build_batches("t", &[rec(2000)], 1024, &mut out).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MessageTooLarge);
        assert!(err.message().contains("max.message.bytes = 1024"), "{}", err.message());
    }
}
