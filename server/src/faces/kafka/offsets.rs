//! ListOffsets 1-7: per partition the earliest (-2) or latest (-1) offset, or the first message at or after
//! a timestamp with its timestamp (offset -1 when no message is that late, as in Kafka). The other special
//! timestamps (-3, the message with the largest timestamp, KIP-734; -4 and -5 of tiered storage) are
//! refused per partition with UNSUPPORTED_VERSION: the engines keep no index that answers them.

use janus_core::{BrokerError, Core, FetchRequest, Fetched, Position, RecordFormat};
use kafka_protocol::messages::ListOffsetsRequest;
use kafka_protocol::messages::ListOffsetsResponse;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};

use super::errors::{UNSUPPORTED_VERSION, kafka_error};

/// The answer to `req`.
pub async fn answer(core: &Core, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let entry =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_timestamp(-1);
            let at = match p.timestamp {
                -2 => Position::Earliest,
                -1 => Position::Latest,
                ts if ts < 0 => {
                    partitions.push(entry.with_error_code(UNSUPPORTED_VERSION).with_offset(-1));
                    continue;
                }
                ts => Position::Timestamp(ts),
            };
            let resolved = match u32::try_from(p.partition_index) {
                Ok(partition) => resolve(core, &name, partition, at).await,
                Err(_) => Err(BrokerError::new(janus_core::ErrorCode::UnknownPartition, "negative partition")),
            };
            partitions.push(match resolved {
                Ok((offset, timestamp)) => entry.with_offset(offset).with_timestamp(timestamp),
                Err(e) => entry.with_error_code(kafka_error(&e)).with_offset(-1),
            });
        }
        topics.push(ListOffsetsTopicResponse::default().with_name(topic.name).with_partitions(partitions));
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// The offset of `partition` at `at`, and for a lookup by time the timestamp of the message found (-1
/// otherwise); for a timestamp later than every message, offset and timestamp -1 (Kafka's "no such
/// message", which clients' `offsets_for_times` turn into none), not the end of the log.
async fn resolve(core: &Core, topic: &str, partition: u32, at: Position) -> Result<(i64, i64), BrokerError> {
    let offset = core.resolve_position(topic, partition, at).await?;
    if !matches!(at, Position::Timestamp(_)) {
        return Ok((offset, -1));
    }
    // The message found (a read returns at least one, whatever its size); none at the end of the log.
    let read = FetchRequest {
        topic: topic.to_owned(),
        partition,
        offset,
        max_bytes: 1,
        max_wait_ms: 0,
        tags: Vec::new(),
        format: RecordFormat::Records,
    };
    Ok(match core.fetch(None, read).await?.data {
        Fetched::Records(records) => {
            records.iter().find(|r| r.offset >= offset).map_or((-1, -1), |r| (r.offset, r.timestamp_ms))
        }
        Fetched::Batches { .. } | Fetched::File { .. } => (offset, -1),
    })
}
