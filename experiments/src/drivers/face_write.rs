//! Produce end to end through a `janusd` child process (E2c): `producers` load threads send `messages`
//! through one face, `face`, each request one client-built RecordBatch for one partition, round-robin:
//!
//! - `kafka`: Produce v9 with `acks` 1 ([`super::kafka_produce`]);
//! - `grpc`: the client library's produce of record batches ([`super::face_read::produce_grpc`]).
//!
//! Both go to the core's batch path, so the difference is the face. After the timed phase the stored
//! messages are checked against the acknowledged ones. The broker's CPU is measured alone, from
//! `/proc/<pid>/stat` ([`super::janusd`]); the harness's own (the load generator's) beside it.
//!
//! Metrics: `mb_per_s` and `msgs_per_s` (payload), `wire_mb_per_s` (batch bytes, what `ratio_to_baseline`
//! compares with raw `write(2)`), `broker_cpu_s_per_gb`, `client_cpu_s_per_gb`, `broker_cpu_s`, `requests`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use janus_client::Client;

use super::face_read::{broker_sets, create_topics, produce_grpc, stored};
use super::grpc::{block_on, requests};
use super::janusd::Janusd;
use super::kafka_produce;
use crate::measure::{self, Phase};
use crate::scenario::{Face, Workload};

/// The case (see the module docs).
pub fn produce(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let face = workload.face.ok_or_else(|| anyhow!("a janusd produce case needs the workload key `face`"))?;
    let broker = Janusd::start(&dir.join("data"), &broker_sets(workload))?;
    let url = format!("http://{}", broker.grpc);
    let partitions = block_on(async {
        let client = Client::connect(&url).await.context("connecting to janusd")?;
        create_topics(&client, engine_name, workload).await
    })?;
    let reqs = requests(workload);
    let total = workload.messages.div_ceil(workload.messages_per_batch() as u64);
    let broker_cpu = broker.cpu()?;
    let phase = Phase::start();
    let (messages, payload, batch_bytes) = match face {
        Face::Kafka => {
            let p = kafka_produce::produce_all(broker.kafka, &partitions, reqs, total, workload.producers)?;
            (p.messages, p.payload_bytes, p.batch_bytes)
        }
        Face::Grpc => {
            let batch_bytes: u64 = (0..total).map(|n| reqs[n as usize % reqs.len()].batch.len() as u64).sum();
            let (messages, payload) = block_on(async {
                let client = Client::connect(&url).await.context("connecting a producer")?;
                produce_grpc(&client, &partitions, workload).await
            })?;
            (messages, payload, batch_bytes)
        }
    };
    let took = phase.stop();
    let broker_cpu = broker.cpu()?.saturating_sub(broker_cpu);
    block_on(async {
        let client = Client::connect(&url).await.context("connecting to check")?;
        stored(&client, &partitions, messages).await
    })?;
    broker.stop().context("stopping janusd")?;
    let secs = took.wall.as_secs_f64().max(1e-9);
    let gb = payload as f64 / 1e9;
    let mut m = measure::throughput(messages, payload, took);
    m.remove("cpu_s_per_gb");
    m.insert("client_cpu_s_per_gb".into(), took.cpu.as_secs_f64() / gb);
    m.insert("broker_cpu_s_per_gb".into(), broker_cpu.as_secs_f64() / gb);
    m.insert("broker_cpu_s".into(), broker_cpu.as_secs_f64());
    m.insert("wire_mb_per_s".into(), batch_bytes as f64 / secs / 1e6);
    m.insert("requests".into(), total as f64);
    Ok(m)
}
