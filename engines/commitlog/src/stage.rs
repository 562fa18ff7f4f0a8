//! The staged writer's buffer (RocketMQ's `transientStorePoolEnable`): one contiguous run of CommitLog bytes
//! that will be written at one position of one file, gathered from encoded bytes (headers, topics,
//! properties, bodies below [`BORROW_MIN_BODY`]) and the large bodies of the input batch, and written with
//! one `pwritev` per 1,024 pieces.
//!
//! Bodies of at least [`BORROW_MIN_BODY`] bytes are not copied into the buffer: the run keeps a reference to
//! the batch's memory and the kernel copies them straight into the page cache. Smaller ones are copied: with
//! 1 KiB bodies, one `iovec` per body (about 130 per 64 KiB append) made appends slower than copying every
//! body into the buffer and writing one `iovec` (292-307 against 343-424 MB/s, alternated three times in
//! one session, load average 7.5): the kernel's per-segment cost outweighs the copy saved.

use std::io::IoSlice;
use std::sync::Arc;

use bytes::Bytes;
use janus_api::StorageError;

use crate::commitlog::LogFile;

/// Bodies at least this long are written from the batch's memory instead of being copied into the stage
/// (see the module docs; at this size one `iovec` more is noise beside the copy it saves).
pub(crate) const BORROW_MIN_BODY: usize = 64 << 10;

/// The largest buffer kept between runs (a larger one, left by a large batch, is freed).
const KEEP_BYTES: usize = 4 << 20;

/// One piece of a run, in file order.
#[derive(Debug)]
enum Piece {
    /// `buf[from..to]`.
    Encoded { from: usize, to: usize },
    /// Bytes of the input batch (a message body).
    Borrowed(Bytes),
}

/// A run of bytes for `file` at `pos` (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Stage {
    /// Encoded bytes: `buf[..used]`. The buffer keeps its length (and allocation) between runs, so bytes
    /// past `used` are stale and never read; they are not zeroed again for every message.
    buf: Vec<u8>,
    used: usize,
    pieces: Vec<Piece>,
    /// Bytes in the run (encoded and borrowed).
    len: usize,
    /// The file and position the run belongs at.
    at: Option<(Arc<LogFile>, usize)>,
}

impl Stage {
    /// Whether bytes for `file` at `pos` continue the current run.
    pub(crate) fn continues(&self, file: &Arc<LogFile>, pos: usize) -> bool {
        self.at.as_ref().is_some_and(|(f, at)| Arc::ptr_eq(f, file) && at + self.len == pos)
    }

    /// Starts a new, empty run for `file` at `pos`. The current run must have been written or dropped.
    pub(crate) fn start(&mut self, file: &Arc<LogFile>, pos: usize) {
        debug_assert!(self.pieces.is_empty());
        self.at = Some((Arc::clone(file), pos));
    }

    /// The next `n` bytes of the run, to fill completely (their previous contents are stale).
    pub(crate) fn encoded(&mut self, n: usize) -> &mut [u8] {
        let (from, to) = (self.used, self.used + n);
        if self.buf.len() < to {
            self.buf.resize(to.max(self.buf.len() * 2), 0);
        }
        match self.pieces.last_mut() {
            Some(Piece::Encoded { to: end, .. }) if *end == from => *end = to,
            _ => self.pieces.push(Piece::Encoded { from, to }),
        }
        self.used = to;
        self.len += n;
        &mut self.buf[from..to]
    }

    /// Appends `body` to the run: borrowed when it is long enough, copied otherwise.
    pub(crate) fn body(&mut self, body: &Bytes) {
        if body.len() >= BORROW_MIN_BODY {
            self.len += body.len();
            self.pieces.push(Piece::Borrowed(body.clone()));
        } else if !body.is_empty() {
            self.encoded(body.len()).copy_from_slice(body);
        }
    }

    /// Writes the run to its file (if there is one) and empties the stage.
    pub(crate) fn write_out(&mut self) -> Result<(), StorageError> {
        let at = self.at.take();
        let result = match at {
            Some((file, pos)) if self.len > 0 => {
                let mut slices: Vec<IoSlice<'_>> = self
                    .pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Encoded { from, to } => IoSlice::new(&self.buf[*from..*to]),
                        Piece::Borrowed(b) => IoSlice::new(b),
                    })
                    .collect();
                // SAFETY: we are the single writer (the stage lives in the writer, under its mutex); the run
                // belongs at `pos..pos + len` of `file`, which `reserve` handed out above the written end (so
                // above the readable end) and which is not published yet; in staged mode no `writable` slice
                // of the file exists.
                unsafe { file.map.write_vectored_at(pos, &mut slices) }
            }
            _ => Ok(()),
        };
        self.clear();
        result
    }

    /// Drops the run without writing it.
    pub(crate) fn clear(&mut self) {
        self.at = None;
        self.pieces.clear();
        self.used = 0;
        self.len = 0;
        if self.buf.len() > KEEP_BYTES {
            // A rare large batch does not pin its buffer for the life of the engine.
            self.buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use janus_api::fsutil::IOV_MAX;

    use crate::mapped::MappedFile;
    use std::sync::atomic::AtomicI64;

    #[test]
    fn a_run_of_encoded_and_borrowed_pieces_lands_byte_exact_past_iov_max() {
        let dir = tempfile::tempdir().unwrap();
        let map = MappedFile::create(&dir.path().join("f"), 40 << 20, false).unwrap();
        let file = Arc::new(LogFile { start: 0, map: Arc::new(map), max_store_ms: AtomicI64::new(i64::MIN) });
        let mut stage = Stage::default();
        let mut want = vec![0u8; 100];
        stage.start(&file, 100);
        // More pieces than one pwritev takes: a header, a borrowed body, a small copied body, per turn.
        for i in 0..IOV_MAX / 2 + 8 {
            let head = [(i % 251) as u8; 7];
            stage.encoded(head.len()).copy_from_slice(&head);
            let big = Bytes::from(vec![(i % 13) as u8; BORROW_MIN_BODY]);
            stage.body(&big);
            let small = Bytes::from(vec![0xEE; 3]);
            stage.body(&small);
            want.extend_from_slice(&head);
            want.extend_from_slice(&big);
            want.extend_from_slice(&small);
        }
        assert!(stage.pieces.len() > IOV_MAX);
        assert!(stage.continues(&file, want.len()) && !stage.continues(&file, want.len() + 1));
        stage.write_out().unwrap();
        assert!(!stage.continues(&file, want.len()));
        // SAFETY: single-threaded test; every byte below the end was written and no `&mut` slice exists.
        unsafe { file.map.set_readable(want.len()) };
        assert_eq!(file.map.tail_from(100), &want[100..]);
    }

    #[test]
    fn a_cleared_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let map = MappedFile::create(&dir.path().join("f"), 8192, false).unwrap();
        let file = Arc::new(LogFile { start: 0, map: Arc::new(map), max_store_ms: AtomicI64::new(i64::MIN) });
        let mut stage = Stage::default();
        stage.start(&file, 0);
        stage.encoded(10).fill(9);
        stage.clear();
        stage.write_out().unwrap();
        // SAFETY: single-threaded test; no `&mut` slice exists.
        unsafe { file.map.set_readable(10) };
        assert_eq!(file.map.tail_from(0), &[0u8; 10]);
    }
}
