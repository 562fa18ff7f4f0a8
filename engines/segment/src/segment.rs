//! One segment: a `.log` of whole RecordBatch v2 batches and its two sparse indexes.
//!
//! The active segment keeps its `.log` open and its indexes mapped; a closed segment keeps only numbers in
//! memory and opens its files when a read needs them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use janus_api::batch::header::BATCH_HEADER_SIZE;
use janus_api::{BatchHeader, IoResultExt, RecordBatch, StorageError, TopicConfig};

use crate::index::{
    self, MappedIndex, OFFSET_ENTRY_SIZE, OffsetEntry, TIME_ENTRY_SIZE, TimeEntry, offset_key, time_key,
};
use crate::naming::{INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, segment_file};

/// How a segment indexes what is appended to it.
#[derive(Clone, Copy, Debug)]
pub struct IndexSettings {
    /// `index.interval.bytes`.
    pub interval_bytes: u32,
    /// Preallocated size of each index file of the active segment.
    pub max_index_bytes: usize,
}

/// The open files of the active segment.
struct ActiveFiles {
    log: Arc<File>,
    index: MappedIndex<OFFSET_ENTRY_SIZE>,
    time_index: MappedIndex<TIME_ENTRY_SIZE>,
}

/// Batches planned for one write to a segment but not yet written.
#[derive(Clone, Copy, Debug, Default)]
pub struct Planned {
    /// Their bytes.
    pub bytes: u64,
    /// How many.
    pub batches: usize,
}

/// A batch header found in a segment, with its byte position.
#[derive(Clone, Copy, Debug)]
pub struct BatchAt {
    /// Byte position of the batch in the `.log`.
    pub position: u64,
    /// Its header.
    pub header: BatchHeader,
}

/// One segment of a partition.
pub struct Segment {
    /// Offset of the first record the segment may hold; also its file name.
    pub base_offset: i64,
    dir: PathBuf,
    /// Bytes of whole batches in the `.log`.
    size: u64,
    /// Offset after the last record in the segment (the base offset while empty).
    next_offset: i64,
    /// Largest record timestamp in the segment (-1 while unknown or empty).
    max_timestamp: i64,
    /// Offset of the record carrying `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Wall-clock or first-batch time that `segment.ms` counts from.
    pub rolling_base_ms: i64,
    /// Bytes appended since the last offset index entry.
    bytes_since_index_entry: u64,
    /// Timestamp of the last time index entry.
    last_indexed_timestamp: i64,
    settings: IndexSettings,
    active: Option<ActiveFiles>,
}

impl Segment {
    /// Path of one of this segment's files.
    pub fn path(&self, suffix: &str) -> PathBuf {
        segment_file(&self.dir, self.base_offset, suffix)
    }

    /// Bytes of whole batches in the `.log`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Largest record timestamp (-1 when unknown).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Whether the segment's files are open.
    pub fn is_open(&self) -> bool {
        self.active.is_some()
    }

    /// Creates a new, empty active segment.
    pub fn create(dir: &Path, base_offset: i64, settings: IndexSettings, now_ms: i64) -> Result<Segment, StorageError> {
        let mut seg = Segment::unopened(dir, base_offset, settings);
        seg.rolling_base_ms = now_ms;
        let log_path = seg.path(LOG_SUFFIX);
        OpenOptions::new().write(true).create_new(true).open(&log_path).at(&log_path)?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = seg.path(suffix);
            File::create(&p).at(&p)?;
        }
        seg.open_files(0, 0)?;
        Ok(seg)
    }

    fn unopened(dir: &Path, base_offset: i64, settings: IndexSettings) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_base_ms: 0,
            bytes_since_index_entry: 0,
            last_indexed_timestamp: i64::MIN,
            settings,
            active: None,
        }
    }

    /// Opens the files for appending, keeping the given numbers of index entries.
    fn open_files(&mut self, index_entries: usize, time_entries: usize) -> Result<(), StorageError> {
        let log_path = self.path(LOG_SUFFIX);
        let log = OpenOptions::new().read(true).write(true).open(&log_path).at(&log_path)?;
        let ip = self.path(INDEX_SUFFIX);
        let index = MappedIndex::open(&ip, index_entries, self.settings.max_index_bytes).at(&ip)?;
        let tp = self.path(TIME_INDEX_SUFFIX);
        let time_index = MappedIndex::open(&tp, time_entries, self.settings.max_index_bytes).at(&tp)?;
        self.active = Some(ActiveFiles { log: Arc::new(log), index, time_index });
        Ok(())
    }

    /// Loads a segment from disk after a clean shutdown (or a closed segment below the recovery point),
    /// trusting its files. Index files that are missing or fail a sanity check are rebuilt by scanning.
    pub fn load_trusted(dir: &Path, base_offset: i64, settings: IndexSettings) -> Result<Segment, StorageError> {
        let mut seg = Segment::unopened(dir, base_offset, settings);
        let log_path = seg.path(LOG_SUFFIX);
        seg.size = fs::metadata(&log_path).at(&log_path)?.len();
        if !seg.indexes_look_sane()? {
            tracing::info!(path = %log_path.display(), "rebuilding missing or damaged index");
            return Segment::recover(dir, base_offset, settings).map(|(seg, _)| seg);
        }
        let last_time = index::last_entry_of_file::<TIME_ENTRY_SIZE>(&seg.path(TIME_INDEX_SUFFIX))
            .at(seg.path(TIME_INDEX_SUFFIX))?
            .map(|e| TimeEntry::decode(&e));
        if let Some(t) = last_time {
            seg.max_timestamp = t.timestamp;
            seg.offset_of_max_timestamp = base_offset + t.relative_offset as i64;
            seg.last_indexed_timestamp = t.timestamp;
        }
        // The tail after the last offset index entry is not indexed: scan it for the end offset and timestamps.
        let start = index::last_entry_of_file::<OFFSET_ENTRY_SIZE>(&seg.path(INDEX_SUFFIX))
            .at(seg.path(INDEX_SUFFIX))?
            .map_or(0, |e| OffsetEntry::decode(&e).position as u64);
        let file = File::open(&log_path).at(&log_path)?;
        let mut pos = start;
        let mut next = base_offset;
        while pos < seg.size {
            let header = read_header(&file, pos, seg.size).at(&log_path)?;
            let Some(header) = header else { break };
            next = header.next_offset();
            if header.max_timestamp > seg.max_timestamp {
                seg.max_timestamp = header.max_timestamp;
                seg.offset_of_max_timestamp = header.last_offset();
            }
            pos += header.batch_size() as u64;
        }
        if pos != seg.size {
            // The files were trusted but the tail is not whole batches: repair it as after a crash.
            tracing::warn!(path = %log_path.display(), at = pos, "segment tail is not whole batches; recovering");
            return Segment::recover(dir, base_offset, settings).map(|(seg, _)| seg);
        }
        seg.bytes_since_index_entry = seg.size - start;
        seg.next_offset = next;
        if seg.max_timestamp < 0 {
            seg.max_timestamp = mtime_ms(&log_path);
        }
        seg.rolling_base_ms = seg.first_batch_timestamp(&file).unwrap_or(seg.max_timestamp);
        Ok(seg)
    }

    fn first_batch_timestamp(&self, file: &File) -> Option<i64> {
        read_header(file, 0, self.size).ok().flatten().map(|h| h.max_timestamp).filter(|t| *t >= 0)
    }

    fn indexes_look_sane(&self) -> Result<bool, StorageError> {
        for (suffix, width) in [(INDEX_SUFFIX, OFFSET_ENTRY_SIZE), (TIME_INDEX_SUFFIX, TIME_ENTRY_SIZE)] {
            let p = self.path(suffix);
            match fs::metadata(&p) {
                Ok(m) if m.len() % width as u64 == 0 => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(StorageError::io(p, e)),
            }
        }
        let last =
            index::last_entry_of_file::<OFFSET_ENTRY_SIZE>(&self.path(INDEX_SUFFIX)).at(self.path(INDEX_SUFFIX))?;
        Ok(last.is_none_or(|e| (OffsetEntry::decode(&e).position as u64) < self.size))
    }

    /// Rebuilds a segment after a crash: validates every batch (size, magic, CRC, offsets), truncates the
    /// `.log` at the first bad byte, and rewrites both indexes from what survives.
    /// Returns the segment and whether anything was cut off.
    pub fn recover(dir: &Path, base_offset: i64, settings: IndexSettings) -> Result<(Segment, bool), StorageError> {
        let mut seg = Segment::unopened(dir, base_offset, settings);
        let log_path = seg.path(LOG_SUFFIX);
        let file = OpenOptions::new().read(true).write(true).open(&log_path).at(&log_path)?;
        let file_len = file.metadata().at(&log_path)?.len();
        // Rebuild indexes from scratch into fresh files.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = seg.path(suffix);
            File::create(&p).at(&p)?;
        }
        let ip = seg.path(INDEX_SUFFIX);
        let tp = seg.path(TIME_INDEX_SUFFIX);
        let mut index = MappedIndex::<OFFSET_ENTRY_SIZE>::open(&ip, 0, settings.max_index_bytes).at(&ip)?;
        let mut time_index = MappedIndex::<TIME_ENTRY_SIZE>::open(&tp, 0, settings.max_index_bytes).at(&tp)?;
        let mut pos = 0u64;
        let mut buf = Vec::new();
        let mut expected_min = base_offset;
        let mut truncated_reason = None;
        while pos < file_len {
            match read_valid_batch(&file, pos, file_len, expected_min, &mut buf) {
                Ok(header) => {
                    seg.index_batch(&mut index, &mut time_index, pos, &header);
                    expected_min = header.next_offset();
                    pos += header.batch_size() as u64;
                }
                Err(reason) => {
                    truncated_reason = Some(reason);
                    break;
                }
            }
        }
        if pos < file_len {
            tracing::warn!(
                path = %log_path.display(),
                at = pos,
                dropped = file_len - pos,
                reason = truncated_reason.unwrap_or_default(),
                "truncating damaged segment tail"
            );
            file.set_len(pos).at(&log_path)?;
            file.sync_all().at(&log_path)?;
        }
        seg.size = pos;
        if seg.max_timestamp < 0 {
            seg.max_timestamp = mtime_ms(&log_path);
        }
        seg.rolling_base_ms = seg.first_batch_timestamp(&file).unwrap_or(seg.max_timestamp);
        // Write the rebuilt indexes out trimmed; an active segment reopens them.
        index.close().at(&ip)?;
        time_index.close().at(&tp)?;
        Ok((seg, pos < file_len))
    }

    /// Makes this the active segment (opening files); the indexes are reopened with their entries.
    pub fn activate(&mut self) -> Result<(), StorageError> {
        if self.active.is_some() {
            return Ok(());
        }
        let ie = file_entries(&self.path(INDEX_SUFFIX), OFFSET_ENTRY_SIZE)?;
        let te = file_entries(&self.path(TIME_INDEX_SUFFIX), TIME_ENTRY_SIZE)?;
        self.open_files(ie, te)
    }

    /// Closes the files: syncs and trims the indexes, drops the descriptor and mappings.
    pub fn close(&mut self) -> Result<(), StorageError> {
        if let Some(files) = self.active.take() {
            files.index.close().at(self.path(INDEX_SUFFIX))?;
            files.time_index.close().at(self.path(TIME_INDEX_SUFFIX))?;
        }
        Ok(())
    }

    /// The `.log` descriptor, opened if needed (closed segments open a fresh one for each read).
    pub fn log_file(&self) -> Result<Arc<File>, StorageError> {
        match &self.active {
            Some(files) => Ok(Arc::clone(&files.log)),
            None => {
                let p = self.path(LOG_SUFFIX);
                Ok(Arc::new(File::open(&p).at(&p)?))
            }
        }
    }

    /// Whether appending `batch_len` bytes with last offset `last_offset` needs a new segment first, after
    /// the batches already `planned` for the same write.
    pub fn must_roll(
        &self,
        planned: Planned,
        batch_len: usize,
        last_offset: i64,
        config: &TopicConfig,
        now_ms: i64,
    ) -> bool {
        let size = self.size + planned.bytes;
        if size == 0 {
            return false;
        }
        let too_big = size + batch_len as u64 > config.segment_bytes as u64;
        let too_old = now_ms.saturating_sub(self.rolling_base_ms) > config.segment_ms as i64;
        // Each planned batch may still take an entry of each index.
        let index_full = self.active.is_some() && self.index_slots_left() <= planned.batches;
        let offset_overflow = last_offset - self.base_offset > i32::MAX as i64;
        too_big || too_old || index_full || offset_overflow
    }

    /// Appends batches, each written with the base offset paired with it (the stored batch's own baseOffset
    /// field is ignored: the new one goes in its place, outside the CRC), in one vectored `pwritev(2)` from
    /// the callers' buffers: no copy of the batch is made to set its offset. The caller has checked with
    /// [`Segment::must_roll`] that they belong here. On a failed write the `.log` is cut back so nothing of
    /// them remains, and the segment is as before.
    pub fn append_batches(&mut self, batches: &[(i64, &RecordBatch)]) -> Result<(), StorageError> {
        let log_path = self.path(LOG_SUFFIX);
        let pos = self.size;
        let total: u64 = batches.iter().map(|(_, b)| b.len() as u64).sum();
        if pos + total > u32::MAX as u64 {
            return Err(StorageError::Corrupt { path: log_path, detail: "segment would exceed 4 GiB".into() });
        }
        let Some(mut files) = self.active.take() else {
            return Err(StorageError::Closed(format!("segment {} is not open for appends", log_path.display())));
        };
        let bases: Vec<[u8; BASE_OFFSET_LEN]> = batches.iter().map(|(base, _)| base.to_be_bytes()).collect();
        let mut iov = Vec::with_capacity(batches.len() * 2);
        for ((_, batch), base) in batches.iter().zip(&bases) {
            // Every batch holds at least its 61-byte header, so it is longer than its baseOffset field.
            let rest = batch.as_bytes().get(BASE_OFFSET_LEN..).unwrap_or_default();
            iov.push(io::IoSlice::new(base));
            iov.push(io::IoSlice::new(rest));
        }
        if let Err(e) = janus_api::fsutil::pwritev_all(&files.log, &mut iov, pos) {
            // Best effort: remove any partial bytes so the file ends on a batch boundary.
            let _ = files.log.set_len(pos);
            self.active = Some(files);
            return Err(StorageError::io(log_path, e));
        }
        let mut at = pos;
        for (base, batch) in batches {
            let mut header = batch.header();
            header.base_offset = *base;
            self.index_batch(&mut files.index, &mut files.time_index, at, &header);
            at += batch.len() as u64;
        }
        self.size = at;
        self.active = Some(files);
        Ok(())
    }

    /// Free slots left in the fuller of the two indexes (each appended batch adds at most one entry to each).
    pub fn index_slots_left(&self) -> usize {
        self.active.as_ref().map_or(0, |f| f.index.slots_left().min(f.time_index.slots_left()))
    }

    /// Index bookkeeping for a batch at `pos` (Kafka's rule: an entry once more than
    /// `index.interval.bytes` were appended since the last; the time index only when the max timestamp grows).
    fn index_batch(
        &mut self,
        index: &mut MappedIndex<OFFSET_ENTRY_SIZE>,
        time_index: &mut MappedIndex<TIME_ENTRY_SIZE>,
        pos: u64,
        header: &BatchHeader,
    ) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if self.bytes_since_index_entry > self.settings.interval_bytes as u64 && !index.is_full() {
            let rel = (header.last_offset() - self.base_offset) as u32;
            index.push(OffsetEntry { relative_offset: rel, position: pos as u32 }.encode());
            self.maybe_index_time(time_index);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.batch_size() as u64;
        self.next_offset = header.next_offset();
        self.size = self.size.max(pos + header.batch_size() as u64);
    }

    fn maybe_index_time(&mut self, time_index: &mut MappedIndex<TIME_ENTRY_SIZE>) {
        if self.max_timestamp > self.last_indexed_timestamp && !time_index.is_full() {
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            time_index.push(TimeEntry { timestamp: self.max_timestamp, relative_offset: rel }.encode());
            self.last_indexed_timestamp = self.max_timestamp;
        }
    }

    /// Turns the active segment into a closed one: a final time index entry for its max timestamp (so
    /// retention and time lookups see it), indexes trimmed, files closed. Returns the files to sync.
    pub fn seal(&mut self) -> Result<Option<Arc<File>>, StorageError> {
        let Some(mut files) = self.active.take() else { return Ok(None) };
        self.maybe_index_time(&mut files.time_index);
        let log = Arc::clone(&files.log);
        self.active = Some(files);
        self.close()?;
        Ok(Some(log))
    }

    /// Syncs the `.log` (and the mapped indexes) of an active segment.
    pub fn sync(&self) -> Result<(), StorageError> {
        if let Some(files) = &self.active {
            files.log.sync_data().at(self.path(LOG_SUFFIX))?;
            files.index.sync().at(self.path(INDEX_SUFFIX))?;
            files.time_index.sync().at(self.path(TIME_INDEX_SUFFIX))?;
        }
        Ok(())
    }

    /// Position to start scanning at for `offset`: the batch the offset index points at, or 0.
    fn index_position(&self, offset: i64) -> Result<u64, StorageError> {
        let rel = offset - self.base_offset;
        let entry = match &self.active {
            Some(files) => files.index.search(rel, offset_key).map(|i| files.index.entry(i)),
            None => {
                let p = self.path(INDEX_SUFFIX);
                index::search_file::<OFFSET_ENTRY_SIZE>(&p, rel, offset_key).at(&p)?
            }
        };
        Ok(entry.map_or(0, |e| OffsetEntry::decode(&e).position as u64))
    }

    /// The first batch containing an offset >= `offset`, if the segment has one.
    pub fn find_batch(&self, file: &File, offset: i64) -> Result<Option<BatchAt>, StorageError> {
        let mut pos = self.index_position(offset)?;
        while pos < self.size {
            let Some(header) = read_header(file, pos, self.size).at(self.path(LOG_SUFFIX))? else { break };
            if header.last_offset() >= offset {
                return Ok(Some(BatchAt { position: pos, header }));
            }
            pos += header.batch_size() as u64;
        }
        Ok(None)
    }

    /// Whole batches from `start` up to `max_bytes` (at least the first): (byte length, next offset).
    pub fn extent(&self, file: &File, start: BatchAt, max_bytes: usize) -> Result<(u64, i64), StorageError> {
        let mut end = start.position + start.header.batch_size() as u64;
        let mut next = start.header.next_offset();
        while end < self.size {
            let Some(h) = read_header(file, end, self.size).at(self.path(LOG_SUFFIX))? else { break };
            let new_end = end + h.batch_size() as u64;
            if new_end - start.position > max_bytes as u64 {
                break;
            }
            end = new_end;
            next = h.next_offset();
        }
        Ok((end - start.position, next))
    }

    /// The first offset at or above `floor` in this segment with a timestamp >= `ts`, scanning from the
    /// time index's hint.
    pub fn offset_for_timestamp(&self, ts: i64, floor: i64) -> Result<Option<i64>, StorageError> {
        if self.max_timestamp < ts || self.size == 0 || self.next_offset <= floor {
            return Ok(None);
        }
        // Every record up to the entry below `ts` has a timestamp below `ts`: start after it.
        let hint = match &self.active {
            Some(files) => files.time_index.search(ts - 1, time_key).map(|i| files.time_index.entry(i)),
            None => {
                let p = self.path(TIME_INDEX_SUFFIX);
                index::search_file::<TIME_ENTRY_SIZE>(&p, ts - 1, time_key).at(&p)?
            }
        };
        let from = hint.map_or(self.base_offset, |e| self.base_offset + TimeEntry::decode(&e).relative_offset as i64);
        let from = from.max(floor);
        let file = self.log_file()?;
        let Some(first) = self.find_batch(&file, from)? else { return Ok(None) };
        let mut pos = first.position;
        while pos < self.size {
            let Some(h) = read_header(&file, pos, self.size).at(self.path(LOG_SUFFIX))? else { break };
            if h.max_timestamp >= ts {
                let batch = read_batch(&file, pos, &h).at(self.path(LOG_SUFFIX))?;
                let found = batch.records()?.into_iter().find(|r| r.timestamp_ms >= ts && r.offset >= from);
                if let Some(r) = found {
                    return Ok(Some(r.offset));
                }
            }
            pos += h.batch_size() as u64;
        }
        Ok(None)
    }

    /// Replaces this closed segment's `.log` with the compacted file at `cleaned`: the old indexes are removed
    /// first (so a crash never pairs new data with old indexes), the rename is atomic, and the indexes are
    /// rebuilt from the new file.
    pub fn swap_in(&mut self, cleaned: &Path) -> Result<(), StorageError> {
        if self.active.is_some() {
            return Err(StorageError::Closed("cannot compact the active segment".into()));
        }
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = self.path(suffix);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(p, e)),
            }
        }
        let log_path = self.path(LOG_SUFFIX);
        fs::rename(cleaned, &log_path).at(&log_path)?;
        janus_api::fsutil::sync_dir(&self.dir)?;
        let (mut rebuilt, _) = Segment::recover(&self.dir, self.base_offset, self.settings)?;
        // Offsets do not move: the next segment still starts where this one ended.
        rebuilt.next_offset = rebuilt.next_offset.max(self.next_offset);
        *self = rebuilt;
        Ok(())
    }

    /// Deletes the segment's files; returns the bytes its `.log` held.
    pub fn delete(mut self) -> Result<u64, StorageError> {
        self.active = None;
        remove_segment_files(&self.dir, self.base_offset)?;
        Ok(self.size)
    }
}

/// Removes the `.log`, `.index` and `.timeindex` of the segment at `base_offset`, whichever exist.
pub fn remove_segment_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        let p = segment_file(dir, base_offset, suffix);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(p, e)),
        }
    }
    Ok(())
}

/// Reads the header of the batch at `pos`; `None` if no whole header fits before `limit`.
pub fn read_header(file: &File, pos: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
    if pos + BATCH_HEADER_SIZE as u64 > limit {
        return Ok(None);
    }
    let mut buf = [0u8; BATCH_HEADER_SIZE];
    file.read_exact_at(&mut buf, pos)?;
    match BatchHeader::parse(&buf) {
        Ok(h) if pos + h.batch_size() as u64 <= limit => Ok(Some(h)),
        _ => Ok(None),
    }
}

/// Reads the whole batch whose header is `h` at `pos`.
pub fn read_batch(file: &File, pos: u64, h: &BatchHeader) -> io::Result<RecordBatch> {
    let mut buf = vec![0u8; h.batch_size()];
    file.read_exact_at(&mut buf, pos)?;
    RecordBatch::from_bytes(Bytes::from(buf)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads and fully validates the batch at `pos` for recovery; the error says why the tail stops here.
fn read_valid_batch(
    file: &File,
    pos: u64,
    file_len: u64,
    min_base: i64,
    buf: &mut Vec<u8>,
) -> Result<BatchHeader, String> {
    if pos + BATCH_HEADER_SIZE as u64 > file_len {
        return Err(format!("{} trailing bytes are shorter than a batch header", file_len - pos));
    }
    let mut head = [0u8; BATCH_HEADER_SIZE];
    file.read_exact_at(&mut head, pos).map_err(|e| e.to_string())?;
    let header = BatchHeader::parse(&head).map_err(|e| e.to_string())?;
    if pos + header.batch_size() as u64 > file_len {
        return Err(format!("batch of {} bytes runs past the end of the file", header.batch_size()));
    }
    if header.base_offset < min_base || header.last_offset() < header.base_offset {
        return Err(format!("offset {} breaks the sequence (expected >= {min_base})", header.base_offset));
    }
    buf.resize(header.batch_size(), 0);
    file.read_exact_at(buf, pos).map_err(|e| e.to_string())?;
    let batch = RecordBatch::from_bytes(Bytes::copy_from_slice(buf)).map_err(|e| e.to_string())?;
    batch.validate().map_err(|e| e.to_string())
}

/// Length of the baseOffset field that starts every batch.
const BASE_OFFSET_LEN: usize = 8;

fn file_entries(path: &Path, width: usize) -> Result<usize, StorageError> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.len() as usize / width),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

fn mtime_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_millis() as i64)
}
