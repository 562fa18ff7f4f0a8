//! What a read returns: a description of where the bytes are, so the network layer can ship them without
//! copying (`sendfile` for a file range, `write`/`writev` for mapped memory).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{Record, RecordBatch, split_batches};
use crate::error::StorageError;

/// A contiguous run of bytes inside a memory mapping (cheap to clone; keeps the mapping alive).
pub type MappedRegion = Bytes;

/// Which messages a read should return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Only messages whose `TAGS` is one of these (RocketMQ's `TagA || TagB`); `None` returns every message.
    /// Only engines with tag filtering accept a tag filter.
    pub tags: Option<Vec<String>>,
}

impl ReadFilter {
    /// A filter that lets every message through.
    pub fn all() -> Self {
        ReadFilter::default()
    }

    /// A filter for the given tags.
    pub fn tags<S: Into<String>>(tags: impl IntoIterator<Item = S>) -> Self {
        ReadFilter { tags: Some(tags.into_iter().map(Into::into).collect()) }
    }

    /// Whether this filter lets every message through.
    pub fn is_all(&self) -> bool {
        self.tags.is_none()
    }
}

/// The result of `Engine::read`.
#[derive(Debug, Clone)]
pub enum ReadSlice {
    /// Nothing to return (the read was at the log end, or a filter skipped everything scanned).
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
    /// CommitLog records in mapped memory (several regions when a tag filter skips messages).
    Mapped {
        /// The regions, each a whole number of CommitLog records.
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

    /// Decodes the messages at or after `from_offset`, verifying every checksum on the way.
    pub fn records(&self, from_offset: i64) -> Result<Vec<Record>, StorageError> {
        let mut out = Vec::new();
        match self {
            ReadSlice::Empty { .. } => {}
            ReadSlice::File { .. } => {
                let bytes = self.to_bytes()?;
                let mut batches = split_batches(&bytes);
                for item in &mut batches {
                    let (_, raw) = item?;
                    let batch = RecordBatch::from_bytes(bytes.slice_ref(raw))?;
                    batch.validate()?;
                    out.extend(batch.records()?.into_iter().filter(|r| r.offset >= from_offset));
                }
            }
            ReadSlice::Mapped { regions, .. } => {
                for region in regions {
                    crate::commitlog_record::decode_region(region, from_offset, &mut out)?;
                }
            }
        }
        Ok(out)
    }
}
