//! A live topic as the core sees it: name, engine, partition count, settings, and per partition a watch of
//! the log end offset that long-polls and subscriptions wait on.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use janus_api::{EngineKind, TopicConfig, TopicPartition, now_ms, sync};
use tokio::sync::watch;

use super::spreader::KeylessSpreader;
use crate::error::{BrokerError, ErrorCode};

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
    pub(crate) settings: RwLock<TopicSettings>,
    /// Per partition: the log end offset after the latest append, watched by long-polls and subscriptions.
    ends: Vec<watch::Sender<i64>>,
    /// Bumped after every append to any partition (receivers of a whole topic wait on it).
    appends: watch::Sender<u64>,
    /// Where keyless messages go.
    pub spreader: KeylessSpreader,
    /// Per partition, the idempotent producers' state (loaded on first use).
    pub(crate) producers: crate::producers::TopicProducers,
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
    pub(crate) fn new(name: String, engine: EngineKind, partitions: u32, settings: TopicSettings) -> Self {
        let seed = (now_ms() as u64).wrapping_mul(0x9e37_79b9) as u32;
        Topic {
            name,
            engine,
            partitions,
            settings: RwLock::new(settings),
            ends: (0..partitions).map(|_| watch::Sender::new(0)).collect(),
            appends: watch::Sender::new(0),
            spreader: KeylessSpreader::starting_at(seed),
            producers: crate::producers::TopicProducers::new(partitions),
            deleted: AtomicBool::new(false),
        }
    }

    /// The current overrides and effective config.
    pub fn settings(&self) -> TopicSettings {
        sync::read(&self.settings).clone()
    }

    /// The effective config.
    pub fn config(&self) -> TopicConfig {
        sync::read(&self.settings).config.clone()
    }

    /// Checks that `partition` exists.
    pub fn check_partition(&self, partition: u32) -> Result<TopicPartition, BrokerError> {
        if partition < self.partitions {
            Ok(TopicPartition::new(self.name.clone(), partition))
        } else {
            Err(BrokerError::new(
                ErrorCode::UnknownPartition,
                format!(
                    "topic '{}' has no partition {partition}: it has {} (0..{})",
                    self.name, self.partitions, self.partitions
                ),
            ))
        }
    }

    /// Tells waiters of `partition` that it now ends at `log_end`.
    pub fn notify_append(&self, partition: u32, log_end: i64) {
        if let Some(tx) = self.ends.get(partition as usize) {
            let moved = tx.send_if_modified(|end| {
                if log_end > *end {
                    *end = log_end;
                    true
                } else {
                    false
                }
            });
            if moved {
                self.appends.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// A receiver that changes after every append to any partition.
    pub fn watch_appends(&self) -> watch::Receiver<u64> {
        self.appends.subscribe()
    }

    /// Marks the topic deleted and wakes every waiter, so subscriptions can end.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        for tx in &self.ends {
            tx.send_modify(|_| {});
        }
        self.appends.send_modify(|_| {});
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
