//! Metadata: this broker as the only one (node 0, also the controller: kafkajs's idempotent producer needs
//! one), and every topic asked for (all of them when the request names none), each partition led by node 0.
//! A name the broker does not have is created when `kafka.auto_create_topics` is on and the request allows
//! it (always before v4, as Kafka brokers do), on the broker's default engine with the default partitions;
//! else it gets UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for a name no topic may have). Janus's
//! internal topics (`%RETRY%...`, `%DLQ%...`) are marked internal.

use janus_core::Core;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::KafkaContext;
use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, creation_error};

/// This broker's node id.
pub const NODE_ID: i32 = 0;
/// The cluster id Metadata reports.
pub const CLUSTER_ID: &str = "janus";
/// "Not asked for" in the authorized-operations fields.
const NO_OPERATIONS: i32 = i32::MIN;

fn topic_entry(name: &str, partitions: u32) -> MetadataResponseTopic {
    let partitions = (0..partitions as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(NODE_ID))
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_is_internal(name.starts_with('%'))
        .with_partitions(partitions)
        .with_topic_authorized_operations(NO_OPERATIONS)
}

fn missing_topic(name: &str, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_authorized_operations(NO_OPERATIONS)
}

/// The entry of one topic asked for by name, creating it first when allowed.
async fn named_topic(core: &Core, name: &str, auto_create: bool) -> MetadataResponseTopic {
    if let Ok(t) = core.topic(name) {
        return topic_entry(&t.name, t.partitions);
    }
    if !auto_create {
        return missing_topic(name, UNKNOWN_TOPIC_OR_PARTITION);
    }
    match core.create_topic(name.to_string(), None, 0, Default::default()).await {
        Ok(t) => {
            tracing::info!(topic = %name, "Kafka: topic auto-created by Metadata");
            topic_entry(&t.name, t.partitions)
        }
        Err(e) if e.code() == janus_core::ErrorCode::TopicExists => match core.topic(name) {
            Ok(t) => topic_entry(&t.name, t.partitions),
            Err(_) => missing_topic(name, UNKNOWN_TOPIC_OR_PARTITION),
        },
        Err(e) => missing_topic(name, creation_error(&e)),
    }
}

/// The answer to `req` (of `version`).
pub async fn answer(core: &Core, ctx: &KafkaContext, req: &MetadataRequest, version: i16) -> MetadataResponse {
    let (host, port) = &ctx.advertised;
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(host.clone()))
        .with_port(*port);
    // v0 asks for all topics with an empty list; later versions with a null one.
    let wanted: Option<Vec<String>> = match &req.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()),
    };
    let topics = match wanted {
        None => core.topics().iter().map(|t| topic_entry(&t.name, t.partitions)).collect(),
        Some(names) => {
            let auto_create = ctx.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
            let mut topics = Vec::with_capacity(names.len());
            for name in &names {
                topics.push(named_topic(core, name, auto_create).await);
            }
            topics
        }
    };
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
        .with_cluster_authorized_operations(NO_OPERATIONS)
}
