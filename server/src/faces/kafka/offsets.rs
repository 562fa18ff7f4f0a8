//! ListOffsets 1-7: per partition the earliest (-2) or latest (-1) offset, or the first offset at or after
//! a timestamp (-1 when no message is that late, as in Kafka).

use janus_core::{Core, Position};
use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::ListOffsetsResponse;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};

use super::errors::kafka_error;

/// The answer to `req`.
pub async fn answer(core: &Core, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let at = match p.timestamp {
                -2 => Position::Earliest,
                -1 => Position::Latest,
                ts => Position::Timestamp(ts),
            };
            let entry =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_timestamp(-1);
            let resolved = match u32::try_from(p.partition_index) {
                Ok(partition) => resolve(core, &name, partition, at).await,
                Err(_) => {
                    Err(janus_core::BrokerError::new(janus_core::ErrorCode::UnknownPartition, "negative partition"))
                }
            };
            partitions.push(match resolved {
                Ok(offset) => entry.with_offset(offset),
                Err(e) => entry.with_error_code(kafka_error(&e)).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The offset of `partition` at `at`; for a timestamp later than every message, -1 (Kafka's "no such
/// message", which clients' `offsets_for_times` turn into none), not the end of the log.
async fn resolve(core: &Core, topic: &str, partition: u32, at: Position) -> Result<i64, janus_core::BrokerError> {
    let offset = core.resolve_position(topic, partition, at).await?;
    if matches!(at, Position::Timestamp(_))
        && offset >= core.resolve_position(topic, partition, Position::Latest).await?
    {
        return Ok(-1);
    }
    Ok(offset)
}
