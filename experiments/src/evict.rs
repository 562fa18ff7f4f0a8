//! Cold-cache reads: write a directory's files to disk and drop them from the page cache.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

/// Syncs every file under `dir` (recursively) and asks the kernel to drop its cached pages
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`, which only drops clean pages: hence the sync first). Pages still
/// mapped by a process stay cached, so engines must be closed first. Returns the bytes of the files evicted.
pub fn evict_dir(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += evict_dir(&path)?;
        } else if kind.is_file() {
            total += evict_file(&path)?;
        }
    }
    Ok(total)
}

/// Syncs one file and drops its cached pages; returns its length.
pub fn evict_file(path: &Path) -> Result<u64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    evict(&file).with_context(|| format!("evicting {}", path.display()))
}

/// Syncs an open file and drops its cached pages; returns its length.
pub fn evict(file: &File) -> Result<u64> {
    file.sync_all().context("syncing")?;
    posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).context("posix_fadvise(DONTNEED)")?;
    Ok(file.metadata()?.len())
}

/// The fraction of the bytes of the files under `dir` that are in the page cache.
pub fn resident_fraction_dir(dir: &Path) -> Result<f64> {
    let (mut resident, mut total) = (0.0, 0u64);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let len = dir_len(&entry.path())?;
            resident += resident_fraction_dir(&entry.path())? * len as f64;
            total += len;
        } else if kind.is_file() {
            let len = entry.metadata()?.len();
            resident += resident_fraction(&entry.path())? * len as f64;
            total += len;
        }
    }
    Ok(if total == 0 { 0.0 } else { resident / total as f64 })
}

/// Bytes of the files under `dir` (their lengths, so preallocated files count in full).
pub fn dir_len(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_len(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// How many of the file's pages are in the page cache (`mincore` over a read-only mapping), as a fraction.
pub fn resident_fraction(path: &Path) -> Result<f64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: a read-only mapping, only passed to mincore (never read), dropped before returning.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let mut vec = vec![0u8; len.div_ceil(4096)];
    // SAFETY: `map` spans `len` bytes from a page-aligned address; `vec` has a byte for each 4 KiB page.
    let rc = unsafe { nix::libc::mincore(map.as_ptr() as *mut _, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mincore");
    }
    Ok(vec.iter().filter(|b| **b & 1 == 1).count() as f64 / vec.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicted_files_leave_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let path = dir.path().join("sub/data");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        assert!(resident_fraction(&path).unwrap() > 0.9, "just written, so cached");
        assert_eq!(evict_dir(dir.path()).unwrap(), 8 << 20);
        assert!(resident_fraction(&path).unwrap() < 0.1, "evicted");
        assert!(resident_fraction_dir(dir.path()).unwrap() < 0.1);
        assert_eq!(dir_len(dir.path()).unwrap(), 8 << 20);
    }
}
