//! `janus.v1` messages to and from the core's types.

use janus_api::{EngineKind, Header, NewRecord, Record};
use janus_core::admin::PartitionRange;
use janus_core::groups::GroupPartition;
use janus_core::topics::Topic;
use janus_core::{BrokerError, FetchResult, Fetched, PartitionAppend, PartitionBatches, Position, RecordFormat};
use janus_proto::v1;
use janus_proto::v1::position::At;

/// The API's engine enum for an engine kind.
pub fn engine_to_proto(kind: EngineKind) -> v1::Engine {
    match kind {
        EngineKind::Segment => v1::Engine::Segment,
        EngineKind::Commitlog => v1::Engine::Commitlog,
    }
}

/// The engine kind a request names (`None` for unspecified: the broker default).
pub fn engine_from_proto(value: i32) -> Result<Option<EngineKind>, BrokerError> {
    match v1::Engine::try_from(value) {
        Ok(v1::Engine::Unspecified) => Ok(None),
        Ok(v1::Engine::Segment) => Ok(Some(EngineKind::Segment)),
        Ok(v1::Engine::Commitlog) => Ok(Some(EngineKind::Commitlog)),
        Err(_) => {
            Err(BrokerError::invalid(format!("unknown engine {value}: use ENGINE_SEGMENT (1) or ENGINE_COMMITLOG (2)")))
        }
    }
}

/// The API's description of a topic: name, engine, partitions and every effective config value.
pub fn topic_info(topic: &Topic) -> v1::TopicInfo {
    v1::TopicInfo {
        name: topic.name.clone(),
        engine: engine_to_proto(topic.engine) as i32,
        partitions: topic.partitions,
        configs: topic.config().to_pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// A partition's readable range.
pub fn partition_info(p: PartitionRange) -> v1::PartitionInfo {
    v1::PartitionInfo { partition: p.partition, log_start_offset: p.log_start, log_end_offset: p.log_end }
}

/// A produced message as the core takes it (timestamp 0: the broker's clock).
pub fn new_record(m: v1::Message) -> NewRecord {
    NewRecord {
        key: m.key,
        value: m.value,
        headers: m.headers.into_iter().map(|h| Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: m.timestamp_ms,
    }
}

/// The offsets one partition's appends got.
pub fn partition_append(a: PartitionAppend) -> v1::PartitionAppend {
    v1::PartitionAppend { partition: a.partition, base_offset: a.base_offset, last_offset: a.last_offset }
}

/// A read record as the API returns it.
pub fn consumed(r: Record) -> v1::ConsumedMessage {
    v1::ConsumedMessage {
        offset: r.offset,
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| v1::Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// A fetch result as the API returns it.
pub fn fetch_response(f: FetchResult) -> v1::FetchResponse {
    let (messages, record_batches) = match f.data {
        Fetched::Records(records) => (records.into_iter().map(consumed).collect(), bytes::Bytes::new()),
        Fetched::Batches { bytes, .. } => (Vec::new(), bytes),
    };
    v1::FetchResponse {
        topic: f.topic,
        partition: f.partition,
        messages,
        next_offset: f.next_offset,
        log_start_offset: f.log_start,
        log_end_offset: f.log_end,
        record_batches,
        from_offset: f.from_offset,
    }
}

/// The core's record format for the API's (unknown values are refused).
pub fn record_format(value: i32) -> Result<RecordFormat, BrokerError> {
    match v1::RecordFormat::try_from(value) {
        Ok(v1::RecordFormat::Unspecified | v1::RecordFormat::Messages) => Ok(RecordFormat::Records),
        Ok(v1::RecordFormat::Batches) => Ok(RecordFormat::Batches),
        Err(_) => Err(BrokerError::invalid(format!(
            "unknown record format {value}: use RECORD_FORMAT_MESSAGES (1) or RECORD_FORMAT_BATCHES (2)"
        ))),
    }
}

/// A request's client-built batches as the core takes them.
pub fn partition_batches(b: v1::PartitionBatches) -> PartitionBatches {
    PartitionBatches { partition: b.partition, bytes: b.record_batches }
}

/// The core's position for the API's.
pub fn position(at: At) -> Position {
    match at {
        At::Earliest(_) => Position::Earliest,
        At::Latest(_) => Position::Latest,
        At::Offset(o) => Position::Offset(o),
        At::TimestampMs(ts) => Position::Timestamp(ts),
    }
}

/// `(partition, offset)` pairs as the API's list.
pub fn partition_offsets(pairs: Vec<(u32, i64)>) -> Vec<v1::PartitionOffset> {
    pairs.into_iter().map(|(partition, offset)| v1::PartitionOffset { partition, offset }).collect()
}

/// One partition of a group's description.
pub fn group_partition(p: GroupPartition) -> v1::GroupPartition {
    v1::GroupPartition {
        topic: p.topic,
        partition: p.partition,
        committed_offset: p.committed_offset,
        log_end_offset: p.log_end_offset,
        lag: p.lag,
    }
}
