//! `SegmentEngine`: the Kafka-model engine. Topics map to partition directories; each partition is loaded
//! lazily on first use, and only recently used partitions keep their active segment's descriptor and index
//! mappings open, so brokers with tens of thousands of partitions stay within descriptor and map limits.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use janus_api::sync::{self, lock};
use janus_api::{
    Appended, CleanupPolicy, Compaction, Durable, Engine, EngineKind, FlushPolicy, IoResultExt, Offsets, ReadSlice,
    Record, RecordBatch, RetentionReport, StorageError, TopicConfig, TopicPartition, TopicSpec, now_ms,
    validate_topic_name,
};

use crate::checkpoint;
use crate::flusher::GroupCommit;
use crate::log::{AppendInfo, LoadHints, PartitionLog};
use crate::naming::{DELETE_DIR_SUFFIX, parse_partition_dir, partition_dir_name};
use crate::options::SegmentOptions;
use janus_api::fsutil::sync_dir;

/// Marker file written by a clean shutdown; its absence at open means the last run crashed.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Offsets below which each partition's data is known to be on disk.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Each partition's log start offset.
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";

/// Most bytes of batches one writer takes from a partition's queue for one group (at least one batch).
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;
/// Most groups a writer writes for others once its own batch is written, before it hands the role on.
const MAX_GROUPS_PER_WRITER: usize = 16;

/// Appends waiting for a partition's writer. Producers queue their (validated) batches here; whichever finds
/// no writer active becomes the writer, takes the queue in order, writes it as one group under the log lock
/// and publishes every result. Only offset assignment and the write are serialized, and one `pwritev` and
/// one lock hand-over serve several producers instead of one each.
#[derive(Default)]
struct AppendQueue {
    /// Queued batches with their tickets, in arrival order (the order their offsets are assigned in).
    waiting: VecDeque<(u64, RecordBatch)>,
    next_ticket: u64,
    /// Results not yet collected by their producers.
    done: HashMap<u64, Result<AppendInfo, StorageError>>,
    /// Whether a writer is active.
    writing: bool,
}

/// One partition's slot: loaded lazily, its files opened and closed by use.
struct Slot {
    tp: TopicPartition,
    dir: PathBuf,
    log: Mutex<Option<PartitionLog>>,
    appends: Mutex<AppendQueue>,
    /// Signalled when results are published or the writer steps down.
    appended: Condvar,
    /// Whether the active segment's files are open (mirrors the log, readable without its lock).
    open: AtomicBool,
    last_access: AtomicU64,
    recovery_point: Arc<AtomicI64>,
}

struct Topic {
    config: RwLock<TopicConfig>,
    partitions: Vec<Arc<Slot>>,
}

impl Topic {
    fn config(&self) -> TopicConfig {
        sync::read(&self.config).clone()
    }
}

/// Checkpointed numbers read at open and kept current for partitions that are not loaded.
#[derive(Default)]
struct Checkpoints {
    recovery_points: HashMap<TopicPartition, i64>,
    log_starts: HashMap<TopicPartition, i64>,
}

struct Inner {
    dir: PathBuf,
    options: SegmentOptions,
    previous_run_clean: bool,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    checkpoints: Mutex<Checkpoints>,
    group_commit: GroupCommit,
    closed: AtomicBool,
    open_partitions: AtomicUsize,
    clock: AtomicU64,
    evicting: Mutex<()>,
    /// Held while a checkpoint file is rewritten: the flusher and `flush`/`delete_topic`/`shutdown` share
    /// each file's temp name.
    checkpoint_writes: Mutex<()>,
}

/// The Kafka-model storage engine.
pub struct SegmentEngine {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl SegmentEngine {
    /// Opens (creating if needed) an engine over `dir`. Partitions are loaded when first used; if the
    /// previous run did not shut down cleanly, each is recovered from its recovery point as it loads.
    pub fn open(dir: &Path, options: SegmentOptions) -> Result<Self, StorageError> {
        options.validate()?;
        fs::create_dir_all(dir).at(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let previous_run_clean = marker.exists();
        if previous_run_clean {
            fs::remove_file(&marker).at(&marker)?;
            sync_dir(dir)?;
        }
        remove_deleting_dirs(dir)?;
        let checkpoints = Checkpoints {
            recovery_points: read_checkpoint_leniently(&dir.join(RECOVERY_POINT_FILE)),
            log_starts: read_checkpoint_leniently(&dir.join(LOG_START_FILE)),
        };
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            options,
            previous_run_clean,
            topics: RwLock::default(),
            checkpoints: Mutex::new(checkpoints),
            group_commit: GroupCommit::default(),
            closed: AtomicBool::new(false),
            open_partitions: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            evicting: Mutex::new(()),
            checkpoint_writes: Mutex::new(()),
        });
        let flusher = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("segment-flusher".into())
                .spawn(move || {
                    let mut last_checkpoint = Instant::now();
                    inner.group_commit.run(|| {
                        if last_checkpoint.elapsed() >= inner.options.checkpoint_interval {
                            last_checkpoint = Instant::now();
                            if let Err(e) = inner.write_recovery_points() {
                                tracing::warn!(error = %e, "could not write the recovery-point checkpoint");
                            }
                        }
                    })
                })
                .map_err(|e| StorageError::io(dir, e))?
        };
        tracing::info!(dir = %dir.display(), clean = previous_run_clean, "segment engine open");
        Ok(SegmentEngine { inner, flusher: Mutex::new(Some(flusher)) })
    }

    /// The directory the engine stores its data in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// How many partitions currently hold open files.
    pub fn open_partition_count(&self) -> usize {
        self.inner.open_partitions.load(Ordering::Acquire)
    }

    /// How many group-commit flush rounds have run (each syncs every dirty file once, however many appends
    /// wait on it).
    pub fn flush_rounds(&self) -> u64 {
        self.inner.group_commit.rounds()
    }

    fn stop_flusher(&self) {
        self.inner.group_commit.stop();
        if let Some(handle) = lock(&self.flusher).take() {
            let _ = handle.join();
        }
    }
}

impl Drop for SegmentEngine {
    fn drop(&mut self) {
        // No clean-shutdown marker: the next open recovers, exactly as after a crash.
        self.stop_flusher();
        self.inner.group_commit.tracker().fail("segment engine dropped without shutdown");
    }
}

fn read_checkpoint_leniently(path: &Path) -> HashMap<TopicPartition, i64> {
    checkpoint::read(path).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring a damaged checkpoint; partitions will be recovered in full");
        HashMap::new()
    })
}

fn remove_deleting_dirs(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_name().to_string_lossy().ends_with(DELETE_DIR_SUFFIX) {
            fs::remove_dir_all(entry.path()).at(entry.path())?;
        }
    }
    Ok(())
}

impl Inner {
    fn check_open(&self) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed("the segment engine has been shut down".into()))
        } else {
            Ok(())
        }
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        self.check_open()?;
        let topics = sync::read(&self.topics);
        topics.get(name).cloned().ok_or_else(|| StorageError::UnknownTopic(name.to_string()))
    }

    fn slot(&self, tp: &TopicPartition) -> Result<(Arc<Topic>, Arc<Slot>), StorageError> {
        let topic = self.topic(&tp.topic)?;
        let slot =
            topic.partitions.get(tp.partition as usize).cloned().ok_or_else(|| StorageError::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                partitions: topic.partitions.len() as u32,
            })?;
        Ok((topic, slot))
    }

    fn all_slots(&self) -> Vec<(Arc<Topic>, Arc<Slot>)> {
        let topics = sync::read(&self.topics);
        topics.values().flat_map(|t| t.partitions.iter().map(move |s| (Arc::clone(t), Arc::clone(s)))).collect()
    }

    /// Runs `f` on the partition's log, loading it first if needed; `for_append` also (re)opens its files.
    fn with_log<R>(
        &self,
        topic: &Topic,
        slot: &Slot,
        for_append: bool,
        f: impl FnOnce(&mut PartitionLog) -> Result<R, StorageError>,
    ) -> Result<R, StorageError> {
        let result = {
            let mut guard = lock(&slot.log);
            if guard.is_none() {
                *guard = Some(self.load(topic, slot)?);
                slot.open.store(true, Ordering::Release);
                self.open_partitions.fetch_add(1, Ordering::AcqRel);
            }
            let log = guard.as_mut().ok_or_else(|| StorageError::Closed("partition unloaded".into()))?;
            if for_append && !log.is_open() {
                log.reopen()?;
                slot.open.store(true, Ordering::Release);
                self.open_partitions.fetch_add(1, Ordering::AcqRel);
            }
            slot.last_access.store(self.clock.fetch_add(1, Ordering::AcqRel), Ordering::Release);
            f(log)
        };
        self.maybe_evict();
        result
    }

    /// Appends a validated batch through the partition's [`AppendQueue`]: queues it, then either collects the
    /// result a writer published for it or becomes the writer itself.
    fn append_queued(
        &self,
        topic: &Topic,
        slot: &Slot,
        batch: RecordBatch,
        config: &TopicConfig,
    ) -> Result<AppendInfo, StorageError> {
        let mut queue = lock(&slot.appends);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push_back((ticket, batch));
        // Ends: a writer that takes this batch publishes its result before it steps down, and one that steps
        // down with batches queued wakes their producers, one of which becomes the next writer.
        loop {
            if let Some(result) = queue.done.remove(&ticket) {
                return result;
            }
            if !queue.writing {
                break;
            }
            queue = sync::wait(&slot.appended, queue);
        }
        queue.writing = true;
        let mut duty = WriterDuty { slot, in_flight: Vec::new(), released: false };
        let mut groups = 0;
        // Bounded: every pass takes at least one queued batch; this producer's own is among the queued ones
        // until written, and after it at most MAX_GROUPS_PER_WRITER passes run.
        loop {
            let mut bytes = 0;
            let mut tickets = Vec::new();
            let mut group = Vec::new();
            while let Some((_, next)) = queue.waiting.front() {
                if !group.is_empty() && bytes + next.len() > MAX_GROUP_BYTES {
                    break;
                }
                let Some((t, b)) = queue.waiting.pop_front() else { break };
                bytes += b.len();
                tickets.push(t);
                group.push(b);
            }
            duty.in_flight.clone_from(&tickets);
            drop(queue);
            let results = match self.with_log(topic, slot, true, |log| Ok(log.append_group(&group, config, now_ms()))) {
                Ok(results) => results,
                // Loading or reopening the partition failed: each batch tries on its own, for its own error.
                Err(e) if group.len() == 1 => vec![Err(e)],
                Err(_) => group
                    .iter()
                    .map(|b| self.with_log(topic, slot, true, |log| log.append(b, config, now_ms())))
                    .collect(),
            };
            queue = lock(&slot.appends);
            for (t, r) in tickets.into_iter().zip(results) {
                queue.done.insert(t, r);
            }
            duty.in_flight.clear();
            slot.appended.notify_all();
            groups += 1;
            let mine_written = queue.done.contains_key(&ticket);
            if queue.waiting.is_empty() || (mine_written && groups >= MAX_GROUPS_PER_WRITER) {
                break;
            }
        }
        let result = queue.done.remove(&ticket);
        drop(duty.step_down(queue));
        result.unwrap_or_else(|| Err(StorageError::Closed("the partition writer lost an append's result".into())))
    }

    fn load(&self, topic: &Topic, slot: &Slot) -> Result<PartitionLog, StorageError> {
        let (recovery_point, log_start) = {
            let cp = lock(&self.checkpoints);
            (cp.recovery_points.get(&slot.tp).copied(), cp.log_starts.get(&slot.tp).copied())
        };
        let hints = LoadHints { clean: self.previous_run_clean, recovery_point, log_start };
        fs::create_dir_all(&slot.dir).at(&slot.dir)?;
        let config = topic.config();
        let log =
            PartitionLog::load(&slot.dir, slot.tp.clone(), &config, self.options.max_index_bytes, hints, now_ms())?;
        let durable =
            if self.previous_run_clean { log.log_end() } else { recovery_point.unwrap_or(0).min(log.log_end()) };
        slot.recovery_point.store(durable, Ordering::Release);
        Ok(log)
    }

    /// Closes the least recently used partitions' files while more than `max_open_partitions` are open.
    fn maybe_evict(&self) {
        let max = self.options.max_open_partitions;
        if self.open_partitions.load(Ordering::Acquire) <= max {
            return;
        }
        let Ok(_evicting) = self.evicting.try_lock() else { return };
        let mut candidates: Vec<(u64, Arc<Slot>)> = self
            .all_slots()
            .into_iter()
            .filter(|(_, s)| s.open.load(Ordering::Acquire))
            .map(|(_, s)| (s.last_access.load(Ordering::Acquire), s))
            .collect();
        candidates.sort_unstable_by_key(|(tick, _)| *tick);
        let target = max - max / 10;
        for (_, slot) in candidates {
            if self.open_partitions.load(Ordering::Acquire) <= target {
                break;
            }
            let Ok(mut guard) = slot.log.try_lock() else { continue };
            if let Some(log) = guard.as_mut().filter(|l| l.is_open()) {
                match log.close() {
                    Ok(()) => {
                        slot.open.store(false, Ordering::Release);
                        self.open_partitions.fetch_sub(1, Ordering::AcqRel);
                    }
                    Err(e) => tracing::warn!(partition = %slot.tp, error = %e, "could not close idle partition"),
                }
            }
        }
    }

    fn write_recovery_points(&self) -> Result<(), StorageError> {
        // Snapshot and write under one lock, so that an older snapshot never replaces a newer file.
        let _writing = lock(&self.checkpoint_writes);
        let map = {
            let mut cp = lock(&self.checkpoints);
            for (_, slot) in self.all_slots() {
                if let Ok(guard) = slot.log.try_lock()
                    && guard.is_some()
                {
                    cp.recovery_points.insert(slot.tp.clone(), slot.recovery_point.load(Ordering::Acquire));
                }
            }
            cp.recovery_points.clone()
        };
        checkpoint::write(&self.dir.join(RECOVERY_POINT_FILE), &map)
    }

    fn write_log_starts(&self) -> Result<(), StorageError> {
        let _writing = lock(&self.checkpoint_writes);
        let map = lock(&self.checkpoints).log_starts.clone();
        checkpoint::write(&self.dir.join(LOG_START_FILE), &map)
    }

    fn register_topic(&self, spec: &TopicSpec, must_be_new: bool) -> Result<(), StorageError> {
        self.check_open()?;
        spec.validate()?;
        let mut topics = sync::write(&self.topics);
        if topics.contains_key(&spec.name) {
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        if must_be_new && self.topics_on_disk()?.iter().any(|t| t == &spec.name) {
            // Its files are still on disk: the caller should open it, or delete it first.
            return Err(StorageError::TopicExists(spec.name.clone()));
        }
        let mut partitions = Vec::with_capacity(spec.partitions as usize);
        for p in 0..spec.partitions {
            let tp = TopicPartition::new(spec.name.clone(), p);
            let dir = self.dir.join(partition_dir_name(&tp));
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !must_be_new => {}
                Err(e) => return Err(StorageError::io(&dir, e)),
            }
            partitions.push(Arc::new(Slot {
                tp,
                dir,
                log: Mutex::new(None),
                appends: Mutex::default(),
                appended: Condvar::new(),
                open: AtomicBool::new(false),
                last_access: AtomicU64::new(0),
                recovery_point: Arc::new(AtomicI64::new(0)),
            }));
        }
        sync_dir(&self.dir)?;
        topics.insert(spec.name.clone(), Arc::new(Topic { config: RwLock::new(spec.config.clone()), partitions }));
        Ok(())
    }

    fn topics_on_disk(&self) -> Result<Vec<String>, StorageError> {
        let mut names = BTreeSet::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            if let Some(tp) = entry.file_name().to_str().and_then(parse_partition_dir)
                && entry.path().is_dir()
            {
                names.insert(tp.topic);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The partitions of `topic` that have a directory on disk.
    fn partitions_on_disk(&self, topic: &str) -> Result<Vec<TopicPartition>, StorageError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            if let Some(tp) = entry.file_name().to_str().and_then(parse_partition_dir)
                && tp.topic == topic
                && entry.path().is_dir()
            {
                found.push(tp);
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes the directory of `tp` (whose log, if loaded, is closed) and forgets its checkpointed
    /// numbers; [`Inner::after_partitions_removed`] makes that durable. The directory is renamed first, so a
    /// crash mid-delete never leaves a half-deleted partition that looks live (open removes `.deleting`).
    fn remove_partition_files(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        self.group_commit.forget(tp);
        let dir = self.dir.join(partition_dir_name(tp));
        let doomed = self.dir.join(format!("{}{DELETE_DIR_SUFFIX}", partition_dir_name(tp)));
        match fs::rename(&dir, &doomed) {
            Ok(()) => fs::remove_dir_all(&doomed).at(&doomed)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&dir, e)),
        }
        let mut cp = lock(&self.checkpoints);
        cp.recovery_points.remove(tp);
        cp.log_starts.remove(tp);
        Ok(())
    }

    /// Makes removed partition directories and their forgotten checkpoint entries durable.
    fn after_partitions_removed(&self) -> Result<(), StorageError> {
        sync_dir(&self.dir)?;
        self.write_log_starts()?;
        self.write_recovery_points()
    }

    /// Syncs everything: dirty files, every loaded partition's active segment, and the checkpoints.
    fn flush_all(&self) -> Result<(), StorageError> {
        self.group_commit.flush_round()?;
        for (_, slot) in self.all_slots() {
            let guard = lock(&slot.log);
            if let Some(log) = guard.as_ref() {
                log.sync()?;
                slot.recovery_point.store(log.log_end(), Ordering::Release);
            }
        }
        self.write_recovery_points()?;
        self.write_log_starts()
    }
}

/// The writer role of a partition's [`AppendQueue`], held by one producer at a time. Stepping down (or
/// unwinding from a panic) clears the role and wakes the waiting producers; batches taken but not written
/// when it unwinds get an error instead of leaving their producers waiting forever.
struct WriterDuty<'a> {
    slot: &'a Slot,
    /// Tickets taken from the queue whose results are not yet published.
    in_flight: Vec<u64>,
    released: bool,
}

impl<'a> WriterDuty<'a> {
    /// Steps down with the queue's lock already held.
    fn step_down(mut self, mut queue: MutexGuard<'a, AppendQueue>) -> MutexGuard<'a, AppendQueue> {
        self.release(&mut queue);
        queue
    }

    fn release(&mut self, queue: &mut AppendQueue) {
        for t in self.in_flight.drain(..) {
            queue.done.entry(t).or_insert_with(|| Err(StorageError::Closed("the partition writer failed".into())));
        }
        queue.writing = false;
        self.released = true;
        self.slot.appended.notify_all();
    }
}

impl Drop for WriterDuty<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let mut queue = lock(&self.slot.appends);
        self.release(&mut queue);
    }
}

/// Checks what an append must satisfy before anything is written: a valid batch of dense offsets, within
/// `max.message.bytes`, with keys on compacted topics.
fn check_batch(batch: &RecordBatch, config: &TopicConfig) -> Result<(), StorageError> {
    if batch.len() > config.max_message_bytes as usize {
        return Err(StorageError::MessageTooLarge { size: batch.len(), max: config.max_message_bytes as usize });
    }
    let header = batch.validate_within(config.max_decompressed_bytes())?;
    if header.records_count <= 0 {
        return Err(StorageError::InvalidBatch(janus_api::BatchError::Empty));
    }
    if header.records_count as i64 != header.last_offset_delta as i64 + 1 {
        return Err(StorageError::InvalidBatch(janus_api::BatchError::Corrupt(format!(
            "a produced batch must hold offsets 0..={} densely, but holds {} records",
            header.last_offset_delta, header.records_count
        ))));
    }
    if config.cleanup_policy == CleanupPolicy::Compact {
        let mut keyless = false;
        batch.for_each_record(|_, _, r| keyless |= r.key.is_none())?;
        if keyless {
            return Err(StorageError::InvalidRecord("a compacted topic only accepts records with a key".into()));
        }
    }
    Ok(())
}

impl Engine for SegmentEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Segment
    }

    fn create_topic(&self, spec: &TopicSpec) -> Result<(), StorageError> {
        self.inner.register_topic(spec, true)
    }

    fn open_topic(&self, spec: &TopicSpec) -> Result<(), StorageError> {
        self.inner.register_topic(spec, false)
    }

    fn alter_topic(&self, topic: &str, config: &TopicConfig) -> Result<(), StorageError> {
        let t = self.inner.topic(topic)?;
        *sync::write(&t.config) = config.clone();
        Ok(())
    }

    fn delete_topic(&self, topic: &str) -> Result<(), StorageError> {
        self.inner.check_open()?;
        let removed = sync::write(&self.inner.topics)
            .remove(topic)
            .ok_or_else(|| StorageError::UnknownTopic(topic.to_string()))?;
        for slot in &removed.partitions {
            let mut guard = lock(&slot.log);
            if let Some(mut log) = guard.take() {
                if log.is_open() {
                    self.inner.open_partitions.fetch_sub(1, Ordering::AcqRel);
                }
                log.close()?;
            }
            slot.open.store(false, Ordering::Release);
            self.inner.remove_partition_files(&slot.tp)?;
        }
        self.inner.after_partitions_removed()
    }

    fn purge_topic(&self, topic: &str) -> Result<(), StorageError> {
        self.inner.check_open()?;
        validate_topic_name(topic)?;
        match self.delete_topic(topic) {
            Ok(()) | Err(StorageError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
        // What no open topic covers: partition directories of a topic never opened in this run (or beyond
        // the partition count it was opened with), left by a crash or an earlier broker.
        let leftovers = self.inner.partitions_on_disk(topic)?;
        for tp in &leftovers {
            self.inner.remove_partition_files(tp)?;
        }
        if leftovers.is_empty() { Ok(()) } else { self.inner.after_partitions_removed() }
    }

    fn topics_on_disk(&self) -> Result<Vec<String>, StorageError> {
        self.inner.check_open()?;
        self.inner.topics_on_disk()
    }

    fn append(&self, tp: &TopicPartition, batch: RecordBatch) -> Result<Appended, StorageError> {
        let (topic, slot) = self.inner.slot(tp)?;
        let config = topic.config();
        check_batch(&batch, &config)?;
        let info = self.inner.append_queued(&topic, &slot, batch, &config)?;
        let active = Arc::clone(&info.log_file);
        let gc = &self.inner.group_commit;
        let durable = match config.flush_policy {
            FlushPolicy::Os => {
                if let Some(sealed) = info.sealed {
                    // Kafka flushes a rolled segment in the background; the recovery point then moves to it.
                    let deadline = Instant::now() + Duration::from_secs(1);
                    gc.register(tp, [sealed], info.base_offset, &slot.recovery_point, deadline);
                }
                Durable::ready()
            }
            policy => {
                let deadline = match policy {
                    FlushPolicy::Sync => Instant::now(),
                    _ => Instant::now() + config.flush_interval(),
                };
                let files = info.sealed.into_iter().chain([active]);
                let seq = gc.register(tp, files, info.last_offset + 1, &slot.recovery_point, deadline);
                gc.tracker().waiter(seq, policy == FlushPolicy::Sync)
            }
        };
        Ok(Appended { base_offset: info.base_offset, last_offset: info.last_offset, durable })
    }

    fn read(&self, tp: &TopicPartition, offset: i64, max_bytes: usize) -> Result<ReadSlice, StorageError> {
        let (topic, slot) = self.inner.slot(tp)?;
        self.inner.with_log(&topic, &slot, false, |log| log.read(offset, max_bytes))
    }

    fn decode_records(&self, slice: &ReadSlice, from_offset: i64) -> Result<Vec<Record>, StorageError> {
        Ok(janus_api::batch::decode_batches(&stored_batches(slice)?, from_offset)?)
    }

    fn encode_batches(&self, slice: &ReadSlice) -> Result<Bytes, StorageError> {
        stored_batches(slice)
    }

    fn offsets(&self, tp: &TopicPartition) -> Result<Offsets, StorageError> {
        let (topic, slot) = self.inner.slot(tp)?;
        self.inner
            .with_log(&topic, &slot, false, |log| Ok(Offsets { log_start: log.log_start(), log_end: log.log_end() }))
    }

    fn offset_for_timestamp(&self, tp: &TopicPartition, ts_ms: i64) -> Result<Option<i64>, StorageError> {
        let (topic, slot) = self.inner.slot(tp)?;
        self.inner.with_log(&topic, &slot, false, |log| log.offset_for_timestamp(ts_ms))
    }

    fn delete_records_before(&self, tp: &TopicPartition, offset: i64) -> Result<i64, StorageError> {
        let (topic, slot) = self.inner.slot(tp)?;
        let start = self.inner.with_log(&topic, &slot, false, |log| log.delete_records_before(offset))?;
        lock(&self.inner.checkpoints).log_starts.insert(tp.clone(), start);
        self.inner.write_log_starts()?;
        Ok(start)
    }

    fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, StorageError> {
        self.inner.check_open()?;
        let mut report = RetentionReport::default();
        let mut starts_moved = false;
        for (topic, slot) in self.inner.all_slots() {
            let config = topic.config();
            let (r, start) = self.inner.with_log(&topic, &slot, false, |log| {
                let r = log.enforce_retention(&config, now_ms)?;
                Ok((r, log.log_start()))
            })?;
            if r.files_deleted > 0 {
                lock(&self.inner.checkpoints).log_starts.insert(slot.tp.clone(), start);
                starts_moved = true;
            }
            report.merge(r);
        }
        if starts_moved {
            self.inner.write_log_starts()?;
        }
        Ok(report)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.check_open()?;
        self.inner.flush_all()
    }

    fn shutdown(&self) -> Result<(), StorageError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(StorageError::Closed("the segment engine has already been shut down".into()));
        }
        self.stop_flusher();
        self.inner.flush_all()?;
        for (_, slot) in self.inner.all_slots() {
            if let Some(log) = lock(&slot.log).as_mut() {
                log.close()?;
            }
        }
        // Closed partitions' trimmed indexes were left to the page cache: one syncfs covers them all before
        // the marker says the files can be trusted.
        let dir = fs::File::open(&self.inner.dir).at(&self.inner.dir)?;
        nix::unistd::syncfs(&dir).map_err(|e| StorageError::io(&self.inner.dir, e.into()))?;
        let marker = self.inner.dir.join(CLEAN_SHUTDOWN_FILE);
        fs::File::create(&marker).and_then(|f| f.sync_all()).at(&marker)?;
        sync_dir(&self.inner.dir)?;
        self.inner.group_commit.tracker().fail("segment engine shut down");
        tracing::info!(dir = %self.inner.dir.display(), "segment engine shut down cleanly");
        Ok(())
    }

    fn compaction(&self) -> Option<&dyn Compaction> {
        Some(self)
    }
}

/// The stored batches a segment read returned, as bytes.
fn stored_batches(slice: &ReadSlice) -> Result<Bytes, StorageError> {
    match slice {
        ReadSlice::Mapped { .. } => Err(StorageError::Unsupported(
            "a mapped slice holds CommitLog messages; the segment engine only reads its own file slices".into(),
        )),
        other => other.to_bytes(),
    }
}

impl Compaction for SegmentEngine {
    fn compact(&self, now_ms: i64) -> Result<usize, StorageError> {
        self.inner.check_open()?;
        let mut rewritten = 0;
        for (topic, slot) in self.inner.all_slots() {
            let config = topic.config();
            if config.cleanup_policy != CleanupPolicy::Compact {
                continue;
            }
            rewritten += self.inner.with_log(&topic, &slot, false, |log| {
                crate::compaction::compact(log, now_ms, config.delete_retention_ms)
            })?;
        }
        Ok(rewritten)
    }
}
