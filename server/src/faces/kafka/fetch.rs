//! Fetch 4-12: each partition's stored batches as the engine ships them (a read from the middle of a
//! batch returns the whole batch, as Kafka does), within the partition's and the request's byte limits.
//! With nothing to return the request waits up to `max_wait_ms` on its first partition, then reads again.
//! Without Kafka transactions the last stable offset is the high watermark and no transaction is aborted.
//! A response holds at most [`MAX_RESPONSE_BYTES`] of records.
//!
//! Zero copy: the core is asked for [`RecordFormat::Shipped`], so a segment topic's read stays a range of
//! its segment file; the response is written by [`fetch_frame`](super::fetch_frame) as framing bytes with
//! those ranges between them, and the connection sends the ranges with `sendfile(2)`. A commitlog topic's
//! records are re-encoded as batches by its engine and sent from memory.

use std::net::SocketAddr;

use bytes::Bytes;
use janus_core::{BrokerError, Core, ErrorCode, FetchRequest as CoreFetch, Fetched, RecordFormat};
use kafka_protocol::messages::FetchRequest;

use super::apis::Handled;
use super::errors::kafka_error;
use super::fetch_frame::{self, FetchFrame, PartitionFrame, TopicFrame};
use super::parts::Part;

/// The most record bytes one Fetch response holds, whatever the client asks (librdkafka asks 50 MiB): it
/// bounds what a response of commitlog topics holds in memory (their batches are re-encoded there) and how
/// long one response keeps its connection busy.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The records of one partition's read, as a part of the response.
fn records_part(data: Fetched) -> Part {
    match data {
        Fetched::File { file, position, len, .. } => Part::File { file, position, len },
        Fetched::Batches { bytes, .. } => Part::Memory(bytes),
        // Never asked for; nothing to send.
        Fetched::Records(_) => Part::Memory(Bytes::new()),
    }
}

/// One pass over every partition asked for, waiting up to `wait_ms` on the first one only (when it has
/// nothing); returns the response and the record bytes it holds.
async fn pass(core: &Core, peer: Option<SocketAddr>, req: &FetchRequest, wait_ms: u32) -> (FetchFrame, usize) {
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(0).clamp(1, MAX_RESPONSE_BYTES);
    let mut total = 0;
    let mut first = true;
    let mut topics = Vec::with_capacity(req.topics.len());
    for topic in &req.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let first = std::mem::replace(&mut first, false);
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
                        format: RecordFormat::Shipped,
                    };
                    core.fetch(peer, req).await
                }
            };
            partitions.push(match fetched {
                Ok(f) => {
                    let records = records_part(f.data);
                    total += records.len();
                    budget = budget.saturating_sub(records.len());
                    PartitionFrame {
                        partition_index: p.partition,
                        error_code: 0,
                        high_watermark: f.log_end,
                        last_stable_offset: f.log_end,
                        log_start_offset: f.log_start,
                        records,
                    }
                }
                Err(e) => PartitionFrame {
                    partition_index: p.partition,
                    error_code: kafka_error(&e),
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                    records: Part::Memory(Bytes::new()),
                },
            });
        }
        topics.push(TopicFrame { name, partitions });
    }
    (FetchFrame { topics, ..FetchFrame::default() }, total)
}

/// The answer to `req` (of `version`, with `correlation_id`): the response frame in parts.
pub async fn answer(
    core: &Core,
    peer: Option<SocketAddr>,
    correlation_id: i32,
    version: i16,
    req: FetchRequest,
) -> Handled {
    let (mut frame, bytes) = pass(core, peer, &req, 0).await;
    let wait = u32::try_from(req.max_wait_ms).unwrap_or(0);
    if bytes < usize::try_from(req.min_bytes).unwrap_or(0).max(1) && wait > 0 {
        // Nothing yet: wait on the first partition (the long poll), then read everything again.
        frame = pass(core, peer, &req, wait).await.0;
    }
    match fetch_frame::encode(version, correlation_id, &frame) {
        Ok(parts) => Handled::Parts(parts),
        Err(e) => Handled::Close(format!("could not write the Fetch v{version} response: {e}")),
    }
}
