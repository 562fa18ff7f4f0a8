//! The engine's shared state: the stores (CommitLog, ConsumeQueues, IndexFiles), the writer, the open
//! topics and their queues, and the small pieces of bookkeeping the engine's threads share.
//!
//! [`State`] is a struct of shared handles that the engine passes explicitly to the modules that need it
//! (append, read, lookup, recovery, retention, flusher); none of them reaches into the engine itself, and
//! this module depends on none of them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use janus_api::sync::{self, lock};
use janus_api::{FlushPolicy, FlushTracker, Offsets, StorageError, TopicConfig, TopicPartition};

use crate::commitlog::CommitLog;
use crate::consume_queue::{CqStore, QueueLoc};
use crate::index_file::IndexStore;
use crate::options::CommitLogOptions;
use crate::writer::LogWriter;

/// One queue (partition) of an open topic.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The queue id (the partition number).
    pub(crate) id: u32,
    /// Its ConsumeQueue files.
    pub(crate) loc: QueueLoc,
    /// The next queue offset (the log end); entries below it are dispatched and readable.
    pub(crate) next: AtomicI64,
    /// The first readable offset.
    pub(crate) start: AtomicI64,
    /// The start set by `delete_records_before` (persisted in `logstart`).
    pub(crate) logical_start: AtomicI64,
    /// Cached newest born timestamp per full block of [`crate::lookup::TIME_BLOCK`] entries.
    pub(crate) time_blocks: Mutex<HashMap<u64, i64>>,
}

impl Queue {
    /// A queue whose readable range is `start..next`, with `logical` the start `delete_records_before` set.
    pub(crate) fn new(id: u32, loc: QueueLoc, start: i64, next: i64, logical: i64) -> Arc<Queue> {
        Arc::new(Queue {
            id,
            loc,
            next: AtomicI64::new(next),
            start: AtomicI64::new(start),
            logical_start: AtomicI64::new(logical),
            time_blocks: Mutex::new(HashMap::new()),
        })
    }

    /// The readable range.
    pub(crate) fn offsets(&self) -> Offsets {
        let log_end = self.next.load(Ordering::Acquire);
        Offsets { log_start: self.start.load(Ordering::Acquire).min(log_end), log_end }
    }
}

/// One open topic.
#[derive(Debug)]
pub(crate) struct Topic {
    /// The topic name.
    pub(crate) name: Arc<str>,
    /// Its config (in memory only: the server's metadata store owns it).
    pub(crate) config: RwLock<TopicConfig>,
    /// Its queues, by id.
    pub(crate) queues: Vec<Arc<Queue>>,
    /// Set (under the writer mutex) when the topic is deleted: appends that raced with the deletion fail.
    pub(crate) deleted: AtomicBool,
}

impl Topic {
    /// A copy of the current config.
    pub(crate) fn config(&self) -> TopicConfig {
        sync::read(&self.config).clone()
    }
}

/// Whether the engine is closed, and why.
#[derive(Debug, Default)]
struct Status {
    /// `Some(reason)` once shut down or failed.
    reason: Mutex<Option<String>>,
    /// Mirrors `reason.is_some()`, readable without the lock.
    closed: AtomicBool,
}

/// Wakes readers blocked in [`State::wait_for_data`] when an append publishes.
#[derive(Debug, Default)]
struct DataSignal {
    changed: Condvar,
    lock: Mutex<u64>,
    waiters: AtomicUsize,
}

/// Everything the engine shares with its threads (see the module docs).
pub(crate) struct State {
    /// The engine's directory.
    pub(crate) dir: PathBuf,
    /// The options it was opened with.
    pub(crate) options: CommitLogOptions,
    /// The CommitLog.
    pub(crate) log: Arc<CommitLog>,
    /// The ConsumeQueues.
    pub(crate) cq: CqStore,
    /// The IndexFiles.
    pub(crate) index: IndexStore,
    /// The single writer; holding this mutex is being the writer.
    pub(crate) writer: Mutex<LogWriter>,
    /// The open topics.
    pub(crate) topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Deleted topics: messages below each physical offset belong to the old topic.
    pub(crate) tombstones: Mutex<HashMap<String, u64>>,
    /// Process-unique ids of queues (the ConsumeQueue LRU key).
    queue_ids: Mutex<HashMap<(String, u32), u64>>,
    next_queue_id: AtomicU64,
    /// Queue ends as of the last checkpoint (or recovery), to notice lost ConsumeQueue files.
    pub(crate) known_queues: Mutex<BTreeMap<(String, u32), i64>>,
    /// Group commit: the sequence is the CommitLog's physical end.
    pub(crate) tracker: Arc<FlushTracker>,
    status: Status,
    /// Set to stop the flusher thread.
    pub(crate) stopping: AtomicBool,
    /// Smallest `flush.interval.ms` among `interval` topics (`u64::MAX` when none).
    pub(crate) min_interval_ms: AtomicU64,
    /// Serialises flushes, checkpoints and retention passes.
    pub(crate) maintenance: Mutex<()>,
    data: DataSignal,
}

impl State {
    /// The state of an engine over `dir` whose stores are open and whose CommitLog is recovered.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        dir: PathBuf,
        options: CommitLogOptions,
        log: Arc<CommitLog>,
        cq: CqStore,
        index: IndexStore,
        writer: LogWriter,
        tombstones: HashMap<String, u64>,
        known_queues: BTreeMap<(String, u32), i64>,
        tracker: Arc<FlushTracker>,
    ) -> State {
        State {
            dir,
            options,
            log,
            cq,
            index,
            writer: Mutex::new(writer),
            topics: RwLock::new(HashMap::new()),
            tombstones: Mutex::new(tombstones),
            queue_ids: Mutex::new(HashMap::new()),
            next_queue_id: AtomicU64::new(1),
            known_queues: Mutex::new(known_queues),
            tracker,
            status: Status::default(),
            stopping: AtomicBool::new(false),
            min_interval_ms: AtomicU64::new(u64::MAX),
            maintenance: Mutex::new(()),
            data: DataSignal::default(),
        }
    }

    /// `Closed` once the engine was shut down or failed.
    pub(crate) fn check_open(&self) -> Result<(), StorageError> {
        if self.status.closed.load(Ordering::Acquire) {
            let reason = lock(&self.status.reason).clone().unwrap_or_else(|| "closed".into());
            return Err(StorageError::Closed(reason));
        }
        Ok(())
    }

    /// Closes the engine for `reason` (the first reason given is kept).
    pub(crate) fn close(&self, reason: &str) {
        lock(&self.status.reason).get_or_insert_with(|| reason.to_string());
        self.status.closed.store(true, Ordering::Release);
    }

    /// The files of queue `queue` of `topic`.
    pub(crate) fn queue_loc(&self, topic: &str, queue: u32) -> QueueLoc {
        let uid = *lock(&self.queue_ids)
            .entry((topic.to_string(), queue))
            .or_insert_with(|| self.next_queue_id.fetch_add(1, Ordering::Relaxed));
        QueueLoc { uid, dir: self.cq.queue_dir(topic, queue) }
    }

    /// Forgets the queue ids of `topic` and closes its ConsumeQueue files.
    pub(crate) fn forget_queues(&self, topic: &str) {
        let mut ids = lock(&self.queue_ids);
        let gone: Vec<u64> = ids.iter().filter(|(k, _)| k.0 == topic).map(|(_, &v)| v).collect();
        ids.retain(|k, _| k.0 != topic);
        drop(ids);
        for uid in gone {
            self.cq.forget(uid);
        }
    }

    /// The open topic `name`.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        self.check_open()?;
        sync::read(&self.topics).get(name).cloned().ok_or_else(|| StorageError::UnknownTopic(name.to_string()))
    }

    /// The open topic and queue of `tp`.
    pub(crate) fn queue(&self, tp: &TopicPartition) -> Result<(Arc<Topic>, Arc<Queue>), StorageError> {
        let topic = self.topic(&tp.topic)?;
        let queue = topic.queues.get(tp.partition as usize).cloned().ok_or_else(|| StorageError::UnknownPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            partitions: topic.queues.len() as u32,
        })?;
        Ok((topic, queue))
    }

    /// Every open topic.
    pub(crate) fn open_topics(&self) -> Vec<Arc<Topic>> {
        sync::read(&self.topics).values().cloned().collect()
    }

    /// Recomputes [`State::min_interval_ms`] after topics changed.
    pub(crate) fn refresh_min_interval(&self) {
        let min = self
            .open_topics()
            .iter()
            .map(|t| t.config())
            .filter(|c| c.flush_policy == FlushPolicy::Interval)
            .map(|c| c.flush_interval_ms)
            .min()
            .unwrap_or(u64::MAX);
        self.min_interval_ms.store(min, Ordering::Release);
    }

    /// Wakes readers waiting for data. The fence pairs with the one in `wait_for_data`: either the waiter
    /// sees the new queue end, or this sees the waiter (and takes the lock it waits under).
    pub(crate) fn notify_data(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.data.waiters.load(Ordering::SeqCst) > 0 {
            *lock(&self.data.lock) += 1;
            self.data.changed.notify_all();
        }
    }

    /// Blocks until `tp` has data at `offset` or `timeout` passes; true if it has.
    pub(crate) fn wait_for_data(
        &self,
        tp: &TopicPartition,
        offset: i64,
        timeout: Duration,
    ) -> Result<bool, StorageError> {
        let (_, queue) = self.queue(tp)?;
        let deadline = Instant::now() + timeout;
        self.data.waiters.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        let mut guard = lock(&self.data.lock);
        let result = loop {
            if queue.next.load(Ordering::Acquire) > offset {
                break Ok(true);
            }
            if let Err(e) = self.check_open() {
                break Err(e);
            }
            let now = Instant::now();
            if now >= deadline {
                break Ok(false);
            }
            guard = sync::wait_timeout(&self.data.changed, guard, deadline - now);
        };
        drop(guard);
        self.data.waiters.fetch_sub(1, Ordering::AcqRel);
        result
    }
}
