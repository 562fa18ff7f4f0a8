//! The engine: opening (with recovery) and closing, topic administration, and the [`Engine`] and
//! [`TagFilter`] traits, which hand appends, reads and lookups to their modules with the shared [`State`].

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use janus_api::sync::{self, lock};
use janus_api::{
    Appended, CleanupPolicy, Engine, EngineKind, FlushTracker, IoResultExt, KeyLookup, Offsets, ReadSlice, Record,
    RecordBatch, RetentionReport, StorageError, TagFilter, TopicConfig, TopicPartition, TopicSpec, validate_topic_name,
};

use crate::checkpoint::{self, Checkpoint};
use crate::commitlog::CommitLog;
use crate::consume_queue::CqStore;
use crate::index_file::IndexStore;
use crate::options::CommitLogOptions;
use crate::state::{Queue, State, Topic};
use crate::writer::LogWriter;

/// The RocketMQ-model engine (see the crate docs).
pub struct CommitLogEngine {
    pub(crate) state: Arc<State>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for CommitLogEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitLogEngine").field("dir", &self.state.dir).finish_non_exhaustive()
    }
}

impl CommitLogEngine {
    /// Opens the engine over `dir` (creating it if needed), recovering after a crash: see the crate docs.
    pub fn open(dir: &Path, options: CommitLogOptions) -> Result<Self, StorageError> {
        options.validate()?;
        fs::create_dir_all(dir).at(dir)?;
        let log =
            Arc::new(CommitLog::open(dir, options.file_bytes, options.prewarm)?.with_min_free(options.min_free_bytes));
        let cq = CqStore::open(dir, options.consumequeue_file_entries, options.consumequeue_open_files)?;
        let index = IndexStore::open(dir, options.index_slots, options.index_entries)?;
        let tombstones = checkpoint::read_tombstones(dir)?;
        let ckpt = Checkpoint::read(dir)?;
        let crashed = checkpoint::abort_marker_exists(dir) || ckpt.is_none();
        let recovered = crate::recovery::recover_log(&log, ckpt.as_ref(), crashed)?;
        let tracker = FlushTracker::new(recovered.end);
        let writer = LogWriter::new(&log, recovered.end, recovered.last_store_ms, options.staged_writes)?;
        let known_queues = ckpt.map(|c| c.queues).unwrap_or_default();
        let state =
            Arc::new(State::new(dir.to_path_buf(), options, log, cq, index, writer, tombstones, known_queues, tracker));
        if crashed {
            crate::recovery::recover_queues(&state, recovered.scan_from)?;
            crate::flusher::checkpoint(&state)?;
        }
        checkpoint::create_abort_marker(dir)?;
        let threads = vec![state.log.start_allocator().at(dir)?, crate::flusher::start(&state).at(dir)?];
        Ok(CommitLogEngine { state, threads: Mutex::new(threads) })
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        &self.state.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &CommitLogOptions {
        &self.state.options
    }

    /// Blocks until `tp` has a message at `offset` (or later) or `timeout` passes; returns whether it has.
    /// Appends wake waiters through a condition variable (no polling).
    pub fn wait_for_data(&self, tp: &TopicPartition, offset: i64, timeout: Duration) -> Result<bool, StorageError> {
        self.state.wait_for_data(tp, offset, timeout)
    }

    /// How many ConsumeQueue files are open (and mapped) now.
    pub fn open_consume_queue_files(&self) -> usize {
        self.state.cq.open_files()
    }

    fn stop_threads(&self) {
        self.state.stopping.store(true, Ordering::Release);
        self.state.log.stop();
        // Wakes the flusher (it sees `stopping`).
        drop(self.state.tracker.waiter(u64::MAX, true));
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
            crate::recovery::load_queues(&self.state, &name, spec.partitions)?
        } else {
            (0..spec.partitions).map(|id| Queue::new(id, self.state.queue_loc(&name, id), 0, 0, 0)).collect()
        };
        Ok(Arc::new(Topic { name, config: RwLock::new(spec.config.clone()), queues, deleted: AtomicBool::new(false) }))
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
        self.state.check_open()?;
        Self::check_spec(spec)?;
        let mut topics = sync::write(&self.state.topics);
        let dir = self.state.cq.topic_dir(&spec.name);
        if topics.contains_key(&spec.name) || dir.exists() {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        fs::create_dir_all(&dir).at(&dir)?;
        let topic = self.new_topic(spec, false)?;
        topics.insert(spec.name.clone(), topic);
        drop(topics);
        self.state.refresh_min_interval();
        Ok(())
    }

    fn open_topic(&self, spec: &TopicSpec) -> Result<(), StorageError> {
        self.state.check_open()?;
        Self::check_spec(spec)?;
        if sync::read(&self.state.topics).contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        let dir = self.state.cq.topic_dir(&spec.name);
        fs::create_dir_all(&dir).at(&dir)?;
        let topic = self.new_topic(spec, true)?;
        let mut topics = sync::write(&self.state.topics);
        if topics.contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        topics.insert(spec.name.clone(), topic);
        drop(topics);
        self.state.refresh_min_interval();
        Ok(())
    }

    fn alter_topic(&self, topic: &str, config: &TopicConfig) -> Result<(), StorageError> {
        let t = self.state.topic(topic)?;
        check_config(config)?;
        *sync::write(&t.config) = config.clone();
        self.state.refresh_min_interval();
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
        self.state.check_open()?;
        validate_topic_name(topic)?;
        let dir = self.state.cq.topic_dir(topic);
        let removed = sync::write(&self.state.topics).remove(topic);
        if removed.is_none() && !dir.exists() {
            return Err(StorageError::UnknownTopic(topic.to_string()));
        }
        {
            let w = lock(&self.state.writer);
            if let Some(t) = &removed {
                t.deleted.store(true, Ordering::Release);
            }
            let mut tombstones = lock(&self.state.tombstones);
            tombstones.insert(topic.to_string(), w.pos());
            checkpoint::write_tombstones(&self.state.dir, &tombstones)?;
        }
        self.state.forget_queues(topic);
        self.state.cq.forget_dir(&dir);
        lock(&self.state.known_queues).retain(|k, _| k.0 != topic);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(dir, e)),
        }
        janus_api::fsutil::sync_dir(self.state.cq.root())?;
        self.state.refresh_min_interval();
        Ok(())
    }

    fn topics_on_disk(&self) -> Result<Vec<String>, StorageError> {
        self.state.check_open()?;
        let root = self.state.cq.root();
        let mut names: Vec<String> = sync::read(&self.state.topics).keys().cloned().collect();
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
        crate::append::append(&self.state, tp, &batch)
    }

    fn read(&self, tp: &TopicPartition, offset: i64, max_bytes: usize) -> Result<ReadSlice, StorageError> {
        crate::read::read(&self.state, tp, offset, max_bytes, None)
    }

    fn decode_records(&self, slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
        crate::read::decode_slice(slice, from_offset)
    }

    fn encode_batches(&self, slice: &ReadSlice) -> Result<Bytes, StorageError> {
        crate::read::encode_slice(slice)
    }

    fn offsets(&self, tp: &TopicPartition) -> Result<Offsets, StorageError> {
        Ok(self.state.queue(tp)?.1.offsets())
    }

    fn offset_for_timestamp(&self, tp: &TopicPartition, ts_ms: i64) -> Result<Option<i64>, StorageError> {
        let (_, queue) = self.state.queue(tp)?;
        crate::lookup::offset_for_timestamp(&self.state.cq, &self.state.log, &queue, ts_ms)
    }

    fn delete_records_before(&self, tp: &TopicPartition, offset: i64) -> Result<i64, StorageError> {
        let (_, queue) = self.state.queue(tp)?;
        let _m = lock(&self.state.maintenance);
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
        self.state.check_open()?;
        crate::retention::enforce(&self.state, now_ms)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.state.check_open()?;
        crate::flusher::checkpoint(&self.state)
    }

    fn shutdown(&self) -> Result<(), StorageError> {
        self.state.check_open()?;
        let result = crate::flusher::checkpoint(&self.state);
        self.state.close("the engine was shut down");
        self.stop_threads();
        self.state.tracker.fail("the engine was shut down");
        result?;
        checkpoint::remove_abort_marker(&self.state.dir)
    }

    fn tag_filter(&self) -> Option<&dyn TagFilter> {
        Some(self)
    }

    fn key_lookup(&self) -> Option<&dyn KeyLookup> {
        Some(self)
    }
}

impl KeyLookup for CommitLogEngine {
    fn lookup_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<(TopicPartition, Record)>, StorageError> {
        crate::lookup::lookup_by_key(&self.state, topic, key, begin_ms, end_ms, max)
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
        crate::read::read(&self.state, tp, offset, max_bytes, Some(tags))
    }
}

impl Drop for CommitLogEngine {
    fn drop(&mut self) {
        self.state.close("the engine was dropped");
        self.stop_threads();
        self.state.tracker.fail("the engine was dropped before the data was flushed");
    }
}
