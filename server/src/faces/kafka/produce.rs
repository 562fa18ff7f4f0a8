//! Produce: each partition's record batches go to the core's batch path unchanged (stored byte-exact on
//! segment topics, with the idempotent producer's checks), waiting for the topic's flush policy when
//! `acks` is -1. `acks` 0 gets no answer at all, as in Kafka.

use janus_core::{BrokerError, Core, ErrorCode, PartitionBatches, ProduceBatchesRequest};

use super::errors::{UNKNOWN_SERVER_ERROR, kafka_error};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

/// One partition's batches through the core's batch path: its first offset, or the error.
async fn append(
    core: Core,
    peer: Option<std::net::SocketAddr>,
    topic: String,
    index: i32,
    bytes: bytes::Bytes,
    wait_durable: bool,
) -> Result<i64, BrokerError> {
    let partition = u32::try_from(index)
        .map_err(|_| BrokerError::new(ErrorCode::UnknownPartition, format!("partition {index}")))?;
    // The frame holding these bytes is already admitted by the connection.
    let admission = core.admit(peer, 0).await?;
    let req = ProduceBatchesRequest {
        topic: topic.clone(),
        batches: vec![PartitionBatches { partition, bytes }],
        wait_durable,
    };
    let appends = core.produce_batches(admission, req).await.inspect_err(|e| {
        tracing::debug!(topic = %topic, partition = index, error = %e, "Kafka produce refused");
    })?;
    Ok(appends.first().map_or(-1, |a| a.base_offset))
}

/// The answer to `req`, or `None` for `acks` 0 (no answer is sent). The partitions of a request are
/// appended concurrently, each on its own (one partition's refusal leaves the others appended, as in Kafka),
/// so `acks` -1 waits for their flushes together rather than one after the other.
pub async fn answer(core: &Core, peer: Option<std::net::SocketAddr>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    // A partition named twice in one request keeps its batches in request order: then the request's
    // partitions go one after the other.
    let mut named = std::collections::HashSet::new();
    let sequential = !req
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter().map(move |p| (t.name.0.clone(), p.index)))
        .all(|key| named.insert(key));
    let mut appends = tokio::task::JoinSet::new();
    let mut shape = Vec::with_capacity(req.topic_data.len());
    for (t, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for (p, data) in topic.partition_data.into_iter().enumerate() {
            indexes.push(data.index);
            let work =
                append(core.clone(), peer, name.clone(), data.index, data.records.unwrap_or_default(), acks == -1);
            if sequential {
                let result = work.await;
                appends.spawn(async move { (t, p, result) });
            } else {
                appends.spawn(async move { (t, p, work.await) });
            }
        }
        shape.push((topic.name, indexes));
    }
    let mut results: Vec<Vec<Option<Result<i64, BrokerError>>>> =
        shape.iter().map(|(_, indexes)| indexes.iter().map(|_| None).collect()).collect();
    while let Some(done) = appends.join_next().await {
        match done {
            Ok((t, p, result)) => results[t][p] = Some(result),
            Err(e) => tracing::warn!(error = %e, "Kafka produce: a partition's append task failed"),
        }
    }
    let responses = shape
        .into_iter()
        .zip(results)
        .map(|((name, indexes), results)| {
            let partitions = indexes
                .into_iter()
                .zip(results)
                .map(|(index, result)| {
                    let entry = PartitionProduceResponse::default().with_index(index).with_log_append_time_ms(-1);
                    match result {
                        Some(Ok(base_offset)) => entry.with_base_offset(base_offset),
                        Some(Err(e)) => entry.with_error_code(kafka_error(&e)).with_base_offset(-1),
                        None => entry.with_error_code(UNKNOWN_SERVER_ERROR).with_base_offset(-1),
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(name).with_partition_responses(partitions)
        })
        .collect();
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
