//! Recovery after a crash: a child process (this binary's hidden `crash-writer` command) writes the data,
//! flushes it, and exits without a clean shutdown; then the engine is reopened here and timed until every
//! partition's offsets are known again, and checked against what the child wrote.
//!
//! The child's periodic checkpoints are off (an hour apart), so the only recovery checkpoint is the one its
//! final `flush` writes, whenever the crash comes in the run. Each engine then revalidates from the start
//! of the file holding its checkpoint: the segment engine every partition's active segment, the commitlog
//! engine the active CommitLog file (and the ConsumeQueue tails).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::inproc::{limit, prebuilt};
use super::write::{partitions, write};
use crate::engines::{self, Settings};
use crate::evict;
use crate::measure::Phase;
use crate::scenario::{Cache, Workload};

/// No periodic checkpoint during the writes, so only the final flush's checkpoint counts.
const NO_CHECKPOINT: Duration = Duration::from_secs(3600);

/// What the crash writer did, printed as one JSON line on its stdout.
#[derive(Debug, Deserialize, Serialize)]
pub struct CrashReport {
    /// Messages acknowledged (and flushed) before the crash.
    pub messages: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// The log end offset of every partition, in [`partitions`] order.
    pub log_ends: Vec<i64>,
}

/// The hidden `crash-writer` command: writes the workload into `dir`, flushes, prints a [`CrashReport`] and
/// exits at once with no clean shutdown (no destructors run, no clean-shutdown marker is written).
pub fn crash_writer(engine_name: &str, dir: &Path, workload: &Workload) -> Result<()> {
    let settings = Settings { checkpoint_interval: Some(NO_CHECKPOINT), ..Settings::for_workload(workload) };
    let engine = engines::open(engine_name, dir, settings)?;
    let specs = engines::create_topics(&*engine, workload)?;
    let written = write(&engine, &specs, workload.producers, &prebuilt(workload), limit(workload), None)?;
    engine.flush().context("flushing before the crash")?;
    let log_ends =
        partitions(&specs).iter().map(|tp| engine.offsets(tp).map(|o| o.log_end)).collect::<Result<Vec<_>, _>>()?;
    let report = CrashReport { messages: written.messages, payload_bytes: written.payload_bytes, log_ends };
    println!("{}", serde_json::to_string(&report)?);
    use std::io::Write;
    std::io::stdout().flush()?;
    // SAFETY: `_exit` ends the process at once; nothing after it runs, which is the point (a crash).
    unsafe { nix::libc::_exit(0) }
}

/// Runs the crash writer in a child process, then times recovery here.
pub fn recovery(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let exe = std::env::current_exe().context("finding this binary for the crash writer")?;
    let output = Command::new(exe)
        .arg("crash-writer")
        .arg("--engine")
        .arg(engine_name)
        .arg("--dir")
        .arg(dir)
        .arg("--workload")
        .arg(serde_json::to_string(workload)?)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the crash writer")?;
    if !output.status.success() {
        bail!("the crash writer failed: {}", output.status);
    }
    let report: CrashReport = serde_json::from_slice(&output.stdout).context("reading the crash writer's report")?;
    let mut m = BTreeMap::new();
    if workload.cache == Cache::Cold {
        m.insert("evicted_mb".into(), evict::evict_dir(dir)? as f64 / 1e6);
        m.insert("resident_after_evict".into(), evict::resident_fraction_dir(dir)?);
    } else {
        nix::unistd::sync();
    }
    let disk_bytes = evict::dir_len(dir)?;
    let phase = Phase::start();
    let engine = engines::open(engine_name, dir, Settings::for_workload(workload))?;
    let specs = engines::topic_specs(workload)?;
    for spec in &specs {
        engine.open_topic(spec).with_context(|| format!("reopening {}", spec.name))?;
    }
    let mut log_ends = Vec::new();
    for tp in partitions(&specs) {
        log_ends.push(engine.offsets(&tp).with_context(|| format!("offsets of {tp} after recovery"))?.log_end);
    }
    let took = phase.stop();
    engine.shutdown().context("shutting down after recovery")?;
    ensure!(
        log_ends == report.log_ends,
        "recovery lost acknowledged data: log ends {log_ends:?}, written {:?}",
        report.log_ends
    );
    let secs = took.wall.as_secs_f64().max(1e-9);
    m.insert("recovery_s".into(), secs);
    m.insert("recovery_cpu_s".into(), took.cpu.as_secs_f64());
    m.insert("data_mb".into(), report.payload_bytes as f64 / 1e6);
    m.insert("disk_mb".into(), disk_bytes as f64 / 1e6);
    m.insert("messages".into(), report.messages as f64);
    m.insert("recovered_mb_per_s".into(), report.payload_bytes as f64 / secs / 1e6);
    Ok(m)
}
