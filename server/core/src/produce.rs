//! Produce: route a request's messages to partitions, validate them, build RecordBatch v2 batches within
//! the topic's `max.message.bytes`, append them on the blocking pool, and (when asked) wait until they are
//! durable under the topic's flush policy.
//!
//! The fast path, [`Core::produce_batches`], takes batches a client already built: it checks their framing
//! and header here and leaves the CRC and record checks to the engine's `append` (which runs on the
//! blocking pool), so no message is decoded or re-encoded on the way to storage.
//!
//! Every message of [`Core::produce`] gets a message id (`UNIQ_KEY` header) unless it has one; a message
//! with a schedule (the request's, or its `DELAY`/`TIMER_*` properties) due later goes to the timer store
//! instead of its partition (see [`crate::messaging::timers`]). Client-built batches are appended as they
//! are: their producer gives them ids (the client library does), and schedules need the per-message path.
//!
//! Routing: an explicit partition wins; else Kafka's murmur2 of the key; keyless messages of one request
//! all go to one partition and the next request's to the next one. Appends to different partitions are not
//! atomic: if one fails, the request fails and the partitions appended before it keep their messages (a
//! retry may duplicate them: at-least-once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use janus_api::{Appended, Compression, Durable, NewRecord, RecordBatch, TopicPartition, now_ms, sync};
use janus_codec::batch::split_batches;
use janus_codec::message_id::new_message_id;
use janus_codec::partitioner::partition_for_key;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::limits::InflightPermit;
use crate::messaging::{Schedule, ScheduledMessage, header_value};
use crate::meta::timers::TimerEntry;
use crate::metrics;
use crate::producers::{ProducerBatch, Verdict, slots};
use crate::topics::Registry;
use crate::topics::Topic;

/// Memory [`Core::produce`] adds per message for its message id: the `UNIQ_KEY` header (struct, name and
/// value), the id kept for the answer, and the id's bytes in the encoded batch. Faces add it to what they
/// admit for a request before decoding it (see [`Core::admit`]).
pub const MESSAGE_ID_OVERHEAD: usize = size_of::<janus_api::Header>()
    + 2 * (size_of::<String>() + janus_codec::message_id::ID_LEN)
    + 3 * janus_codec::message_id::ID_LEN
    + 32;

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
    /// Deliver every message later (else each message's own `DELAY`/`TIMER_*` properties decide).
    pub schedule: Option<Schedule>,
}

/// What a produce request did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceOutcome {
    /// Where the messages appended now went.
    pub appends: Vec<PartitionAppend>,
    /// The id of every message, in request order.
    pub message_ids: Vec<String>,
    /// The messages scheduled for later, in request order.
    pub scheduled: Vec<ScheduledMessage>,
}

/// Client-built Kafka RecordBatch v2 batches for one partition, back to back.
#[derive(Clone, Debug)]
pub struct PartitionBatches {
    /// The partition.
    pub partition: u32,
    /// One or more whole batches.
    pub bytes: Bytes,
}

/// A produce request of client-built batches (the fast path), as every face hands it to the core.
#[derive(Clone, Debug)]
pub struct ProduceBatchesRequest {
    /// The topic.
    pub topic: String,
    /// The batches, per partition, appended in this order.
    pub batches: Vec<PartitionBatches>,
    /// Answer only once the batches are durable under the topic's flush policy.
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

/// Builds `records` into batches each within `max` bytes; a single record that cannot fit is refused.
pub(crate) fn build_batches(topic: &str, records: &[NewRecord], max: usize) -> Result<Vec<RecordBatch>, BrokerError> {
    RecordBatch::build_within(records, max, Compression::None).map_err(|e| match e {
        janus_api::BatchError::TooLarge { size, .. } => BrokerError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "a message of {size} bytes (as a record batch) exceeds max.message.bytes = {max} of topic '{topic}'"
            ),
        ),
        other => BrokerError::invalid(format!("cannot encode the messages: {other}")),
    })
}

/// One batch to append, with its producer fields when it has a producer id.
pub(crate) struct ToAppend {
    pub partition: u32,
    pub batch: RecordBatch,
    pub producer: Option<ProducerBatch>,
}

/// Splits each partition's bytes into batches and checks what the engine does not: framing, that each
/// batch has records and fits `max.message.bytes`, and its producer fields (all -1, or an id, epoch and
/// sequence of the idempotent producer).
fn split_client_batches(
    topic: &Topic,
    batches: Vec<PartitionBatches>,
    max: usize,
) -> Result<Vec<ToAppend>, BrokerError> {
    if batches.is_empty() {
        return Err(BrokerError::invalid("the produce request has no batches"));
    }
    let mut out = Vec::with_capacity(batches.len());
    for PartitionBatches { partition, bytes } in batches {
        topic.check_partition(partition)?;
        if bytes.is_empty() {
            return Err(BrokerError::invalid(format!("partition {partition}: the record_batches field is empty")));
        }
        for (i, item) in split_batches(&bytes).enumerate() {
            let what = || format!("partition {partition}, batch {i}");
            let (header, raw) = item.map_err(|e| BrokerError::invalid(format!("{}: {e}", what())))?;
            if raw.len() > max {
                return Err(BrokerError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "{}: a batch of {} bytes exceeds max.message.bytes = {max} of topic '{}'",
                        what(),
                        raw.len(),
                        topic.name
                    ),
                ));
            }
            if header.is_transactional() || header.is_control() {
                return Err(BrokerError::invalid(format!(
                    "{}: transactional and control batches are not accepted (this broker has no Kafka transactions)",
                    what()
                )));
            }
            if header.records_count <= 0 {
                return Err(BrokerError::invalid(format!("{}: the batch holds no records", what())));
            }
            let producer = producer_fields(&header).map_err(|e| BrokerError::invalid(format!("{}: {e}", what())))?;
            let batch = RecordBatch::from_bytes(bytes.slice_ref(raw))
                .map_err(|e| BrokerError::invalid(format!("{}: {e}", what())))?;
            out.push(ToAppend { partition, batch, producer });
        }
    }
    Ok(out)
}

/// The batch's idempotent-producer fields: `None` when it has no producer id (-1). Without one, the epoch
/// and the sequence are not looked at, as in Kafka: aiokafka sends base sequence 0 in every batch of a
/// producer that is not idempotent.
fn producer_fields(h: &janus_codec::batch::BatchHeader) -> Result<Option<ProducerBatch>, String> {
    match (h.producer_id, h.producer_epoch, h.base_sequence) {
        (-1, ..) => Ok(None),
        (id, epoch, seq) if id >= 0 && epoch >= 0 && seq >= 0 => {
            if h.last_offset_delta < 0 || i64::from(h.records_count) != i64::from(h.last_offset_delta) + 1 {
                return Err(format!(
                    "a batch of an idempotent producer must hold last offset delta + 1 records, one per sequence \
                     (it has {} records and last offset delta {})",
                    h.records_count, h.last_offset_delta
                ));
            }
            Ok(Some(ProducerBatch {
                producer_id: id,
                epoch,
                first_sequence: seq,
                last_offset_delta: h.last_offset_delta,
            }))
        }
        (id, epoch, seq) => Err(format!(
            "producer id {id}, epoch {epoch} and base sequence {seq}: a producer id needs an epoch and a sequence \
             of 0 or more"
        )),
    }
}

/// Groups the request's messages by partition, in request order within each partition, giving timestamps
/// of 0 the broker's clock.
/// Each message is kept with its index in the request.
pub(crate) fn route(topic: &Topic, req: ProduceRequest) -> Result<BTreeMap<u32, Vec<(usize, NewRecord)>>, BrokerError> {
    if req.messages.is_empty() {
        return Err(BrokerError::invalid("the produce request has no messages"));
    }
    if let Some(p) = req.partition {
        topic.check_partition(p)?;
    }
    let now = now_ms();
    let keyless = req.partition.unwrap_or_else(|| topic.spreader.pick(topic.partitions));
    let mut by_partition: BTreeMap<u32, Vec<(usize, NewRecord)>> = BTreeMap::new();
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
        by_partition.entry(partition).or_default().push((i, m));
    }
    Ok(by_partition)
}

impl Core {
    /// Produces `req`. The face admitted the request's memory before decoding it (see [`Core::admit`]) and
    /// hands that admission over, so it is held until the request is answered.
    pub async fn produce(
        &self,
        admission: InflightPermit,
        mut req: ProduceRequest,
    ) -> Result<ProduceOutcome, BrokerError> {
        let _admission = admission;
        let topic = self.topic(&req.topic)?;
        self.disk.check(topic.engine)?;
        let wait_durable = req.wait_durable;
        let max = topic.config().max_message_bytes as usize;
        let message_ids: Vec<String> = req.messages.iter_mut().map(ensure_message_id).collect();
        let now = self.messaging.now_ms();
        let config = self.messaging.config();
        let mut dues = Vec::with_capacity(req.messages.len());
        for (i, m) in req.messages.iter().enumerate() {
            let due = req
                .schedule
                .map_or_else(|| Schedule::from_headers(&m.headers), |s| Ok(Some(s)))
                .and_then(|s| s.map(|s| s.due_ms(now, &config.delay_levels_ms, config.timer_max_delay_ms)).transpose())
                .map_err(|e| BrokerError::new(e.code(), format!("message {i}: {}", e.message())))?;
            dues.push(due.filter(|d| *d > now));
        }
        let routed = route(&topic, req)?;
        let mut batches: Vec<(u32, RecordBatch)> = Vec::new();
        let mut timers: Vec<TimerEntry> = Vec::new();
        let mut scheduled: Vec<(usize, ScheduledMessage)> = Vec::new();
        for (partition, records) in routed {
            let mut now_records = Vec::with_capacity(records.len());
            for (i, record) in records {
                match dues[i] {
                    Some(due_ms) => {
                        let message_id = message_ids[i].clone();
                        scheduled.push((
                            i,
                            ScheduledMessage { message_id: message_id.clone(), partition, deliver_at_ms: due_ms },
                        ));
                        timers.push(TimerEntry {
                            due_ms,
                            id: message_id,
                            topic: topic.name.clone(),
                            partition,
                            record,
                        });
                    }
                    None => now_records.push(record),
                }
            }
            if !now_records.is_empty() {
                let built = build_batches(&topic.name, &now_records, max)?;
                batches.extend(built.into_iter().map(|b| (partition, b)));
            }
        }
        for t in &timers {
            // Checked now, so a message that could never be appended is refused rather than dropped later.
            build_batches(&topic.name, std::slice::from_ref(&t.record), max)?;
        }
        scheduled.sort_unstable_by_key(|(i, _)| *i);
        let scheduled = scheduled.into_iter().map(|(_, s)| s).collect();
        self.schedule(timers, wait_durable).await?;
        let appends =
            if batches.is_empty() { Vec::new() } else { self.append_and_wait(topic, batches, wait_durable).await? };
        Ok(ProduceOutcome { appends, message_ids, scheduled })
    }

    /// Produces client-built batches (the fast path): checked and appended as they are, without decoding
    /// or re-encoding a message. Like [`Core::produce`], it holds the face's admission until answered.
    /// Returns one [`PartitionAppend`] per contiguous run of offsets per partition.
    pub async fn produce_batches(
        &self,
        admission: InflightPermit,
        req: ProduceBatchesRequest,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let _admission = admission;
        let topic = self.topic(&req.topic)?;
        self.disk.check(topic.engine)?;
        let max = topic.config().max_message_bytes as usize;
        let batches = split_client_batches(&topic, req.batches, max)?;
        let appends = self.append_checked_and_wait(topic, batches, req.wait_durable).await?;
        Ok(merge_runs(appends))
    }

    /// Appends `batches` on the blocking pool and, when asked, waits until they are durable.
    pub(crate) async fn append_and_wait(
        &self,
        topic: Arc<Topic>,
        batches: Vec<(u32, RecordBatch)>,
        wait_durable: bool,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let batches =
            batches.into_iter().map(|(partition, batch)| ToAppend { partition, batch, producer: None }).collect();
        self.append_checked_and_wait(topic, batches, wait_durable).await
    }

    /// Appends `batches` on the blocking pool, passing those with a producer id through the idempotent
    /// producer's checks (a duplicate answers with its first offsets and is not appended again), and, when
    /// asked, waits until they are durable.
    pub(crate) async fn append_checked_and_wait(
        &self,
        topic: Arc<Topic>,
        batches: Vec<ToAppend>,
        wait_durable: bool,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let t = Arc::clone(&topic);
        let ids = Arc::clone(&self.producer_ids);
        let expiration_ms = self.messaging.config().producer_id_expiration_ms;
        let (done, duplicates) = self
            .blocking(move |r| {
                let mut checked: Vec<(i64, i16)> = Vec::new();
                for p in batches.iter().filter_map(|b| b.producer) {
                    if !checked.contains(&(p.producer_id, p.epoch)) {
                        ids.check(r.meta(), p.producer_id, p.epoch)?;
                        checked.push((p.producer_id, p.epoch));
                    }
                }
                append_all(r, &t, batches, expiration_ms)
            })
            .await?;
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
            if duplicates {
                // A duplicate's first append may not be on disk yet, and its waiter is gone: flush.
                let kind = topic.engine;
                self.blocking(move |r| Ok(r.engine(kind).flush()?)).await?;
            }
            for d in durables {
                d.await?;
            }
            metrics::record_flush(topic.engine.as_str(), started.elapsed());
        }
        Ok(appends)
    }
}

/// The message's id: its `UNIQ_KEY` header, added if missing.
pub(crate) fn ensure_message_id(m: &mut NewRecord) -> String {
    if let Some(id) = header_value(&m.headers, janus_api::headers::UNIQ_KEY).filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    let id = new_message_id();
    m.headers.push(janus_api::Header::new(janus_api::headers::UNIQ_KEY, Bytes::from(id.clone())));
    id
}

/// Merges appends of one partition whose offsets follow each other into one range, keeping order.
fn merge_runs(appends: Vec<PartitionAppend>) -> Vec<PartitionAppend> {
    let mut out: Vec<PartitionAppend> = Vec::with_capacity(appends.len());
    for a in appends {
        match out.last_mut() {
            Some(last) if last.partition == a.partition && last.last_offset + 1 == a.base_offset => {
                last.last_offset = a.last_offset;
            }
            _ => out.push(a),
        }
    }
    out
}

/// Appends `batches` in order (blocking), waking the partitions' waiters after each append. Also says
/// whether any was a duplicate (answered with its first append's offsets, not appended again).
fn append_all(
    r: &Registry,
    topic: &Topic,
    batches: Vec<ToAppend>,
    expiration_ms: i64,
) -> Result<(Vec<(u32, Appended)>, bool), BrokerError> {
    let engine = r.engine(topic.engine);
    let mut done = Vec::with_capacity(batches.len());
    let mut duplicates = false;
    let (mut messages, mut bytes) = (0u64, 0u64);
    for ToAppend { partition, batch, producer } in batches {
        let len = batch.len() as u64;
        let count = batch.record_count().max(0) as u64;
        let tp = TopicPartition::new(topic.name.clone(), partition);
        let appended = match producer {
            None => engine.append(&tp, batch).map(|a| (a, true)).map_err(BrokerError::from),
            Some(p) => append_idempotent(r, topic, &tp, batch, &p, expiration_ms),
        };
        let (appended, fresh) = match appended {
            Ok(a) => a,
            Err(e) => {
                metrics::record_in(&topic.name, messages, bytes);
                return Err(e);
            }
        };
        duplicates |= !fresh;
        if fresh {
            topic.notify_append(partition, appended.last_offset + 1);
            messages += count;
            bytes += len;
        }
        done.push((partition, appended));
    }
    metrics::record_in(&topic.name, messages, bytes);
    Ok((done, duplicates))
}
/// Appends a batch with a producer id under its partition's producer-state lock: checked, appended if
/// new, recorded. Returns what it got and whether it was appended now (`false`: a duplicate of a batch
/// appended before, answered with that batch's offsets).
fn append_idempotent(
    r: &Registry,
    topic: &Topic,
    tp: &TopicPartition,
    batch: RecordBatch,
    p: &ProducerBatch,
    expiration_ms: i64,
) -> Result<(Appended, bool), BrokerError> {
    let slot = topic.producers.slot(tp.partition).ok_or_else(|| {
        BrokerError::new(ErrorCode::UnknownPartition, format!("topic '{}' has no partition {}", tp.topic, tp.partition))
    })?;
    let mut slot = sync::lock(slot);
    let engine = r.engine(topic.engine);
    let now = now_ms();
    let state = match &mut slot.state {
        Some(state) => state,
        empty => {
            let max = topic.config().max_message_bytes as usize;
            let loaded = slots::load(engine, r.meta(), tp, max, expiration_ms, now)?;
            if topic.is_deleted() {
                // Deleted meanwhile: its snapshots' removal may have come before the one just written.
                r.meta().delete_producer_snapshot(&tp.topic, tp.partition)?;
            }
            empty.insert(loaded)
        }
    };
    let duplicate = match state.check(p) {
        Verdict::Append => None,
        Verdict::Duplicate(kept) => Some(kept),
        Verdict::StaleEpoch { current } => {
            return Err(BrokerError::new(
                ErrorCode::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is older than its epoch {current} in partition {} of '{}'",
                    p.producer_id, p.epoch, tp.partition, tp.topic
                ),
            ));
        }
        Verdict::OutOfOrder { expected } => {
            return Err(BrokerError::new(
                ErrorCode::OutOfOrderSequenceNumber,
                format!(
                    "producer {} sent sequence {} to partition {} of '{}' where {expected} was expected",
                    p.producer_id, p.first_sequence, tp.partition, tp.topic
                ),
            ));
        }
    };
    if let Some(kept) = duplicate {
        metrics::record_duplicate(&topic.name);
        let same = Appended { base_offset: kept.base_offset, last_offset: kept.last_offset, durable: Durable::ready() };
        return Ok((same, false));
    }
    let appended = engine.append(tp, batch)?;
    state.record(p, appended.base_offset, appended.last_offset, now);
    slot.dirty = true;
    Ok((appended, true))
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
        let out = build_batches("t", &records, 1024).unwrap();
        assert!(out.len() > 10);
        assert!(out.iter().all(|b| b.len() <= 1024));
        assert_eq!(out.iter().map(|b| b.record_count() as usize).sum::<usize>(), 100);
    }

    #[test]
    fn appends_that_follow_each_other_merge_per_partition() {
        let a = |partition, base_offset, last_offset| PartitionAppend { partition, base_offset, last_offset };
        let merged = merge_runs(vec![a(0, 0, 9), a(0, 10, 19), a(1, 5, 6), a(0, 30, 31), a(0, 32, 32)]);
        assert_eq!(merged, vec![a(0, 0, 19), a(1, 5, 6), a(0, 30, 32)]);
    }

    #[test]
    fn producer_fields_must_be_whole_and_consistent() {
        let records = [rec(10), rec(10), rec(10)];
        let mut h = RecordBatch::build(&records, Compression::None).unwrap().header();
        assert_eq!(producer_fields(&h), Ok(None), "all -1: no producer");
        (h.producer_id, h.producer_epoch, h.base_sequence) = (7, 0, 5);
        let p = producer_fields(&h).unwrap().unwrap();
        assert_eq!((p.producer_id, p.first_sequence, p.last_offset_delta), (7, 5, 2));
        h.last_offset_delta = -3;
        assert!(producer_fields(&h).unwrap_err().contains("last offset delta"), "a negative delta");
        h.last_offset_delta = 5;
        assert!(producer_fields(&h).is_err(), "more sequences than records");
        (h.last_offset_delta, h.base_sequence) = (2, -4);
        assert!(producer_fields(&h).is_err(), "a negative sequence");
        (h.producer_id, h.producer_epoch, h.base_sequence) = (-1, -1, 0);
        assert_eq!(producer_fields(&h), Ok(None), "a sequence without a producer is not looked at (aiokafka)");
        (h.producer_id, h.producer_epoch, h.base_sequence) = (-2, 0, 0);
        assert!(producer_fields(&h).is_err(), "a negative producer id other than -1");
    }

    #[test]
    fn a_single_oversized_message_is_refused() {
        let err = build_batches("t", &[rec(2000)], 1024).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MessageTooLarge);
        assert!(err.message().contains("max.message.bytes = 1024"), "{}", err.message());
    }
}
