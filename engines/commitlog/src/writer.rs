//! The single CommitLog writer: reserves room for each message in the active file (rolling to the next
//! file with a blank record), fills it through the mapping or a staging buffer, publishes (moves the
//! readable end up) and undoes what a failed append wrote.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use janus_api::StorageError;

use crate::commitlog::{CommitLog, LogFile};
use crate::format::{self as rec, BLANK_RECORD_SIZE, FIXED_HEADER_SIZE, MessageMeta};
use crate::stage::Stage;

/// The single writer's state: the active file and the physical write position. Lives under the engine's
/// writer mutex, so holding `&mut LogWriter` is holding that mutex.
///
/// Two ways to put bytes in a file, both only above its readable end:
/// - staged (the default; `commitlog.staged.writes`, RocketMQ's `transientStorePoolEnable`): headers are
///   encoded into an in-process buffer ([`Stage`]) and written, with the bodies taken straight from the
///   input batch, by one `pwritev` per contiguous run at publish. The page cache is the same, so readers
///   still read through the mapping; the writer avoids the page faults (and the kernel's zeroing of each
///   fresh page) that writing through a mapping costs;
/// - mapped: messages are encoded straight into the mapping through the raw pointer; pages are faulted in
///   ahead of the writer with `madvise(MADV_POPULATE_WRITE)`, a few MiB at a time.
#[derive(Debug)]
pub(crate) struct LogWriter {
    log: Arc<CommitLog>,
    /// The file holding the write position; `None` until the first write needs it (so an engine that never
    /// writes creates no CommitLog file, and a full disk refuses the write instead of the engine's start).
    active: Option<Arc<LogFile>>,
    pos: u64,
    last_store_ms: i64,
    /// Physical offset up to which the pages of the active file were faulted in writable ahead of use.
    populated: u64,
    /// Staged writes (see above).
    staged: bool,
    /// Bytes not yet written to their file (staged writes).
    stage: Stage,
}

/// How far ahead of the write position the writer faults pages in, in one `madvise` each time.
const POPULATE_CHUNK: u64 = 4 << 20;

/// A place for one message: its file, position in the file and physical offset.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The file.
    pub file: Arc<LogFile>,
    /// Position inside the file.
    pub pos: usize,
    /// Physical offset.
    pub phys: u64,
}

impl LogWriter {
    /// The writer for `log` whose written end is `end`. With `staged`, messages are encoded into a buffer
    /// and written to the file with `pwrite` at publish; otherwise straight into the mapping.
    pub(crate) fn new(log: &Arc<CommitLog>, end: u64, last_store_ms: i64, staged: bool) -> Result<Self, StorageError> {
        Ok(LogWriter {
            log: Arc::clone(log),
            active: log.file_at(end),
            pos: end,
            last_store_ms,
            populated: end,
            staged,
            stage: Stage::default(),
        })
    }

    /// The physical write position.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The newest STORETIMESTAMP handed out.
    pub fn last_store_ms(&self) -> i64 {
        self.last_store_ms
    }

    /// A STORETIMESTAMP for the next message: the wall clock, never below the previous one.
    pub fn store_timestamp(&mut self) -> i64 {
        self.last_store_ms = self.last_store_ms.max(janus_api::now_ms());
        self.last_store_ms
    }

    /// The file holding the write position, created (and the next one asked of the allocator) when it does
    /// not exist yet.
    fn active(&mut self) -> Result<Arc<LogFile>, StorageError> {
        if let Some(f) = &self.active {
            return Ok(Arc::clone(f));
        }
        let start = self.pos - self.pos % self.log.file_bytes();
        let file = self.log.file_starting_at(start)?;
        self.log.want(start + self.log.file_bytes());
        self.active = Some(Arc::clone(&file));
        Ok(file)
    }

    /// Reserves `size` bytes for a message: in the active file if it fits with room for a blank record
    /// after it; otherwise fills the rest of the active file with a blank record and moves to the next
    /// file. The caller fills the slot with [`LogWriter::write`] and publishes with [`LogWriter::publish`].
    pub fn reserve(&mut self, size: usize) -> Result<Slot, StorageError> {
        let file_bytes = self.log.file_bytes() as usize;
        if size + BLANK_RECORD_SIZE > file_bytes {
            return Err(StorageError::MessageTooLarge { size, max: file_bytes - BLANK_RECORD_SIZE });
        }
        loop {
            let active = self.active()?;
            let in_file = (self.pos - active.start) as usize;
            let remaining = file_bytes - in_file;
            if size + BLANK_RECORD_SIZE <= remaining {
                let slot = Slot { file: active, pos: in_file, phys: self.pos };
                self.pos += size as u64;
                if !self.staged {
                    self.populate_ahead();
                }
                return Ok(slot);
            }
            // SAFETY: we are the writer (`&mut self` lives under the writer mutex) and `in_file..` lies at
            // or above the readable end of the active file (the written end is at most `self.pos`).
            let dst = unsafe { active.map.writable(in_file, remaining) };
            rec::encode_blank(dst).map_err(|e| e.into_storage(active.map.path()))?;
            self.pos = active.end();
            self.active = None;
        }
    }

    /// Has the allocator thread fault the next pages of the active file in writable, one
    /// `madvise(MADV_POPULATE_WRITE)` per [`POPULATE_CHUNK`], while the writer goes on. Faulting a page of a
    /// preallocated file in means the kernel zero-fills it (about 70% of a mapped writer's CPU when the writer
    /// did it itself, in stalls of about 25 ms every 8 MB); on the other thread that work overlaps the
    /// writer's, and the writer only faults pages itself when it outruns the allocator.
    fn populate_ahead(&mut self) {
        if self.pos <= self.populated && self.populated - self.pos >= POPULATE_CHUNK / 2 {
            return;
        }
        let Some(active) = self.active.clone() else { return };
        let start = self.populated.max(self.pos).max(active.start);
        let end = (start + POPULATE_CHUNK).min(active.end());
        if start < end {
            self.log.want_populated(&active, (start - active.start) as usize, (end - start) as usize);
        }
        self.populated = end;
    }

    /// The bytes of a reserved slot, to fill: in the mapping, or in the stage (writing out the staged run
    /// first when this slot does not continue it).
    pub fn write<'a>(&'a mut self, slot: &'a Slot, size: usize) -> Result<&'a mut [u8], StorageError> {
        if !self.staged {
            // SAFETY: `slot` was handed out by `reserve` for `size` bytes above the written end, and is not
            // yet published; `&mut self` proves we hold the writer mutex. The borrow ends before `publish`.
            return Ok(unsafe { slot.file.map.writable(slot.pos, size) });
        }
        self.stage_for(slot)?;
        Ok(self.stage.encoded(size))
    }

    /// Writes one message into its reserved slot (`slot` from `reserve` for the message's TOTALSIZE): in
    /// the mapping, or staged with its body borrowed from `body` (the batch's memory) rather than copied.
    pub fn put_message(
        &mut self,
        slot: &Slot,
        meta: &MessageMeta,
        body_crc: u32,
        body: &Bytes,
        topic: &[u8],
        properties: &[u8],
    ) -> Result<(), StorageError> {
        let path = || slot.file.map.path().to_path_buf();
        let size = rec::message_size(body.len(), topic.len(), properties.len()).map_err(|e| e.into_storage(path()))?;
        if !self.staged {
            let dst = self.write(slot, size)?;
            return rec::encode_message(dst, meta, body_crc, body, topic, properties)
                .map_err(|e| e.into_storage(path()));
        }
        self.stage_for(slot)?;
        rec::encode_message_head(self.stage.encoded(FIXED_HEADER_SIZE), meta, body_crc, body.len(), size, topic.len())
            .map_err(|e| e.into_storage(path()))?;
        self.stage.body(body);
        let tail = self.stage.encoded(rec::message_tail_size(topic.len(), properties.len()));
        rec::encode_message_tail(tail, topic, properties).map_err(|e| e.into_storage(path()))
    }

    /// Makes the stage's run the one `slot` continues, writing out the current run first when `slot` does
    /// not continue it.
    fn stage_for(&mut self, slot: &Slot) -> Result<(), StorageError> {
        if !self.stage.continues(&slot.file, slot.pos) {
            self.stage.write_out()?;
            self.stage.start(&slot.file, slot.pos);
        }
        Ok(())
    }

    /// Records a message's store time for retention.
    pub fn note_store_time(&self, slot: &Slot, store_ms: i64) {
        slot.file.max_store_ms.fetch_max(store_ms, Ordering::Relaxed);
    }

    /// Makes everything written so far readable (writing out the stage first).
    pub fn publish(&mut self) -> Result<(), StorageError> {
        self.stage.write_out()?;
        let old = self.log.written();
        if let Some(active) = self.active.as_ref().filter(|a| old >= a.start) {
            // No roll since the last publish: only the active file moves.
            // SAFETY: we are the single writer (`&mut self` lives under the writer mutex), and every byte
            // between the old readable end and `self.pos` was written by `write` (or is a blank record)
            // and is never written again: the end only moves up over complete messages.
            unsafe { active.map.set_readable((self.pos - active.start) as usize) };
            self.log.set_published(self.pos);
            return Ok(());
        }
        for f in self.log.files() {
            if f.end() <= old {
                continue;
            }
            if f.start > self.pos {
                break;
            }
            // SAFETY: as above: the single writer moves each file's readable end up over bytes it has
            // completely written (messages and the blank record that ends a file) since the last publish.
            unsafe { f.map.set_readable((self.pos - f.start).min(f.map.len() as u64) as usize) };
        }
        self.log.set_published(self.pos);
        Ok(())
    }

    /// Undoes everything written since `mark` (a position returned by [`LogWriter::pos`] with nothing
    /// published since): zeroes the unpublished bytes and moves the write position back.
    pub fn rollback(&mut self, mark: u64) -> Result<(), StorageError> {
        self.stage.clear();
        for f in self.log.files() {
            if f.end() <= mark || f.start >= self.pos {
                continue;
            }
            let lo = (mark.max(f.start) - f.start) as usize;
            let hi = (self.pos.min(f.end()) - f.start) as usize;
            // SAFETY: `lo..hi` lies above the written end (nothing was published since `mark`) and we are
            // the writer.
            unsafe { f.map.writable(lo, hi - lo) }.fill(0);
        }
        self.pos = mark;
        // The file holding `mark`, if it exists: undoing never needs a new file (on a full disk the failed
        // append may be the one that could not create it).
        self.active = self.log.file_at(mark);
        Ok(())
    }
}
