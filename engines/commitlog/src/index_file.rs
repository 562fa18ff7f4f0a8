//! IndexFiles: message lookup by key, as RocketMQ's `index/` directory.
//!
//! ```text
//! header (40 bytes):  beginTimestamp i64, endTimestamp i64, beginPhyOffset i64, endPhyOffset i64,
//!                     hashSlotCount i32 (slots in use), indexCount i32 (next entry number, from 1)
//! slot table:         index.slots x 4 bytes: the newest entry number for each hash slot (0 = none)
//! entries:            index.entries x 20 bytes: keyHash i32, phyOffset i64,
//!                     timeDiff i32 (seconds since beginTimestamp), prevIndex i32 (0 ends the chain)
//! ```
//!
//! A key is indexed as `topic#key` with hash `|javaHash|` (0 for `i32::MIN`), in slot `hash % slots`;
//! entry number 0 is never used, so a file holds `index.entries - 1` keys. Timestamps are STORETIMESTAMPs.
//! Files are named by the wall-clock millisecond of their creation (20 digits). Lookups return candidate
//! physical offsets only: the caller checks the real key in the message (hashes collide, and a crash may
//! leave entries pointing at bytes that are gone).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::format::java_string_hash;
use janus_api::sync;
use janus_api::{IoResultExt, StorageError};
use memmap2::{MmapMut, MmapOptions};

use crate::commitlog::{file_name, parse_file_name};
use crate::mapped::preallocate;
use janus_api::fsutil::sync_dir;

/// Name of the IndexFile directory under the engine's directory.
pub const INDEX_DIR: &str = "index";
/// Size of the header.
pub const INDEX_HEADER_SIZE: usize = 40;
/// Size of a hash slot.
pub const SLOT_SIZE: usize = 4;
/// Size of an entry.
pub const INDEX_ENTRY_SIZE: usize = 20;

/// Bytes of an IndexFile with `slots` slots and `entries` entries.
pub fn file_size(slots: u32, entries: u32) -> u64 {
    INDEX_HEADER_SIZE as u64 + u64::from(slots) * SLOT_SIZE as u64 + u64::from(entries) * INDEX_ENTRY_SIZE as u64
}

/// The hash a key of a topic is indexed under (RocketMQ: `abs(("topic#key").hashCode())`).
pub fn key_hash(topic: &str, key: &[u8]) -> i32 {
    let mut s = Vec::with_capacity(topic.len() + 1 + key.len());
    s.extend_from_slice(topic.as_bytes());
    s.push(b'#');
    s.extend_from_slice(key);
    let h = java_string_hash(&s);
    if h == i32::MIN { 0 } else { h.abs() }
}

/// The header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// STORETIMESTAMP of the first entry.
    pub begin_ts: i64,
    /// STORETIMESTAMP of the newest entry.
    pub end_ts: i64,
    /// Physical offset of the first entry's message.
    pub begin_phys: i64,
    /// Physical offset of the newest entry's message.
    pub end_phys: i64,
    /// Slots in use.
    pub slot_count: i32,
    /// The next entry number (1 in an empty file).
    pub entry_count: i32,
}

impl IndexHeader {
    fn read(b: &[u8]) -> IndexHeader {
        let i64_at = |p: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[p..p + 8]);
            i64::from_be_bytes(a)
        };
        let i32_at = |p: usize| {
            let mut a = [0u8; 4];
            a.copy_from_slice(&b[p..p + 4]);
            i32::from_be_bytes(a)
        };
        IndexHeader {
            begin_ts: i64_at(0),
            end_ts: i64_at(8),
            begin_phys: i64_at(16),
            end_phys: i64_at(24),
            slot_count: i32_at(32),
            entry_count: i32_at(36),
        }
    }

    fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.begin_ts.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_ts.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phys.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phys.to_be_bytes());
        b[32..36].copy_from_slice(&self.slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.entry_count.to_be_bytes());
    }
}

fn get_i32(b: &[u8], p: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[p..p + 4]);
    i32::from_be_bytes(a)
}

/// One IndexFile, mapped (see the module docs). Callers guard it with a lock.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
    map: MmapMut,
    slots: u32,
    entries: u32,
    header: IndexHeader,
}

impl IndexFile {
    /// Creates an empty IndexFile.
    pub fn create(path: &Path, slots: u32, entries: u32) -> Result<IndexFile, StorageError> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).at(path)?;
        let size = file_size(slots, entries);
        preallocate(&file, path, size)?;
        // SAFETY: the file was just created by us and is only ever accessed through this mapping, under the
        // caller's lock; it is never truncated while mapped.
        let mut map = unsafe { MmapOptions::new().len(size as usize).map_mut(&file) }.at(path)?;
        let header = IndexHeader { begin_ts: 0, end_ts: 0, begin_phys: 0, end_phys: 0, slot_count: 0, entry_count: 1 };
        header.write(&mut map[..INDEX_HEADER_SIZE]);
        Ok(IndexFile { path: path.to_path_buf(), map, slots, entries, header })
    }

    /// Opens an existing IndexFile made with the same sizes.
    pub fn open(path: &Path, slots: u32, entries: u32) -> Result<IndexFile, StorageError> {
        let file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        let size = file_size(slots, entries);
        let actual = file.metadata().at(path)?.len();
        if actual != size {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "{actual} bytes, but index.slots = {slots} and index.entries = {entries} make {size}; was the \
                     engine opened with different index sizes?"
                ),
            });
        }
        // SAFETY: as in `create`: only accessed through this mapping under the caller's lock, never truncated.
        let map = unsafe { MmapOptions::new().len(size as usize).map_mut(&file) }.at(path)?;
        let mut header = IndexHeader::read(&map[..INDEX_HEADER_SIZE]);
        header.entry_count = header.entry_count.clamp(1, entries as i32);
        Ok(IndexFile { path: path.to_path_buf(), map, slots, entries, header })
    }

    /// The header.
    pub fn header(&self) -> IndexHeader {
        self.header
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether no more entries fit.
    pub fn is_full(&self) -> bool {
        self.header.entry_count as u32 >= self.entries
    }

    fn slot_pos(&self, hash: i32) -> usize {
        INDEX_HEADER_SIZE + (hash.unsigned_abs() % self.slots) as usize * SLOT_SIZE
    }

    fn entry_pos(&self, n: i32) -> usize {
        INDEX_HEADER_SIZE + self.slots as usize * SLOT_SIZE + n as usize * INDEX_ENTRY_SIZE
    }

    /// Adds a key; returns false (adding nothing) when the file is full.
    pub fn put(&mut self, hash: i32, phys: i64, store_ts: i64) -> bool {
        if self.is_full() {
            return false;
        }
        let n = self.header.entry_count;
        let slot_pos = self.slot_pos(hash);
        let mut prev = get_i32(&self.map, slot_pos);
        if prev <= 0 || prev >= n {
            prev = 0;
        }
        if n == 1 {
            self.header.begin_ts = store_ts;
            self.header.begin_phys = phys;
        }
        let diff = (store_ts.saturating_sub(self.header.begin_ts) / 1000).clamp(0, i64::from(i32::MAX)) as i32;
        let pos = self.entry_pos(n);
        let e = &mut self.map[pos..pos + INDEX_ENTRY_SIZE];
        e[0..4].copy_from_slice(&hash.to_be_bytes());
        e[4..12].copy_from_slice(&phys.to_be_bytes());
        e[12..16].copy_from_slice(&diff.to_be_bytes());
        e[16..20].copy_from_slice(&prev.to_be_bytes());
        self.map[slot_pos..slot_pos + SLOT_SIZE].copy_from_slice(&n.to_be_bytes());
        if prev == 0 {
            self.header.slot_count += 1;
        }
        self.header.entry_count = n + 1;
        self.header.end_ts = store_ts;
        self.header.end_phys = phys;
        let header = self.header;
        header.write(&mut self.map[..INDEX_HEADER_SIZE]);
        true
    }

    /// Whether the file may hold entries stored within `begin_ms..=end_ms`.
    pub fn overlaps(&self, begin_ms: i64, end_ms: i64) -> bool {
        self.header.entry_count > 1
            && self.header.begin_ts <= end_ms
            && self.header.end_ts.saturating_add(1000) >= begin_ms
    }

    /// Physical offsets of entries with `hash` stored (to the second) within `begin_ms..=end_ms`, newest
    /// first, at most `max`.
    pub fn lookup(&self, hash: i32, begin_ms: i64, end_ms: i64, max: usize, out: &mut Vec<i64>) {
        let n = self.header.entry_count;
        let mut cur = get_i32(&self.map, self.slot_pos(hash));
        while cur > 0 && cur < n && out.len() < max {
            let pos = self.entry_pos(cur);
            let e = &self.map[pos..pos + INDEX_ENTRY_SIZE];
            let mut phys = [0u8; 8];
            phys.copy_from_slice(&e[4..12]);
            let ts = self.header.begin_ts.saturating_add(i64::from(get_i32(e, 12)) * 1000);
            if get_i32(e, 0) == hash && ts <= end_ms && ts.saturating_add(999) >= begin_ms {
                out.push(i64::from_be_bytes(phys));
            }
            let prev = get_i32(e, 16);
            if prev >= cur {
                break;
            }
            cur = prev;
        }
    }

    /// Writes the file back.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.map.flush().at(&self.path)
    }
}

/// Every IndexFile, oldest first; the newest takes new keys.
#[derive(Debug)]
pub struct IndexStore {
    dir: PathBuf,
    slots: u32,
    entries: u32,
    files: RwLock<Vec<Arc<RwLock<IndexFile>>>>,
}

impl IndexStore {
    /// Opens the IndexFiles under `dir/index`.
    pub fn open(dir: &Path, slots: u32, entries: u32) -> Result<IndexStore, StorageError> {
        let dir = dir.join(INDEX_DIR);
        fs::create_dir_all(&dir).at(&dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_file_name) {
                names.push(n);
            }
        }
        names.sort_unstable();
        let mut files = Vec::new();
        for n in names {
            files.push(Arc::new(RwLock::new(IndexFile::open(&dir.join(file_name(n)), slots, entries)?)));
        }
        Ok(IndexStore { dir, slots, entries, files: RwLock::new(files) })
    }

    fn snapshot(&self) -> Vec<Arc<RwLock<IndexFile>>> {
        sync::read(&self.files).clone()
    }

    /// Physical offset of the newest indexed message (-1 with no entry).
    pub fn end_phys(&self) -> i64 {
        self.snapshot()
            .iter()
            .rev()
            .map(|f| sync::read(f).header())
            .find(|h| h.entry_count > 1)
            .map_or(-1, |h| h.end_phys)
    }

    /// Indexes one key (writer only). Starts a new file when the newest is full.
    pub fn put(&self, hash: i32, phys: i64, store_ts: i64) -> Result<(), StorageError> {
        let last = self.snapshot().last().cloned();
        if let Some(f) = &last
            && sync::write(f).put(hash, phys, store_ts)
        {
            return Ok(());
        }
        let mut name = janus_api::now_ms().max(0) as u64;
        let last_name = last.as_ref().and_then(|f| {
            let f = sync::read(f);
            f.path().file_name().and_then(|n| n.to_str()).and_then(parse_file_name)
        });
        if let Some(l) = last_name {
            name = name.max(l + 1);
        }
        let mut file = IndexFile::create(&self.dir.join(file_name(name)), self.slots, self.entries)?;
        sync_dir(&self.dir)?;
        file.put(hash, phys, store_ts);
        sync::write(&self.files).push(Arc::new(RwLock::new(file)));
        Ok(())
    }

    /// Candidate physical offsets for `hash` stored within `begin_ms..=end_ms`, newest first.
    pub fn lookup(&self, hash: i32, begin_ms: i64, end_ms: i64, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for f in self.snapshot().iter().rev() {
            let f = sync::read(f);
            if f.overlaps(begin_ms, end_ms) {
                f.lookup(hash, begin_ms, end_ms, max, &mut out);
            }
            if out.len() >= max {
                break;
            }
        }
        out
    }

    /// Deletes the files whose every entry points below `min_phys`, never the newest.
    pub fn remove_before(&self, min_phys: i64) -> Result<usize, StorageError> {
        let mut files = sync::write(&self.files);
        let mut removed = 0;
        while files.len() > 1 {
            let h = sync::read(&files[0]).header();
            if h.end_phys >= min_phys {
                break;
            }
            let path = sync::read(&files[0]).path().to_path_buf();
            files.remove(0);
            fs::remove_file(&path).at(&path)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Writes every file back.
    pub fn flush(&self) -> Result<(), StorageError> {
        for f in self.snapshot() {
            sync::read(&f).flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_entries_are_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i");
        let mut f = IndexFile::create(&path, 4, 8).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40 + 16 + 160);
        assert!(f.put(5, 0x10, 1_000_000));
        assert!(f.put(9, 0x20, 1_003_500));
        f.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        #[rustfmt::skip]
        let header: Vec<u8> = [
            &1_000_000i64.to_be_bytes()[..], &1_003_500i64.to_be_bytes(), &0x10i64.to_be_bytes(),
            &0x20i64.to_be_bytes(), &1i32.to_be_bytes(), &3i32.to_be_bytes(),
        ].concat();
        assert_eq!(&bytes[..40], &header[..]);
        // Slot 1 (5 % 4 and 9 % 4) holds entry 2, whose previous entry is 1.
        assert_eq!(&bytes[40..56], &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        let e2 = &bytes[56 + 2 * 20..56 + 3 * 20];
        assert_eq!(e2, &[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 3, 0, 0, 0, 1]);
        let mut out = Vec::new();
        f.lookup(5, 0, i64::MAX - 1000, 10, &mut out);
        assert_eq!(out, vec![0x10]);
        out.clear();
        f.lookup(9, 1_003_000, 1_004_000, 10, &mut out);
        assert_eq!(out, vec![0x20]);
        out.clear();
        f.lookup(9, 1_005_000, 1_006_000, 10, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn store_rolls_full_files_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = IndexStore::open(dir.path(), 2, 3).unwrap();
        for i in 0..7 {
            store.put(7, i * 10, 1000 + i).unwrap();
        }
        assert_eq!(store.lookup(7, 0, 10_000, 100), vec![60, 50, 40, 30, 20, 10, 0]);
        assert_eq!(store.end_phys(), 60);
        drop(store);
        let store = IndexStore::open(dir.path(), 2, 3).unwrap();
        assert_eq!(store.lookup(7, 0, 10_000, 3), vec![60, 50, 40]);
        assert_eq!(store.remove_before(25).unwrap(), 1);
        assert_eq!(store.lookup(7, 0, 10_000, 100), vec![60, 50, 40, 30, 20]);
        assert!(IndexStore::open(dir.path(), 3, 3).is_err());
        assert_eq!(key_hash("t", b"k"), java_string_hash(b"t#k").abs());
    }
}
