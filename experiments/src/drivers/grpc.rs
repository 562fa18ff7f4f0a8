//! End-to-end cases through `janusd`: a broker started in this process on 127.0.0.1 (port 0), driven
//! over gRPC by the Janus client library. CPU figures cover the broker and the load generator together.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use hdrhistogram::Histogram;
use janus_client::proto as pb;
use janus_client::{Client, Engine as ClientEngine, NewTopic};
use janus_server::{Broker, BrokerConfig};
use tokio::sync::Semaphore;

use crate::data::{self, WANTED_TAG};
use crate::measure::{self, Pacer, Phase, Took};
use crate::scenario::Workload;

/// Most produce requests in flight at once under open-loop load (later ones wait, and their wait counts).
const MAX_IN_FLIGHT: usize = 256;

/// A running broker and a client connected to it.
pub(crate) struct Rig {
    /// The broker.
    pub broker: Broker,
    /// A client connected to it.
    pub client: Client,
    /// The workload's topics, created.
    pub topics: Vec<String>,
}

/// The broker configuration of a case: data in `dir`, ports chosen by the system on 127.0.0.1, the
/// commitlog's index sizes and write path, and the workload's consumer-group settings, if any.
pub(crate) fn broker_config(dir: &Path, workload: &Workload) -> Result<BrokerConfig> {
    let mut config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        grpc_addr: "127.0.0.1:0".parse()?,
        metrics_addr: "127.0.0.1:0".parse()?,
        ..BrokerConfig::default()
    };
    config.kafka.listen = "127.0.0.1:0".parse()?;
    let mut commitlog = vec![("index_slots", (1u64 << 16).to_string()), ("index_entries", (1u64 << 20).to_string())];
    if let Some(staged) = workload.staged_writes {
        commitlog.push(("staged_writes", staged.to_string()));
    }
    config.commitlog.extend(commitlog.into_iter().map(|(k, v)| (k.to_string(), v)));
    if let Some(ms) = workload.heartbeat_interval_ms {
        config.groups.heartbeat_interval_ms = ms;
    }
    if let Some(ms) = workload.initial_rebalance_delay_ms {
        config.groups.initial_rebalance_delay_ms = ms;
    }
    Ok(config)
}

/// Starts a broker on `dir` (with the workload's consumer-group settings, if any) and creates the workload's
/// topics on `engine_name`.
pub(crate) async fn rig(engine_name: &str, dir: &Path, workload: &Workload) -> Result<Rig> {
    rig_with(broker_config(dir, workload)?, engine_name, workload).await
}

/// Starts a broker with `config` and creates the workload's topics (`t0`, `t1`, ...) on `engine_name`.
pub(crate) async fn rig_with(config: BrokerConfig, engine_name: &str, workload: &Workload) -> Result<Rig> {
    let broker = Broker::start(config).await.context("starting janusd")?;
    let client = Client::connect(&format!("http://{}", broker.grpc_addr())).await.context("connecting")?;
    let mut topics = Vec::new();
    for t in 0..workload.topics {
        let name = format!("t{t}");
        create_topic(&client, &name, engine_name, workload.partitions, workload).await?;
        topics.push(name);
    }
    Ok(Rig { broker, client, topics })
}

/// Creates topic `name` with `partitions` partitions on `engine_name`, with the workload's flush policy.
pub(crate) async fn create_topic(
    client: &Client,
    name: &str,
    engine_name: &str,
    partitions: u32,
    workload: &Workload,
) -> Result<()> {
    let engine = match engine_name {
        "segment" => ClientEngine::Segment,
        _ => ClientEngine::Commitlog,
    };
    let topic = NewTopic {
        name: name.to_string(),
        engine,
        partitions,
        configs: [
            ("flush.policy".to_string(), workload.flush.clone()),
            ("max.message.bytes".to_string(), crate::engines::MAX_MESSAGE_BYTES.to_string()),
        ]
        .into_iter()
        .collect(),
    };
    client.create_topic(&topic).await.with_context(|| format!("creating {name}"))?;
    Ok(())
}

/// Produce requests to cycle: each one client-built RecordBatch v2 of the workload's messages (the fast
/// path the client library uses by default), with its message count, payload bytes and wanted-tag count.
pub(crate) fn requests(workload: &Workload) -> Arc<Vec<Request>> {
    let batches = data::batches(workload, 16, 0x6772_7063);
    Arc::new(
        batches
            .iter()
            .map(|b| Request {
                batch: b.batch.as_bytes().to_vec().into(),
                messages: b.batch.record_count().max(0) as u64,
                payload_bytes: b.payload_bytes,
                wanted: b.wanted,
            })
            .collect(),
    )
}

/// One produce request's batch and what it carries.
pub(crate) struct Request {
    /// The RecordBatch v2 bytes.
    pub batch: bytes::Bytes,
    /// Messages in it.
    pub messages: u64,
    /// Payload (value) bytes in it.
    pub payload_bytes: u64,
    /// Messages carrying the wanted tag.
    pub wanted: u64,
}

/// Runs a future on a fresh two-worker runtime (the broker and the load share it, as on a 2-core machine).
pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(f)
}

/// What a produce phase did.
pub(crate) struct Produced {
    /// Messages acknowledged.
    pub messages: u64,
    /// Their payload (value) bytes.
    pub payload_bytes: u64,
    /// Of them, messages carrying the wanted tag.
    pub wanted: u64,
    /// Wall and CPU time of the phase.
    pub took: Took,
    /// Latency of each request (closed loop: from its send; open loop: from its due time).
    pub latency: Histogram<u64>,
}

/// Sends produce requests round-robin over every partition, `workload.producers` at a time (closed loop), or
/// on an open-loop schedule of `paced_requests_per_s`, until the message or time limit.
pub(crate) async fn produce_phase(
    rig: &Rig,
    workload: &Workload,
    messages: u64,
    duration: Duration,
    paced_requests_per_s: Option<f64>,
) -> Result<Produced> {
    let requests = requests(workload);
    let per_request = workload.messages_per_batch() as u64;
    let total = messages.div_ceil(per_request);
    let partitions: Arc<Vec<(String, u32)>> =
        Arc::new(rig.topics.iter().flat_map(|t| (0..workload.partitions).map(move |p| (t.clone(), p))).collect());
    let wait_durable = workload.flush == "sync";
    let deadline = Instant::now() + duration;
    let phase = Phase::start();
    let acked = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(std::sync::Mutex::new(measure::histogram()));
    let send = {
        let (client, requests, partitions, acked, hist) =
            (rig.client.clone(), Arc::clone(&requests), Arc::clone(&partitions), acked.clone(), hist.clone());
        move |n: u64, due: Instant| {
            let (client, requests, partitions, acked, hist) =
                (client.clone(), requests.clone(), partitions.clone(), acked.clone(), hist.clone());
            async move {
                let batch = &requests[n as usize % requests.len()].batch;
                let (topic, partition) = &partitions[n as usize % partitions.len()];
                let request = pb::ProduceRequest {
                    topic: topic.clone(),
                    wait_durable,
                    batches: vec![pb::PartitionBatches { partition: *partition, record_batches: batch.clone() }],
                    ..Default::default()
                };
                client.produce(request).await.with_context(|| format!("producing to {topic}/{partition}"))?;
                measure::record(&mut hist.lock().unwrap_or_else(|p| p.into_inner()), due.elapsed());
                acked.fetch_add(1, Ordering::Relaxed);
                Ok::<_, anyhow::Error>(())
            }
        }
    };
    match paced_requests_per_s {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..workload.producers {
                let (next, send) = (next.clone(), send.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total || Instant::now() >= deadline {
                            return Ok::<_, anyhow::Error>(());
                        }
                        send(n, Instant::now()).await?;
                    }
                }));
            }
            for task in tasks {
                task.await??;
            }
        }
        Some(rate) => {
            let pacer = Pacer::new(rate);
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut tasks = Vec::new();
            for n in 0..total {
                let due = pacer.due(n);
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let permit = slots.clone().acquire_owned().await?;
                let send = send.clone();
                tasks.push(tokio::spawn(async move {
                    let result = send(n, due).await;
                    drop(permit);
                    result
                }));
            }
            for task in tasks {
                task.await??;
            }
        }
    }
    let took = phase.stop();
    let sent = acked.load(Ordering::Relaxed);
    let (mut messages, mut payload_bytes, mut wanted) = (0, 0, 0);
    for n in 0..sent {
        let r = &requests[n as usize % requests.len()];
        messages += r.messages;
        payload_bytes += r.payload_bytes;
        wanted += r.wanted;
    }
    let latency = hist.lock().map_err(|_| anyhow!("latency lock poisoned"))?.clone();
    Ok(Produced { messages, payload_bytes, wanted, took, latency })
}

/// The metrics of a produce phase.
fn produce_metrics(p: &Produced) -> BTreeMap<String, f64> {
    let mut m = measure::throughput(p.messages, p.payload_bytes, p.took);
    m.extend(measure::latency_metrics(&p.latency));
    m
}

/// Produce over gRPC, closed loop: `producers` requests in flight.
pub fn produce(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    block_on(async {
        let rig = rig(engine_name, dir, workload).await?;
        let duration = Duration::from_secs_f64(workload.duration_s);
        let p = produce_phase(&rig, workload, workload.messages, duration, None).await?;
        rig.broker.shutdown().await.context("stopping janusd")?;
        Ok(produce_metrics(&p))
    })
}

/// Latency at a fraction of the peak: a closed-loop phase (half the messages and time) measures the peak
/// message rate; an open-loop phase then offers `load_fraction` of it, and its latency (from each request's
/// due time) is reported.
pub fn latency(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let fraction = workload.load_fraction.unwrap_or(1.0);
    block_on(async {
        let rig = rig(engine_name, dir, workload).await?;
        let half = Duration::from_secs_f64(workload.duration_s / 2.0);
        let peak = produce_phase(&rig, workload, workload.messages / 2, half, None).await?;
        let peak_rate = peak.messages as f64 / peak.took.wall.as_secs_f64().max(1e-9);
        let target = peak_rate * fraction;
        let paced = produce_phase(
            &rig,
            workload,
            workload.messages / 2,
            half,
            Some(target / workload.messages_per_batch() as f64),
        )
        .await?;
        rig.broker.shutdown().await.context("stopping janusd")?;
        let mut m = produce_metrics(&paced);
        m.insert("peak_msgs_per_s".into(), peak_rate);
        m.insert("target_msgs_per_s".into(), target);
        m.insert("achieved_fraction_of_target".into(), m["msgs_per_s"] / target.max(1e-9));
        Ok(m)
    })
}

/// Tag-filtered consumption: tagged data is produced (untimed), then one consumer reads every partition to
/// its end asking for [`WANTED_TAG`]. The commitlog filters in the broker (by tag hash in the ConsumeQueue,
/// then the real tag); a segment topic cannot, so the consumer fetches everything and filters on the `TAGS`
/// header itself. Both must deliver exactly the wanted messages.
pub fn tags(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let broker_filters = engine_name == "commitlog";
    block_on(async {
        let rig = rig(engine_name, dir, workload).await?;
        let duration = Duration::from_secs_f64(workload.duration_s);
        let produced = produce_phase(&rig, workload, workload.messages, duration, None).await?;
        let phase = Phase::start();
        let (mut matched, mut matched_bytes, mut received, mut received_bytes) = (0u64, 0u64, 0u64, 0u64);
        for topic in &rig.topics {
            for partition in 0..workload.partitions {
                let mut offset = 0;
                loop {
                    let request = pb::FetchRequest {
                        topic: topic.clone(),
                        partition,
                        offset,
                        max_bytes: workload.read_bytes as u32,
                        max_wait_ms: 0,
                        tags: if broker_filters { vec![WANTED_TAG.into()] } else { Vec::new() },
                        ..Default::default()
                    };
                    let response = rig.client.fetch(request).await.with_context(|| format!("fetching {topic}"))?;
                    for message in &response.messages {
                        let len = message.value.as_ref().map_or(0, |v| v.len()) as u64;
                        received += 1;
                        received_bytes += len;
                        let wanted = message
                            .headers
                            .iter()
                            .any(|h| h.key == "TAGS" && h.value.as_deref() == Some(WANTED_TAG.as_bytes()));
                        if wanted {
                            matched += 1;
                            matched_bytes += len;
                        }
                    }
                    if response.next_offset <= offset || response.next_offset >= response.log_end_offset {
                        break;
                    }
                    offset = response.next_offset;
                }
            }
        }
        let took = phase.stop();
        rig.broker.shutdown().await.context("stopping janusd")?;
        ensure!(matched == produced.wanted, "delivered {matched} wanted messages, produced {}", produced.wanted);
        let mut m = measure::throughput(matched, matched_bytes, took);
        m.insert("received_messages".into(), received as f64);
        m.insert("delivered_mb".into(), received_bytes as f64 / 1e6);
        m.insert("data_mb".into(), produced.payload_bytes as f64 / 1e6);
        m.insert("useful_fraction".into(), matched as f64 / received.max(1) as f64);
        Ok(m)
    })
}
