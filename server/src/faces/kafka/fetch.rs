//! Fetch 4-12: each partition's stored batches as the engine ships them (a read from the middle of a
//! batch returns the whole batch, as Kafka does), within the partition's and the request's byte limits.
//! With nothing to return the request waits up to `max_wait_ms` on its first partition, then reads again.
//! Without Kafka transactions the last stable offset is the high watermark and no transaction is aborted.
//! A response holds at most [`MAX_RESPONSE_BYTES`] of records. (This first version copies the bytes;
//! `sendfile` of segment files comes next.)

use std::net::SocketAddr;

use janus_core::{BrokerError, Core, ErrorCode, FetchRequest as CoreFetch, Fetched, RecordFormat};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use super::errors::kafka_error;

/// The most record bytes one Fetch response holds, whatever the client asks (librdkafka asks 50 MiB): the
/// response is assembled in memory, outside the fetch admission of each partition's read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// One pass over every partition asked for, waiting up to `wait_ms` on the first one only (when it has
/// nothing); returns the response and the record bytes it holds.
async fn pass(core: &Core, peer: Option<SocketAddr>, req: &FetchRequest, wait_ms: u32) -> (FetchResponse, usize) {
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(0).clamp(1, MAX_RESPONSE_BYTES);
    let mut total = 0;
    let mut first = true;
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let first = std::mem::replace(&mut first, false);
            let entry = PartitionData::default()
                .with_partition_index(p.partition)
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(BrokerId(-1));
            let max = usize::try_from(p.partition_max_bytes).unwrap_or(0).min(budget).max(1);
            let fetched = match u32::try_from(p.partition) {
                Err(_) => Err(BrokerError::new(ErrorCode::UnknownPartition, format!("partition {}", p.partition))),
                Ok(partition) => {
                    let req = CoreFetch {
                        topic: name.clone(),
                        partition,
                        offset: p.fetch_offset,
                        max_bytes: u32::try_from(max).unwrap_or(u32::MAX),
                        max_wait_ms: if first { wait_ms } else { 0 },
                        tags: Vec::new(),
                        format: RecordFormat::Batches,
                    };
                    core.fetch(peer, req).await
                }
            };
            partitions.push(match fetched {
                Ok(f) => {
                    let bytes = match f.data {
                        Fetched::Batches { bytes, .. } => bytes,
                        Fetched::Records(_) => bytes::Bytes::new(),
                    };
                    total += bytes.len();
                    budget = budget.saturating_sub(bytes.len());
                    entry
                        .with_high_watermark(f.log_end)
                        .with_last_stable_offset(f.log_end)
                        .with_log_start_offset(f.log_start)
                        .with_records(Some(bytes))
                }
                Err(e) => entry
                    .with_error_code(kafka_error(&e))
                    .with_high_watermark(-1)
                    .with_records(Some(bytes::Bytes::new())),
            });
        }
        responses.push(FetchableTopicResponse::default().with_topic(topic.topic.clone()).with_partitions(partitions));
    }
    (FetchResponse::default().with_responses(responses), total)
}

/// The answer to `req`.
pub async fn answer(core: &Core, peer: Option<SocketAddr>, req: FetchRequest) -> FetchResponse {
    let (response, bytes) = pass(core, peer, &req, 0).await;
    let wait = u32::try_from(req.max_wait_ms).unwrap_or(0);
    if bytes >= usize::try_from(req.min_bytes).unwrap_or(0).max(1) || wait == 0 {
        return response;
    }
    // Nothing yet: wait on the first partition (the long poll), then read everything again.
    pass(core, peer, &req, wait).await.0
}
