//! The two sparse per-segment indexes and the mmap'd file that holds either.
//!
//! Offset index entry (8 bytes): offset relative to the segment base (u32), byte position in the `.log`
//! (u32). Time index entry (12 bytes): timestamp (i64), relative offset (u32). Big-endian, as Kafka.
//! The active segment's indexes are preallocated and mapped; a closed segment's are trimmed to their
//! entries and searched with positioned reads, so closed segments hold no descriptor and no mapping.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

/// Size of an offset index entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of a time index entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// One offset index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl OffsetEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; OFFSET_ENTRY_SIZE] {
        let mut out = [0u8; OFFSET_ENTRY_SIZE];
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    /// Decodes an entry.
    pub fn decode(b: &[u8; OFFSET_ENTRY_SIZE]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// One time index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// The largest timestamp seen up to `relative_offset`.
    pub timestamp: i64,
    /// Offset (relative to the segment base) of the record carrying that timestamp.
    pub relative_offset: u32,
}

impl TimeEntry {
    /// Encodes the entry.
    pub fn encode(&self) -> [u8; TIME_ENTRY_SIZE] {
        let mut out = [0u8; TIME_ENTRY_SIZE];
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    /// Decodes an entry.
    pub fn decode(b: &[u8; TIME_ENTRY_SIZE]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry { timestamp: i64::from_be_bytes(ts), relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]) }
    }
}

/// Index of the last entry whose key is `<= target`, for `n` entries sorted by key.
fn last_at_or_below(n: usize, target: i64, key: impl Fn(usize) -> io::Result<i64>) -> io::Result<Option<usize>> {
    let (mut lo, mut hi) = (0usize, n);
    // Invariant: entries below `lo` are <= target, entries at or above `hi` are > target.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid)? <= target { lo = mid + 1 } else { hi = mid }
    }
    Ok(lo.checked_sub(1))
}

/// A preallocated, mapped index file of fixed-width entries (the active segment's).
pub struct MappedIndex<const W: usize> {
    path: PathBuf,
    mmap: MmapMut,
    entries: usize,
}

impl<const W: usize> MappedIndex<W> {
    /// Opens `path`, keeping the first `entries` entries, and preallocates it to `max_bytes`.
    pub fn open(path: &Path, entries: usize, max_bytes: usize) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let capacity = (max_bytes / W).max(entries + 1);
        file.set_len((capacity * W) as u64)?;
        // SAFETY: the file is ours alone (one engine per data dir, one writer per partition under its lock);
        // nothing else truncates it while mapped: trimming happens in `close` after the map is dropped.
        let mmap = unsafe { MmapMut::map_mut(&file)? };
        // Entries are written one page at a time and read by binary search: without this hint the first write
        // fault pulls megabytes of readahead (8 MiB for a 10 MiB index), which at thousands of partitions is
        // more memory than the machine has. A failed hint only costs speed.
        let _ = mmap.advise(memmap2::Advice::Random);
        // Past the kept entries the file is zeros: it was trimmed to them (clean close) or recreated empty
        // (recovery rebuilds indexes from scratch), and `set_len` extends with zeros.
        Ok(MappedIndex { path: path.to_path_buf(), mmap, entries })
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether no further entry fits.
    pub fn is_full(&self) -> bool {
        (self.entries + 1) * W > self.mmap.len()
    }

    /// How many more entries fit.
    pub fn slots_left(&self) -> usize {
        (self.mmap.len() / W).saturating_sub(self.entries)
    }

    /// The raw bytes of entry `i` (< len).
    pub fn entry(&self, i: usize) -> [u8; W] {
        let mut out = [0u8; W];
        out.copy_from_slice(&self.mmap[i * W..(i + 1) * W]);
        out
    }

    /// Appends an entry; the caller checks `is_full` first.
    pub fn push(&mut self, entry: [u8; W]) {
        let at = self.entries * W;
        self.mmap[at..at + W].copy_from_slice(&entry);
        self.entries += 1;
    }

    /// Index of the last entry whose key is `<= target`.
    pub fn search(&self, target: i64, key: impl Fn(&[u8; W]) -> i64) -> Option<usize> {
        last_at_or_below(self.entries, target, |i| Ok(key(&self.entry(i)))).ok().flatten()
    }

    /// Forces the mapped entries to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.mmap.flush_range(0, (self.entries * W).max(W).min(self.mmap.len()))
    }

    /// Unmaps the file and trims it to its entries (what a closed segment keeps). Dirty pages stay in the
    /// page cache for the kernel to write back; a clean shutdown syncs the whole filesystem once.
    pub fn close(self) -> io::Result<()> {
        let MappedIndex { path, mmap, entries } = self;
        drop(mmap);
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len((entries * W) as u64)?;
        Ok(())
    }
}

/// Searches a closed (trimmed) index file with positioned reads: the last entry whose key is `<= target`.
pub fn search_file<const W: usize>(
    path: &Path,
    target: i64,
    key: impl Fn(&[u8; W]) -> i64,
) -> io::Result<Option<[u8; W]>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let n = (file.metadata()?.len() as usize) / W;
    let read = |i: usize| -> io::Result<[u8; W]> {
        let mut buf = [0u8; W];
        file.read_exact_at(&mut buf, (i * W) as u64)?;
        Ok(buf)
    };
    match last_at_or_below(n, target, |i| read(i).map(|e| key(&e)))? {
        Some(i) => read(i).map(Some),
        None => Ok(None),
    }
}

/// The last entry of a closed index file, if any.
pub fn last_entry_of_file<const W: usize>(path: &Path) -> io::Result<Option<[u8; W]>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let n = (file.metadata()?.len() as usize) / W;
    if n == 0 {
        return Ok(None);
    }
    let mut buf = [0u8; W];
    file.read_exact_at(&mut buf, ((n - 1) * W) as u64)?;
    Ok(Some(buf))
}

/// Key of an offset index entry: its relative offset.
pub fn offset_key(e: &[u8; OFFSET_ENTRY_SIZE]) -> i64 {
    OffsetEntry::decode(e).relative_offset as i64
}

/// Key of a time index entry: its timestamp.
pub fn time_key(e: &[u8; TIME_ENTRY_SIZE]) -> i64 {
    TimeEntry::decode(e).timestamp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_big_endian() {
        let e = OffsetEntry { relative_offset: 0x01020304, position: 0x0a0b0c0d };
        assert_eq!(e.encode(), [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(OffsetEntry::decode(&e.encode()), e);
        let t = TimeEntry { timestamp: 0x0102030405060708, relative_offset: 9 };
        assert_eq!(t.encode(), [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]);
        assert_eq!(TimeEntry::decode(&t.encode()), t);
    }

    #[test]
    fn mapped_index_searches_trims_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = MappedIndex::<OFFSET_ENTRY_SIZE>::open(&path, 0, 80).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        for i in 0..10u32 {
            assert!(!idx.is_full());
            idx.push(OffsetEntry { relative_offset: i * 10, position: i * 100 }.encode());
        }
        assert!(idx.is_full());
        assert_eq!(idx.search(-1, offset_key), None);
        assert_eq!(idx.search(0, offset_key), Some(0));
        assert_eq!(idx.search(55, offset_key), Some(5));
        assert_eq!(idx.search(1000, offset_key), Some(9));
        idx.close().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
        let found = search_file::<OFFSET_ENTRY_SIZE>(&path, 31, offset_key).unwrap().unwrap();
        assert_eq!(OffsetEntry::decode(&found), OffsetEntry { relative_offset: 30, position: 300 });
        let last = last_entry_of_file::<OFFSET_ENTRY_SIZE>(&path).unwrap().unwrap();
        assert_eq!(OffsetEntry::decode(&last).relative_offset, 90);
        let reopened = MappedIndex::<OFFSET_ENTRY_SIZE>::open(&path, 3, 800).unwrap();
        assert_eq!(reopened.len(), 3);
        assert_eq!(OffsetEntry::decode(&reopened.entry(2)).position, 200);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 800);
    }
}
