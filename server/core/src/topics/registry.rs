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
use std::sync::{Arc, Mutex, RwLock};

use janus_api::topic::MAX_PARTITIONS;
use janus_api::{
    CleanupPolicy, Engine, EngineKind, StorageError, TopicConfig, TopicPartition, TopicSpec, now_ms, sync,
    validate_topic_name,
};

use super::engine_set::{ENGINE_KINDS, EngineSet};
use super::topic::{Topic, TopicSettings};
use crate::error::{BrokerError, ErrorCode};
use crate::meta::{MetaError, MetaStore, TopicRecord, TopicState};

/// The broker-wide topic defaults and budgets the registry applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `partitions`: used when a create request says 0.
    pub partitions: u32,
    /// Every other per-topic key.
    pub config: TopicConfig,
    /// `max.partitions`: the most partitions over all topics together; a create that would pass it is refused.
    pub max_partitions: u64,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults { partitions: 1, config: TopicConfig::default(), max_partitions: DEFAULT_MAX_PARTITIONS }
    }
}

/// The default of `max.partitions`.
pub const DEFAULT_MAX_PARTITIONS: u64 = 100_000;

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
    engines: EngineSet,
    meta: Arc<MetaStore>,
    defaults: TopicDefaults,
    default_engine: EngineKind,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    admin: Mutex<()>,
}

fn engine_from_record(record: &TopicRecord) -> Result<EngineKind, BrokerError> {
    record
        .engine
        .parse::<EngineKind>()
        .map_err(|e| MetaError::Corrupt { what: "topics", key: record.name.clone(), detail: e }.into())
}

impl Registry {
    /// Loads the topics from `meta`, reconciles them with the engines' files (see the module docs) and
    /// opens them.
    pub fn open(
        meta: Arc<MetaStore>,
        engines: EngineSet,
        defaults: TopicDefaults,
        default_engine: EngineKind,
    ) -> Result<(Registry, Reconciliation), BrokerError> {
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

    fn reconcile(&self) -> Result<Reconciliation, BrokerError> {
        let mut report = Reconciliation::default();
        let on_disk: HashMap<EngineKind, BTreeSet<String>> = ENGINE_KINDS
            .into_iter()
            .map(|k| Ok((k, self.engines.get(k).topics_on_disk()?.into_iter().collect())))
            .collect::<Result<_, StorageError>>()?;
        let mut live: BTreeSet<(&'static str, String)> = BTreeSet::new();
        for record in self.meta.topics()? {
            let kind = engine_from_record(&record)?;
            match record.state {
                TopicState::Creating => {
                    tracing::warn!(topic = %record.name, "rolling back a topic create interrupted by a crash");
                    self.purge(kind, &record.name)?;
                    self.meta.remove_topic(&record.name)?;
                    report.rolled_back.push(record.name);
                }
                TopicState::Deleting => {
                    tracing::warn!(topic = %record.name, "finishing a topic delete interrupted by a crash");
                    self.purge(kind, &record.name)?;
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
        for kind in ENGINE_KINDS {
            for name in &self.engines.get(kind).topics_on_disk()? {
                if !live.contains(&(kind.as_str(), name.clone())) {
                    tracing::warn!(topic = %name, engine = %kind, "removing files of a topic without metadata");
                    self.purge(kind, name)?;
                    report.orphans_removed.push((kind, name.clone()));
                }
            }
        }
        crate::metrics::set_topics(self.read_topics().len());
        Ok(report)
    }

    /// Removes whatever files the engine of `kind` holds for `topic`, open or not.
    fn purge(&self, kind: EngineKind, topic: &str) -> Result<(), StorageError> {
        self.engines.get(kind).purge_topic(topic)
    }

    /// Refuses a create of `partitions` more partitions when the broker-wide `max.partitions` budget would
    /// be passed.
    fn check_partition_budget(&self, name: &str, partitions: u32) -> Result<(), BrokerError> {
        let used: u64 = self.read_topics().values().map(|t| u64::from(t.partitions)).sum();
        let max = self.defaults.max_partitions;
        if used + u64::from(partitions) > max {
            return Err(BrokerError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "creating topic '{name}' with {partitions} partitions would make {} partitions on this broker, \
                     over its max.partitions = {max} ({used} in use); use fewer partitions, delete topics, or raise \
                     max.partitions in the broker config",
                    used + u64::from(partitions)
                ),
            ));
        }
        Ok(())
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        sync::read(&self.topics)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        sync::write(&self.topics)
    }

    /// The engines.
    pub fn engines(&self) -> &EngineSet {
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

    /// A live topic, or `UnknownTopic` (`InvalidArgument` for a name that no topic can have).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        if let Err(e) = validate_topic_name(name) {
            return Err(BrokerError::invalid(e.to_string()));
        }
        self.read_topics().get(name).cloned().ok_or_else(|| BrokerError::unknown_topic(name))
    }

    /// Every live topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    fn effective(&self, kind: EngineKind, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, BrokerError> {
        let config = self
            .defaults
            .config
            .with_overrides(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| BrokerError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        if config.cleanup_policy == CleanupPolicy::Compact && self.engines.compaction(kind).is_none() {
            return Err(BrokerError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "invalid value 'compact' for config 'cleanup.policy': the {kind} engine cannot compact topics \
                     (create the topic with an engine that compacts, such as segment, or use cleanup.policy=delete)"
                ),
            ));
        }
        Ok(config)
    }

    /// Checks what [`Registry::create_topic`] would check, without creating anything: the name, the engine's
    /// config keys and values, the partition count and budget, and that no topic has the name. Returns the
    /// engine, partitions and effective config the topic would get (Kafka's CreateTopics `validate_only`).
    pub fn validate_topic(
        &self,
        name: &str,
        engine: Option<EngineKind>,
        partitions: u32,
        overrides: BTreeMap<String, String>,
    ) -> Result<(EngineKind, u32, TopicConfig), BrokerError> {
        let (kind, partitions, _, config) = self.checked_creation(name, engine, partitions, overrides)?;
        if self.read_topics().contains_key(name) {
            return Err(BrokerError::new(ErrorCode::TopicExists, format!("topic '{name}' already exists")));
        }
        self.check_partition_budget(name, partitions)?;
        Ok((kind, partitions, config))
    }

    /// The checks of a creation that need no lock: name, partitions, config.
    fn checked_creation(
        &self,
        name: &str,
        engine: Option<EngineKind>,
        partitions: u32,
        mut overrides: BTreeMap<String, String>,
    ) -> Result<(EngineKind, u32, BTreeMap<String, String>, TopicConfig), BrokerError> {
        validate_topic_name(name).map_err(|e| BrokerError::invalid(e.to_string()))?;
        let kind = engine.unwrap_or(self.default_engine);
        let mut partitions = partitions;
        if let Some(p) = overrides.remove("partitions") {
            let n: u32 = p.trim().parse().map_err(|_| {
                BrokerError::new(
                    ErrorCode::InvalidConfig,
                    format!("invalid value '{p}' for config 'partitions': an integer from 1 to {MAX_PARTITIONS}"),
                )
            })?;
            if partitions != 0 && partitions != n {
                return Err(BrokerError::invalid(format!(
                    "partitions is given twice with different values ({partitions} and config partitions={n})"
                )));
            }
            partitions = n;
        }
        if partitions == 0 {
            partitions = self.defaults.partitions;
        }
        if partitions > MAX_PARTITIONS {
            return Err(BrokerError::new(
                ErrorCode::InvalidConfig,
                format!("invalid value '{partitions}' for config 'partitions': an integer from 1 to {MAX_PARTITIONS}"),
            ));
        }
        let config = self.effective(kind, &overrides)?;
        Ok((kind, partitions, overrides, config))
    }

    /// Creates a topic on `engine` (`None`: the broker default) with `partitions` (0: the broker default)
    /// and config overrides (`partitions` may also be given there).
    pub fn create_topic(
        &self,
        name: &str,
        engine: Option<EngineKind>,
        partitions: u32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let (kind, partitions, overrides, config) = self.checked_creation(name, engine, partitions, overrides)?;
        let _admin = sync::lock(&self.admin);
        if self.read_topics().contains_key(name) {
            return Err(BrokerError::new(ErrorCode::TopicExists, format!("topic '{name}' already exists")));
        }
        self.check_partition_budget(name, partitions)?;
        // A record left by an interrupted delete (or a failed one): finish it before reusing the name.
        if let Some(old) = self.meta.topics()?.into_iter().find(|r| r.name == name) {
            self.purge(engine_from_record(&old)?, name)?;
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
            if let Err(cleanup) = self.purge(kind, name) {
                tracing::warn!(topic = %name, error = %cleanup, "could not clean up after a failed create");
            }
            self.meta.remove_topic(name)?;
            return Err(e.into());
        }
        record.state = TopicState::Live;
        if let Err(e) = self.meta.put_topic(&record) {
            // Undo the engine side; the `creating` record makes the next startup do it if this fails too.
            if self.purge(kind, name).is_ok() {
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
    pub fn alter_topic(&self, name: &str, changes: &BTreeMap<String, String>) -> Result<Arc<Topic>, BrokerError> {
        let topic = self.topic(name)?;
        if changes.contains_key("partitions") {
            return Err(BrokerError::invalid(format!(
                "the partition count of topic '{name}' cannot be changed (it has {})",
                topic.partitions
            )));
        }
        let _admin = sync::lock(&self.admin);
        let old = topic.settings();
        let mut overrides = old.overrides.clone();
        overrides.extend(changes.iter().map(|(k, v)| (k.clone(), v.trim().to_string())));
        let config = self.effective(topic.engine, &overrides)?;
        let record = self
            .meta
            .topics()?
            .into_iter()
            .find(|r| r.name == name && r.state == TopicState::Live)
            .ok_or_else(|| BrokerError::unknown_topic(name))?;
        self.engines.get(topic.engine).alter_topic(name, &config)?;
        let record = TopicRecord { overrides: overrides.clone(), ..record };
        if let Err(e) = self.meta.put_topic(&record) {
            let _ = self.engines.get(topic.engine).alter_topic(name, &old.config);
            return Err(e.into());
        }
        *sync::write(&topic.settings) = TopicSettings { overrides, config };
        tracing::info!(topic = %name, "topic config altered");
        Ok(topic)
    }

    /// Deletes a topic, its data and the offsets committed for it.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let topic = self.topic(name)?;
        let _admin = sync::lock(&self.admin);
        let record =
            self.meta.topics()?.into_iter().find(|r| r.name == name).ok_or_else(|| BrokerError::unknown_topic(name))?;
        self.meta.put_topic(&TopicRecord { state: TopicState::Deleting, ..record })?;
        {
            let mut topics = self.write_topics();
            topics.remove(name);
            crate::metrics::set_topics(topics.len());
        }
        topic.mark_deleted();
        self.purge(topic.engine, name)?;
        self.meta.remove_topic(name)?;
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Flushes and shuts down every engine (writing their clean-shutdown markers) and closes the metadata
    /// store. Returns the first error after trying everything.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        let mut first: Option<BrokerError> = self.engines.shutdown().err().map(BrokerError::from);
        if let Err(e) = self.meta.close() {
            tracing::error!(error = %e, "metadata store close failed");
            first.get_or_insert(e.into());
        }
        first.map_or(Ok(()), Err)
    }
}
