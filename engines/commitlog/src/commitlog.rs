//! The CommitLog: a chain of fixed-size mapped files named by their first physical offset, written by one
//! writer (`crate::writer::LogWriter`, kept under the engine's writer mutex), and a background allocator
//! that creates (and optionally pre-warms) the next file before the writer needs it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::format::{self as rec, BLANK_RECORD_SIZE, Entry, MessageView};
use janus_api::sync::{self, lock};
use janus_api::{IoResultExt, StorageError, volume};

use crate::mapped::MappedFile;
use janus_api::fsutil::sync_dir;

/// Name of the CommitLog directory under the engine's directory.
pub const COMMITLOG_DIR: &str = "commitlog";

/// A 20-digit, zero-padded file name for `offset`, as RocketMQ names its files.
pub fn file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Parses a 20-digit file name.
pub fn parse_file_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) { name.parse().ok() } else { None }
}

/// One CommitLog file.
#[derive(Debug)]
pub struct LogFile {
    /// Physical offset of its first byte.
    pub start: u64,
    /// The mapping.
    pub map: Arc<MappedFile>,
    /// Newest STORETIMESTAMP written to it by this process, `i64::MIN` when not known yet.
    pub max_store_ms: AtomicI64,
}

impl LogFile {
    /// Physical offset just past the file.
    pub fn end(&self) -> u64 {
        self.start + self.map.len() as u64
    }
}

/// Checks what the body CRC does not cover: a valid topic and well-formed properties (a zeroed or cut tail fails).
pub fn check_structure(view: &MessageView<'_>) -> Result<(), String> {
    let topic = std::str::from_utf8(view.topic).map_err(|_| "topic is not UTF-8".to_string())?;
    janus_api::validate_topic_name(topic).map_err(|e| e.to_string())?;
    if !view.properties.is_empty() && view.properties.last() != Some(&rec::PROPERTY_SEPARATOR) {
        return Err("properties do not end with a separator".into());
    }
    for pair in rec::properties(view.properties) {
        let (name, value) = pair.map_err(|e| e.to_string())?;
        if name == rec::PROPERTY_PRODUCER.as_bytes() {
            rec::ProducerMark::parse(value).map_err(|e| e.to_string())?;
            continue;
        }
        if name != rec::PROPERTY_RECORD_KEY.as_bytes() {
            rec::decode_escaped(name).map_err(|e| e.to_string())?;
        }
        rec::decode_escaped(value).map_err(|e| e.to_string())?;
    }
    if view.meta.queue_id < 0 || view.meta.queue_offset < 0 {
        return Err("negative queue id or offset".into());
    }
    Ok(())
}

/// What a scan found at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// Physical offset after the last good message (or blank record).
    pub end: u64,
    /// Why it stopped there when it was not a clean end of data: the damage found.
    pub damage: Option<String>,
}

/// Work the writer hands to the allocator thread.
#[derive(Debug, Default)]
struct Wanted {
    /// The start offset of the next file to create, if any.
    next_file: Option<u64>,
    /// A range of the active file to fault in writable (`madvise(MADV_POPULATE_WRITE)`), if any.
    populate: Option<(Arc<LogFile>, usize, usize)>,
}

/// The chain of CommitLog files (see the module docs).
#[derive(Debug)]
pub struct CommitLog {
    dir: PathBuf,
    file_bytes: u64,
    prewarm: bool,
    /// Bytes that must stay free on the volume after a new file is preallocated (`None`: the default
    /// guard of the volume, [`volume::default_min_free`]).
    min_free: Option<u64>,
    files: RwLock<Vec<Arc<LogFile>>>,
    /// Physical end of the readable (published) messages.
    written: AtomicU64,
    /// Serialises file creation between the writer and the allocator.
    create_lock: Mutex<()>,
    /// What the writer asked the allocator thread to prepare.
    wanted: Mutex<Wanted>,
    wanted_changed: Condvar,
    stop: AtomicBool,
}

impl CommitLog {
    /// Opens (creating if needed) the CommitLog under `dir/commitlog`. Every file must be named by a
    /// multiple of `file_bytes` and the chain must have no holes; torn files are extended. The written end is
    /// not known until [`CommitLog::set_written`] (recovery decides it).
    pub fn open(dir: &Path, file_bytes: u64, prewarm: bool) -> Result<CommitLog, StorageError> {
        let dir = dir.join(COMMITLOG_DIR);
        fs::create_dir_all(&dir).at(&dir)?;
        let mut starts = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(start) = parse_file_name(name) {
                starts.push(start);
            } else if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        starts.sort_unstable();
        let mut files = Vec::with_capacity(starts.len());
        for (i, &start) in starts.iter().enumerate() {
            let path = dir.join(file_name(start));
            if start % file_bytes != 0 || (i > 0 && start != starts[i - 1] + file_bytes) {
                return Err(StorageError::Corrupt {
                    path,
                    detail: format!(
                        "CommitLog files must follow each other every commitlog.file.bytes = {file_bytes} bytes \
                         (was the engine opened with a different commitlog.file.bytes, or a file removed?)"
                    ),
                });
            }
            let map = MappedFile::open(&path, file_bytes as usize)?;
            files.push(Arc::new(LogFile { start, map: Arc::new(map), max_store_ms: AtomicI64::new(i64::MIN) }));
        }
        Ok(CommitLog {
            dir,
            file_bytes,
            prewarm,
            min_free: None,
            files: RwLock::new(files),
            written: AtomicU64::new(0),
            create_lock: Mutex::new(()),
            wanted: Mutex::new(Wanted::default()),
            wanted_changed: Condvar::new(),
            stop: AtomicBool::new(false),
        })
    }

    /// Keeps `min_free` bytes free on the volume when creating files (`None`: the volume's default guard).
    pub fn with_min_free(mut self, min_free: Option<u64>) -> Self {
        self.min_free = min_free;
        self
    }

    /// Size of every file.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// A snapshot of the files, oldest first.
    pub fn files(&self) -> Vec<Arc<LogFile>> {
        sync::read(&self.files).clone()
    }

    /// Physical offset of the oldest byte still stored (the first file's start), or the written end when
    /// there is no file.
    pub fn min_offset(&self) -> u64 {
        let files = sync::read(&self.files);
        files.first().map_or_else(|| self.written(), |f| f.start)
    }

    /// Physical end of the published messages.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Sets the written end (recovery) and makes everything below it readable, nothing above.
    ///
    /// # Safety
    /// Only before the engine is shared (recovery at open): no reader may hold a slice or region of any
    /// file, since this can lower a file's readable end below bytes the writer will then overwrite.
    pub(crate) unsafe fn set_written(&self, end: u64) {
        for f in self.files() {
            // SAFETY: per this function's contract no reader exists yet, and no writer runs concurrently.
            unsafe { f.map.set_readable(end.saturating_sub(f.start).min(f.map.len() as u64) as usize) };
        }
        self.written.store(end, Ordering::Release);
    }

    /// Records that the writer published everything below `end` (it has moved the files' readable ends).
    pub(crate) fn set_published(&self, end: u64) {
        self.written.store(end, Ordering::Release);
    }

    /// The file holding physical offset `phys`.
    pub fn file_at(&self, phys: u64) -> Option<Arc<LogFile>> {
        let files = sync::read(&self.files);
        let first = files.first()?.start;
        if phys < first {
            return None;
        }
        let i = ((phys - first) / self.file_bytes) as usize;
        files.get(i).filter(|f| f.start <= phys && phys < f.end()).cloned()
    }

    /// Parses the message at `phys` (which must be published), without checking its CRC.
    pub fn with_message<T>(&self, phys: u64, f: impl FnOnce(&MessageView<'_>) -> T) -> Option<Result<T, StorageError>> {
        let file = self.file_at(phys)?;
        let pos = (phys - file.start) as usize;
        let tail = file.map.tail_from(pos);
        if tail.is_empty() {
            return None;
        }
        Some(match rec::parse_entry(tail) {
            Ok(Entry::Message(view)) => Ok(f(&view)),
            Ok(_) => Err(StorageError::Corrupt {
                path: file.map.path().to_path_buf(),
                detail: format!("no message at physical offset {phys}"),
            }),
            Err(e) => Err(e.into_storage(file.map.path())),
        })
    }

    /// Walks the messages from physical offset `from` (a record boundary) until the end of the data,
    /// calling `f` for each message (and nothing for blank records). With `verify` every body CRC is
    /// checked and the PHYSICALOFFSET field must match the position. Stops at the first record that does
    /// not parse or check ([`check_structure`]) and reports it as damage.
    pub fn scan(
        &self,
        from: u64,
        verify: bool,
        mut f: impl FnMut(u64, &MessageView<'_>) -> Result<(), StorageError>,
    ) -> Result<ScanEnd, StorageError> {
        let mut pos = from;
        for file in self.files() {
            if file.end() <= pos {
                continue;
            }
            if file.start > pos {
                break;
            }
            let data = file.map.tail_from(0);
            loop {
                let in_file = (pos - file.start) as usize;
                if in_file >= data.len() {
                    break;
                }
                let damage = |detail: String| {
                    Ok(ScanEnd { end: pos, damage: Some(format!("{}: {detail}", file.map.path().display())) })
                };
                match rec::parse_entry(&data[in_file..]) {
                    Ok(Entry::End) => return Ok(ScanEnd { end: pos, damage: None }),
                    Ok(Entry::Blank(size)) => {
                        if in_file + size != file.map.len() {
                            return damage(format!("a blank record at {pos} does not end the file"));
                        }
                        pos += size as u64;
                    }
                    Ok(Entry::Message(view)) => {
                        if verify {
                            if let Err(e) = view.verify_crc() {
                                return damage(format!("message at {pos}: {e}"));
                            }
                            if view.meta.physical_offset != pos as i64 {
                                return damage(format!("message at {pos} says it is at {}", view.meta.physical_offset));
                            }
                            if in_file + view.total_size + BLANK_RECORD_SIZE > file.map.len() {
                                return damage(format!("message at {pos} leaves no room for a blank record"));
                            }
                            if let Err(e) = check_structure(&view) {
                                return damage(format!("message at {pos}: {e}"));
                            }
                        }
                        f(pos, &view)?;
                        pos += view.total_size as u64;
                    }
                    Err(e) => return damage(format!("at {pos}: {e}")),
                }
            }
        }
        Ok(ScanEnd { end: pos, damage: None })
    }

    /// Cuts the CommitLog at `end` (recovery): zeroes the rest of the file holding it and deletes every
    /// later file. Only before the engine is shared.
    pub fn truncate(&self, end: u64) -> Result<(), StorageError> {
        let mut files = sync::write(&self.files);
        while let Some(last) = files.last() {
            if last.start > end || (last.start == end && files.len() > 1) {
                let path = last.map.path().to_path_buf();
                files.pop();
                fs::remove_file(&path).at(&path)?;
            } else {
                break;
            }
        }
        if let Some(last) = files.last()
            && end >= last.start
            && end < last.end()
        {
            // SAFETY: recovery runs before the engine is shared: no reader and no other writer exist.
            unsafe { last.map.zero_from((end - last.start) as usize) };
            last.map.flush_range(0, last.map.len())?;
        }
        sync_dir(&self.dir)
    }

    /// Removes (and unlinks) the files wholly below `end`, never the one holding the written end.
    /// Returns them.
    pub fn remove_files_before(&self, end: u64) -> Result<Vec<Arc<LogFile>>, StorageError> {
        let written = self.written();
        let mut files = sync::write(&self.files);
        let mut removed = Vec::new();
        while let Some(first) = files.first() {
            if first.end() <= end && first.end() <= written && files.len() > 1 {
                removed.push(files.remove(0));
            } else {
                break;
            }
        }
        drop(files);
        for f in &removed {
            fs::remove_file(f.map.path()).at(f.map.path())?;
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// Writes back the published bytes in `from..to` (msync per file).
    pub fn flush_range(&self, from: u64, to: u64) -> Result<(), StorageError> {
        if to <= from {
            return Ok(());
        }
        for f in self.files() {
            let lo = from.max(f.start);
            let hi = to.min(f.end());
            if lo < hi {
                f.map.flush_range((lo - f.start) as usize, (hi - lo) as usize)?;
            }
        }
        Ok(())
    }

    /// The file starting at `start`, created now if neither it nor the allocator's file exists.
    pub(crate) fn file_starting_at(&self, start: u64) -> Result<Arc<LogFile>, StorageError> {
        if let Some(f) = self.file_at(start) {
            return Ok(f);
        }
        let _guard = lock(&self.create_lock);
        if let Some(f) = self.file_at(start) {
            return Ok(f);
        }
        self.create_file(start)
    }

    /// Creates the file at `start` and adds it to the chain. Call with `create_lock` held.
    fn create_file(&self, start: u64) -> Result<Arc<LogFile>, StorageError> {
        {
            let files = sync::read(&self.files);
            if let Some(last) = files.last()
                && last.end() != start
            {
                return Err(StorageError::Corrupt {
                    path: self.dir.join(file_name(start)),
                    detail: format!("cannot create a CommitLog file at {start}: the chain ends at {}", last.end()),
                });
            }
        }
        let path = self.dir.join(file_name(start));
        self.check_room(&path)?;
        let map = MappedFile::create(&path, self.file_bytes as usize, self.prewarm)?;
        let file = Arc::new(LogFile { start, map: Arc::new(map), max_store_ms: AtomicI64::new(i64::MIN) });
        sync::write(&self.files).push(Arc::clone(&file));
        Ok(file)
    }

    /// Refuses to create the file at `path` unless the volume has room for it and still keeps its guard free:
    /// preallocating is all or nothing, and a file that would take the last free bytes would starve
    /// RocksDB and the other engine on the same volume.
    fn check_room(&self, path: &Path) -> Result<(), StorageError> {
        let space = volume::space(&self.dir)?;
        let needed =
            self.file_bytes.saturating_add(self.min_free.unwrap_or_else(|| volume::default_min_free(space.total)));
        if space.free < needed {
            return Err(StorageError::DiskFull { path: path.to_path_buf(), volume: Some(space), needed: Some(needed) });
        }
        Ok(())
    }

    /// Asks the allocator to prepare the file at `start`.
    pub(crate) fn want(&self, start: u64) {
        lock(&self.wanted).next_file = Some(start);
        self.wanted_changed.notify_all();
    }

    /// Asks the allocator to fault `pos..pos + len` of `file` in writable, ahead of the writer.
    pub(crate) fn want_populated(&self, file: &Arc<LogFile>, pos: usize, len: usize) {
        lock(&self.wanted).populate = Some((Arc::clone(file), pos, len));
        self.wanted_changed.notify_all();
    }

    /// Starts the allocator thread (it stops when [`CommitLog::stop`] is called).
    pub fn start_allocator(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let log = Arc::clone(self);
        std::thread::Builder::new().name("janus-cl-alloc".into()).spawn(move || log.allocator_loop())
    }

    fn allocator_loop(&self) {
        loop {
            let (populate, start) = {
                let mut wanted = lock(&self.wanted);
                loop {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if wanted.populate.is_some() || wanted.next_file.is_some() {
                        break (wanted.populate.take(), wanted.next_file.take());
                    }
                    wanted = sync::wait(&self.wanted_changed, wanted);
                }
            };
            // Faulting pages in comes first: the writer is about to need them, the next file only later.
            if let Some((file, pos, len)) = populate {
                file.map.populate(pos, len);
            }
            let Some(start) = start else { continue };
            let _guard = lock(&self.create_lock);
            if self.file_at(start).is_some() {
                continue;
            }
            let ends_at_start = self.files().last().is_some_and(|f| f.end() == start);
            if !ends_at_start {
                continue;
            }
            match self.create_file(start) {
                Ok(_) => {}
                // No room for a spare file: the writer creates it when it needs it, or reports the full disk.
                Err(e @ StorageError::DiskFull { .. }) => {
                    tracing::debug!(error = %e, start, "no room to preallocate the next CommitLog file yet")
                }
                Err(e) => tracing::warn!(error = %e, start, "preallocating the next CommitLog file failed"),
            }
        }
    }

    /// Stops the allocator thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _guard = lock(&self.wanted);
        self.wanted_changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{MessageMeta, body_crc, encode_message, message_size};
    use crate::writer::LogWriter;

    fn put(w: &mut LogWriter, body: &[u8], offset: i64) -> u64 {
        let size = message_size(body.len(), 1, 0).unwrap();
        let slot = w.reserve(size).unwrap();
        let meta = MessageMeta { queue_offset: offset, physical_offset: slot.phys as i64, ..Default::default() };
        let dst = w.write(&slot, size).unwrap();
        encode_message(dst, &meta, body_crc(body), body, b"t", b"").unwrap();
        w.publish().unwrap();
        slot.phys
    }

    #[test]
    fn blank_records_fill_file_ends_and_scans_cross_them() {
        for staged in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(CommitLog::open(dir.path(), 4096, false).unwrap());
            // SAFETY: single-threaded test; no region of the log is held.
            unsafe { log.set_written(0) };
            let mut w = LogWriter::new(&log, 0, 0, staged).unwrap();
            let body = vec![7u8; 1000];
            let mut phys = Vec::new();
            for i in 0..10 {
                phys.push(put(&mut w, &body, i));
            }
            // 1092-byte messages: three per 4096-byte file, then a 820-byte blank record.
            assert_eq!(message_size(1000, 1, 0).unwrap(), 1092);
            assert_eq!(phys[3], 4096);
            let first = log.files()[0].map.tail_from(3 * 1092).to_vec();
            assert_eq!(first.len(), 820);
            assert_eq!(&first[..8], &[0, 0, 0x03, 0x34, 0xCB, 0xD4, 0x31, 0x94]);
            let mut seen = Vec::new();
            let end = log.scan(0, true, |p, v| {
                seen.push((p, v.meta.queue_offset));
                Ok(())
            });
            assert_eq!(end.unwrap(), ScanEnd { end: w.pos(), damage: None });
            assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), phys);
            assert!(w.reserve(4096).is_err());
            let names: Vec<_> = log.files().iter().map(|f| f.start).collect();
            assert!(names.starts_with(&[0, 4096, 8192, 12288]), "{names:?}");
        }
    }

    #[test]
    fn rollback_zeroes_unpublished_bytes_across_a_roll() {
        for staged in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(CommitLog::open(dir.path(), 4096, false).unwrap());
            // SAFETY: single-threaded test; no region of the log is held.
            unsafe { log.set_written(0) };
            let mut w = LogWriter::new(&log, 0, 0, staged).unwrap();
            put(&mut w, &[1u8; 3000], 0);
            let mark = w.pos();
            let size = message_size(2000, 1, 0).unwrap();
            let slot = w.reserve(size).unwrap();
            assert_eq!(slot.phys, 4096);
            w.write(&slot, size).unwrap().fill(9);
            w.rollback(mark).unwrap();
            assert_eq!(w.pos(), mark);
            let end = log.scan(0, true, |_, _| Ok(())).unwrap();
            assert_eq!(end, ScanEnd { end: mark, damage: None });
            assert_eq!(put(&mut w, &[2u8; 10], 1), mark);
        }
    }

    #[test]
    fn check_structure_accepts_a_producer_mark_and_refuses_a_malformed_one() {
        for (props, ok) in [(&b"%P\x017.0.3.2\x02%K\x01k\x02"[..], true), (b"%P\x017.0.3\x02", false)] {
            let mut buf = vec![0u8; message_size(1, 1, props.len()).unwrap()];
            encode_message(&mut buf, &MessageMeta::default(), body_crc(b"v"), b"v", b"t", props).unwrap();
            let rec::Entry::Message(view) = rec::parse_entry(&buf).unwrap() else { panic!("not a message") };
            assert_eq!(check_structure(&view).is_ok(), ok, "{props:?}");
        }
    }
}
