//! OffsetCommit 2-8 and OffsetFetch 1-8 on the core's committed offsets, which the gRPC face reads and
//! writes too: the same group's offsets are the same whichever face committed them. The metadata string
//! committed with an offset round-trips.
//!
//! A commit from a member is fenced by the coordinator (member id, generation, static instance id); one with
//! generation -1 and no member id (a tool, or a consumer that assigns partitions itself) is accepted while
//! the group has no members, as Kafka does.

use std::collections::HashMap;

use janus_core::groups::{CommitAs, MAX_OFFSET_METADATA_BYTES, OffsetCommit};
use janus_core::{BrokerError, Core, ErrorCode};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{
    OFFSET_METADATA_TOO_LARGE, UNKNOWN_MEMBER_ID, UNKNOWN_TOPIC_OR_PARTITION, check_group, group_error,
};

/// OffsetCommit: per topic one commit in the core of the partitions that pass the per-partition checks
/// (a partition the topic does not have, metadata over [`MAX_OFFSET_METADATA_BYTES`]), each refused one with
/// its own error, as Kafka answers; a topic's error from the core is given to each of its other partitions.
pub async fn commit(core: &Core, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let whole = |code: i16, topics: Vec<OffsetCommitRequestTopic>| {
        let topics = topics
            .into_iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| partition_answer(p.partition_index, code)).collect();
                OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    };
    if let Err(code) = check_group(&group) {
        return whole(code, req.topics);
    }
    // Without a member id only a tool's commit (generation -1) is accepted, as in Kafka.
    if req.member_id.is_empty() && req.generation_id_or_member_epoch >= 0 {
        return whole(UNKNOWN_MEMBER_ID, req.topics);
    }
    let member = (!req.member_id.is_empty()).then(|| CommitAs {
        member_id: req.member_id.to_string(),
        generation: req.generation_id_or_member_epoch,
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()).filter(|s| !s.is_empty()),
    });
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let partitions_of_topic = core.topic(&topic.name.0).map(|t| t.partitions).unwrap_or(0);
        let mut answers = Vec::with_capacity(topic.partitions.len());
        let mut entries = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default();
            match u32::try_from(p.partition_index).ok().filter(|i| *i < partitions_of_topic) {
                None => answers.push(partition_answer(p.partition_index, UNKNOWN_TOPIC_OR_PARTITION)),
                Some(_) if metadata.len() > MAX_OFFSET_METADATA_BYTES => {
                    answers.push(partition_answer(p.partition_index, OFFSET_METADATA_TOO_LARGE));
                }
                Some(partition) => entries.push(OffsetCommit { partition, offset: p.committed_offset, metadata }),
            }
        }
        if !entries.is_empty() {
            let result = core.commit_offsets_with_metadata(&group, &topic.name.0, &entries, member.as_ref()).await;
            let code = result.err().map_or(0, |e| group_error(&e));
            answers.extend(entries.iter().map(|e| partition_answer(e.partition as i32, code)));
        }
        topics.push(OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(answers));
    }
    OffsetCommitResponse::default().with_topics(topics)
}

fn partition_answer(partition: i32, code: i16) -> OffsetCommitResponsePartition {
    OffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(code)
}

/// One partition's committed offset as OffsetFetch gives it: -1 and no metadata when none is committed.
#[derive(Debug)]
struct Found {
    partition: i32,
    offset: i64,
    metadata: String,
}

/// The committed offsets of `group` for `topics` (`None`: every topic it committed on), by topic; or the
/// Kafka error code of the whole group.
async fn lookup(
    core: &Core,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Vec<(TopicName, Vec<Found>)>, i16> {
    check_group(group)?;
    lookup_checked(core, group, topics).await.map_err(|e| group_error(&e))
}

async fn lookup_checked(
    core: &Core,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<Vec<(TopicName, Vec<Found>)>, BrokerError> {
    let Some(topics) = topics else {
        let mut by_topic: Vec<(TopicName, Vec<Found>)> = Vec::new();
        for (topic, o) in core.all_committed_offsets(group).await? {
            let found = Found { partition: o.partition as i32, offset: o.offset, metadata: o.metadata };
            match by_topic.last_mut() {
                Some((name, list)) if name.0.as_str() == topic => list.push(found),
                _ => by_topic.push((TopicName(StrBytes::from_string(topic)), vec![found])),
            }
        }
        return Ok(by_topic);
    };
    let mut out = Vec::with_capacity(topics.len());
    // Each distinct topic is read once, however often the request names it.
    let mut by_topic: HashMap<String, HashMap<i64, OffsetCommit>> = HashMap::new();
    for (name, partitions) in topics {
        if !by_topic.contains_key(name.0.as_str()) {
            let committed = match core.committed_offsets_with_metadata(group, &name.0, None).await {
                Ok(c) => c,
                // A topic the broker does not have has no committed offsets (Kafka answers -1 without an error).
                Err(e) if matches!(e.code(), ErrorCode::UnknownTopic) => Vec::new(),
                Err(e) => return Err(e),
            };
            by_topic.insert(name.0.to_string(), committed.into_iter().map(|c| (i64::from(c.partition), c)).collect());
        }
        let committed = &by_topic[name.0.as_str()];
        let found = partitions
            .into_iter()
            .map(|partition| {
                let c = committed.get(&i64::from(partition));
                Found {
                    partition,
                    offset: c.map_or(-1, |c| c.offset),
                    metadata: c.map(|c| c.metadata.clone()).unwrap_or_default(),
                }
            })
            .collect();
        out.push((name, found));
    }
    Ok(out)
}

/// OffsetFetch: one group (v1-7) or several (v8); the leader epoch is unknown (-1).
pub async fn fetch(core: &Core, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            groups.push(fetch_group(core, g).await);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Option<Vec<(TopicName, Vec<i32>)>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    // v1 has no group-level error code: as Kafka, an error goes to each partition asked for.
    let asked = if version < 2 { topics.clone().unwrap_or_default() } else { Vec::new() };
    match lookup(core, &req.group_id.0, topics).await {
        Ok(found) => {
            let topics = found
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::from_string(f.metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(code) if version < 2 => {
            let topics = asked
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}

async fn fetch_group(core: &Core, g: OffsetFetchRequestGroup) -> OffsetFetchResponseGroup {
    let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    let answer = OffsetFetchResponseGroup::default().with_group_id(GroupId(g.group_id.0.clone()));
    match lookup(core, &g.group_id.0, topics).await {
        Ok(found) => answer.with_topics(
            found
                .into_iter()
                .map(|(name, partitions)| {
                    let partitions = partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(StrBytes::from_string(f.metadata)))
                        })
                        .collect();
                    OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions)
                })
                .collect(),
        ),
        Err(code) => answer.with_error_code(code),
    }
}
