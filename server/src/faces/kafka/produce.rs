//! Produce: each partition's record batches go to the core's batch path unchanged (stored byte-exact on
//! segment topics, with the idempotent producer's checks), waiting for the topic's flush policy when
//! `acks` is -1. `acks` 0 gets no answer at all, as in Kafka.

use janus_core::{BrokerError, Core, ErrorCode, PartitionBatches, ProduceBatchesRequest};

use super::errors::kafka_error;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

/// The answer to `req`, or `None` for `acks` 0 (no answer is sent).
pub async fn answer(core: &Core, peer: Option<std::net::SocketAddr>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let index = p.index;
            let result = async {
                let partition = u32::try_from(index)
                    .map_err(|_| BrokerError::new(ErrorCode::UnknownPartition, format!("partition {index}")))?;
                let bytes = p.records.unwrap_or_default();
                // The frame holding these bytes is already admitted by the connection.
                let admission = core.admit(peer, 0).await?;
                let req = ProduceBatchesRequest {
                    topic: name.clone(),
                    batches: vec![PartitionBatches { partition, bytes }],
                    wait_durable: acks == -1,
                };
                core.produce_batches(admission, req).await
            }
            .await;
            let entry = PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
            partitions.push(match result {
                Ok(appends) => entry.with_base_offset(appends.first().map_or(-1, |a| a.base_offset)),
                Err(e) => {
                    tracing::debug!(topic = %name, partition = index, error = %e, "Kafka produce refused");
                    entry.with_error_code(kafka_error(&e)).with_base_offset(-1)
                }
            });
        }
        responses.push(TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partitions));
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
