//! The sequential-append baselines: plain `write(2)` (optionally `fdatasync(2)`) of one chunk size, to one
//! fresh file or round-robin over many.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::scratch_path;
use crate::timing::{Stopwatch, Timing};

/// Writes `chunk` repeatedly to a new file in `dir` until at least `total_bytes` are written, one `write(2)`
/// per chunk (looping only over short writes), and returns how long the writes took. The file is created
/// before and removed after the timed part. Panics if `chunk` is empty.
pub fn raw_append(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Duration> {
    raw_append_timed(dir, chunk, total_bytes).map(|t| t.wall)
}

/// As [`raw_append`], returning wall and CPU time.
pub fn raw_append_timed(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Timing> {
    append_chunks(dir, chunk, total_bytes, false)
}

/// As [`raw_append`], with an `fdatasync(2)` after every chunk: the simplest durable writer, and what the
/// `sync` flush policy is measured against.
pub fn raw_append_sync(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Duration> {
    raw_append_sync_timed(dir, chunk, total_bytes).map(|t| t.wall)
}

/// As [`raw_append_sync`], returning wall and CPU time.
pub fn raw_append_sync_timed(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Timing> {
    append_chunks(dir, chunk, total_bytes, true)
}

fn append_chunks(dir: &Path, chunk: &[u8], total_bytes: u64, sync: bool) -> io::Result<Timing> {
    assert!(!chunk.is_empty(), "raw_append needs a non-empty chunk");
    let path = scratch_path(dir, "append");
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    let watch = Stopwatch::start();
    let mut written = 0u64;
    let result = (|| {
        while written < total_bytes {
            file.write_all(chunk)?;
            if sync {
                file.sync_data()?;
            }
            written += chunk.len() as u64;
        }
        Ok::<(), io::Error>(())
    })();
    let timing = watch.stop();
    drop(file);
    let removed = fs::remove_file(&path);
    result?;
    removed?;
    Ok(timing)
}

/// `n` files in one directory written round-robin, one `write(2)` of the chunk to each file in turn: the raw
/// counterpart of appending to `n` partitions (each its own file). The files are created by
/// [`RoundRobinFiles::create`], keep growing across [`RoundRobinFiles::append`] calls (as partitions do), and
/// are removed on drop. Holds `n` open descriptors.
pub struct RoundRobinFiles {
    files: Vec<(PathBuf, File)>,
    next: usize,
}

impl RoundRobinFiles {
    /// Creates `n` (at least 1) empty files in `dir`.
    pub fn create(dir: &Path, n: usize) -> io::Result<Self> {
        let mut out = RoundRobinFiles { files: Vec::with_capacity(n.max(1)), next: 0 };
        for _ in 0..n.max(1) {
            let path = scratch_path(dir, "rr");
            let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
            out.files.push((path, file));
        }
        Ok(out)
    }

    /// Writes `chunk` `chunks` times, each to the next file in turn (continuing where the previous call
    /// stopped), and returns how long the writes took.
    pub fn append(&mut self, chunk: &[u8], chunks: u64) -> io::Result<Duration> {
        self.append_timed(chunk, chunks).map(|t| t.wall)
    }

    /// As [`RoundRobinFiles::append`], returning wall and CPU time.
    pub fn append_timed(&mut self, chunk: &[u8], chunks: u64) -> io::Result<Timing> {
        let watch = Stopwatch::start();
        for _ in 0..chunks {
            self.files[self.next].1.write_all(chunk)?;
            self.next = (self.next + 1) % self.files.len();
        }
        Ok(watch.stop())
    }
}

impl RoundRobinFiles {
    /// Truncates every file to zero bytes, freeing their data (and dropping any of it not yet written back)
    /// while keeping the files: removing many files can slow down creating the next ones on some filesystems.
    pub fn truncate_all(&mut self) -> io::Result<()> {
        self.files.iter().try_for_each(|(_, file)| file.set_len(0))
    }
}

impl Drop for RoundRobinFiles {
    fn drop(&mut self) {
        for (path, file) in self.files.drain(..) {
            drop(file);
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_append_writes_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        raw_append(dir.path(), &[7u8; 4096], 64 * 1024).unwrap();
        raw_append_sync(dir.path(), &[7u8; 4096], 16 * 1024).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn round_robin_files_spread_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RoundRobinFiles::create(dir.path(), 3).unwrap();
        files.append(&[1u8; 10], 4).unwrap();
        files.append(&[1u8; 10], 2).unwrap();
        let mut sizes: Vec<u64> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [20, 20, 20]);
        files.truncate_all().unwrap();
        assert!(fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().metadata().unwrap().len() == 0));
        drop(files);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
