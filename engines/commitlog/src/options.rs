//! Broker-wide settings of the commitlog engine, with their config keys and allowed ranges.

use janus_api::{ConfigError, OptionKey};

/// Settings of one [`crate::CommitLogEngine`]. Build with [`CommitLogOptions::default`] and
/// [`CommitLogOptions::set`] (or set the fields and call [`CommitLogOptions::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitLogOptions {
    /// `commitlog.file.bytes`: size of every CommitLog file (RocketMQ: 1 GiB).
    pub file_bytes: u64,
    /// `commitlog.prewarm`: touch every page of a new CommitLog file and `madvise(WILLNEED)` it before use.
    pub prewarm: bool,
    /// `commitlog.staged.writes`: encode messages into a buffer and `pwrite` them to the CommitLog file
    /// instead of writing through the mapping (RocketMQ's `transientStorePoolEnable`); reads still use the
    /// mapping. On by default: in the same bench run (`append_64k_queues`, issue 12) staged writes appended
    /// 64 KiB batches at 1.42-1.51 GiB/s over 1 and 10,000 queues where writes through the mapping managed
    /// 0.40-0.70 (raw `write(2)`: 2.25).
    pub staged_writes: bool,
    /// `consumequeue.file.entries`: 20-byte entries per ConsumeQueue file (RocketMQ: 300,000).
    pub consumequeue_file_entries: u32,
    /// `consumequeue.open.files`: most ConsumeQueue files kept open and mapped at once (an LRU).
    pub consumequeue_open_files: usize,
    /// `index.slots`: hash slots per IndexFile (RocketMQ: 5,000,000).
    pub index_slots: u32,
    /// `index.entries`: entries per IndexFile (RocketMQ: 20,000,000).
    pub index_entries: u32,
    /// `checkpoint.interval.ms`: how often the flusher syncs everything and writes the checkpoint.
    pub checkpoint_interval_ms: u64,
    /// `storage.min.free.bytes`: bytes a new CommitLog file must leave free on its volume (`None`: 1 GiB or
    /// 5% of the volume, whichever is smaller).
    pub min_free_bytes: Option<u64>,
}

impl Default for CommitLogOptions {
    fn default() -> Self {
        CommitLogOptions {
            file_bytes: 1 << 30,
            prewarm: false,
            staged_writes: true,
            consumequeue_file_entries: 300_000,
            consumequeue_open_files: 1_000,
            index_slots: 5_000_000,
            index_entries: 20_000_000,
            checkpoint_interval_ms: 10_000,
            min_free_bytes: None,
        }
    }
}

const FILE_BYTES: OptionKey =
    OptionKey { name: "commitlog.file.bytes", allowed: "an integer from 4096 to 17179869184", min: 4096, max: 1 << 34 };
const PREWARM: OptionKey = OptionKey { name: "commitlog.prewarm", allowed: "true or false", min: 0, max: 1 };
const STAGED: OptionKey = OptionKey { name: "commitlog.staged.writes", allowed: "true or false", min: 0, max: 1 };
const CQ_ENTRIES: OptionKey = OptionKey {
    name: "consumequeue.file.entries",
    allowed: "an integer from 16 to 50000000",
    min: 16,
    max: 50_000_000,
};
const CQ_OPEN: OptionKey =
    OptionKey { name: "consumequeue.open.files", allowed: "an integer from 2 to 1000000", min: 2, max: 1_000_000 };
const INDEX_SLOTS: OptionKey =
    OptionKey { name: "index.slots", allowed: "an integer from 1 to 50000000", min: 1, max: 50_000_000 };
const INDEX_ENTRIES: OptionKey =
    OptionKey { name: "index.entries", allowed: "an integer from 2 to 100000000", min: 2, max: 100_000_000 };
const CHECKPOINT: OptionKey =
    OptionKey { name: "checkpoint.interval.ms", allowed: "an integer from 1 to 86400000", min: 1, max: 86_400_000 };
/// The free-space guard, shared with the broker's `[storage]` setting of the same meaning.
pub const MIN_FREE: OptionKey =
    OptionKey { name: "storage.min.free.bytes", allowed: "an integer from 0 to 2^50", min: 0, max: 1 << 50 };

/// Every key [`CommitLogOptions::set`] accepts.
pub const OPTION_KEYS: &[&str] = &[
    FILE_BYTES.name,
    PREWARM.name,
    STAGED.name,
    CQ_ENTRIES.name,
    CQ_OPEN.name,
    INDEX_SLOTS.name,
    INDEX_ENTRIES.name,
    CHECKPOINT.name,
    MIN_FREE.name,
];

impl CommitLogOptions {
    /// Sets one key from its string value, refusing unknown keys and out-of-range values.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "commitlog.file.bytes" => self.file_bytes = FILE_BYTES.parse(value)?,
            "commitlog.prewarm" => {
                self.prewarm = PREWARM.parse_bool(value)?;
            }
            "commitlog.staged.writes" => self.staged_writes = STAGED.parse_bool(value)?,
            "consumequeue.file.entries" => self.consumequeue_file_entries = CQ_ENTRIES.parse(value)? as u32,
            "consumequeue.open.files" => self.consumequeue_open_files = CQ_OPEN.parse(value)? as usize,
            "index.slots" => self.index_slots = INDEX_SLOTS.parse(value)? as u32,
            "index.entries" => self.index_entries = INDEX_ENTRIES.parse(value)? as u32,
            "checkpoint.interval.ms" => self.checkpoint_interval_ms = CHECKPOINT.parse(value)?,
            "storage.min.free.bytes" => self.min_free_bytes = Some(MIN_FREE.parse(value)?),
            _ => {
                return Err(OptionKey::unknown(key, value, "commitlog engine", OPTION_KEYS));
            }
        }
        Ok(())
    }

    /// Checks every field against its key's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        FILE_BYTES.check(self.file_bytes)?;
        CQ_ENTRIES.check(u64::from(self.consumequeue_file_entries))?;
        CQ_OPEN.check(self.consumequeue_open_files as u64)?;
        INDEX_SLOTS.check(u64::from(self.index_slots))?;
        INDEX_ENTRIES.check(u64::from(self.index_entries))?;
        CHECKPOINT.check(self.checkpoint_interval_ms)?;
        if let Some(min_free) = self.min_free_bytes {
            MIN_FREE.check(min_free)?;
        }
        Ok(())
    }

    /// Bytes of one IndexFile with these options.
    pub fn index_file_bytes(&self) -> u64 {
        crate::index_file::file_size(self.index_slots, self.index_entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_ranges_name_the_key() {
        let mut o = CommitLogOptions::default();
        o.set("commitlog.file.bytes", "65536").unwrap();
        o.set("commitlog.prewarm", "true").unwrap();
        o.set("consumequeue.file.entries", "1000").unwrap();
        o.set("index.slots", "100").unwrap();
        o.set("index.entries", "400").unwrap();
        assert_eq!(o.file_bytes, 65536);
        assert!(o.prewarm);
        o.validate().unwrap();
        for (k, v) in [
            ("commitlog.file.bytes", "100"),
            ("commitlog.prewarm", "yes"),
            ("consumequeue.file.entries", "0"),
            ("index.entries", "x"),
        ] {
            let err = o.set(k, v).unwrap_err();
            assert_eq!(err.key, k);
        }
        let err = o.set("commitlog.nope", "1").unwrap_err();
        assert!(err.to_string().contains("unknown"), "{err}");
        let bad = CommitLogOptions { file_bytes: 10, ..CommitLogOptions::default() };
        assert_eq!(bad.validate().unwrap_err().key, "commitlog.file.bytes");
    }
}
