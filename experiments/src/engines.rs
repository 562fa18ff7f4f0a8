//! Opening either engine by name over a directory, with the settings every experiment uses.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use janus_api::{Engine, TopicSpec};
use janus_commitlog::{CommitLogEngine, CommitLogOptions};
use janus_segment::{SegmentEngine, SegmentOptions};

use crate::scenario::Workload;

/// Engine-wide settings an experiment may change from the defaults.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Partitions or queues the engine should keep open at once (both engines bound these with an LRU).
    pub open_partitions: usize,
    /// How often recovery checkpoints are written (`None`: the engine's default).
    pub checkpoint_interval: Option<Duration>,
    /// The commitlog engine's `commitlog.staged.writes` (`None`: the engine's default).
    pub staged_writes: Option<bool>,
}

impl Settings {
    /// Enough open partitions for `workload` (all of them: neither engine is measured thrashing its LRU).
    pub fn for_workload(workload: &Workload) -> Settings {
        let all = (workload.topics * workload.partitions) as usize;
        Settings { open_partitions: all.max(1_000), checkpoint_interval: None, staged_writes: workload.staged_writes }
    }
}

/// Opens the engine `name` (`segment` or `commitlog`) over `dir`.
pub fn open(name: &str, dir: &Path, settings: Settings) -> Result<Arc<dyn Engine>> {
    let engine: Arc<dyn Engine> = match name {
        "segment" => {
            let mut options =
                SegmentOptions { max_open_partitions: settings.open_partitions, ..SegmentOptions::default() };
            if let Some(interval) = settings.checkpoint_interval {
                options.checkpoint_interval = interval;
            }
            Arc::new(SegmentEngine::open(dir, options).context("opening the segment engine")?)
        }
        "commitlog" => {
            let mut options =
                CommitLogOptions { consumequeue_open_files: settings.open_partitions, ..CommitLogOptions::default() };
            // Keys and time lookups are not measured here: a small IndexFile keeps preallocation out of the way.
            options.index_slots = 1 << 16;
            options.index_entries = 1 << 20;
            if let Some(staged) = settings.staged_writes {
                options.staged_writes = staged;
            }
            if let Some(interval) = settings.checkpoint_interval {
                options.checkpoint_interval_ms = interval.as_millis() as u64;
            }
            Arc::new(CommitLogEngine::open(dir, options).context("opening the commitlog engine")?)
        }
        other => bail!("unknown engine {other:?}"),
    };
    Ok(engine)
}

/// `max.message.bytes` of every experiment topic: room for 1 MiB messages and for batches of many messages.
pub const MAX_MESSAGE_BYTES: &str = "16777216";

/// The topic specs of a workload: `topics` topics named `t0`, `t1`, ... with its partitions and flush policy.
pub fn topic_specs(workload: &Workload) -> Result<Vec<TopicSpec>> {
    (0..workload.topics)
        .map(|t| {
            let mut spec = TopicSpec::new(format!("t{t}"), workload.partitions);
            spec.config.set("flush.policy", &workload.flush).context("flush.policy")?;
            spec.config.set("max.message.bytes", MAX_MESSAGE_BYTES).context("max.message.bytes")?;
            Ok(spec)
        })
        .collect()
}

/// Creates the workload's topics.
pub fn create_topics(engine: &dyn Engine, workload: &Workload) -> Result<Vec<TopicSpec>> {
    let specs = topic_specs(workload)?;
    for spec in &specs {
        engine.create_topic(spec).with_context(|| format!("creating topic {}", spec.name))?;
    }
    Ok(specs)
}

/// Raises the soft open-file limit to the hard one: 10,000 partitions need more descriptors than the
/// usual soft limit of 1,024.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
