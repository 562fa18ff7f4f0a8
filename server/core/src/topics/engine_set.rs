//! The [`EngineSet`]: the broker's storage engines, one per [`EngineKind`], reached as `dyn Engine` and
//! through their capabilities (compaction, tag filtering, key lookup). This is the one place that names
//! the concrete engines: it builds them from their broker-wide [`EngineOptions`].
//!
//! Each engine keeps its files under `<data dir>/<engine name>` (`segment/`, `commitlog/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use janus_api::{Compaction, ConfigError, Engine, EngineKind, StorageError};
use janus_commitlog::{CommitLogEngine, CommitLogOptions};
use janus_segment::{SegmentEngine, SegmentOptions};

/// Every engine kind the broker runs, in a fixed order.
pub const ENGINE_KINDS: [EngineKind; 2] = [EngineKind::Segment, EngineKind::Commitlog];

/// The broker-wide settings of every engine, set by key (the engine's own key names: `segment.index.bytes`,
/// `commitlog.file.bytes`, `consumequeue.file.entries`, ...).
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    segment: SegmentOptions,
    commitlog: CommitLogOptions,
}

impl EngineOptions {
    /// The keys the engine of `kind` accepts.
    pub fn keys(kind: EngineKind) -> &'static [&'static str] {
        match kind {
            EngineKind::Segment => janus_segment::options::OPTION_KEYS,
            EngineKind::Commitlog => janus_commitlog::options::OPTION_KEYS,
        }
    }

    /// Sets `key` of the engine of `kind`; the error names the key and what it accepts.
    pub fn set(&mut self, kind: EngineKind, key: &str, value: &str) -> Result<(), ConfigError> {
        match kind {
            EngineKind::Segment => self.segment.set(key, value),
            EngineKind::Commitlog => self.commitlog.set(key, value),
        }
    }

    /// The segment engine's settings.
    pub fn segment(&self) -> &SegmentOptions {
        &self.segment
    }

    /// The commitlog engine's settings.
    pub fn commitlog(&self) -> &CommitLogOptions {
        &self.commitlog
    }
}

/// The directory of the engine of `kind` under the data directory.
pub fn engine_dir(data_dir: &Path, kind: EngineKind) -> PathBuf {
    data_dir.join(kind.as_str())
}

/// The broker's engines (see the module docs).
#[derive(Clone)]
pub struct EngineSet {
    segment: Arc<SegmentEngine>,
    commitlog: Arc<CommitLogEngine>,
}

impl std::fmt::Debug for EngineSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSet").field("kinds", &ENGINE_KINDS).finish()
    }
}

impl EngineSet {
    /// Opens every engine under `data_dir` (recovering each from a crash if needed).
    pub fn open(data_dir: &Path, options: &EngineOptions) -> Result<EngineSet, StorageError> {
        let segment =
            Arc::new(SegmentEngine::open(&engine_dir(data_dir, EngineKind::Segment), options.segment.clone())?);
        let commitlog =
            match CommitLogEngine::open(&engine_dir(data_dir, EngineKind::Commitlog), options.commitlog.clone()) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    let _ = segment.shutdown();
                    return Err(e);
                }
            };
        Ok(EngineSet { segment, commitlog })
    }

    /// The engine of `kind`.
    pub fn get(&self, kind: EngineKind) -> &dyn Engine {
        match kind {
            EngineKind::Segment => self.segment.as_ref(),
            EngineKind::Commitlog => self.commitlog.as_ref(),
        }
    }

    /// Every engine with its kind.
    pub fn all(&self) -> impl Iterator<Item = (EngineKind, &dyn Engine)> {
        ENGINE_KINDS.into_iter().map(|k| (k, self.get(k)))
    }

    /// The compaction capability of the engine of `kind`, if it has one.
    pub fn compaction(&self, kind: EngineKind) -> Option<&dyn Compaction> {
        self.get(kind).compaction()
    }

    /// Flushes and shuts down every engine (writing their clean-shutdown markers); returns the first
    /// error after trying all.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let mut first = None;
        for (kind, engine) in self.all() {
            if let Err(e) = engine.shutdown() {
                tracing::error!(engine = %kind, error = %e, "engine shutdown failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
