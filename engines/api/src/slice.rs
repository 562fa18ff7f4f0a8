//! What a read returns: a description of where the bytes are, so the network layer can ship them without
//! copying (`sendfile` for a file range, `write`/`writev` for mapped memory). What the bytes mean is the
//! engine's business: `Engine::decode_records` and `Engine::encode_batches` read them.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::StorageError;

/// A contiguous run of bytes inside a memory mapping (cheap to clone; keeps the mapping alive).
pub type MappedRegion = Bytes;

/// The result of `Engine::read`.
#[derive(Debug, Clone)]
pub enum ReadSlice {
    /// Nothing to return (the read was at the log end, or a tag filter skipped everything scanned).
    Empty {
        /// Where the next read should start.
        next_offset: i64,
    },
    /// Whole Kafka RecordBatch v2 batches, contiguous in one segment file: ship with `sendfile`.
    /// The first batch may start before the offset asked for (Kafka semantics: consumers skip those records).
    File {
        /// The open segment file.
        file: Arc<File>,
        /// Byte position of the first batch.
        position: u64,
        /// Number of bytes, a whole number of batches.
        len: u32,
        /// The offset after the last record in the range.
        next_offset: i64,
    },
    /// Records in an engine's own format in mapped memory (the commitlog engine's CommitLog messages);
    /// several regions when a tag filter skips messages.
    Mapped {
        /// The regions, each a whole number of records.
        regions: Vec<MappedRegion>,
        /// The queue offset after the last message scanned.
        next_offset: i64,
    },
}

impl ReadSlice {
    /// Where the next read should start.
    pub fn next_offset(&self) -> i64 {
        match self {
            ReadSlice::Empty { next_offset }
            | ReadSlice::File { next_offset, .. }
            | ReadSlice::Mapped { next_offset, .. } => *next_offset,
        }
    }

    /// How many bytes the slice would put on the wire.
    pub fn byte_len(&self) -> usize {
        match self {
            ReadSlice::Empty { .. } => 0,
            ReadSlice::File { len, .. } => *len as usize,
            ReadSlice::Mapped { regions, .. } => regions.iter().map(Bytes::len).sum(),
        }
    }

    /// Whether the slice holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.byte_len() == 0
    }

    /// Copies the slice's bytes out (for the gRPC layer and tests; the fast path ships them directly).
    pub fn to_bytes(&self) -> Result<Bytes, StorageError> {
        match self {
            ReadSlice::Empty { .. } => Ok(Bytes::new()),
            ReadSlice::File { file, position, len, .. } => read_range(file, *position, *len as usize)
                .map(Bytes::from)
                .map_err(|e| StorageError::io(format!("segment file range at {position}"), e)),
            ReadSlice::Mapped { regions, .. } if regions.len() == 1 => Ok(regions[0].clone()),
            ReadSlice::Mapped { regions, .. } => Ok(Bytes::from(regions.concat())),
        }
    }
}

/// Reads exactly `len` bytes of `file` at `position` into a new buffer that is never zero-filled first
/// (a fetch reads up to megabytes per call; clearing them before the read overwrites them cost as much as
/// the copy itself). A file shorter than the range is `UnexpectedEof`.
fn read_range(file: &std::fs::File, position: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let offset = position
            .checked_add(done as u64)
            .and_then(|o| nix::libc::off_t::try_from(o).ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "file position out of range"))?;
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        // SAFETY: `spare` is writable, uninitialised memory of `spare.len()` bytes owned by `buf`, and the
        // descriptor stays open while `file` is borrowed; pread(2) writes at most that many bytes into it and
        // reads nothing from it.
        let n = unsafe { nix::libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), offset) };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: pread(2) initialised the first `n` bytes of the spare capacity (n <= spare.len()).
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_file_range_is_read_exactly_and_a_short_file_is_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let file = Arc::new(f);
        let slice = ReadSlice::File { file: Arc::clone(&file), position: 1234, len: 70_000, next_offset: 9 };
        assert_eq!(&slice.to_bytes().unwrap()[..], &data[1234..71_234]);
        let past = ReadSlice::File { file, position: 90_000, len: 20_000, next_offset: 9 };
        assert!(matches!(past.to_bytes(), Err(StorageError::Io { .. })), "{:?}", past.to_bytes());
    }
}
