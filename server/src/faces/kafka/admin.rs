//! Topic administration as Kafka's admin clients ask for it: CreateTopics 2-7, DeleteTopics 1-6,
//! DescribeConfigs 1-4 and DeleteRecords 0-2, on the core's topic calls (the gRPC face's too).
//!
//! - **CreateTopics:** the engine is the topic config `janus.engine` (`segment` or `commitlog`; the broker
//!   default when absent); every other config is a topic config as `janus topic create --config` takes it.
//!   With one broker, the replication factor must be 1 (or -1, the default), and manual assignments may
//!   only name this broker. `validate_only` runs every check of a creation (name, engine, config keys and
//!   values, partitions and their budget, replication, existence) and answers the configs the topic would
//!   get, creating nothing.
//! - **DescribeConfigs:** every topic config with its value and source: set on the topic
//!   (DYNAMIC_TOPIC_CONFIG), the broker's `[topic_defaults]` (STATIC_BROKER_CONFIG) or built in
//!   (DEFAULT_CONFIG); `janus.engine` is read-only. The broker resource has no describable configs yet.
//! - **DeleteRecords:** advances a partition's log start (offset -1: to the high watermark).

use std::collections::BTreeMap;

use janus_api::{EngineKind, TopicConfig};
use janus_core::{BrokerError, Core};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{
    INVALID_CONFIG, INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR, INVALID_REQUEST,
    UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION, creation_error, kafka_error,
};
use super::metadata::NODE_ID;

/// The topic config that chooses the storage engine.
pub const ENGINE_CONFIG: &str = "janus.engine";
/// DescribeConfigs resource types.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
/// Kafka's config types (DescribeConfigs v3 and later).
const STRING_TYPE: i8 = 2;
const LONG_TYPE: i8 = 5;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A refusal of one topic: Kafka's code and a message for a person.
type Refusal = (i16, String);

fn refused(e: &BrokerError) -> Refusal {
    (creation_error(e), e.message().to_string())
}

/// Kafka topic configs with no effect on one Janus broker, accepted and not stored, when their value is
/// one of those listed (any value when none is): replication, tiered storage and timing knobs of Kafka's
/// own implementation. Kafka Streams and Connect set some of them on the topics they create.
const IGNORED_CONFIGS: &[(&str, &[&str])] = &[
    ("min.insync.replicas", &[]),
    ("unclean.leader.election.enable", &[]),
    ("leader.replication.throttled.replicas", &[]),
    ("follower.replication.throttled.replicas", &[]),
    ("message.downconversion.enable", &[]),
    ("min.compaction.lag.ms", &[]),
    ("max.compaction.lag.ms", &[]),
    ("min.cleanable.dirty.ratio", &[]),
    ("preallocate", &[]),
    ("file.delete.delay.ms", &[]),
    ("segment.jitter.ms", &[]),
    ("segment.index.bytes", &[]),
    ("message.timestamp.difference.max.ms", &[]),
    ("message.timestamp.before.max.ms", &[]),
    ("message.timestamp.after.max.ms", &[]),
    // Janus keeps the producer's timestamps and compression, as these values ask.
    ("message.timestamp.type", &["CreateTime"]),
    ("compression.type", &["producer"]),
    ("remote.storage.enable", &["false"]),
];

/// Whether `key=value` is a Kafka config this broker accepts and ignores (see [`IGNORED_CONFIGS`]).
fn ignored(key: &str, value: &str) -> bool {
    IGNORED_CONFIGS.iter().any(|(k, values)| *k == key && (values.is_empty() || values.contains(&value)))
}

/// What one CreatableTopic asks for, checked.
struct Creation {
    /// The engine (`None`: the broker default).
    engine: Option<EngineKind>,
    /// The partitions (0: the broker default).
    partitions: u32,
    /// Every other config.
    overrides: BTreeMap<String, String>,
}

/// Checks one CreatableTopic.
fn creation(topic: &CreatableTopic) -> Result<Creation, Refusal> {
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err((
            INVALID_REPLICATION_FACTOR,
            format!("replication factor {} is not possible: this broker is alone (use 1)", topic.replication_factor),
        ));
    }
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => 0,
            n => u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                (INVALID_PARTITIONS, format!("{n} partitions: a topic needs at least one (or -1 for the default)"))
            })?,
        }
    } else {
        if topic.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != NODE_ID)) {
            return Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!("replicas may only be placed on this broker (node {NODE_ID})"),
            ));
        }
        u32::try_from(topic.assignments.len()).unwrap_or(u32::MAX)
    };
    let mut engine = None;
    let mut overrides = BTreeMap::new();
    for c in &topic.configs {
        let Some(value) = c.value.as_ref().map(|v| v.to_string()) else { continue };
        if c.name.as_str() == ENGINE_CONFIG {
            engine = Some(value.parse::<EngineKind>().map_err(|_| {
                (INVALID_CONFIG, format!("{ENGINE_CONFIG}='{value}': the engine is 'segment' or 'commitlog'"))
            })?);
        } else if ignored(&c.name, &value) {
            tracing::info!(topic = %topic.name.0, key = %c.name, %value, "Kafka: CreateTopics config accepted and ignored");
        } else {
            overrides.insert(c.name.to_string(), value);
        }
    }
    Ok(Creation { engine, partitions, overrides })
}

/// CreateTopics: each topic created, or refused with its own error.
pub async fn create_topics(core: &Core, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let mut named = std::collections::HashMap::new();
    for t in &req.topics {
        *named.entry(t.name.0.to_string()).or_insert(0usize) += 1;
    }
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let created = match creation(&topic) {
            // As Kafka: a name given twice in one request creates neither.
            _ if named[&name] > 1 => Err((INVALID_REQUEST, format!("topic '{name}' is named more than once"))),
            Err(refusal) => Err(refusal),
            Ok(c) if req.validate_only => {
                let overrides = c.overrides.clone();
                match core.validate_topic(name.clone(), c.engine, c.partitions, c.overrides).await {
                    Ok((engine, partitions, config)) => Ok((partitions, configs_of(engine, &overrides, &config))),
                    Err(e) => Err(refused(&e)),
                }
            }
            Ok(c) => match core.create_topic(name.clone(), c.engine, c.partitions, c.overrides).await {
                Ok(t) => Ok((t.partitions, topic_configs(&t))),
                Err(e) => Err(refused(&e)),
            },
        };
        let result = CreatableTopicResult::default().with_name(topic.name);
        results.push(match created {
            Ok((partitions, configs)) => result
                .with_num_partitions(i32::try_from(partitions).unwrap_or(i32::MAX))
                .with_replication_factor(1)
                .with_configs(Some(
                    configs
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(c.name)
                                .with_value(c.value)
                                .with_read_only(c.read_only)
                                .with_config_source(c.config_source)
                        })
                        .collect(),
                )),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(text(message)))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// DeleteTopics: by name (v1-6); a topic named only by id (v6) is unknown here, since Janus topics have no ids.
pub async fn delete_topics(core: &Core, req: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    // Each answer starts with the name and (v6) the topic id it was asked by.
    let asked: Vec<(Option<TopicName>, DeletableTopicResult)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.clone(), DeletableTopicResult::default().with_name(t.name).with_topic_id(t.topic_id)))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.clone()), DeletableTopicResult::default().with_name(Some(n))))
            .collect()
    };
    let mut responses = Vec::with_capacity(asked.len());
    for (name, result) in asked {
        responses.push(match name {
            None => result
                .with_error_code(UNKNOWN_TOPIC_ID)
                .with_error_message(Some(text("Janus topics have no ids: delete by name"))),
            Some(name) => match core.delete_topic(name.0.to_string()).await {
                Ok(()) => result,
                Err(e) => result.with_error_code(kafka_error(&e)).with_error_message(Some(text(e.message()))),
            },
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// A topic's configs as DescribeConfigs lists them.
fn topic_configs(topic: &janus_core::topics::Topic) -> Vec<DescribeConfigsResourceResult> {
    let settings = topic.settings();
    configs_of(topic.engine, &settings.overrides, &settings.config)
}

/// The configs of a topic on `engine` with `overrides` and the effective `config`, with their sources.
fn configs_of(
    engine: EngineKind,
    overrides: &BTreeMap<String, String>,
    config: &TopicConfig,
) -> Vec<DescribeConfigsResourceResult> {
    let built_in: BTreeMap<&str, String> = TopicConfig::default().to_pairs().into_iter().collect();
    let mut out = vec![
        DescribeConfigsResourceResult::default()
            .with_name(text(ENGINE_CONFIG))
            .with_value(Some(text(engine.as_str())))
            .with_read_only(true)
            .with_config_source(DYNAMIC_TOPIC_CONFIG)
            .with_config_type(STRING_TYPE),
    ];
    for (key, value) in config.to_pairs() {
        let source = if overrides.contains_key(key) {
            DYNAMIC_TOPIC_CONFIG
        } else if built_in.get(key) == Some(&value) {
            DEFAULT_CONFIG
        } else {
            STATIC_BROKER_CONFIG
        };
        let config_type = if value.parse::<i64>().is_ok() { LONG_TYPE } else { STRING_TYPE };
        out.push(
            DescribeConfigsResourceResult::default()
                .with_name(text(key))
                .with_value(Some(text(value)))
                .with_config_source(source)
                .with_config_type(config_type),
        );
    }
    out
}

fn describe_resource(core: &Core, resource: DescribeConfigsResource) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    match resource.resource_type {
        TOPIC_RESOURCE => match core.topic(&resource.resource_name) {
            Ok(topic) => {
                let wanted = resource.configuration_keys.unwrap_or_default();
                let configs = topic_configs(&topic)
                    .into_iter()
                    .filter(|c| wanted.is_empty() || wanted.contains(&c.name))
                    .collect();
                result.with_configs(configs)
            }
            Err(e) => result.with_error_code(UNKNOWN_TOPIC_OR_PARTITION).with_error_message(Some(text(e.message()))),
        },
        BROKER_RESOURCE => result,
        other => result
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(text(format!("resource type {other} has no configs here")))),
    }
}

/// DescribeConfigs: topics' configs with their sources.
pub fn describe_configs(core: &Core, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req.resources.into_iter().map(|r| describe_resource(core, r)).collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// DeleteRecords: each partition's new log start, or its error.
pub async fn delete_records(core: &Core, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let answer = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let result = match u32::try_from(p.partition_index) {
                Ok(partition) => {
                    core.delete_records(&topic.name.0, partition, p.offset).await.map_err(|e| kafka_error(&e))
                }
                Err(_) => Err(UNKNOWN_TOPIC_OR_PARTITION),
            };
            partitions.push(match result {
                Ok(start) => answer.with_low_watermark(start),
                Err(code) => answer.with_low_watermark(-1).with_error_code(code),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(partitions));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
