//! Consume end to end through a `janusd` child process (E2b): the data is produced through gRPC first
//! (untimed), then `consumers` threads read all of it through one face, `face`:
//!
//! - `kafka`: Fetch v12 requests over each consumer's partitions, `read_bytes` per partition
//!   ([`super::kafka_fetch`]): segment topics go out by `sendfile(2)`, commitlog topics re-encoded;
//! - `grpc`: the client library's `fetch` of record batches, `read_bytes` per request, one partition at a
//!   time.
//!
//! Warm reads follow the writes and read everything `read_passes` times; a cold read follows a clean stop of
//! the broker, `sync(2)`, eviction of its data directory and a restart, and reads once. The broker's CPU is
//! measured alone, from `/proc/<pid>/stat` ([`super::janusd`]); the harness's own (the load generator's)
//! beside it.
//!
//! Metrics: `mb_per_s` (payload), `wire_mb_per_s` (record bytes, what `ratio_to_baseline` compares with
//! `sendfile(2)`), `broker_cpu_s_per_gb` and `client_cpu_s_per_gb` (CPU seconds per GB of payload),
//! `broker_cpu_s`, `requests`, and for cold reads `evicted_mb` and `resident_after_evict`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, ensure};
use janus_client::Client;
use janus_client::proto as pb;

use super::grpc::{block_on, create_topic, requests};
use super::janusd::Janusd;
use super::kafka_fetch::{self, Target};
use crate::evict;
use crate::measure::{self, Phase};
use crate::scenario::{Cache, Face, Workload};

/// What the untimed produce phase stored.
struct Stored {
    /// Every partition with its log end.
    partitions: Vec<Target>,
    /// Messages stored.
    messages: u64,
    /// Their payload bytes.
    payload_bytes: u64,
}

/// The `--set` values of the broker for `workload` (the commitlog's index sizes of the in-process cases).
pub(crate) fn broker_sets(workload: &Workload) -> Vec<String> {
    let mut sets = vec!["commitlog.index_slots=65536".to_string(), "commitlog.index_entries=1048576".to_string()];
    if let Some(staged) = workload.staged_writes {
        sets.push(format!("commitlog.staged_writes={staged}"));
    }
    sets
}

/// The case (see the module docs).
pub fn consume(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let face = workload.face.ok_or_else(|| anyhow!("a janusd consume case needs the workload key `face`"))?;
    let data_dir = dir.join("data");
    let sets = broker_sets(workload);
    let mut broker = Janusd::start(&data_dir, &sets)?;
    let url = format!("http://{}", broker.grpc);
    let stored = block_on(produce(&url, engine_name, workload))?;
    let mut m = BTreeMap::new();
    let passes = match workload.cache {
        Cache::Warm => workload.read_passes,
        Cache::Cold => {
            broker.stop().context("stopping janusd before eviction")?;
            nix::unistd::sync();
            m.insert("evicted_mb".into(), evict::evict_dir(&data_dir)? as f64 / 1e6);
            broker = Janusd::start(&data_dir, &sets).context("restarting janusd after eviction")?;
            m.insert("resident_after_evict".into(), evict::resident_fraction_dir(&data_dir)?);
            1
        }
    };
    let url = format!("http://{}", broker.grpc);
    let broker_cpu = broker.cpu()?;
    let phase = Phase::start();
    let (mut records, mut record_bytes, mut requests) = (0u64, 0u64, 0u64);
    for _ in 0..passes {
        let read = match face {
            Face::Kafka => read_kafka(broker.kafka, &stored.partitions, workload)?,
            Face::Grpc => block_on(read_grpc(&url, &stored.partitions, workload))?,
        };
        ensure!(read.records == stored.messages, "read {} records, stored {}", read.records, stored.messages);
        records += read.records;
        record_bytes += read.record_bytes;
        requests += read.requests;
    }
    let took = phase.stop();
    let broker_cpu = broker.cpu()?.saturating_sub(broker_cpu);
    broker.stop().context("stopping janusd")?;
    let payload = stored.payload_bytes * u64::from(passes);
    let secs = took.wall.as_secs_f64().max(1e-9);
    let gb = payload as f64 / 1e9;
    m.extend(measure::throughput(records, payload, took));
    // The harness's own CPU is the load generator's: name it so.
    m.remove("cpu_s_per_gb");
    m.insert("client_cpu_s_per_gb".into(), took.cpu.as_secs_f64() / gb);
    m.insert("broker_cpu_s_per_gb".into(), broker_cpu.as_secs_f64() / gb);
    m.insert("broker_cpu_s".into(), broker_cpu.as_secs_f64());
    m.insert("wire_mb_per_s".into(), record_bytes as f64 / secs / 1e6);
    m.insert("data_mb".into(), stored.payload_bytes as f64 / 1e6);
    m.insert("delivered_mb".into(), record_bytes as f64 / 1e6);
    m.insert("requests".into(), requests as f64);
    m.insert("read_passes".into(), f64::from(passes));
    Ok(m)
}

/// Creates the workload's topics on `engine_name` and produces `workload.messages` to them through gRPC
/// (see [`produce_grpc`]); returns what was stored, checked against what was acknowledged.
async fn produce(url: &str, engine_name: &str, workload: &Workload) -> Result<Stored> {
    let client = Client::connect(url).await.context("connecting to janusd")?;
    let partitions = create_topics(&client, engine_name, workload).await?;
    let (messages, payload_bytes) = produce_grpc(&client, &partitions, workload).await?;
    let partitions = stored(&client, &partitions, messages).await?;
    Ok(Stored { partitions, messages, payload_bytes })
}

/// Creates the workload's topics (`t0`, `t1`, ...) on `engine_name`; returns every (topic, partition).
pub(crate) async fn create_topics(
    client: &Client,
    engine_name: &str,
    workload: &Workload,
) -> Result<Vec<(String, u32)>> {
    let mut partitions = Vec::new();
    for t in 0..workload.topics {
        let name = format!("t{t}");
        create_topic(client, &name, engine_name, workload.partitions, workload).await?;
        for p in 0..workload.partitions {
            partitions.push((name.clone(), p));
        }
    }
    Ok(partitions)
}

/// Produces `workload.messages` through gRPC, `producers` requests at a time (one client-built batch to one
/// partition each, round-robin over `partitions`); returns the messages and payload bytes acknowledged.
pub(crate) async fn produce_grpc(
    client: &Client,
    partitions: &[(String, u32)],
    workload: &Workload,
) -> Result<(u64, u64)> {
    let reqs = requests(workload);
    let total = workload.messages.div_ceil(workload.messages_per_batch() as u64);
    let partitions = Arc::new(partitions.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let (messages, payload) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..workload.producers {
        let (client, reqs, partitions, next) = (client.clone(), reqs.clone(), partitions.clone(), next.clone());
        let (messages, payload) = (messages.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let r = &reqs[n as usize % reqs.len()];
                let (topic, partition) = &partitions[n as usize % partitions.len()];
                let request = pb::ProduceRequest {
                    topic: topic.clone(),
                    batches: vec![pb::PartitionBatches { partition: *partition, record_batches: r.batch.clone() }],
                    ..Default::default()
                };
                client.produce(request).await.with_context(|| format!("producing to {topic}/{partition}"))?;
                messages.fetch_add(r.messages, Ordering::Relaxed);
                payload.fetch_add(r.payload_bytes, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((messages.load(Ordering::Relaxed), payload.load(Ordering::Relaxed)))
}

/// Every partition's stored range, checked to hold exactly the `acknowledged` messages.
pub(crate) async fn stored(client: &Client, partitions: &[(String, u32)], acknowledged: u64) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for (topic, partition) in partitions {
        let response = client
            .fetch(pb::FetchRequest { topic: topic.clone(), partition: *partition, max_bytes: 1, ..Default::default() })
            .await
            .with_context(|| format!("the log end of {topic}/{partition}"))?;
        targets.push(Target {
            topic: topic.clone(),
            partition: i32::try_from(*partition)?,
            offset: response.log_start_offset,
            end: response.log_end_offset,
        });
    }
    let stored_messages: i64 = targets.iter().map(|t| t.end - t.offset).sum();
    ensure!(
        u64::try_from(stored_messages)? == acknowledged,
        "stored {stored_messages} messages, acknowledged {acknowledged}"
    );
    Ok(targets)
}

/// The partitions of consumer `i` of `consumers`.
fn share(partitions: &[Target], i: usize, consumers: usize) -> Vec<Target> {
    partitions.iter().enumerate().filter(|(j, _)| j % consumers == i).map(|(_, t)| t.clone()).collect()
}

/// Every partition read through the Kafka face, by `consumers` threads with a connection each.
fn read_kafka(addr: std::net::SocketAddr, partitions: &[Target], workload: &Workload) -> Result<kafka_fetch::Consumed> {
    let max = i32::try_from(workload.read_bytes).context("read_bytes above 2 GiB")?;
    let threads: Vec<_> = (0..workload.consumers)
        .map(|i| {
            let mine = share(partitions, i, workload.consumers);
            std::thread::Builder::new()
                .name(format!("kafka-consumer-{i}"))
                .spawn(move || kafka_fetch::read_to_end(addr, mine, max))
        })
        .collect::<std::io::Result<_>>()
        .context("starting consumer threads")?;
    let mut total = kafka_fetch::Consumed::default();
    for thread in threads {
        let read = thread.join().map_err(|_| anyhow!("a consumer thread panicked"))??;
        total.records += read.records;
        total.record_bytes += read.record_bytes;
        total.requests += read.requests;
    }
    Ok(total)
}

/// Every partition read through the gRPC face's fetch (record batches), by `consumers` tasks with a
/// connection each.
async fn read_grpc(url: &str, partitions: &[Target], workload: &Workload) -> Result<kafka_fetch::Consumed> {
    let mut tasks = Vec::new();
    for i in 0..workload.consumers {
        let mine = share(partitions, i, workload.consumers);
        let client = Client::connect(url).await.context("connecting a consumer")?;
        let max_bytes = u32::try_from(workload.read_bytes)?;
        tasks.push(tokio::spawn(async move {
            let mut read = kafka_fetch::Consumed::default();
            for t in mine {
                let mut offset = t.offset;
                while offset < t.end {
                    let request = pb::FetchRequest {
                        topic: t.topic.clone(),
                        partition: u32::try_from(t.partition)?,
                        offset,
                        max_bytes,
                        format: pb::RecordFormat::Batches as i32,
                        ..Default::default()
                    };
                    let response = client.fetch(request).await.with_context(|| format!("fetching {}", t.topic))?;
                    read.requests += 1;
                    read.record_bytes += response.record_batches.len() as u64;
                    let (count, _) = kafka_fetch::walk_batches(&response.record_batches, offset)?;
                    read.records += count;
                    ensure!(response.next_offset > offset, "a fetch of {}/{} made no progress", t.topic, t.partition);
                    offset = response.next_offset;
                }
            }
            Ok::<_, anyhow::Error>(read)
        }));
    }
    let mut total = kafka_fetch::Consumed::default();
    for task in tasks {
        let read = task.await??;
        total.records += read.records;
        total.record_bytes += read.record_bytes;
        total.requests += read.requests;
    }
    Ok(total)
}
