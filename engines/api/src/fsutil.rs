//! File-system steps both engines need to make a change durable.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoResultExt, StorageError};

/// Fsyncs a directory, so that files created, renamed or removed in it stay so after a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Replaces the file at `path` with `content` atomically and durably: writes `<path>.tmp`, fsyncs it,
/// renames it over `path` and fsyncs the directory. A crash leaves either the old or the new content
/// (and possibly a stray `.tmp` file, which the next write replaces).
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), StorageError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(content).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

/// Most slices one `pwritev(2)` takes on Linux (`IOV_MAX`, `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// Writes all of `bufs`, one after the other, at `offset` of `file` with `pwritev(2)`: at most [`IOV_MAX`]
/// slices per call, continuing after short writes and interrupted calls. Leaves `bufs` consumed. Both
/// engines' vectored appends (the segment's new base offset beside the client's batch, the commitlog's
/// staged run) go through here.
pub fn pwritev_all(file: &File, mut bufs: &mut [IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    // Bounded: each turn writes at least one byte, fails, or was interrupted by a signal.
    while !bufs.is_empty() {
        let at = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let n = bufs.len().min(IOV_MAX);
        match nix::sys::uio::pwritev(file, &bufs[..n], at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                IoSlice::advance_slices(&mut bufs, written);
                offset += written as u64;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("state.tmp").exists());
        sync_dir(dir.path()).unwrap();
        assert!(sync_dir(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn pwritev_all_writes_more_slices_than_one_call_takes() {
        let file = tempfile::tempfile().unwrap();
        let pieces: Vec<Vec<u8>> = (0..super::IOV_MAX + 10).map(|i| vec![(i % 251) as u8; 1 + i % 7]).collect();
        let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        super::pwritev_all(&file, &mut slices, 5).unwrap();
        let expected: Vec<u8> = pieces.concat();
        let mut got = vec![0u8; expected.len()];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut got, 5).unwrap();
        assert_eq!(got, expected);
    }
}
