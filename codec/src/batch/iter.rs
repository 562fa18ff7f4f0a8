//! Splitting a buffer of concatenated batches (a segment file range, a fetch response) into batches.

use bytes::Bytes;

use super::batch::RecordBatch;
use super::error::BatchError;
use super::header::{BATCH_HEADER_SIZE, BatchHeader, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, MIN_LENGTH, read_length};
use super::record::Record;

/// Iterates over the complete batches at the start of `buf`, checking framing only (not CRCs).
///
/// Each item is the batch's header and its bytes. The iteration ends (`None`) at the end of the buffer;
/// a partial batch at the end yields one [`BatchError::Truncated`], and a batch with a bad magic or
/// length field yields that error, and then the iteration ends. [`BatchIter::consumed`] tells how many
/// bytes the complete batches took: where a log recovery would truncate.
pub fn split_batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter { buf, pos: 0, done: false }
}

/// Decodes every record at or after `from_offset` in `buf`, a run of whole batches (a segment file range,
/// a fetch response), checking every batch's CRC and structure (also of batches wholly before it). Records share memory with `buf`.
pub fn decode_batches(buf: &Bytes, from_offset: i64) -> Result<Vec<Record>, BatchError> {
    let mut out = Vec::new();
    for item in split_batches(buf) {
        let (_, raw) = item?;
        let batch = RecordBatch::from_bytes(buf.slice_ref(raw))?;
        // The CRC here; `records` checks the structure as it decodes.
        batch.check_crc()?;
        out.extend(batch.records()?.into_iter().filter(|r| r.offset >= from_offset));
    }
    Ok(out)
}

/// Iterator returned by [`split_batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> BatchIter<'a> {
    /// Bytes taken by the complete batches yielded so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The bytes not yet yielded as complete batches.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn fail(&mut self, err: BatchError) -> Option<Result<(BatchHeader, &'a [u8]), BatchError>> {
        self.done = true;
        Some(Err(err))
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        if rest.len() < LOG_OVERHEAD {
            return self.fail(BatchError::Truncated { needed: BATCH_HEADER_SIZE, available: rest.len() });
        }
        let length = read_length(rest);
        if length < MIN_LENGTH {
            return self.fail(BatchError::InvalidLength(length));
        }
        if let Some(&magic) = rest.get(MAGIC_OFFSET)
            && magic as i8 != MAGIC_V2
        {
            return self.fail(BatchError::BadMagic(magic as i8));
        }
        let size = LOG_OVERHEAD + length as usize;
        if rest.len() < size {
            return self.fail(BatchError::Truncated { needed: size, available: rest.len() });
        }
        let bytes = &rest[..size];
        self.pos += size;
        Some(Ok((BatchHeader::read(bytes), bytes)))
    }
}

impl std::iter::FusedIterator for BatchIter<'_> {}
