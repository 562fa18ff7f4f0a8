//! The engine glue: topics and queues in memory, `append`, `read`, offsets, and the [`Engine`] trait.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use crate::format::{self as rec, MessageMeta};
use janus_api::sync::{self, lock};
use janus_api::{
    Appended, CleanupPolicy, Compression, Durable, Engine, EngineKind, FlushPolicy, FlushTracker, IoResultExt,
    KeyLookup, Offsets, ReadSlice, Record, RecordBatch, RetentionReport, StorageError, TagFilter, TopicConfig,
    TopicPartition, TopicSpec, validate_topic_name,
};

use crate::checkpoint::{self, Checkpoint};
use crate::commitlog::{CommitLog, LogWriter};

use crate::consume_queue::{CqEntry, CqStore, QueueLoc};
use crate::dispatch::prepare;
use crate::index_file::IndexStore;
use crate::options::CommitLogOptions;

/// Most ConsumeQueue entries one filtered read scans before it returns what it has.
const MAX_SCAN_ENTRIES: u64 = 16 * 1024;
/// ConsumeQueue entries read at once.
const READ_CHUNK: usize = 256;

/// One queue (partition) of an open topic.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) id: u32,
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
    pub(crate) fn offsets(&self) -> Offsets {
        let log_end = self.next.load(Ordering::Acquire);
        Offsets { log_start: self.start.load(Ordering::Acquire).min(log_end), log_end }
    }
}

/// One open topic.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: Arc<str>,
    pub(crate) config: RwLock<TopicConfig>,
    pub(crate) queues: Vec<Arc<Queue>>,
    /// Set (under the writer mutex) when the topic is deleted: appends that raced with the deletion fail.
    pub(crate) deleted: AtomicBool,
}

impl Topic {
    pub(crate) fn config(&self) -> TopicConfig {
        sync::read(&self.config).clone()
    }
}

/// State only the writer touches (under `Inner::writer`).
#[derive(Debug)]
pub(crate) struct WriterState {
    pub(crate) log: LogWriter,
}

/// Everything the engine shares with its threads.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) options: CommitLogOptions,
    pub(crate) log: Arc<CommitLog>,
    pub(crate) cq: CqStore,
    pub(crate) index: IndexStore,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) topics: RwLock<HashMap<String, Arc<Topic>>>,
    pub(crate) tombstones: Mutex<HashMap<String, u64>>,
    /// Process-unique ids of queues (the ConsumeQueue LRU key).
    uids: Mutex<HashMap<(String, u32), u64>>,
    next_uid: AtomicU64,
    /// Queue ends and starts as of the last checkpoint (or recovery), to notice lost ConsumeQueue files.
    pub(crate) known_queues: Mutex<BTreeMap<(String, u32), i64>>,
    pub(crate) tracker: Arc<FlushTracker>,
    /// `Some(reason)` once shut down or failed.
    closed: Mutex<Option<String>>,
    is_closed: AtomicBool,
    pub(crate) stopping: AtomicBool,
    /// Smallest `flush.interval.ms` among `interval` topics (`u64::MAX` when none).
    pub(crate) min_interval_ms: AtomicU64,
    /// Serialises flushes, checkpoints and retention passes.
    pub(crate) maintenance: Mutex<()>,
    data_changed: Condvar,
    data_lock: Mutex<u64>,
    waiters: AtomicUsize,
}

impl Inner {
    pub(crate) fn check_open(&self) -> Result<(), StorageError> {
        if self.is_closed.load(Ordering::Acquire) {
            let reason = lock(&self.closed).clone().unwrap_or_else(|| "closed".into());
            return Err(StorageError::Closed(reason));
        }
        Ok(())
    }

    pub(crate) fn close(&self, reason: &str) {
        lock(&self.closed).get_or_insert_with(|| reason.to_string());
        self.is_closed.store(true, Ordering::Release);
    }

    /// The files of queue `queue` of `topic`.
    pub(crate) fn queue_loc(&self, topic: &str, queue: u32) -> QueueLoc {
        let uid = *lock(&self.uids)
            .entry((topic.to_string(), queue))
            .or_insert_with(|| self.next_uid.fetch_add(1, Ordering::Relaxed));
        QueueLoc { uid, dir: self.cq.queue_dir(topic, queue) }
    }

    fn forget_topic_uids(&self, topic: &str) {
        let mut uids = lock(&self.uids);
        let gone: Vec<u64> = uids.iter().filter(|(k, _)| k.0 == topic).map(|(_, &v)| v).collect();
        uids.retain(|k, _| k.0 != topic);
        drop(uids);
        for uid in gone {
            self.cq.forget(uid);
        }
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        self.check_open()?;
        sync::read(&self.topics).get(name).cloned().ok_or_else(|| StorageError::UnknownTopic(name.to_string()))
    }

    pub(crate) fn queue(&self, tp: &TopicPartition) -> Result<(Arc<Topic>, Arc<Queue>), StorageError> {
        let topic = self.topic(&tp.topic)?;
        let queue = topic.queues.get(tp.partition as usize).cloned().ok_or_else(|| StorageError::UnknownPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            partitions: topic.queues.len() as u32,
        })?;
        Ok((topic, queue))
    }

    pub(crate) fn open_topics(&self) -> Vec<Arc<Topic>> {
        sync::read(&self.topics).values().cloned().collect()
    }

    fn refresh_min_interval(&self) {
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
    fn notify_data(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            *lock(&self.data_lock) += 1;
            self.data_changed.notify_all();
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
        let deadline = std::time::Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        let mut guard = lock(&self.data_lock);
        let result = loop {
            if queue.next.load(Ordering::Acquire) > offset {
                break Ok(true);
            }
            if let Err(e) = self.check_open() {
                break Err(e);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                break Ok(false);
            }
            guard = sync::wait_timeout(&self.data_changed, guard, deadline - now);
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// Builds the in-memory state of a topic's queues from their files, first rebuilding from the CommitLog
    /// (in one scan) those that miss data the checkpoint says they had, or that have a hole.
    fn load_queues(&self, topic: &Arc<str>, partitions: u32) -> Result<Vec<Arc<Queue>>, StorageError> {
        let per = self.cq.entries_per_file();
        let mut damaged = Vec::new();
        for id in 0..partitions {
            let loc = self.queue_loc(topic, id);
            let files = self.cq.load(&loc)?;
            let expected = lock(&self.known_queues).get(&(topic.to_string(), id)).copied();
            let logical = checkpoint::read_log_start(&loc.dir)?.unwrap_or(0).max(0) as u64;
            let hole_at_front = files.next > 0 && files.first(per) > logical && self.log.min_offset() == 0;
            if !files.contiguous() || expected.is_some_and(|e| (files.next as i64) < e) || hole_at_front {
                tracing::warn!(topic = %topic, queue = id, "rebuilding a ConsumeQueue from the CommitLog");
                damaged.push((topic.to_string(), id));
            }
        }
        if !damaged.is_empty() {
            crate::recovery::rebuild_queues(self, &damaged)?;
        }
        let mut queues = Vec::with_capacity(partitions as usize);
        for id in 0..partitions {
            let loc = self.queue_loc(topic, id);
            let files = self.cq.load(&loc)?;
            let logical = checkpoint::read_log_start(&loc.dir)?.unwrap_or(0).max(0);
            let next = (files.next as i64).max(logical);
            let first = files.first(per).min(files.next) as i64;
            let live = crate::retention::first_live(self, &loc, first.max(logical) as u64, files.next)? as i64;
            let start = logical.max(first).max(live).min(next);
            queues.push(Arc::new(Queue {
                id,
                loc,
                next: AtomicI64::new(next),
                start: AtomicI64::new(start),
                logical_start: AtomicI64::new(logical),
                time_blocks: Mutex::new(HashMap::new()),
            }));
        }
        Ok(queues)
    }

    /// Syncs the CommitLog up to what is written, then marks it durable.
    pub(crate) fn flush_commitlog(&self) -> Result<u64, StorageError> {
        let end = self.log.written();
        let durable = self.tracker.durable();
        if end > durable {
            self.log.flush_range(durable, end)?;
            self.tracker.mark_durable(end);
        }
        Ok(end)
    }

    /// Flushes everything and writes the checkpoint.
    pub(crate) fn checkpoint(&self) -> Result<(), StorageError> {
        let _m = lock(&self.maintenance);
        let (end, store_ms) = {
            let w = lock(&self.writer);
            (w.log.pos(), w.log.last_store_ms())
        };
        // Queue ends at `end`: every entry dispatched up to now (entries past `end` are harmless: they are
        // rebuilt or validated on recovery anyway).
        let mut queues = lock(&self.known_queues).clone();
        for t in self.open_topics() {
            for q in &t.queues {
                queues.insert((t.name.to_string(), q.id), q.next.load(Ordering::Acquire));
            }
        }
        let flushed = self.flush_commitlog()?.max(end);
        self.cq.sync()?;
        self.index.flush()?;
        let c = Checkpoint { commitlog_flushed: flushed, dispatch_flushed: end, last_store_ms: store_ms, queues };
        c.write(&self.dir)?;
        *lock(&self.known_queues) = c.queues;
        Ok(())
    }
}

/// The RocketMQ-model engine (see the crate docs).
pub struct CommitLogEngine {
    pub(crate) inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for CommitLogEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLogEngine").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

impl CommitLogEngine {
    /// Opens the engine over `dir` (creating it if needed), recovering after a crash: see the crate docs.
    pub fn open(dir: &Path, options: CommitLogOptions) -> Result<Self, StorageError> {
        options.validate()?;
        fs::create_dir_all(dir).at(dir)?;
        let log = Arc::new(CommitLog::open(dir, options.file_bytes, options.prewarm)?);
        let cq = CqStore::open(dir, options.consumequeue_file_entries, options.consumequeue_open_files)?;
        let index = IndexStore::open(dir, options.index_slots, options.index_entries)?;
        let tombstones = checkpoint::read_tombstones(dir)?;
        let ckpt = Checkpoint::read(dir)?;
        let crashed = checkpoint::abort_marker_exists(dir) || ckpt.is_none();
        let recovered = crate::recovery::recover_log(&log, ckpt.as_ref(), crashed)?;
        let tracker = FlushTracker::new(recovered.end);
        let writer = log.writer(recovered.end, recovered.last_store_ms, options.staged_writes)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            options,
            log,
            cq,
            index,
            writer: Mutex::new(WriterState { log: writer }),
            topics: RwLock::new(HashMap::new()),
            tombstones: Mutex::new(tombstones),
            uids: Mutex::new(HashMap::new()),
            next_uid: AtomicU64::new(1),
            known_queues: Mutex::new(ckpt.map(|c| c.queues).unwrap_or_default()),
            tracker,
            closed: Mutex::new(None),
            is_closed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            min_interval_ms: AtomicU64::new(u64::MAX),
            maintenance: Mutex::new(()),
            data_changed: Condvar::new(),
            data_lock: Mutex::new(0),
            waiters: AtomicUsize::new(0),
        });
        if crashed {
            crate::recovery::recover_queues(&inner, recovered.scan_from)?;
            inner.checkpoint()?;
        }
        checkpoint::create_abort_marker(dir)?;
        let threads = vec![inner.log.start_allocator().at(dir)?, crate::flusher::start(&inner).at(dir)?];
        Ok(CommitLogEngine { inner, threads: Mutex::new(threads) })
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &CommitLogOptions {
        &self.inner.options
    }

    /// Blocks until `tp` has a message at `offset` (or later) or `timeout` passes; returns whether it has.
    /// Appends wake waiters through a condition variable (no polling).
    pub fn wait_for_data(&self, tp: &TopicPartition, offset: i64, timeout: Duration) -> Result<bool, StorageError> {
        self.inner.wait_for_data(tp, offset, timeout)
    }

    /// How many ConsumeQueue files are open (and mapped) now.
    pub fn open_consume_queue_files(&self) -> usize {
        self.inner.cq.open_files()
    }

    fn stop_threads(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.log.stop();
        // Wakes the flusher (it sees `stopping`).
        drop(self.inner.tracker.waiter(u64::MAX, true));
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    fn check_spec(spec: &TopicSpec) -> Result<(), StorageError> {
        spec.validate()?;
        check_config(&spec.config)
    }

    fn new_topic(&self, spec: &TopicSpec, load: bool) -> Result<Arc<Topic>, StorageError> {
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let queues = if load {
            self.inner.load_queues(&name, spec.partitions)?
        } else {
            (0..spec.partitions)
                .map(|id| {
                    Arc::new(Queue {
                        id,
                        loc: self.inner.queue_loc(&name, id),
                        next: AtomicI64::new(0),
                        start: AtomicI64::new(0),
                        logical_start: AtomicI64::new(0),
                        time_blocks: Mutex::new(HashMap::new()),
                    })
                })
                .collect()
        };
        Ok(Arc::new(Topic { name, config: RwLock::new(spec.config.clone()), queues, deleted: AtomicBool::new(false) }))
    }

    fn append_inner(&self, tp: &TopicPartition, batch: &RecordBatch) -> Result<Appended, StorageError> {
        let inner = &self.inner;
        let (topic, queue) = inner.queue(tp)?;
        let config = topic.config();
        let prepared = prepare(&tp.topic, batch, config.max_message_bytes as usize, inner.options.file_bytes)?;
        let n = prepared.messages.len() as i64;
        let topic_bytes = tp.topic.as_bytes();
        let mut w = lock(&inner.writer);
        inner.check_open()?;
        if topic.deleted.load(Ordering::Acquire) {
            return Err(StorageError::UnknownTopic(tp.topic.clone()));
        }
        let base = queue.next.load(Ordering::Acquire);
        let mark = w.log.pos();
        let mut entries = Vec::with_capacity(prepared.messages.len());
        let mut keys = Vec::new();
        // One store time for the whole batch: it is appended at one instant.
        let store_ms = w.log.store_timestamp();
        let written: Result<(), StorageError> = (|| {
            for (i, m) in prepared.messages.iter().enumerate() {
                let slot = w.log.reserve(m.size)?;
                let meta = MessageMeta {
                    queue_id: tp.partition as i32,
                    queue_offset: base + i as i64,
                    physical_offset: slot.phys as i64,
                    sys_flag: m.sys_flag,
                    born_timestamp: m.record.timestamp_ms,
                    store_timestamp: store_ms,
                    ..MessageMeta::default()
                };
                let body: &[u8] = m.record.value.as_deref().unwrap_or_default();
                let props = &prepared.props[m.props.clone()];
                let path = slot.file.map.path().to_path_buf();
                rec::encode_message(w.log.write(&slot, m.size)?, &meta, m.body_crc, body, topic_bytes, props)
                    .map_err(|e| e.into_storage(path))?;
                w.log.note_store_time(&slot, store_ms);
                entries.push(CqEntry { phys: slot.phys as i64, size: m.size as i32, tag_hash: m.tag_hash });
                keys.extend(m.key_hashes.iter().map(|&h| (h, slot.phys as i64, store_ms)));
            }
            inner.cq.write(&queue.loc, base as u64, &entries)?;
            w.log.publish()
        })();
        if let Err(e) = written {
            if let Err(undo) = w.log.rollback(mark) {
                inner.close(&format!("could not undo a failed append: {undo}"));
            }
            return Err(e);
        }
        for (hash, phys, store_ms) in keys {
            if let Err(e) = inner.index.put(hash, phys, store_ms) {
                tracing::warn!(error = %e, "IndexFile entry not written; key lookups may miss this message");
            }
        }
        queue.next.store(base + n, Ordering::Release);
        let end = w.log.pos();
        drop(w);
        inner.notify_data();
        let durable = match config.flush_policy {
            FlushPolicy::Os => Durable::ready(),
            FlushPolicy::Interval => inner.tracker.waiter(end, false),
            FlushPolicy::Sync => inner.tracker.waiter(end, true),
        };
        Ok(Appended { base_offset: base, last_offset: base + n - 1, durable })
    }

    /// Reads from `offset`; with `tags`, only messages whose tag is one of them (see [`TagFilter`]).
    fn read_inner(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        tags: Option<&[String]>,
    ) -> Result<ReadSlice, StorageError> {
        let inner = &self.inner;
        let (_, queue) = inner.queue(tp)?;
        let o = queue.offsets();
        if offset == o.log_end {
            return Ok(ReadSlice::Empty { next_offset: o.log_end });
        }
        let out_of_range = |o: Offsets| StorageError::OffsetOutOfRange {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            start: o.log_start,
            end: o.log_end,
        };
        if offset < o.log_start || offset > o.log_end {
            return Err(out_of_range(o));
        }
        let tags: Option<(Vec<i64>, &[String])> =
            tags.map(|t| (t.iter().map(|s| rec::tag_hash(Some(s.as_bytes()))).collect(), t));
        let mut regions = Vec::new();
        let mut current: Option<(Arc<crate::commitlog::LogFile>, usize, usize)> = None;
        let mut total = 0usize;
        let mut n = offset;
        let scan_limit = if tags.is_some() { offset.saturating_add(MAX_SCAN_ENTRIES as i64) } else { i64::MAX };
        'outer: while n < o.log_end && n < scan_limit {
            let want = ((o.log_end - n) as usize).min(READ_CHUNK);
            let chunk = inner.cq.read(&queue.loc, n as u64, want)?;
            if chunk.is_empty() {
                return Err(out_of_range(queue.offsets()));
            }
            for e in chunk {
                if !e.is_present() {
                    return Err(StorageError::Corrupt {
                        path: queue.loc.dir.clone(),
                        detail: format!("ConsumeQueue entry {n} of {tp} is missing below the log end"),
                    });
                }
                if let Some((hashes, names)) = &tags {
                    if !hashes.contains(&e.tag_hash) {
                        n += 1;
                        continue;
                    }
                    let wanted = inner.log.with_message(e.phys as u64, |v| {
                        v.tags().ok().flatten().is_some_and(|t| names.iter().any(|name| name.as_bytes() == &t[..]))
                    });
                    if !matches!(wanted, Some(Ok(true))) {
                        n += 1;
                        continue;
                    }
                }
                let size = e.size as usize;
                if total > 0 && total + size > max_bytes {
                    break 'outer;
                }
                let phys = e.phys as u64;
                let extend = current.as_ref().is_some_and(|(f, pos, len)| f.start + (pos + len) as u64 == phys);
                if extend {
                    if let Some(c) = current.as_mut() {
                        c.2 += size;
                    }
                } else {
                    if let Some((f, pos, len)) = current.take() {
                        regions.push(f.map.region(pos, len).ok_or_else(|| out_of_range(queue.offsets()))?);
                    }
                    let file = inner.log.file_at(phys).ok_or_else(|| out_of_range(queue.offsets()))?;
                    let pos = (phys - file.start) as usize;
                    current = Some((file, pos, size));
                }
                total += size;
                n += 1;
                if total >= max_bytes {
                    break 'outer;
                }
            }
        }
        if let Some((f, pos, len)) = current.take() {
            regions.push(f.map.region(pos, len).ok_or_else(|| out_of_range(queue.offsets()))?);
        }
        if regions.is_empty() {
            Ok(ReadSlice::Empty { next_offset: n })
        } else {
            Ok(ReadSlice::Mapped { regions, next_offset: n })
        }
    }
}

fn check_config(config: &TopicConfig) -> Result<(), StorageError> {
    if config.cleanup_policy == CleanupPolicy::Compact {
        return Err(StorageError::Unsupported(
            "cleanup.policy=compact: the commitlog engine keeps one shared CommitLog and cannot compact a topic; \
             use the segment engine"
                .into(),
        ));
    }
    Ok(())
}

impl Engine for CommitLogEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Commitlog
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), StorageError> {
        self.inner.check_open()?;
        Self::check_spec(spec)?;
        let mut topics = sync::write(&self.inner.topics);
        let dir = self.inner.cq.topic_dir(&spec.name);
        if topics.contains_key(&spec.name) || dir.exists() {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        fs::create_dir_all(&dir).at(&dir)?;
        let topic = self.new_topic(spec, false)?;
        topics.insert(spec.name.clone(), topic);
        drop(topics);
        self.inner.refresh_min_interval();
        Ok(())
    }

    fn open_topic(&self, spec: &TopicSpec) -> Result<(), StorageError> {
        self.inner.check_open()?;
        Self::check_spec(spec)?;
        if sync::read(&self.inner.topics).contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        let dir = self.inner.cq.topic_dir(&spec.name);
        fs::create_dir_all(&dir).at(&dir)?;
        let topic = self.new_topic(spec, true)?;
        let mut topics = sync::write(&self.inner.topics);
        if topics.contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        topics.insert(spec.name.clone(), topic);
        drop(topics);
        self.inner.refresh_min_interval();
        Ok(())
    }

    fn alter_topic(&self, topic: &str, config: &TopicConfig) -> Result<(), StorageError> {
        let t = self.inner.topic(topic)?;
        check_config(config)?;
        *sync::write(&t.config) = config.clone();
        self.inner.refresh_min_interval();
        Ok(())
    }

    fn purge_topic(&self, topic: &str) -> Result<(), StorageError> {
        // `delete_topic` already works on a topic that is not open but has ConsumeQueue directories (it
        // removes them and records the tombstone that keeps recovery from dispatching its messages again).
        match self.delete_topic(topic) {
            Ok(()) | Err(StorageError::UnknownTopic(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn delete_topic(&self, topic: &str) -> Result<(), StorageError> {
        self.inner.check_open()?;
        validate_topic_name(topic)?;
        let dir = self.inner.cq.topic_dir(topic);
        let removed = sync::write(&self.inner.topics).remove(topic);
        if removed.is_none() && !dir.exists() {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        {
            let w = lock(&self.inner.writer);
            if let Some(t) = &removed {
                t.deleted.store(true, Ordering::Release);
            }
            let mut tombstones = lock(&self.inner.tombstones);
            tombstones.insert(topic.to_string(), w.log.pos());
            checkpoint::write_tombstones(&self.inner.dir, &tombstones)?;
        }
        self.inner.forget_topic_uids(topic);
        self.inner.cq.forget_dir(&dir);
        lock(&self.inner.known_queues).retain(|k, _| k.0 != topic);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(dir, e)),
        }
        janus_api::fsutil::sync_dir(self.inner.cq.root())?;
        self.inner.refresh_min_interval();
        Ok(())
    }

    fn topics_on_disk(&self) -> Result<Vec<String>, StorageError> {
        self.inner.check_open()?;
        let root = self.inner.cq.root();
        let mut names: Vec<String> = sync::read(&self.inner.topics).keys().cloned().collect();
        for entry in fs::read_dir(root).at(root)? {
            let entry = entry.at(root)?;
            if let Some(name) = entry.file_name().to_str()
                && validate_topic_name(name).is_ok()
                && entry.path().is_dir()
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn append(&self, tp: &TopicPartition, batch: RecordBatch) -> Result<Appended, StorageError> {
        self.append_inner(tp, &batch)
    }

    fn read(&self, tp: &TopicPartition, offset: i64, max_bytes: usize) -> Result<ReadSlice, StorageError> {
        self.read_inner(tp, offset, max_bytes, None)
    }

    fn decode_records(&self, slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
        decode_slice(slice, from_offset)
    }

    fn encode_batches(&self, slice: &ReadSlice) -> Result<Bytes, StorageError> {
        encode_as_batches(&decode_slice(slice, i64::MIN)?)
    }

    fn offsets(&self, tp: &TopicPartition) -> Result<Offsets, StorageError> {
        Ok(self.inner.queue(tp)?.1.offsets())
    }

    fn offset_for_timestamp(&self, tp: &TopicPartition, ts_ms: i64) -> Result<Option<i64>, StorageError> {
        let (_, queue) = self.inner.queue(tp)?;
        crate::lookup::offset_for_timestamp(&self.inner, &queue, ts_ms)
    }

    fn delete_records_before(&self, tp: &TopicPartition, offset: i64) -> Result<i64, StorageError> {
        let (_, queue) = self.inner.queue(tp)?;
        let _m = lock(&self.inner.maintenance);
        let o = queue.offsets();
        if offset > o.log_end {
            return Err(StorageError::OffsetOutOfRange {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                start: o.log_start,
                end: o.log_end,
            });
        }
        if offset <= o.log_start {
            return Ok(o.log_start);
        }
        checkpoint::write_log_start(&queue.loc.dir, offset)?;
        queue.logical_start.store(offset, Ordering::Release);
        queue.start.fetch_max(offset, Ordering::AcqRel);
        Ok(offset)
    }

    fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, StorageError> {
        self.inner.check_open()?;
        crate::retention::enforce(&self.inner, now_ms)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.check_open()?;
        self.inner.checkpoint()
    }

    fn shutdown(&self) -> Result<(), StorageError> {
        self.inner.check_open()?;
        let result = self.inner.checkpoint();
        self.inner.close("the engine was shut down");
        self.stop_threads();
        self.inner.tracker.fail("the engine was shut down");
        result?;
        checkpoint::remove_abort_marker(&self.inner.dir)
    }

    fn tag_filter(&self) -> Option<&dyn TagFilter> {
        Some(self)
    }

    fn key_lookup(&self) -> Option<&dyn KeyLookup> {
        Some(self)
    }
}

impl TagFilter for CommitLogEngine {
    fn read_tagged(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        tags: &[String],
    ) -> Result<ReadSlice, StorageError> {
        self.read_inner(tp, offset, max_bytes, Some(tags))
    }
}

/// The records of a slice this engine returned, at or after `from_offset`, every body CRC checked.
fn decode_slice(slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
    let mut out = Vec::new();
    match slice {
        ReadSlice::Empty { .. } => {}
        ReadSlice::Mapped { regions, .. } => {
            for region in regions {
                rec::decode_region(region, from_offset, &mut out)?;
            }
        }
        ReadSlice::File { .. } => {
            return Err(StorageError::Unsupported(
                "a file slice holds segment batches; the commitlog engine only decodes its own mapped slices".into(),
            ));
        }
    }
    Ok(out)
}

/// Kafka RecordBatch v2 bytes for `records` (in offset order): one uncompressed batch per run of
/// contiguous offsets, each record keeping its offset, timestamp, key, value and headers.
fn encode_as_batches(records: &[Record]) -> Result<Bytes, StorageError> {
    let mut out = Vec::new();
    let mut rest = records;
    while let Some(first) = rest.first() {
        let run = 1 + rest.windows(2).take_while(|w| w[0].offset.checked_add(1) == Some(w[1].offset)).count();
        let (batch, tail) = rest.split_at(run);
        let last_offset_delta = i32::try_from(run - 1)
            .map_err(|_| StorageError::Unsupported(format!("{run} contiguous records do not fit in one batch")))?;
        let built = RecordBatch::build_with_offsets(first.offset, last_offset_delta, batch, Compression::None)?;
        out.extend_from_slice(built.as_bytes());
        rest = tail;
    }
    Ok(Bytes::from(out))
}

impl Drop for CommitLogEngine {
    fn drop(&mut self) {
        self.inner.close("the engine was dropped");
        self.stop_threads();
        self.inner.tracker.fail("the engine was dropped before the data was flushed");
    }
}
