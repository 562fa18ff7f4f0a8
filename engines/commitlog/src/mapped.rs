//! One fixed-size file mapped read-write with [`memmap2::MmapRaw`], shared by one writer and many readers.
//!
//! # The mapping invariant
//!
//! Each file has a *readable end* (an atomic byte position). Bytes below it are complete and never change
//! again while the file is mapped (recovery, which runs before the engine is shared, is the only exception).
//! Readers only ever form `&[u8]` (and `Bytes`) over bytes below the readable end. The single writer (the
//! holder of the engine's writer mutex) only writes at or above it, through the raw pointer, and then moves
//! the readable end up with `Release` ordering; readers load it with `Acquire`. So no `&mut [u8]` ever
//! aliases bytes a reader can see, and readers see whole messages. The mapping stays valid as long as any
//! `Arc<MappedFile>` (held by every `Bytes` region) lives, even after the file is unlinked; a mapped file is
//! never truncated (which would turn reads into SIGBUS): torn files are extended before they are mapped.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use janus_api::{IoResultExt, StorageError};
use memmap2::{Advice, MmapOptions, MmapRaw};

/// Page size assumed for pre-warming (touching one byte per page).
const PAGE: usize = 4096;

/// A mapped file (see the module docs).
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    len: usize,
    readable: AtomicUsize,
}

/// Reserves `len` bytes of disk for `file`: `fallocate` so that writes through a mapping cannot hit a full
/// disk (which would be SIGBUS), or `set_len` where the filesystem cannot preallocate.
pub fn preallocate(file: &File, path: &Path, len: u64) -> Result<(), StorageError> {
    let off = i64::try_from(len).map_err(|_| StorageError::io(path, io::Error::other("file too large")))?;
    match nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, off) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) | Err(nix::errno::Errno::ENOSYS) => file.set_len(len).at(path),
        Err(e) => Err(StorageError::io(path, io::Error::from(e))),
    }
}

/// Whether bytes `from..to` of `file` are all zeros.
fn zeros_beyond(file: &File, from: u64, to: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}

impl MappedFile {
    /// Creates a new file of `len` bytes (failing if it exists), preallocated, optionally pre-warmed, synced
    /// with its directory. Nothing is readable yet.
    pub fn create(path: &Path, len: usize, prewarm: bool) -> Result<MappedFile, StorageError> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).at(path)?;
        let made = (move || {
            preallocate(&file, path, len as u64)?;
            file.sync_all().at(path)?;
            if let Some(dir) = path.parent() {
                janus_api::fsutil::sync_dir(dir)?;
            }
            Self::map(path.to_path_buf(), file, len)
        })();
        let mapped = match made {
            Ok(m) => m,
            Err(e) => {
                // A file left half-made (a full disk fails the preallocation) would make every later attempt
                // fail with "File exists" even after space is freed: remove it, so the next attempt starts over.
                if let Err(cleanup) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), error = %cleanup, "could not remove a half-made CommitLog file");
                }
                return Err(e);
            }
        };
        if prewarm {
            mapped.prewarm();
        }
        Ok(mapped)
    }

    /// Opens an existing file that should be `len` bytes long. A shorter (torn) file is extended with zeros
    /// first; a longer one is refused. Everything is readable until [`MappedFile::set_readable`] says
    /// otherwise (recovery scans it before the engine is shared).
    pub fn open(path: &Path, len: usize) -> Result<MappedFile, StorageError> {
        let file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
        let actual = file.metadata().at(path)?.len();
        if actual > len as u64 && zeros_beyond(&file, len as u64, actual).at(path)? {
            tracing::warn!(path = %path.display(), actual, len, "cutting zeros past the end of a CommitLog file");
            file.set_len(len as u64).at(path)?;
            file.sync_all().at(path)?;
        } else if actual > len as u64 {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                detail: format!(
                    "the file holds {actual} bytes, more than commitlog.file.bytes = {len}; \
                     was the engine opened with a different commitlog.file.bytes?"
                ),
            });
        }
        if actual < len as u64 {
            tracing::warn!(path = %path.display(), actual, len, "extending a torn CommitLog file");
            preallocate(&file, path, len as u64)?;
            file.sync_all().at(path)?;
        }
        let mapped = Self::map(path.to_path_buf(), file, len)?;
        mapped.readable.store(len, Ordering::Release);
        Ok(mapped)
    }

    fn map(path: PathBuf, file: File, len: usize) -> Result<MappedFile, StorageError> {
        let map = MmapOptions::new().len(len).map_raw(&file).at(&path)?;
        Ok(MappedFile { path, file, map, len, readable: AtomicUsize::new(0) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's (fixed) size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The readable end (see the module docs).
    pub fn readable(&self) -> usize {
        self.readable.load(Ordering::Acquire)
    }

    /// Moves the readable end to `end` (capped at the file's size).
    ///
    /// # Safety
    /// The caller must be the single writer (hold the engine's writer mutex, or run recovery before the
    /// engine is shared), and
    /// - moving the end up: every byte below `end` must be completely written, and no `&mut` slice from
    ///   [`MappedFile::writable`] over them may be alive (readers may form `&[u8]` over them at once);
    /// - moving the end down: no reader may hold a slice or region at or above `end` (only before the
    ///   engine is shared), since the writer may then overwrite those bytes under it.
    pub unsafe fn set_readable(&self, end: usize) {
        self.readable.store(end.min(self.len), Ordering::Release);
    }

    /// The bytes `pos..pos + len`, if they lie below the readable end.
    pub fn slice(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.readable() {
            return None;
        }
        // SAFETY: `pos..end` lies inside the mapping (readable <= self.len) and below the readable end, so
        // those bytes are immutable while `self` lives (module invariant); the mapping lives as long as
        // `self`, which the returned borrow cannot outlive.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) })
    }

    /// Everything below the readable end from `pos`.
    pub fn tail_from(&self, pos: usize) -> &[u8] {
        let end = self.readable();
        self.slice(pos.min(end), end.saturating_sub(pos)).unwrap_or_default()
    }

    /// The bytes `pos..pos + len` as a `Bytes` that keeps the mapping alive, if they are readable.
    pub fn region(self: &Arc<Self>, pos: usize, len: usize) -> Option<Bytes> {
        self.slice(pos, len)?;
        Some(Bytes::from_owner(MappedSlice { file: Arc::clone(self), pos, len }))
    }

    /// Gives the writer `pos..pos + len` to fill.
    ///
    /// # Safety
    /// The caller must be the only writer (hold the engine's writer mutex), `pos..pos + len` must lie at or
    /// above the readable end and inside the file, and the returned slice must be dropped before the
    /// readable end is moved over it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn writable(&self, pos: usize, len: usize) -> &mut [u8] {
        debug_assert!(pos >= self.readable() && pos + len <= self.len);
        // SAFETY: per this function's contract no reader can see these bytes and no other `&mut` to them
        // exists; they lie inside the mapping.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(pos), len) }
    }

    /// Writes `bufs`, one after the other, at `pos` with `pwritev` (the writer's staged path: at most
    /// [`janus_api::fsutil::IOV_MAX`] slices per call, looping over short writes); the bytes land in the page cache the
    /// mapping shows. Leaves `bufs` consumed.
    ///
    /// # Safety
    /// The same rule as [`MappedFile::writable`]: the caller must be the only writer, the range the slices
    /// cover must lie at or above the readable end (no reader can see those bytes, so changing them under
    /// the mapping breaks no `&[u8]`), and no `&mut` slice from `writable` may overlap it.
    pub unsafe fn write_vectored_at(&self, pos: usize, bufs: &mut [io::IoSlice<'_>]) -> Result<(), StorageError> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        debug_assert!(pos >= self.readable() && pos + total <= self.len);
        if pos + total > self.len {
            return Err(StorageError::io(&self.path, io::Error::other("write past the end of a CommitLog file")));
        }
        janus_api::fsutil::pwritev_all(&self.file, bufs, pos as u64).map_err(|e| StorageError::io(&self.path, e))
    }

    /// Zeroes `pos..` to the end of the file (recovery: cut off a damaged tail). Lowers the readable end to
    /// `pos` first.
    ///
    /// # Safety
    /// Only while no reader holds a slice or region of this file at or above `pos` (at open, before the
    /// engine is shared), and with no other writer.
    pub unsafe fn zero_from(&self, pos: usize) {
        if pos >= self.len {
            return;
        }
        // SAFETY: this function's contract is the one `set_readable` needs for lowering the end.
        unsafe { self.set_readable(pos) };
        // Punching a hole drops the range's blocks and cached pages at once, and reserving it again keeps
        // the no-SIGBUS guarantee of `preallocate`; writing zeros through the mapping instead dirtied (and
        // then had to write back) the whole rest of the file: seconds per GiB at every crash recovery.
        if self.punch_and_reserve(pos).is_ok() {
            return;
        }
        // SAFETY: per the contract nobody else looks at these bytes; the range is inside the mapping.
        unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().add(pos), 0, self.len - pos) };
    }

    /// Replaces `pos..len` with zeros by punching a hole there, then preallocates the range again.
    fn punch_and_reserve(&self, pos: usize) -> nix::Result<()> {
        use nix::fcntl::{FallocateFlags, fallocate};
        let (off, len) = (pos as i64, (self.len - pos) as i64);
        fallocate(&self.file, FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE, off, len)?;
        match fallocate(&self.file, FallocateFlags::empty(), off, len) {
            Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    /// Faults `pos..pos + len` in writable ahead of the writer (`madvise(MADV_POPULATE_WRITE)`; best effort:
    /// the writer's own page faults do the same work when this fails). Changes no byte.
    pub fn populate(&self, pos: usize, len: usize) {
        let _ = self.map.advise_range(Advice::PopulateWrite, pos, len.min(self.len.saturating_sub(pos)));
    }

    /// Writes back `pos..pos + len` (msync, which on Linux also syncs the file's data).
    pub fn flush_range(&self, pos: usize, len: usize) -> Result<(), StorageError> {
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(pos, len).at(&self.path)
    }

    /// Faults every page in writable (`madvise(MADV_POPULATE_WRITE)`, or touching one byte per page where
    /// the kernel lacks it) so that the writer takes no page fault later, and asks the kernel to keep the
    /// file in memory (`madvise(WILLNEED)`). Only for a file nobody reads or writes yet.
    fn prewarm(&self) {
        if self.map.advise(Advice::PopulateWrite).is_err() {
            let base = self.map.as_mut_ptr();
            let mut pos = 0;
            while pos < self.len {
                // SAFETY: called from `create` before the file is shared: no reader or writer exists; `pos`
                // is inside the mapping. A volatile write keeps the touch from being optimised away.
                unsafe { std::ptr::write_volatile(base.add(pos), 0) };
                pos += PAGE;
            }
        }
        if let Err(e) = self.map.advise(Advice::WillNeed) {
            tracing::debug!(path = %self.path.display(), error = %e, "madvise(WILLNEED) failed");
        }
    }
}

/// The owner behind a mapped `Bytes` region: the file (keeping the mapping alive) and a readable range.
struct MappedSlice {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        // `region` checked that the range is readable, and readable bytes never change.
        self.file.slice(self.pos, self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_outlive_the_file_and_see_only_readable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = Arc::new(MappedFile::create(&path, 8192, true).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8192);
        assert!(f.region(0, 4).is_none());
        // SAFETY: single-threaded test; nothing is readable yet.
        unsafe { f.writable(0, 4) }.copy_from_slice(b"abcd");
        // SAFETY: single-threaded test; the bytes below 4 are written and the `&mut` slice is gone.
        unsafe { f.set_readable(4) };
        let r = f.region(0, 4).unwrap();
        assert!(f.region(0, 5).is_none());
        drop(f);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&r[..], b"abcd");
    }

    #[test]
    fn torn_files_are_extended_and_long_ones_refused_unless_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"xyz").unwrap();
        let f = MappedFile::open(&path, 4096).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        assert_eq!(&f.tail_from(0)[..4], b"xyz\0");
        std::fs::write(&path, [&[0u8; 4096][..], b"x"].concat()).unwrap();
        assert!(MappedFile::open(&path, 4096).is_err());
        std::fs::write(&path, [0u8; 5000]).unwrap();
        MappedFile::open(&path, 4096).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
    }

    #[test]
    fn zeroing_from_a_position_clears_the_rest_and_keeps_the_space_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 1 << 20;
        let f = MappedFile::create(&path, len, false).unwrap();
        // SAFETY: single-threaded test; nothing is readable yet.
        unsafe { f.writable(0, len) }.fill(0xab);
        // SAFETY: single-threaded test; every byte is written and the `&mut` slice is gone.
        unsafe { f.set_readable(len) };
        f.flush_range(0, len).unwrap();
        // SAFETY: single-threaded test; no region of the file is held.
        unsafe { f.zero_from(5000) };
        let tail = f.tail_from(0);
        assert!(tail[..5000].iter().all(|&b| b == 0xab), "bytes below the position are kept");
        assert!(tail[5000..].iter().all(|&b| b == 0), "the mapping sees zeros from the position on");
        f.flush_range(0, len).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk.len(), len);
        assert!(on_disk[..5000].iter().all(|&b| b == 0xab) && on_disk[5000..].iter().all(|&b| b == 0));
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&path).unwrap().blocks() * 512 >= len as u64, "the space is reserved again");
    }
}
