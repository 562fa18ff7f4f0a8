//! `janus.v1.Producer`: Produce (unary) and ProduceStream (client streaming).
//!
//! A request's messages are routed to partitions (explicit number; else Kafka's murmur2 of the key; keyless
//! messages of one request all go to one partition, the next request to the next one), turned into one
//! RecordBatch v2 per partition (split when a batch would pass the topic's `max.message.bytes`), and
//! appended on the blocking pool. `wait_durable` then awaits each append's `durable`. Every request first
//! acquires its size from the in-flight byte budgets and holds it until answered.
//!
//! Appends to different partitions are not atomic: if one fails, the request fails, and the partitions
//! appended before it keep their messages (a retry may duplicate them: at-least-once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use janus_api::{Appended, Compression, Durable, Header, NewRecord, RecordBatch, TopicPartition, now_ms};
use janus_proto::v1;
use janus_proto::v1::producer_server::Producer;
use prost::Message as _;
use tonic::{Request, Response, Status, Streaming};

use super::Context;
use crate::metrics::{self, RpcTimer};
use crate::partitioner::partition_for_key;
use crate::registry::{RegistryError, Topic};
use crate::status;

/// Bytes of a batch header (RecordBatch v2).
const BATCH_OVERHEAD: usize = 61;

/// The Producer service.
pub struct ProducerService {
    ctx: Context,
}

/// One append done for a request.
struct Done {
    partition: u32,
    appended: Appended,
}

fn record_size_estimate(r: &NewRecord) -> usize {
    let field = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len) + 5;
    let headers: usize = r.headers.iter().map(|h| h.key.len() + field(&h.value) + 5).sum();
    field(&r.key) + field(&r.value) + headers + 25
}

/// Builds batches of `records` each within `max` bytes; a single record that cannot fit is refused.
fn build_batches(topic: &str, records: &[NewRecord], max: usize, out: &mut Vec<RecordBatch>) -> Result<(), Status> {
    let mut start = 0;
    let mut size = BATCH_OVERHEAD;
    for (i, r) in records.iter().enumerate() {
        let s = record_size_estimate(r);
        if i > start && size + s > max {
            build_exact(topic, &records[start..i], max, out)?;
            start = i;
            size = BATCH_OVERHEAD;
        }
        size += s;
    }
    if start < records.len() {
        build_exact(topic, &records[start..], max, out)?;
    }
    Ok(())
}

fn build_exact(topic: &str, records: &[NewRecord], max: usize, out: &mut Vec<RecordBatch>) -> Result<(), Status> {
    let batch = RecordBatch::build(records, Compression::None)
        .map_err(|e| Status::invalid_argument(format!("cannot encode the messages: {e}")))?;
    if batch.len() <= max {
        out.push(batch);
        return Ok(());
    }
    if records.len() == 1 {
        return Err(Status::invalid_argument(format!(
            "a message of {} bytes (as a record batch) exceeds max.message.bytes = {max} of topic '{topic}'; send \
             smaller messages or raise the topic's max.message.bytes with Admin.AlterTopicConfig",
            batch.len()
        )));
    }
    let mid = records.len() / 2;
    build_exact(topic, &records[..mid], max, out)?;
    build_exact(topic, &records[mid..], max, out)
}

/// Groups the request's messages by partition, in request order within each partition.
fn route(topic: &Topic, req: v1::ProduceRequest) -> Result<BTreeMap<u32, Vec<NewRecord>>, Status> {
    if req.messages.is_empty() {
        return Err(Status::invalid_argument("the produce request has no messages"));
    }
    if let Some(p) = req.partition {
        topic.check_partition(p).map_err(status::from_registry)?;
    }
    let now = now_ms();
    let keyless = req.partition.unwrap_or_else(|| topic.spreader.pick(topic.partitions));
    let mut by_partition: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        if m.timestamp_ms < 0 {
            return Err(Status::invalid_argument(format!(
                "message {i} has timestamp_ms {}: use 0 for the broker's clock or milliseconds since the epoch",
                m.timestamp_ms
            )));
        }
        let partition = match (req.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, topic.partitions),
            (None, None) => keyless,
        };
        let record = NewRecord {
            key: m.key,
            value: m.value,
            headers: m.headers.into_iter().map(|h| Header { key: h.key, value: h.value }).collect(),
            timestamp_ms: if m.timestamp_ms == 0 { now } else { m.timestamp_ms },
        };
        by_partition.entry(partition).or_default().push(record);
    }
    Ok(by_partition)
}

impl ProducerService {
    /// A service over `ctx`.
    pub fn new(ctx: Context) -> Self {
        ProducerService { ctx }
    }

    /// Handles one produce request (its in-flight bytes are already held by the caller).
    async fn produce_one(&self, req: v1::ProduceRequest) -> Result<v1::ProduceResponse, Status> {
        let topic = self.ctx.topic(&req.topic)?;
        let wait_durable = req.wait_durable;
        let max = topic.config().max_message_bytes as usize;
        let routed = route(&topic, req)?;
        let mut batches: Vec<(u32, RecordBatch, usize)> = Vec::new();
        for (partition, records) in &routed {
            let mut out = Vec::new();
            build_batches(&topic.name, records, max, &mut out)?;
            batches.extend(out.into_iter().map(|b| {
                let n = b.record_count().max(0) as usize;
                (*partition, b, n)
            }));
        }
        drop(routed);
        let t = Arc::clone(&topic);
        let done = self
            .ctx
            .blocking(move |r| {
                let engine = r.engine(t.engine);
                let mut done = Vec::with_capacity(batches.len());
                let (mut messages, mut bytes) = (0u64, 0u64);
                for (partition, batch, count) in batches {
                    let len = batch.len() as u64;
                    let appended = engine.append(&TopicPartition::new(t.name.clone(), partition), batch);
                    let appended = match appended {
                        Ok(a) => a,
                        Err(e) => {
                            metrics::record_in(&t.name, messages, bytes);
                            return Err(RegistryError::from(e));
                        }
                    };
                    t.notify_append(partition, appended.last_offset + 1);
                    messages += count as u64;
                    bytes += len;
                    done.push(Done { partition, appended });
                }
                metrics::record_in(&t.name, messages, bytes);
                Ok(done)
            })
            .await?;
        let mut appends = Vec::with_capacity(done.len());
        let mut durables: Vec<Durable> = Vec::new();
        for d in done {
            appends.push(v1::PartitionAppend {
                partition: d.partition,
                base_offset: d.appended.base_offset,
                last_offset: d.appended.last_offset,
            });
            durables.push(d.appended.durable);
        }
        if wait_durable {
            let started = Instant::now();
            for d in durables {
                d.await.map_err(status::from_storage)?;
            }
            metrics::record_flush(topic.engine.as_str(), started.elapsed());
        }
        Ok(v1::ProduceResponse { appends })
    }

    async fn produce_limited(
        &self,
        connection: Option<std::net::SocketAddr>,
        req: v1::ProduceRequest,
    ) -> Result<v1::ProduceResponse, Status> {
        let _permit = self.ctx.limiter.acquire(connection, req.encoded_len()).await.map_err(status::from_limiter)?;
        self.produce_one(req).await
    }
}

#[tonic::async_trait]
impl Producer for ProducerService {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        let timer = RpcTimer::start("Produce");
        let connection = request.remote_addr();
        timer.finish(self.produce_limited(connection, request.into_inner()).await).map(Response::new)
    }

    async fn produce_stream(
        &self,
        request: Request<Streaming<v1::ProduceRequest>>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let timer = RpcTimer::start("ProduceStream");
        let connection = request.remote_addr();
        let mut stream = request.into_inner();
        let result = async {
            let mut appends = Vec::new();
            // One request at a time: the next is read from the stream only when this one is done, so HTTP/2
            // flow control holds back a client that sends faster than the disk takes it.
            while let Some(req) = stream.message().await? {
                appends.extend(self.produce_limited(connection, req).await?.appends);
            }
            Ok(v1::ProduceResponse { appends })
        }
        .await;
        timer.finish(result).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: usize) -> NewRecord {
        NewRecord { key: None, value: Some(Bytes::from(vec![7u8; n])), headers: vec![], timestamp_ms: 1 }
    }

    #[test]
    fn batches_split_under_the_limit_and_keep_order() {
        let records: Vec<NewRecord> = (0..100).map(|_| rec(100)).collect();
        let mut out = Vec::new();
        build_batches("t", &records, 1024, &mut out).unwrap();
        assert!(out.len() > 10);
        assert!(out.iter().all(|b| b.len() <= 1024));
        assert_eq!(out.iter().map(|b| b.record_count() as usize).sum::<usize>(), 100);
    }

    #[test]
    fn a_single_oversized_message_is_refused() {
        let mut out = Vec::new();
        let err = build_batches("t", &[rec(2000)], 1024, &mut out).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("max.message.bytes = 1024"), "{}", err.message());
    }
}
