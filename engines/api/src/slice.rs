//! What a read returns: a description of where the bytes are, so the network layer can ship them without
//! copying (`sendfile` for a file range, `write`/`writev` for mapped memory). What the bytes mean is the
//! engine's business: `Engine::decode_records` and `Engine::encode_batches` read them.

use std::fs::File;
use std::os::unix::fs::FileExt;
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
            ReadSlice::File { file, position, len, .. } => {
                let mut buf = vec![0u8; *len as usize];
                file.read_exact_at(&mut buf, *position)
                    .map_err(|e| StorageError::io(format!("segment file range at {position}"), e))?;
                Ok(Bytes::from(buf))
            }
            ReadSlice::Mapped { regions, .. } if regions.len() == 1 => Ok(regions[0].clone()),
            ReadSlice::Mapped { regions, .. } => Ok(Bytes::from(regions.concat())),
        }
    }
}
