//! A Kafka Produce load generator (not a client library): `producers` threads, each with its own blocking
//! connection to a broker's Kafka face, send Produce v9 requests with `acks` 1, each holding one
//! client-built RecordBatch for one partition, and wait for each answer (one request in flight per
//! connection, like the gRPC produce path it is compared with). Requests go round-robin over the partitions
//! from a shared counter until `total` requests are acknowledged.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, ensure};
use bytes::BytesMut;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::grpc::Request;
use super::kafka_frames::{receive, send};

/// The Produce version sent (the last before flexible encoding changes nothing here).
const VERSION: i16 = 9;

/// What the producers had acknowledged.
#[derive(Clone, Copy, Debug, Default)]
pub struct Produced {
    /// Messages.
    pub messages: u64,
    /// Their payload (value) bytes.
    pub payload_bytes: u64,
    /// RecordBatch bytes sent.
    pub batch_bytes: u64,
}

/// The work every producer thread shares.
struct Plan {
    addr: SocketAddr,
    partitions: Vec<(String, u32)>,
    requests: Arc<Vec<Request>>,
    total: u64,
    next: AtomicU64,
}

/// Sends `total` requests through the Kafka face at `addr` from `producers` threads.
pub fn produce_all(
    addr: SocketAddr,
    partitions: &[(String, u32)],
    requests: Arc<Vec<Request>>,
    total: u64,
    producers: usize,
) -> Result<Produced> {
    ensure!(!partitions.is_empty() && !requests.is_empty(), "nothing to produce to or with");
    let plan = Arc::new(Plan { addr, partitions: partitions.to_vec(), requests, total, next: AtomicU64::new(0) });
    let threads: Vec<_> = (0..producers.max(1))
        .map(|i| {
            let plan = Arc::clone(&plan);
            std::thread::Builder::new().name(format!("kafka-producer-{i}")).spawn(move || producer(&plan))
        })
        .collect::<std::io::Result<_>>()
        .context("starting producer threads")?;
    let mut total = Produced::default();
    for thread in threads {
        let p = thread.join().map_err(|_| anyhow!("a producer thread panicked"))??;
        total.messages += p.messages;
        total.payload_bytes += p.payload_bytes;
        total.batch_bytes += p.batch_bytes;
    }
    Ok(total)
}

/// One producer thread: requests until the plan's count is reached.
fn producer(plan: &Plan) -> Result<Produced> {
    let mut stream =
        TcpStream::connect(plan.addr).with_context(|| format!("connecting to the Kafka face at {}", plan.addr))?;
    stream.set_nodelay(true)?;
    let mut buffer = BytesMut::new();
    let mut done = Produced::default();
    let mut correlation_id = 0;
    loop {
        let n = plan.next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.total {
            return Ok(done);
        }
        let r = &plan.requests[n as usize % plan.requests.len()];
        let (topic, partition) = &plan.partitions[n as usize % plan.partitions.len()];
        let index = i32::try_from(*partition)?;
        let request = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.clone()))).with_partition_data(
                vec![PartitionProduceData::default().with_index(index).with_records(Some(r.batch.clone()))],
            ),
        ]);
        correlation_id += 1;
        send(&mut stream, ApiKey::Produce, VERSION, correlation_id, &request)?;
        let response: ProduceResponse = receive(&mut stream, &mut buffer, ApiKey::Produce, VERSION, correlation_id)?;
        let code = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map(|p| p.error_code)
            .ok_or_else(|| anyhow!("a Produce answer without the partition"))?;
        ensure!(code == 0, "{topic}/{partition}: Produce error {code}");
        done.messages += r.messages;
        done.payload_bytes += r.payload_bytes;
        done.batch_bytes += r.batch.len() as u64;
    }
}
