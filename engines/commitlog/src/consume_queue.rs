//! ConsumeQueues: per queue, a directory `consumequeue/<topic>/<queue>/` of files named by their first byte
//! in the queue (`<20-digit entry index * 20>`, as RocketMQ names them), each holding
//! `consumequeue.file.entries` fixed-size 20-byte entries. Entry `n` describes queue offset `n`:
//!
//! ```text
//! offset  size  field
//!      0     8  CommitLog physical offset (i64)
//!      8     4  message size (i32)
//!     12     8  tag hash code (i64; Java hash of TAGS, 0 without tags)
//! ```
//!
//! Files are created sparse at their full size. Entries are written with `pwrite` (a full disk is then an
//! error, not a SIGBUS) and read in ranges through a read-only view of a shared mapping, made on the first
//! range read (the writer needs no mapping). Single entries (the probes of a search, a lookup's check) are
//! read with `pread` instead: a fault on the mapping reads around it, up to the device's readahead
//! (`read_ahead_kb`, 8 MiB on some disks, more than a whole 6 MB file), and past a queue's last entry that
//! is a hole the kernel fills with zeros page by page, whereas a `pread` of 20 bytes reads one page.
//! Open files and their maps live in one LRU bounded by `consumequeue.open.files`; idle ones are closed
//! (and unmapped) and reopened on demand.
//! An entry with size 0 is absent (files start zeroed): the entries of a file form a prefix.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use janus_api::sync::lock;
use janus_api::{IoResultExt, StorageError};
use memmap2::{MmapOptions, MmapRaw};

use crate::commitlog::{file_name, parse_file_name};
use crate::lru::Lru;
use janus_api::fsutil::sync_dir;

/// Name of the ConsumeQueue directory under the engine's directory.
pub const CONSUMEQUEUE_DIR: &str = "consumequeue";
/// Bytes per entry.
pub const CQ_ENTRY_SIZE: usize = 20;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CqEntry {
    /// Physical offset of the message in the CommitLog.
    pub phys: i64,
    /// TOTALSIZE of the message.
    pub size: i32,
    /// Tag hash code.
    pub tag_hash: i64,
}

impl CqEntry {
    /// The 20 bytes of the entry.
    pub fn encode(&self) -> [u8; CQ_ENTRY_SIZE] {
        let mut b = [0u8; CQ_ENTRY_SIZE];
        b[0..8].copy_from_slice(&self.phys.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..20].copy_from_slice(&self.tag_hash.to_be_bytes());
        b
    }

    /// Parses 20 bytes.
    pub fn decode(b: &[u8; CQ_ENTRY_SIZE]) -> CqEntry {
        let mut phys = [0u8; 8];
        phys.copy_from_slice(&b[0..8]);
        let mut size = [0u8; 4];
        size.copy_from_slice(&b[8..12]);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&b[12..20]);
        CqEntry { phys: i64::from_be_bytes(phys), size: i32::from_be_bytes(size), tag_hash: i64::from_be_bytes(tag) }
    }

    /// Whether the entry was written (a message always has a positive size and offset >= 0).
    pub fn is_present(&self) -> bool {
        self.size > 0 && self.phys >= 0
    }
}

/// Where one queue's files are: a process-unique id (the LRU key) and its directory.
#[derive(Debug, Clone)]
pub struct QueueLoc {
    /// Unique per queue incarnation in this process.
    pub uid: u64,
    /// `consumequeue/<topic>/<queue>`.
    pub dir: PathBuf,
}

/// One open ConsumeQueue file.
#[derive(Debug)]
pub struct CqFile {
    path: PathBuf,
    file: File,
    map: OnceLock<MmapRaw>,
    entries: usize,
}

impl CqFile {
    fn open(path: &Path, entries: usize, create: bool) -> Result<Option<CqFile>, StorageError> {
        let bytes = (entries * CQ_ENTRY_SIZE) as u64;
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).at(dir)?;
                }
                OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?
            }
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let len = file.metadata().at(path)?.len();
        if len != bytes {
            if len > bytes {
                return Err(StorageError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!(
                        "{len} bytes, more than consumequeue.file.entries ({entries}) entries of 20 bytes; was the \
                         engine opened with a different consumequeue.file.entries?"
                    ),
                });
            }
            // New (or torn) file: extend it, sparse.
            file.set_len(bytes).at(path)?;
        }
        Ok(Some(CqFile { path: path.to_path_buf(), file, map: OnceLock::new(), entries }))
    }

    /// The read-only mapping of the whole file, made on first use.
    fn map(&self) -> Result<&MmapRaw, StorageError> {
        if let Some(map) = self.map.get() {
            return Ok(map);
        }
        let len = self.entries * CQ_ENTRY_SIZE;
        let map = MmapOptions::new().len(len).map_raw_read_only(&self.file).at(&self.path)?;
        // Another reader may have mapped it meanwhile: keep theirs, drop ours.
        Ok(self.map.get_or_init(|| map))
    }

    /// Reads entries `index..index + count` of this file.
    fn read(&self, index: usize, count: usize) -> Result<Vec<CqEntry>, StorageError> {
        let map = self.map()?;
        let count = count.min(self.entries.saturating_sub(index));
        let mut raw = vec![0u8; count * CQ_ENTRY_SIZE];
        // SAFETY: the range lies inside the mapping (index + count <= entries). We copy through the raw
        // pointer without forming a reference to the mapped bytes, so concurrent `pwrite`s to other entries
        // of the same pages cannot break aliasing rules; entries below a queue's end never change while the
        // engine runs, so the copy of those is exact.
        unsafe {
            std::ptr::copy_nonoverlapping(map.as_ptr().add(index * CQ_ENTRY_SIZE), raw.as_mut_ptr(), raw.len());
        }
        Ok(raw
            .chunks_exact(CQ_ENTRY_SIZE)
            .map(|c| {
                let mut b = [0u8; CQ_ENTRY_SIZE];
                b.copy_from_slice(c);
                CqEntry::decode(&b)
            })
            .collect())
    }

    fn write(&self, index: usize, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_all_at(bytes, (index * CQ_ENTRY_SIZE) as u64).at(&self.path)
    }

    /// Reads entry `index` (< entries) with a positioned read, not through the mapping (see the module docs).
    fn read_entry(&self, index: usize) -> Result<CqEntry, StorageError> {
        let mut b = [0u8; CQ_ENTRY_SIZE];
        self.file.read_exact_at(&mut b, (index * CQ_ENTRY_SIZE) as u64).at(&self.path)?;
        Ok(CqEntry::decode(&b))
    }

    /// How many entries the file holds (the prefix of present entries).
    ///
    /// Searched from the front (probes 0, 2, 6, 14, ... until one is absent, then a binary search below it),
    /// with positioned reads: finding `n` entries reads only the pages below about `2n`. A binary search
    /// over the whole file would probe the hole past the last entry about twenty times, and each probe
    /// through the mapping would make the kernel read (zero-fill) megabytes around it: at open, with
    /// thousands of queues, that was seconds and hundreds of MB of mapped pages.
    fn present(&self) -> Result<usize, StorageError> {
        let is_present =
            |i: usize| -> Result<bool, StorageError> { Ok(i < self.entries && self.read_entry(i)?.is_present()) };
        // Invariant: entries below `lo` are present, entry `hi` (or the end of the file) is not.
        let (mut lo, mut step) = (0, 1);
        let mut hi = loop {
            let probe = lo + step - 1;
            if !is_present(probe)? {
                break probe.min(self.entries);
            }
            lo = probe + 1;
            step *= 2;
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if is_present(mid)? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// What is on disk for one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFiles {
    /// The file numbers present, ascending (file `n` holds entries `n * entries ..`).
    pub files: Vec<u64>,
    /// One past the last present entry (0 without files).
    pub next: u64,
}

impl QueueFiles {
    /// The first entry index the files cover.
    pub fn first(&self, entries_per_file: u64) -> u64 {
        self.files.first().map_or(self.next, |f| f * entries_per_file)
    }

    /// Whether the files follow each other without a hole.
    pub fn contiguous(&self) -> bool {
        self.files.windows(2).all(|w| w[1] == w[0] + 1)
    }
}

type Key = (u64, u64);

/// Every ConsumeQueue of the engine: their root directory and the LRU of open files.
#[derive(Debug)]
pub struct CqStore {
    root: PathBuf,
    entries_per_file: u64,
    open: Mutex<Lru<Key, Arc<CqFile>>>,
    /// Files written since the last sync, by path (they may be closed meanwhile).
    dirty: Mutex<HashMap<Key, PathBuf>>,
}

impl CqStore {
    /// The store under `dir/consumequeue`.
    pub fn open(dir: &Path, entries_per_file: u32, max_open: usize) -> Result<CqStore, StorageError> {
        let root = dir.join(CONSUMEQUEUE_DIR);
        fs::create_dir_all(&root).at(&root)?;
        Ok(CqStore {
            root,
            entries_per_file: u64::from(entries_per_file),
            open: Mutex::new(Lru::new(max_open)),
            dirty: Mutex::new(HashMap::new()),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Entries per file.
    pub fn entries_per_file(&self) -> u64 {
        self.entries_per_file
    }

    /// Every queue directory on disk: `(topic, queue)`, sorted.
    pub fn queue_dirs(&self) -> Result<Vec<(String, u32)>, StorageError> {
        let root = self.root();
        let mut out = Vec::new();
        for topic in fs::read_dir(root).at(root)? {
            let topic = topic.at(root)?;
            let Some(name) = topic.file_name().to_str().map(str::to_string) else { continue };
            if janus_api::validate_topic_name(&name).is_err() || !topic.path().is_dir() {
                continue;
            }
            for q in fs::read_dir(topic.path()).at(topic.path())? {
                let q = q.at(topic.path())?;
                if let Some(id) = q.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    && q.path().is_dir()
                {
                    out.push((name.clone(), id));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The directory of a topic.
    pub fn topic_dir(&self, topic: &str) -> PathBuf {
        self.root.join(topic)
    }

    /// The directory of one queue.
    pub fn queue_dir(&self, topic: &str, queue: u32) -> PathBuf {
        self.root.join(topic).join(queue.to_string())
    }

    /// Path of file number `file_no` of a queue.
    pub fn file_path(&self, dir: &Path, file_no: u64) -> PathBuf {
        dir.join(file_name(file_no * self.entries_per_file * CQ_ENTRY_SIZE as u64))
    }

    /// How many files are open now.
    pub fn open_files(&self) -> usize {
        lock(&self.open).len()
    }

    fn file(&self, q: &QueueLoc, file_no: u64, create: bool) -> Result<Option<Arc<CqFile>>, StorageError> {
        let key = (q.uid, file_no);
        if let Some(f) = lock(&self.open).get(&key) {
            return Ok(Some(f));
        }
        let path = self.file_path(&q.dir, file_no);
        let Some(file) = CqFile::open(&path, self.entries_per_file as usize, create)? else { return Ok(None) };
        let file = Arc::new(file);
        // Two threads may open the same file at once; both maps are valid, the LRU keeps the later one.
        lock(&self.open).insert(key, Arc::clone(&file));
        Ok(Some(file))
    }

    /// Writes `entries` as queue offsets `first..` of `q`.
    pub fn write(&self, q: &QueueLoc, first: u64, entries: &[CqEntry]) -> Result<(), StorageError> {
        let per = self.entries_per_file;
        let mut done = 0usize;
        while done < entries.len() {
            let index = first + done as u64;
            let (file_no, in_file) = (index / per, (index % per) as usize);
            let n = (entries.len() - done).min((per as usize) - in_file);
            let mut bytes = Vec::with_capacity(n * CQ_ENTRY_SIZE);
            for e in &entries[done..done + n] {
                bytes.extend_from_slice(&e.encode());
            }
            let Some(file) = self.file(q, file_no, true)? else {
                return Err(StorageError::io(&q.dir, std::io::Error::other("ConsumeQueue file vanished")));
            };
            file.write(in_file, &bytes)?;
            let mut dirty = lock(&self.dirty);
            dirty.entry((q.uid, file_no)).or_insert_with(|| file.path.clone());
            done += n;
        }
        Ok(())
    }

    /// Reads at most `count` entries of `q` from `from`, stopping at a file boundary or a missing file.
    pub fn read(&self, q: &QueueLoc, from: u64, count: usize) -> Result<Vec<CqEntry>, StorageError> {
        let per = self.entries_per_file;
        let Some(file) = self.file(q, from / per, false)? else { return Ok(Vec::new()) };
        file.read((from % per) as usize, count)
    }

    /// One entry of `q`, if its file exists and the entry is present; read with `pread`, so that the
    /// probes of a search do not fault the file in around them (see the module docs).
    pub fn entry(&self, q: &QueueLoc, index: u64) -> Result<Option<CqEntry>, StorageError> {
        let per = self.entries_per_file;
        let Some(file) = self.file(q, index / per, false)? else { return Ok(None) };
        Ok(Some(file.read_entry((index % per) as usize)?).filter(CqEntry::is_present))
    }

    /// The file numbers present for `q`, ascending.
    pub fn list_files(&self, dir: &Path) -> Result<Vec<u64>, StorageError> {
        let bytes_per_file = self.entries_per_file * CQ_ENTRY_SIZE as u64;
        let mut files = Vec::new();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(StorageError::io(dir, e)),
        };
        for entry in rd {
            let entry = entry.at(dir)?;
            let Some(start) = entry.file_name().to_str().and_then(parse_file_name) else { continue };
            if start % bytes_per_file != 0 {
                return Err(StorageError::Corrupt {
                    path: entry.path(),
                    detail: format!(
                        "not a multiple of consumequeue.file.entries ({}) x 20 bytes; was the engine opened with \
                         a different consumequeue.file.entries?",
                        self.entries_per_file
                    ),
                });
            }
            files.push(start / bytes_per_file);
        }
        files.sort_unstable();
        Ok(files)
    }

    /// What is on disk for `q`: its files and the end of its entries.
    pub fn load(&self, q: &QueueLoc) -> Result<QueueFiles, StorageError> {
        let files = self.list_files(&q.dir)?;
        let Some(&last) = files.last() else { return Ok(QueueFiles::default()) };
        let present = match self.file(q, last, false)? {
            Some(f) => f.present()? as u64,
            None => 0,
        };
        Ok(QueueFiles { next: last * self.entries_per_file + present, files })
    }

    /// Forgets entries `next..` of `q`: zeroes them in their file and deletes later files.
    pub fn truncate(&self, q: &QueueLoc, next: u64) -> Result<(), StorageError> {
        let per = self.entries_per_file;
        for file_no in self.list_files(&q.dir)? {
            if file_no * per >= next {
                self.remove_file(q, file_no)?;
            } else if (file_no + 1) * per > next
                && let Some(f) = self.file(q, file_no, false)?
            {
                let from = (next - file_no * per) as usize;
                let zeros = vec![0u8; (f.entries - from) * CQ_ENTRY_SIZE];
                f.write(from, &zeros)?;
                lock(&self.dirty).insert((q.uid, file_no), f.path.clone());
            }
        }
        Ok(())
    }

    /// Deletes file `file_no` of `q`.
    pub fn remove_file(&self, q: &QueueLoc, file_no: u64) -> Result<(), StorageError> {
        lock(&self.open).remove_where(|k| *k == (q.uid, file_no));
        let path = self.file_path(&q.dir, file_no);
        lock(&self.dirty).remove(&(q.uid, file_no));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    /// Deletes the files of `q` that hold only entries below `below`, never the last one.
    pub fn remove_files_below(&self, q: &QueueLoc, below: u64) -> Result<usize, StorageError> {
        let files = self.list_files(&q.dir)?;
        let mut removed = 0;
        for (i, &file_no) in files.iter().enumerate() {
            if i + 1 < files.len() && (file_no + 1) * self.entries_per_file <= below {
                self.remove_file(q, file_no)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Closes every open file of queue `uid` (before its directory goes away).
    pub fn forget(&self, uid: u64) {
        lock(&self.open).remove_where(|k| k.0 == uid);
    }

    /// Forgets dirty files under `dir` (a deleted topic).
    pub fn forget_dir(&self, dir: &Path) {
        lock(&self.dirty).retain(|_, p| !p.starts_with(dir));
    }

    /// Makes every entry written so far durable: fsyncs each dirty file, or the whole filesystem with
    /// `syncfs` when very many are dirty.
    pub fn sync(&self) -> Result<(), StorageError> {
        let dirty: Vec<PathBuf> = lock(&self.dirty).drain().map(|(_, p)| p).collect();
        if dirty.len() > 256 {
            let root = File::open(&self.root).at(&self.root)?;
            nix::unistd::syncfs(&root).map_err(|e| StorageError::io(&self.root, e.into()))?;
            return Ok(());
        }
        for path in &dirty {
            match File::open(path) {
                Ok(f) => f.sync_data().at(path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        let dirs: HashSet<&Path> = dirty.iter().filter_map(|p| p.parent()).collect();
        for d in dirs {
            if d.exists() {
                sync_dir(d)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_byte_exact() {
        let e = CqEntry { phys: 0x0102, size: 300, tag_hash: -1 };
        let b = e.encode();
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 1, 44, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(CqEntry::decode(&b), e);
        assert!(!CqEntry::default().is_present());
    }

    #[test]
    fn writes_span_files_and_load_finds_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = CqStore::open(dir.path(), 16, 2).unwrap();
        let q = QueueLoc { uid: 1, dir: store.queue_dir("t", 0) };
        let entries: Vec<CqEntry> = (0..40).map(|i| CqEntry { phys: i * 100, size: 100, tag_hash: i }).collect();
        store.write(&q, 0, &entries).unwrap();
        assert!(store.open_files() <= 2);
        assert_eq!(store.list_files(&q.dir).unwrap(), vec![0, 1, 2]);
        assert!(q.dir.join("00000000000000000320").exists());
        assert_eq!(store.load(&q).unwrap().next, 40);
        assert_eq!(store.read(&q, 14, 10).unwrap(), entries[14..16].to_vec());
        assert_eq!(store.entry(&q, 39).unwrap(), Some(entries[39]));
        assert_eq!(store.entry(&q, 40).unwrap(), None);
        store.truncate(&q, 20).unwrap();
        assert_eq!(store.load(&q).unwrap(), QueueFiles { files: vec![0, 1], next: 20 });
        assert_eq!(store.remove_files_below(&q, 20).unwrap(), 1);
        assert_eq!(store.load(&q).unwrap(), QueueFiles { files: vec![1], next: 20 });
        store.sync().unwrap();
    }
}
