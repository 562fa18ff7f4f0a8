//! One partition: its chain of segments, the log start offset, and everything done to them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use janus_api::{
    CleanupPolicy, IoResultExt, ReadSlice, RecordBatch, RetentionReport, StorageError, TopicConfig, TopicPartition,
};

use crate::naming::{LOG_SUFFIX, parse_segment_file};
use crate::segment::{IndexSettings, Planned, Segment};

/// What the engine knows about a partition from before it was loaded.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadHints {
    /// The previous run ended with a clean shutdown: trust the files.
    pub clean: bool,
    /// Offset below which data was known to be on disk (from the recovery-point checkpoint).
    pub recovery_point: Option<i64>,
    /// The checkpointed log start offset.
    pub log_start: Option<i64>,
}

/// Where an append went.
#[derive(Debug)]
pub struct AppendInfo {
    /// First offset assigned.
    pub base_offset: i64,
    /// Last offset assigned.
    pub last_offset: i64,
    /// The `.log` of the segment this append closed by rolling, to be synced in the background.
    pub sealed: Option<Arc<File>>,
    /// The `.log` the batch was written to (the active segment's), for the flush policies to sync.
    pub log_file: Arc<File>,
}

/// Most batches one vectored write carries (two `iovec`s each, far below `IOV_MAX`).
pub const MAX_BATCHES_PER_WRITE: usize = 64;

/// One write planned by [`PartitionLog::append_group`].
struct Run {
    /// The base offset assigned to each batch of the run, in order.
    bases: Vec<i64>,
    /// The `.log` closed by the roll that made room for the run, if one did.
    sealed: Option<Arc<File>>,
}

/// One partition's segments and offsets.
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    /// Segments by base offset; the last is the active one.
    segments: BTreeMap<i64, Segment>,
    log_start: i64,
    max_index_bytes: usize,
}

impl PartitionLog {
    /// Creates an empty partition in the (existing, empty) directory `dir`.
    pub fn create(
        dir: &Path,
        tp: TopicPartition,
        config: &TopicConfig,
        max_index_bytes: usize,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        let settings = IndexSettings { interval_bytes: config.index_interval_bytes, max_index_bytes };
        let seg = Segment::create(dir, 0, settings, now_ms)?;
        Ok(PartitionLog {
            tp,
            dir: dir.to_path_buf(),
            segments: BTreeMap::from([(0, seg)]),
            log_start: 0,
            max_index_bytes,
        })
    }

    /// Loads a partition from its directory, recovering segments past the recovery point when the previous
    /// run did not shut down cleanly.
    pub fn load(
        dir: &Path,
        tp: TopicPartition,
        config: &TopicConfig,
        max_index_bytes: usize,
        hints: LoadHints,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        let settings = IndexSettings { interval_bytes: config.index_interval_bytes, max_index_bytes };
        let bases = list_segments(dir)?;
        let mut log =
            PartitionLog { tp, dir: dir.to_path_buf(), segments: BTreeMap::new(), log_start: 0, max_index_bytes };
        if bases.is_empty() {
            let base = hints.log_start.unwrap_or(0).max(0);
            log.segments.insert(base, Segment::create(dir, base, settings, now_ms)?);
            log.log_start = base;
            return Ok(log);
        }
        let recover_from = if hints.clean {
            None
        } else {
            let rp = hints.recovery_point.unwrap_or(i64::MIN);
            Some(bases.iter().copied().filter(|b| *b <= rp).max().unwrap_or(bases[0]))
        };
        for (i, &base) in bases.iter().enumerate() {
            if recover_from.is_some_and(|from| base >= from) {
                let (seg, truncated) = Segment::recover(dir, base, settings)?;
                log.segments.insert(base, seg);
                if truncated {
                    // Data after a damaged batch cannot be trusted: later segments go too (Kafka does the same).
                    for &later in &bases[i + 1..] {
                        tracing::warn!(partition = %log.tp, base = later, "deleting segment after a damaged one");
                        crate::segment::remove_segment_files(dir, later)?;
                    }
                    break;
                }
            } else {
                log.segments.insert(base, Segment::load_trusted(dir, base, settings)?);
            }
        }
        log.active_mut()?.activate()?;
        let first = log.first_base();
        log.log_start = hints.log_start.unwrap_or(first).max(first).min(log.log_end());
        Ok(log)
    }

    fn first_base(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    fn active(&self) -> Result<&Segment, StorageError> {
        self.segments.values().next_back().ok_or_else(|| self.no_segments())
    }

    fn active_mut(&mut self) -> Result<&mut Segment, StorageError> {
        let err = self.no_segments();
        self.segments.values_mut().next_back().ok_or(err)
    }

    fn no_segments(&self) -> StorageError {
        StorageError::Corrupt { path: self.dir.clone(), detail: "partition has no segments".into() }
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next offset to be assigned.
    pub fn log_end(&self) -> i64 {
        self.segments.values().next_back().map_or(self.log_start, Segment::next_offset)
    }

    /// The first readable offset.
    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether the active segment's files are open.
    pub fn is_open(&self) -> bool {
        self.active().is_ok_and(Segment::is_open)
    }

    /// Reopens the active segment's files after [`PartitionLog::close`].
    pub fn reopen(&mut self) -> Result<(), StorageError> {
        self.active_mut()?.activate()
    }

    /// Closes the active segment's files (trimming its indexes); the partition stays usable after `reopen`.
    pub fn close(&mut self) -> Result<(), StorageError> {
        self.active_mut()?.close()
    }

    /// The active segment's `.log`, for syncing.
    pub fn active_log(&self) -> Result<Arc<File>, StorageError> {
        self.active()?.log_file()
    }

    /// Syncs the active segment.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.active()?.sync()
    }

    /// Appends a validated batch: assigns offsets from the log end, rolling first if the active segment is
    /// full or old.
    pub fn append(
        &mut self,
        batch: &RecordBatch,
        config: &TopicConfig,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let base = self.log_end();
        let last = base + batch.header().last_offset_delta as i64;
        let mut sealed = None;
        if self.active()?.must_roll(Planned::default(), batch.len(), last, config, now_ms) {
            sealed = self.roll(base, config, now_ms)?;
        }
        let active = self.active_mut()?;
        active.append_batches(&[(base, batch)])?;
        Ok(AppendInfo { base_offset: base, last_offset: last, sealed, log_file: active.log_file()? })
    }

    /// Appends validated batches in their order, as [`PartitionLog::append`] one after the other would, but
    /// writes each run of them that shares a segment with one vectored write (rolling between runs as
    /// needed). Returns one result per batch, in order. A run whose write fails is retried one batch at a
    /// time, so every batch gets the outcome of its own attempt; offsets stay dense either way, because a
    /// failed write leaves the log end where it was.
    pub fn append_group(
        &mut self,
        batches: &[RecordBatch],
        config: &TopicConfig,
        now_ms: i64,
    ) -> Vec<Result<AppendInfo, StorageError>> {
        let mut results = Vec::with_capacity(batches.len());
        let mut rest = batches;
        // Each pass consumes at least one batch.
        while !rest.is_empty() {
            let run = match self.plan_run(rest, config, now_ms) {
                Ok(run) => run,
                Err(e) => {
                    // Rolling failed: this batch fails; the next ones try again.
                    results.push(Err(e));
                    rest = &rest[1..];
                    continue;
                }
            };
            let (this, after) = rest.split_at(run.bases.len());
            let pairs: Vec<(i64, &RecordBatch)> = run.bases.iter().copied().zip(this).collect();
            let written = self.active_mut().and_then(|active| {
                active.append_batches(&pairs)?;
                active.log_file()
            });
            match written {
                Ok(log_file) => {
                    let mut sealed = run.sealed;
                    for (base, batch) in pairs {
                        let last = base + batch.header().last_offset_delta as i64;
                        let log_file = Arc::clone(&log_file);
                        results.push(Ok(AppendInfo {
                            base_offset: base,
                            last_offset: last,
                            sealed: sealed.take(),
                            log_file,
                        }));
                    }
                }
                Err(e) if this.len() == 1 => results.push(Err(e)),
                Err(_) => {
                    let mut sealed = run.sealed;
                    for batch in this {
                        let mut r = self.append(batch, config, now_ms);
                        if let Ok(info) = &mut r
                            && info.sealed.is_none()
                        {
                            info.sealed = sealed.take();
                        }
                        results.push(r);
                    }
                }
            }
            rest = after;
        }
        results
    }

    /// Plans the next write of [`PartitionLog::append_group`]: rolls first if the first batch needs a new
    /// segment, then takes batches while they fit the active segment, at most [`MAX_BATCHES_PER_WRITE`].
    fn plan_run(&mut self, batches: &[RecordBatch], config: &TopicConfig, now_ms: i64) -> Result<Run, StorageError> {
        let mut base = self.log_end();
        let mut run = Run { bases: Vec::new(), sealed: None };
        let mut planned = Planned::default();
        for batch in batches.iter().take(MAX_BATCHES_PER_WRITE) {
            let last = base + batch.header().last_offset_delta as i64;
            if self.active()?.must_roll(planned, batch.len(), last, config, now_ms) {
                if !run.bases.is_empty() {
                    break;
                }
                run.sealed = self.roll(base, config, now_ms)?;
            }
            run.bases.push(base);
            planned.bytes += batch.len() as u64;
            planned.batches += 1;
            base = last + 1;
        }
        Ok(run)
    }

    /// Closes the active segment and starts a new one at `base`.
    fn roll(&mut self, base: i64, config: &TopicConfig, now_ms: i64) -> Result<Option<Arc<File>>, StorageError> {
        let settings =
            IndexSettings { interval_bytes: config.index_interval_bytes, max_index_bytes: self.max_index_bytes };
        let sealed = self.active_mut()?.seal()?;
        match Segment::create(&self.dir, base, settings, now_ms) {
            Ok(seg) => {
                self.segments.insert(base, seg);
                tracing::debug!(partition = %self.tp, base, "rolled segment");
                Ok(sealed)
            }
            Err(e) => {
                // Keep appending to the old segment once space allows; it is still the active one.
                let _ = crate::segment::remove_segment_files(&self.dir, base);
                self.active_mut()?.activate()?;
                Err(e)
            }
        }
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            offset,
            start: self.log_start,
            end: self.log_end(),
        }
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadSlice, StorageError> {
        let end = self.log_end();
        if offset < self.log_start || offset > end {
            return Err(self.out_of_range(offset));
        }
        if offset == end {
            return Ok(ReadSlice::Empty { next_offset: end });
        }
        let floor = self.segments.range(..=offset).next_back().map_or(self.first_base(), |(b, _)| *b);
        for seg in self.segments.range(floor..).map(|(_, s)| s) {
            let file = seg.log_file()?;
            if let Some(at) = seg.find_batch(&file, offset)? {
                let (len, next_offset) = seg.extent(&file, at, max_bytes)?;
                return Ok(ReadSlice::File { file, position: at.position, len: len as u32, next_offset });
            }
        }
        Ok(ReadSlice::Empty { next_offset: end })
    }

    /// The first offset at or above the log start whose timestamp is >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<i64>, StorageError> {
        for seg in self.segments.values() {
            if let Some(offset) = seg.offset_for_timestamp(ts, self.log_start)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Moves the log start offset up to `offset` (never down, never past the log end).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        if offset > self.log_end() || offset < 0 {
            return Err(self.out_of_range(offset));
        }
        self.log_start = self.log_start.max(offset);
        Ok(self.log_start)
    }

    /// Deletes closed segments that are wholly below the log start offset, past `retention.ms` (by their
    /// newest timestamp) or beyond `retention.bytes`; never the active segment.
    pub fn enforce_retention(&mut self, config: &TopicConfig, now_ms: i64) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        let delete_policy = config.cleanup_policy == CleanupPolicy::Delete;
        let mut total = self.size();
        while self.segments.len() > 1 {
            let mut keys = self.segments.keys();
            let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else { break };
            let seg = &self.segments[&first];
            let below_start = second <= self.log_start;
            let expired = delete_policy
                && config.retention_ms.is_some_and(|ms| seg.max_timestamp() < now_ms.saturating_sub(ms as i64));
            let oversize = delete_policy && config.retention_bytes.is_some_and(|limit| total - seg.size() >= limit);
            if !(below_start || expired || oversize) {
                break;
            }
            let seg = self.segments.remove(&first).ok_or_else(|| self.no_segments())?;
            tracing::info!(partition = %self.tp, base = first, below_start, expired, oversize, "deleting segment");
            let bytes = seg.delete()?;
            total -= bytes;
            report.files_deleted += 1;
            report.bytes_deleted += bytes;
        }
        self.log_start = self.log_start.max(self.first_base());
        Ok(report)
    }

    /// Closed segments (all but the active one), oldest first, for compaction.
    pub fn closed_segments_mut(&mut self) -> impl Iterator<Item = &mut Segment> {
        let n = self.segments.len();
        self.segments.values_mut().take(n.saturating_sub(1))
    }

    /// Deletes every file of the partition.
    pub fn delete_all(self) -> Result<(), StorageError> {
        for (_, seg) in self.segments {
            seg.delete()?;
        }
        Ok(())
    }
}

/// Base offsets of the `.log` files in `dir`, sorted; removes leftovers of interrupted compactions.
fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_segment_file(name) {
            Some((base, LOG_SUFFIX)) => bases.push(base),
            Some((_, suffix)) if suffix.ends_with(crate::naming::CLEANED_SUFFIX) => {
                tracing::info!(file = name, "removing an unfinished compaction output");
                remove_if_exists(&entry.path())?;
            }
            _ => {}
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}
