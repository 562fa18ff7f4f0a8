//! The in-process cases: produce, consume (and fan-out), and the write phase of recovery.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use janus_api::Engine;

use super::read::read_all;
use super::write::{Limit, Written, partitions, write};
use crate::data;
use crate::engines::{self, Settings};
use crate::evict;
use crate::measure;
use crate::scenario::{Cache, Workload};

/// Distinct prebuilt batches cycled by the producers.
const DISTINCT_BATCHES: usize = 16;

/// The write limit of a workload.
pub fn limit(workload: &Workload) -> Limit {
    Limit { messages: workload.messages, duration: Duration::from_secs_f64(workload.duration_s) }
}

/// Prebuilt batches for a workload.
pub fn prebuilt(workload: &Workload) -> Arc<Vec<data::Prebuilt>> {
    Arc::new(data::batches(workload, DISTINCT_BATCHES, 0x6a61_6e75))
}

/// Produce: `producers` threads append as fast as the flush policy lets them; acknowledged throughput.
pub fn produce(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let engine = engines::open(engine_name, dir, Settings::for_workload(workload))?;
    let specs = engines::create_topics(&*engine, workload)?;
    touch_partitions(&engine, &specs, workload)?;
    let written = write(&engine, &specs, workload.producers, &prebuilt(workload), limit(workload), None)?;
    engine.shutdown().context("shutting the engine down")?;
    Ok(write_metrics(&written))
}

/// The metrics of a write phase.
pub fn write_metrics(written: &Written) -> BTreeMap<String, f64> {
    let mut m = measure::throughput(written.messages, written.payload_bytes, written.took);
    m.insert("wire_mb_per_s".into(), written.batch_bytes as f64 / written.took.wall.as_secs_f64().max(1e-9) / 1e6);
    m.insert("data_mb".into(), written.payload_bytes as f64 / 1e6);
    m.extend(measure::latency_metrics(&written.latency));
    m
}

/// One untimed append to every partition, so that the timed phase measures steady appends, not creating
/// each partition's first files (which the segment engine does lazily).
fn touch_partitions(engine: &Arc<dyn Engine>, specs: &[janus_api::TopicSpec], workload: &Workload) -> Result<()> {
    let one = Workload { batch_messages: 1, message_bytes_max: None, ..workload.clone() };
    let batch = data::batches(&one, 1, 1).remove(0).batch;
    for tp in partitions(specs) {
        engine.append(&tp, batch.clone()).with_context(|| format!("touching {tp}"))?;
    }
    engine.flush().context("flushing the touch appends")?;
    nix::unistd::sync();
    Ok(())
}

/// Consume (and fan-out): the data is written first (untimed), then `groups` × `consumers` threads read all
/// of it; warm reads follow the writes, cold reads follow a shutdown, eviction and reopen.
pub fn consume(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let settings = Settings::for_workload(workload);
    let mut engine = engines::open(engine_name, dir, settings)?;
    let specs = engines::create_topics(&*engine, workload)?;
    let written = write(&engine, &specs, workload.producers, &prebuilt(workload), limit(workload), None)?;
    engine.flush().context("flushing the written data")?;
    let mut m = BTreeMap::new();
    if workload.cache == Cache::Cold {
        engine.shutdown().context("shutting down before eviction")?;
        drop(engine);
        let evicted = evict::evict_dir(dir)?;
        m.insert("evicted_mb".into(), evicted as f64 / 1e6);
        m.insert("resident_after_evict".into(), evict::resident_fraction_dir(dir)?);
        engine = engines::open(engine_name, dir, settings)?;
        for spec in &specs {
            engine.open_topic(spec).with_context(|| format!("reopening {}", spec.name))?;
        }
    }
    let targets = partitions(&specs);
    let out = read_all(&engine, &targets, workload.groups, workload.consumers, workload.read_bytes)?;
    engine.shutdown().context("shutting the engine down")?;
    let groups = workload.groups as u64;
    ensure!(
        out.messages == written.messages * groups,
        "read {} messages, expected {} ({} groups × {})",
        out.messages,
        written.messages * groups,
        groups,
        written.messages
    );
    m.extend(measure::throughput(out.messages, written.payload_bytes * groups, out.took));
    m.insert("wire_mb_per_s".into(), out.wire_bytes as f64 / out.took.wall.as_secs_f64().max(1e-9) / 1e6);
    m.insert("data_mb".into(), written.payload_bytes as f64 / 1e6);
    m.insert("delivered_mb".into(), out.wire_bytes as f64 / 1e6);
    Ok(m)
}
