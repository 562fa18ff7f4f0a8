//! Produce through `janusd` in the modes a producer can ask for, closed loop: `plain` (client-built
//! batches, no producer id), `idempotent` (the same batches stamped with a producer id and per-partition
//! sequences, so the broker checks and records them), `messages` (the same messages one per protobuf
//! message, the broker building the batches and giving each an id: the path a transaction's messages
//! take), and `transactional` (each request's messages prepared as one transaction's half messages, then
//! committed: two calls, a RocksDB write and an append).
//!
//! Each of the `producers` tasks has its own producer id and sends one request at a time, so its sequences
//! reach each partition in order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use janus_api::RecordBatch;
use janus_client::proto as pb;
use janus_client::{Client, HalfMessages, TransactionDecision};

use super::grpc::{Request, block_on, requests, rig};
use crate::measure::{self, Phase};
use crate::scenario::{ProduceMode, Workload};

/// The messages of each request as protobuf messages (for `messages` and `transactional`).
fn as_messages(requests: &[Request]) -> Result<Vec<Vec<pb::Message>>> {
    requests
        .iter()
        .map(|r| {
            let batch = RecordBatch::from_bytes(r.batch.clone()).map_err(|e| anyhow!("{e}"))?;
            Ok(batch
                .records()
                .map_err(|e| anyhow!("{e}"))?
                .into_iter()
                .map(|rec| pb::Message {
                    key: rec.key,
                    value: rec.value,
                    headers: rec.headers.into_iter().map(|h| pb::Header { key: h.key, value: h.value }).collect(),
                    timestamp_ms: 0,
                })
                .collect())
        })
        .collect()
}

/// One producer task's identity and sequences.
struct Session {
    producer_id: i64,
    sequences: HashMap<(String, u32), i32>,
}

/// Sends request `n` in `mode` for one task.
async fn send(
    client: &Client,
    mode: ProduceMode,
    session: &mut Option<Session>,
    target: (&str, u32),
    request: &Request,
    messages: &[pb::Message],
    wait_durable: bool,
) -> Result<()> {
    let (topic, partition) = target;
    match mode {
        ProduceMode::Plain | ProduceMode::Idempotent => {
            let mut bytes = request.batch.clone();
            if let Some(s) = session {
                let seq = s.sequences.entry((topic.to_string(), partition)).or_insert(0);
                let batch = RecordBatch::from_bytes(bytes).map_err(|e| anyhow!("{e}"))?;
                let count = batch.record_count();
                bytes = batch.with_producer(s.producer_id, 0, *seq).into_bytes();
                *seq = seq.wrapping_add(count).max(0);
            }
            let request = pb::ProduceRequest {
                topic: topic.to_string(),
                wait_durable,
                batches: vec![pb::PartitionBatches { partition, record_batches: bytes }],
                ..Default::default()
            };
            client.produce(request).await?;
        }
        ProduceMode::Messages => {
            let request = pb::ProduceRequest {
                topic: topic.to_string(),
                partition: Some(partition),
                wait_durable,
                messages: messages.to_vec(),
                ..Default::default()
            };
            client.produce(request).await?;
        }
        ProduceMode::Transactional => {
            let half = HalfMessages {
                topic: topic.to_string(),
                partition: Some(partition),
                messages: messages.to_vec(),
                check_immunity: None,
                wait_durable,
            };
            let prepared = client.prepare_transaction("e11", half).await?;
            client.end_transaction(&prepared.transaction_id, "e11", TransactionDecision::Commit).await?;
        }
    }
    Ok(())
}

/// Produce over gRPC in the workload's `produce_mode`, closed loop with `producers` tasks.
pub fn produce(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let Some(mode) = workload.produce_mode else { bail!("a produce-modes case needs the workload key `produce_mode`") };
    if workload.load_fraction.is_some() {
        bail!("produce modes are measured closed loop only");
    }
    block_on(async {
        let rig = rig(engine_name, dir, workload).await?;
        let requests = requests(workload);
        let messages = Arc::new(match mode {
            ProduceMode::Messages | ProduceMode::Transactional => as_messages(&requests)?,
            _ => vec![Vec::new(); requests.len()],
        });
        let partitions: Arc<Vec<(String, u32)>> =
            Arc::new(rig.topics.iter().flat_map(|t| (0..workload.partitions).map(move |p| (t.clone(), p))).collect());
        let total = workload.messages.div_ceil(workload.messages_per_batch() as u64);
        let deadline = Instant::now() + Duration::from_secs_f64(workload.duration_s);
        let wait_durable = workload.flush == "sync";
        let next = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let hist = Arc::new(std::sync::Mutex::new(measure::histogram()));
        let phase = Phase::start();
        let mut tasks = Vec::new();
        for _ in 0..workload.producers {
            let (client, requests, messages, partitions) =
                (rig.client.clone(), Arc::clone(&requests), Arc::clone(&messages), Arc::clone(&partitions));
            let (next, acked, hist) = (Arc::clone(&next), Arc::clone(&acked), Arc::clone(&hist));
            tasks.push(tokio::spawn(async move {
                let mut session = match mode {
                    ProduceMode::Idempotent => Some(Session {
                        producer_id: client.init_producer_id(None).await?.producer_id,
                        sequences: HashMap::new(),
                    }),
                    _ => None,
                };
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total || Instant::now() >= deadline {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let i = n as usize % requests.len();
                    let (topic, partition) = &partitions[n as usize % partitions.len()];
                    let started = Instant::now();
                    send(&client, mode, &mut session, (topic, *partition), &requests[i], &messages[i], wait_durable)
                        .await
                        .with_context(|| format!("producing to {topic}/{partition}"))?;
                    measure::record(&mut hist.lock().unwrap_or_else(|p| p.into_inner()), started.elapsed());
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        let took = phase.stop();
        let sent = acked.load(Ordering::Relaxed);
        let (mut count, mut payload) = (0, 0);
        for n in 0..sent {
            let r = &requests[n as usize % requests.len()];
            count += r.messages;
            payload += r.payload_bytes;
        }
        rig.broker.shutdown().await.context("stopping janusd")?;
        let mut m = measure::throughput(count, payload, took);
        let latency = hist.lock().map_err(|_| anyhow!("latency lock poisoned"))?.clone();
        m.extend(measure::latency_metrics(&latency));
        Ok(m)
    })
}
