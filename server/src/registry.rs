//! The topic registry: which topics exist, on which engine, with which config; crash-safe create, alter
//! and delete over the metadata store and the engines; and startup reconciliation of the two.
//!
//! Create writes a `creating` record (synced) before the engine creates any file, and `live` after; delete
//! writes `deleting` before the engine removes anything, and drops the record (with the topic's committed
//! offsets, in one batch) after. At startup:
//! - a `creating` topic is rolled back (its files removed, its record dropped): its create never answered;
//! - a `deleting` topic's deletion is finished;
//! - a `live` topic is opened; if its files are missing the engine recreates it empty (logged as a warning,
//!   counted in [`Reconciliation::recreated`]);
//! - engine files of a topic without a `live` record are removed (orphans).
//!
//! All methods block (RocksDB and the engines are synchronous): call them from blocking threads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use janus_api::topic::MAX_PARTITIONS;
use janus_api::{
    CleanupPolicy, Engine, EngineKind, StorageError, TopicConfig, TopicPartition, TopicSpec, now_ms,
    validate_topic_name,
};
use janus_commitlog::CommitLogEngine;
use janus_segment::SegmentEngine;
use tokio::sync::watch;

use crate::config::TopicDefaults;
use crate::meta::{MetaError, MetaStore, TopicRecord, TopicState};
use crate::partitioner::KeylessSpreader;

/// Why a registry operation failed; mapped to gRPC codes by [`crate::status`].
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An engine refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The topic (or group) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The topic already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An offset is outside the log.
    #[error("{0}")]
    OutOfRange(String),
}

/// The two engines of the broker.
#[derive(Clone)]
pub struct Engines {
    /// The Kafka-model engine (`<data>/segment`).
    pub segment: Arc<SegmentEngine>,
    /// The RocketMQ-model engine (`<data>/commitlog`).
    pub commitlog: Arc<CommitLogEngine>,
}

impl Engines {
    /// The engine of `kind`.
    pub fn get(&self, kind: EngineKind) -> &dyn Engine {
        match kind {
            EngineKind::Segment => self.segment.as_ref(),
            EngineKind::Commitlog => self.commitlog.as_ref(),
        }
    }
}

/// A topic's overrides and the config they give over the broker defaults.
#[derive(Clone, Debug)]
pub struct TopicSettings {
    /// Per-topic overrides (dotted keys).
    pub overrides: BTreeMap<String, String>,
    /// The effective config.
    pub config: TopicConfig,
}

/// A live topic.
pub struct Topic {
    /// The name.
    pub name: String,
    /// The engine storing it.
    pub engine: EngineKind,
    /// Partition (queue) count.
    pub partitions: u32,
    settings: RwLock<TopicSettings>,
    /// Per partition: the log end offset after the latest append, watched by long-polls and subscriptions.
    ends: Vec<watch::Sender<i64>>,
    /// Where keyless messages go.
    pub spreader: KeylessSpreader,
    deleted: AtomicBool,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("engine", &self.engine)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl Topic {
    fn new(name: String, engine: EngineKind, partitions: u32, settings: TopicSettings) -> Self {
        let seed = (now_ms() as u64).wrapping_mul(0x9e37_79b9) as u32;
        Topic {
            name,
            engine,
            partitions,
            settings: RwLock::new(settings),
            ends: (0..partitions).map(|_| watch::Sender::new(0)).collect(),
            spreader: KeylessSpreader::starting_at(seed),
            deleted: AtomicBool::new(false),
        }
    }

    /// The current overrides and effective config.
    pub fn settings(&self) -> TopicSettings {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The effective config.
    pub fn config(&self) -> TopicConfig {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).config.clone()
    }

    /// Checks that `partition` exists.
    pub fn check_partition(&self, partition: u32) -> Result<TopicPartition, RegistryError> {
        if partition < self.partitions {
            Ok(TopicPartition::new(self.name.clone(), partition))
        } else {
            Err(RegistryError::NotFound(format!(
                "topic '{}' has no partition {partition}: it has {} (0..{})",
                self.name, self.partitions, self.partitions
            )))
        }
    }

    /// Tells waiters of `partition` that it now ends at `log_end`.
    pub fn notify_append(&self, partition: u32, log_end: i64) {
        if let Some(tx) = self.ends.get(partition as usize) {
            tx.send_if_modified(|end| {
                if log_end > *end {
                    *end = log_end;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Marks the topic deleted and wakes every waiter, so subscriptions can end.
    fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        for tx in &self.ends {
            tx.send_modify(|_| {});
        }
    }

    /// Whether the topic has been deleted (a subscription holding it should end).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// A receiver that changes after every append to `partition` (`None` for a partition that does not exist).
    pub fn watch(&self, partition: u32) -> Option<watch::Receiver<i64>> {
        self.ends.get(partition as usize).map(watch::Sender::subscribe)
    }
}

/// What startup reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Live topics opened.
    pub opened: Vec<String>,
    /// Live topics whose files were missing and were recreated empty.
    pub recreated: Vec<String>,
    /// Topics whose interrupted create was rolled back.
    pub rolled_back: Vec<String>,
    /// Topics whose interrupted delete was finished.
    pub finished_deletes: Vec<String>,
    /// Engine files without metadata that were removed (engine, topic).
    pub orphans_removed: Vec<(EngineKind, String)>,
}

/// The topic registry (see the module docs).
pub struct Registry {
    engines: Engines,
    meta: Arc<MetaStore>,
    defaults: TopicDefaults,
    default_engine: EngineKind,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    admin: Mutex<()>,
}

fn engine_from_record(record: &TopicRecord) -> Result<EngineKind, RegistryError> {
    record
        .engine
        .parse::<EngineKind>()
        .map_err(|e| RegistryError::Meta(MetaError::Corrupt { what: "topics", key: record.name.clone(), detail: e }))
}

/// Removes whatever files `engine` holds for `topic`, whether the engine has it open or not.
fn purge(engines: &Engines, kind: EngineKind, topic: &str) -> Result<(), StorageError> {
    match kind {
        EngineKind::Commitlog => match engines.commitlog.delete_topic(topic) {
            Ok(()) | Err(StorageError::UnknownTopic(_)) => Ok(()),
            Err(e) => Err(e),
        },
        EngineKind::Segment => {
            let engine = &engines.segment;
            // The segment engine deletes what it has open: open the topic over every partition directory
            // it has on disk first.
            let partitions = segment_partitions_on_disk(engine.dir(), topic)?;
            if partitions > 0 {
                match engine.open_topic(&TopicSpec::new(topic, partitions)) {
                    Ok(()) | Err(StorageError::TopicExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            match engine.delete_topic(topic) {
                Ok(()) | Err(StorageError::UnknownTopic(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

/// One more than the highest partition directory of `topic` in the segment engine's directory (0 if none).
fn segment_partitions_on_disk(dir: &Path, topic: &str) -> Result<u32, StorageError> {
    let mut count = 0u32;
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(tp) = entry.file_name().to_str().and_then(janus_segment::naming::parse_partition_dir)
            && tp.topic == topic
            && tp.partition < MAX_PARTITIONS
        {
            count = count.max(tp.partition + 1);
        }
    }
    Ok(count)
}

impl Registry {
    /// Loads the topics from `meta`, reconciles them with the engines' files (see the module docs) and
    /// opens them.
    pub fn open(
        meta: Arc<MetaStore>,
        engines: Engines,
        defaults: TopicDefaults,
        default_engine: EngineKind,
    ) -> Result<(Registry, Reconciliation), RegistryError> {
        let registry = Registry {
            engines,
            meta,
            defaults,
            default_engine,
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
        };
        let report = registry.reconcile()?;
        Ok((registry, report))
    }

    fn reconcile(&self) -> Result<Reconciliation, RegistryError> {
        let mut report = Reconciliation::default();
        let on_disk: HashMap<EngineKind, BTreeSet<String>> = [EngineKind::Segment, EngineKind::Commitlog]
            .into_iter()
            .map(|k| Ok((k, self.engines.get(k).topics_on_disk()?.into_iter().collect())))
            .collect::<Result<_, StorageError>>()?;
        let mut live: BTreeSet<(&'static str, String)> = BTreeSet::new();
        for record in self.meta.topics()? {
            let kind = engine_from_record(&record)?;
            match record.state {
                TopicState::Creating => {
                    tracing::warn!(topic = %record.name, "rolling back a topic create interrupted by a crash");
                    purge(&self.engines, kind, &record.name)?;
                    self.meta.remove_topic(&record.name)?;
                    report.rolled_back.push(record.name);
                }
                TopicState::Deleting => {
                    tracing::warn!(topic = %record.name, "finishing a topic delete interrupted by a crash");
                    purge(&self.engines, kind, &record.name)?;
                    self.meta.remove_topic(&record.name)?;
                    report.finished_deletes.push(record.name);
                }
                TopicState::Live => {
                    let config = match self
                        .defaults
                        .config
                        .with_overrides(record.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!(topic = %record.name, error = %e,
                                "stored config override no longer valid; using the broker defaults for it");
                            self.defaults.config.clone()
                        }
                    };
                    if !on_disk.get(&kind).is_some_and(|s| s.contains(&record.name)) {
                        tracing::warn!(topic = %record.name, engine = %kind,
                            "the topic's files are missing; recreating it empty");
                        report.recreated.push(record.name.clone());
                    }
                    let spec = TopicSpec { name: record.name.clone(), partitions: record.partitions, config };
                    self.engines.get(kind).open_topic(&spec)?;
                    let settings = TopicSettings { overrides: record.overrides.clone(), config: spec.config };
                    let topic = Topic::new(record.name.clone(), kind, record.partitions, settings);
                    for p in 0..record.partitions {
                        if let Ok(o) = self.engines.get(kind).offsets(&TopicPartition::new(record.name.clone(), p)) {
                            topic.notify_append(p, o.log_end);
                        }
                    }
                    self.write_topics().insert(record.name.clone(), Arc::new(topic));
                    live.insert((kind.as_str(), record.name.clone()));
                    report.opened.push(record.name);
                }
            }
        }
        // Whatever is still on disk without a live record is an orphan (the purges above are done).
        for kind in [EngineKind::Segment, EngineKind::Commitlog] {
            for name in &self.engines.get(kind).topics_on_disk()? {
                if !live.contains(&(kind.as_str(), name.clone())) {
                    tracing::warn!(topic = %name, engine = %kind, "removing files of a topic without metadata");
                    purge(&self.engines, kind, name)?;
                    report.orphans_removed.push((kind, name.clone()));
                }
            }
        }
        crate::metrics::set_topics(self.read_topics().len());
        Ok(report)
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The engines.
    pub fn engines(&self) -> &Engines {
        &self.engines
    }

    /// The engine of `kind`.
    pub fn engine(&self, kind: EngineKind) -> &dyn Engine {
        self.engines.get(kind)
    }

    /// The metadata store.
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// The broker-wide topic defaults.
    pub fn defaults(&self) -> &TopicDefaults {
        &self.defaults
    }

    /// A live topic, or `NotFound` (`InvalidArgument` for a name that no topic can have).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, RegistryError> {
        if let Err(e) = validate_topic_name(name) {
            return Err(RegistryError::InvalidArgument(e.to_string()));
        }
        self.read_topics().get(name).cloned().ok_or_else(|| {
            RegistryError::NotFound(format!("topic '{name}' does not exist; create it with Admin.CreateTopic"))
        })
    }

    /// Every live topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    fn effective(&self, kind: EngineKind, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, RegistryError> {
        let config = self
            .defaults
            .config
            .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| RegistryError::InvalidArgument(e.to_string()))?;
        if kind == EngineKind::Commitlog && config.cleanup_policy == CleanupPolicy::Compact {
            return Err(RegistryError::InvalidArgument(
                "invalid value 'compact' for config 'cleanup.policy': only segment topics can be compacted \
                 (create the topic with the segment engine, or use cleanup.policy=delete)"
                    .into(),
            ));
        }
        Ok(config)
    }

    /// Creates a topic on `engine` (`None`: the broker default) with `partitions` (0: the broker default)
    /// and config overrides (`partitions` may also be given there).
    pub fn create_topic(
        &self,
        name: &str,
        engine: Option<EngineKind>,
        partitions: u32,
        mut overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, RegistryError> {
        validate_topic_name(name).map_err(|e| RegistryError::InvalidArgument(e.to_string()))?;
        let kind = engine.unwrap_or(self.default_engine);
        let mut partitions = partitions;
        if let Some(p) = overrides.remove("partitions") {
            let n: u32 = p.trim().parse().map_err(|_| {
                RegistryError::InvalidArgument(format!(
                    "invalid value '{p}' for config 'partitions': an integer from 1 to {MAX_PARTITIONS}"
                ))
            })?;
            if partitions != 0 && partitions != n {
                return Err(RegistryError::InvalidArgument(format!(
                    "partitions is given twice with different values ({partitions} and config partitions={n})"
                )));
            }
            partitions = n;
        }
        if partitions == 0 {
            partitions = self.defaults.partitions;
        }
        if partitions > MAX_PARTITIONS {
            return Err(RegistryError::InvalidArgument(format!(
                "invalid value '{partitions}' for config 'partitions': an integer from 1 to {MAX_PARTITIONS}"
            )));
        }
        let config = self.effective(kind, &overrides)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if self.read_topics().contains_key(name) {
            return Err(RegistryError::AlreadyExists(format!("topic '{name}' already exists")));
        }
        // A record left by an interrupted delete (or a failed one): finish it before reusing the name.
        if let Some(old) = self.meta.topics()?.into_iter().find(|r| r.name == name) {
            purge(&self.engines, engine_from_record(&old)?, name)?;
            self.meta.remove_topic(name)?;
        }
        let mut record = TopicRecord {
            name: name.to_string(),
            engine: kind.as_str().to_string(),
            partitions,
            overrides: overrides.clone(),
            state: TopicState::Creating,
            created_ms: now_ms(),
        };
        self.meta.put_topic(&record)?;
        let spec = TopicSpec { name: name.to_string(), partitions, config: config.clone() };
        if let Err(e) = self.engines.get(kind).create_topic(&spec) {
            if let Err(cleanup) = purge(&self.engines, kind, name) {
                tracing::warn!(topic = %name, error = %cleanup, "could not clean up after a failed create");
            }
            self.meta.remove_topic(name)?;
            return Err(e.into());
        }
        record.state = TopicState::Live;
        if let Err(e) = self.meta.put_topic(&record) {
            // Undo the engine side; the `creating` record makes the next startup do it if this fails too.
            if purge(&self.engines, kind, name).is_ok() {
                let _ = self.meta.remove_topic(name);
            }
            return Err(e.into());
        }
        let topic = Arc::new(Topic::new(name.to_string(), kind, partitions, TopicSettings { overrides, config }));
        let mut topics = self.write_topics();
        topics.insert(name.to_string(), Arc::clone(&topic));
        crate::metrics::set_topics(topics.len());
        tracing::info!(topic = %name, engine = %kind, partitions, "topic created");
        Ok(topic)
    }

    /// Sets config keys of a topic (the others keep their values).
    pub fn alter_topic(&self, name: &str, changes: &BTreeMap<String, String>) -> Result<Arc<Topic>, RegistryError> {
        let topic = self.topic(name)?;
        if changes.contains_key("partitions") {
            return Err(RegistryError::InvalidArgument(format!(
                "the partition count of topic '{name}' cannot be changed (it has {})",
                topic.partitions
            )));
        }
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let old = topic.settings();
        let mut overrides = old.overrides.clone();
        overrides.extend(changes.iter().map(|(k, v)| (k.clone(), v.trim().to_string())));
        let config = self.effective(topic.engine, &overrides)?;
        let record = self
            .meta
            .topics()?
            .into_iter()
            .find(|r| r.name == name && r.state == TopicState::Live)
            .ok_or_else(|| RegistryError::NotFound(format!("topic '{name}' does not exist")))?;
        self.engines.get(topic.engine).alter_topic(name, &config)?;
        let record = TopicRecord { overrides: overrides.clone(), ..record };
        if let Err(e) = self.meta.put_topic(&record) {
            let _ = self.engines.get(topic.engine).alter_topic(name, &old.config);
            return Err(e.into());
        }
        *topic.settings.write().unwrap_or_else(|e| e.into_inner()) = TopicSettings { overrides, config };
        tracing::info!(topic = %name, "topic config altered");
        Ok(topic)
    }

    /// Deletes a topic, its data and the offsets committed for it.
    pub fn delete_topic(&self, name: &str) -> Result<(), RegistryError> {
        let topic = self.topic(name)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let record = self
            .meta
            .topics()?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| RegistryError::NotFound(format!("topic '{name}' does not exist")))?;
        self.meta.put_topic(&TopicRecord { state: TopicState::Deleting, ..record })?;
        {
            let mut topics = self.write_topics();
            topics.remove(name);
            crate::metrics::set_topics(topics.len());
        }
        topic.mark_deleted();
        purge(&self.engines, topic.engine, name)?;
        self.meta.remove_topic(name)?;
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Flushes and shuts down both engines (writing their clean-shutdown markers) and closes the metadata
    /// store. Returns the first error after trying everything.
    pub fn shutdown(&self) -> Result<(), RegistryError> {
        let mut first: Option<RegistryError> = None;
        for kind in [EngineKind::Segment, EngineKind::Commitlog] {
            if let Err(e) = self.engines.get(kind).shutdown() {
                tracing::error!(engine = %kind, error = %e, "engine shutdown failed");
                first.get_or_insert(e.into());
            }
        }
        if let Err(e) = self.meta.close() {
            tracing::error!(error = %e, "metadata store close failed");
            first.get_or_insert(e.into());
        }
        first.map_or(Ok(()), Err)
    }
}
