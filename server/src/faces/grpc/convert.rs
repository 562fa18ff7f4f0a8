//! `janus.v1` messages to and from the core's types.

use std::time::Duration;

use janus_api::{EngineKind, Header, NewRecord, Record};
use janus_core::admin::PartitionRange;
use janus_core::groups::{
    Assignor, GroupDescription, GroupListing, GroupMode, MemberAssignment, MemberDescription, MemberHeartbeat,
    PartitionDescription, TopicPartitions,
};
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

/// A message the core holds (a half message in a check) as the API shows it.
pub fn message(r: NewRecord) -> v1::Message {
    v1::Message {
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| v1::Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: r.timestamp_ms,
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

/// A fetch result as the API returns it. This face never asks for a file range ([`RecordFormat::Shipped`]);
/// one would be read into memory here, which can fail as any read of the file can.
pub fn fetch_response(f: FetchResult) -> Result<v1::FetchResponse, BrokerError> {
    let (messages, record_batches) = match f.data {
        Fetched::Records(records) => (records.into_iter().map(consumed).collect(), bytes::Bytes::new()),
        Fetched::Batches { bytes, .. } => (Vec::new(), bytes),
        Fetched::File { file, position, len, .. } => {
            (Vec::new(), janus_api::ReadSlice::File { file, position, len, next_offset: f.next_offset }.to_bytes()?)
        }
    };
    Ok(v1::FetchResponse {
        topic: f.topic,
        partition: f.partition,
        messages,
        next_offset: f.next_offset,
        log_start_offset: f.log_start,
        log_end_offset: f.log_end,
        record_batches,
        from_offset: f.from_offset,
    })
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
pub fn group_partition(p: PartitionDescription) -> v1::GroupPartition {
    v1::GroupPartition {
        topic: p.topic,
        partition: p.partition,
        committed_offset: p.committed_offset,
        log_end_offset: p.log_end_offset,
        lag: p.lag,
        owner: p.owner,
        offsets_of: p.offsets_of,
    }
}

/// The core's group mode for the API's (unspecified is clustering; unknown values are refused).
pub fn group_mode(value: i32) -> Result<GroupMode, BrokerError> {
    match v1::GroupMode::try_from(value) {
        Ok(v1::GroupMode::Unspecified | v1::GroupMode::Clustering) => Ok(GroupMode::Clustering),
        Ok(v1::GroupMode::Broadcasting) => Ok(GroupMode::Broadcasting),
        Err(_) => Err(BrokerError::invalid(format!(
            "unknown group mode {value}: use GROUP_MODE_CLUSTERING (1) or GROUP_MODE_BROADCASTING (2)"
        ))),
    }
}

/// The API's group mode for the core's.
pub fn group_mode_to_proto(mode: GroupMode) -> v1::GroupMode {
    match mode {
        GroupMode::Clustering => v1::GroupMode::Clustering,
        GroupMode::Broadcasting => v1::GroupMode::Broadcasting,
    }
}

/// The API's per-topic partition lists as the core's map: a topic listed twice has its lists merged, and each
/// list is sorted without duplicates.
pub fn topic_partitions(list: Vec<v1::TopicPartitions>) -> TopicPartitions {
    let mut map = TopicPartitions::new();
    for tp in list {
        map.entry(tp.topic).or_default().extend(tp.partitions);
    }
    for partitions in map.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    map
}

/// The core's per-topic partition lists as the API's, by topic.
pub fn topic_partitions_to_proto(map: TopicPartitions) -> Vec<v1::TopicPartitions> {
    map.into_iter().map(|(topic, partitions)| v1::TopicPartitions { topic, partitions }).collect()
}

/// A milliseconds field where 0 means the broker default.
fn millis_or_default(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// A heartbeat as the core takes it; `client_host` is where the request came from. A bad mode or an unknown
/// assignor name is refused.
pub fn member_heartbeat(r: v1::GroupHeartbeatRequest, client_host: String) -> Result<MemberHeartbeat, BrokerError> {
    let mode = group_mode(r.mode)?;
    let assignor = match r.assignor.as_str() {
        "" => None,
        name => Some(Assignor::parse(name).map_err(BrokerError::invalid)?),
    };
    Ok(MemberHeartbeat {
        group: r.group,
        member_id: r.member_id,
        generation: r.generation,
        instance_id: r.instance_id,
        client_id: r.client_id,
        client_host,
        topics: r.topics,
        owned: topic_partitions(r.owned),
        session_timeout: millis_or_default(r.session_timeout_ms),
        rebalance_timeout: millis_or_default(r.rebalance_timeout_ms),
        assignor,
        mode,
    })
}

/// A heartbeat's answer as the API returns it.
pub fn heartbeat_response(a: MemberAssignment) -> v1::GroupHeartbeatResponse {
    v1::GroupHeartbeatResponse {
        member_id: a.member_id,
        generation: a.generation,
        assignment: topic_partitions_to_proto(a.assignment),
        heartbeat_interval_ms: a.heartbeat_interval.as_millis().min(u128::from(u32::MAX)) as u32,
        state: a.state.name().to_string(),
    }
}

/// One member of a described group.
pub fn group_member(m: MemberDescription) -> v1::GroupMember {
    v1::GroupMember {
        member_id: m.member_id,
        instance_id: m.instance_id,
        client_id: m.client_id,
        host: m.client_host,
        assignment: topic_partitions_to_proto(m.assignment),
    }
}

/// A group's description as the API returns it.
pub fn group_description(d: GroupDescription) -> v1::DescribeGroupResponse {
    v1::DescribeGroupResponse {
        group: d.group,
        partitions: d.partitions.into_iter().map(group_partition).collect(),
        state: d.state.name().to_string(),
        generation: d.generation,
        protocol: d.protocol,
        assignor: d.assignor,
        mode: group_mode_to_proto(d.mode) as i32,
        members: d.members.into_iter().map(group_member).collect(),
    }
}

/// The group list as the API returns it: the names (for older clients) and the listings.
pub fn list_groups_response(listings: Vec<GroupListing>) -> v1::ListGroupsResponse {
    v1::ListGroupsResponse {
        groups: listings.iter().map(|l| l.group.clone()).collect(),
        listings: listings
            .into_iter()
            .map(|l| v1::GroupListing {
                group: l.group,
                state: l.state.name().to_string(),
                members: l.members.min(u32::MAX as usize) as u32,
                protocol: l.protocol,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_decode_with_defaults_and_merged_partitions() {
        let r = v1::GroupHeartbeatRequest {
            group: "g".into(),
            topics: vec!["t".into()],
            owned: vec![
                v1::TopicPartitions { topic: "t".into(), partitions: vec![3, 1] },
                v1::TopicPartitions { topic: "t".into(), partitions: vec![1, 0] },
            ],
            assignor: "Sticky".into(),
            session_timeout_ms: 10_000,
            ..Default::default()
        };
        let hb = member_heartbeat(r, "10.0.0.1".into()).unwrap();
        assert_eq!(hb.owned.get("t"), Some(&vec![0, 1, 3]));
        assert_eq!(hb.assignor, Some(Assignor::Sticky));
        assert_eq!(hb.mode, GroupMode::Clustering);
        assert_eq!(hb.session_timeout, Some(Duration::from_secs(10)));
        assert_eq!(hb.rebalance_timeout, None);
        assert_eq!(hb.client_host, "10.0.0.1");
    }

    #[test]
    fn bad_modes_and_assignors_are_invalid_arguments() {
        let bad_mode = v1::GroupHeartbeatRequest { mode: 7, ..Default::default() };
        let e = member_heartbeat(bad_mode, String::new()).unwrap_err();
        assert_eq!(e.code(), janus_core::ErrorCode::InvalidArgument);
        assert!(e.message().contains("GROUP_MODE_BROADCASTING"), "{}", e.message());
        let bad_assignor = v1::GroupHeartbeatRequest { assignor: "fastest".into(), ..Default::default() };
        let e = member_heartbeat(bad_assignor, String::new()).unwrap_err();
        assert_eq!(e.code(), janus_core::ErrorCode::InvalidArgument);
        assert!(e.message().contains("fastest"), "{}", e.message());
        let broadcast = v1::GroupHeartbeatRequest { mode: v1::GroupMode::Broadcasting as i32, ..Default::default() };
        assert_eq!(member_heartbeat(broadcast, String::new()).unwrap().mode, GroupMode::Broadcasting);
    }
}
