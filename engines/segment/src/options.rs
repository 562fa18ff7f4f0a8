//! Engine-wide settings of the segment engine, with their config keys and allowed ranges (per-topic settings
//! live in `TopicConfig`).

use std::time::Duration;

use janus_api::{ConfigError, OptionKey, StorageError};

/// Engine-wide settings. Build with [`SegmentOptions::default`] and [`SegmentOptions::set`] (or set the
/// fields and call [`SegmentOptions::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentOptions {
    /// `segment.index.bytes`: preallocated size of each index file of an active segment (Kafka's `segment.index.bytes`, 10 MiB);
    /// a segment rolls when either index is full.
    pub max_index_bytes: usize,
    /// `max.open.partitions`: most partitions whose active segment keeps its descriptor and two index mappings open; the least
    /// recently used are closed beyond this (each open partition costs 1 descriptor and 2 mappings).
    pub max_open_partitions: usize,
    /// `checkpoint.interval.ms`: how often the flush thread rewrites the recovery-point checkpoint.
    pub checkpoint_interval: Duration,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            max_index_bytes: 10 * 1024 * 1024,
            max_open_partitions: default_max_open_partitions(),
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}

const INDEX_BYTES: OptionKey = OptionKey {
    name: "segment.index.bytes",
    allowed: "an integer from 64 to 2147483647",
    min: 64,
    max: i32::MAX as u64,
};
const MAX_OPEN: OptionKey = OptionKey {
    name: "max.open.partitions",
    allowed: "0 (from the descriptor and mapping limits) or an integer of at least 1",
    min: 1,
    max: u64::MAX,
};
const CHECKPOINT: OptionKey =
    OptionKey { name: "checkpoint.interval.ms", allowed: "an integer from 1 to 86400000", min: 1, max: 86_400_000 };

/// Every key [`SegmentOptions::set`] accepts.
pub const OPTION_KEYS: &[&str] = &[INDEX_BYTES.name, MAX_OPEN.name, CHECKPOINT.name];

/// `n` as a `usize` (every key's range fits on 64-bit targets; saturates elsewhere).
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl SegmentOptions {
    /// Sets one key (one of [`OPTION_KEYS`]) from its string value, refusing unknown keys and out-of-range
    /// values with an error that names the key and the allowed range.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "segment.index.bytes" => self.max_index_bytes = to_usize(INDEX_BYTES.parse(value)?),
            // 0 keeps the default, picked from the descriptor and mapping limits.
            "max.open.partitions" if value.trim() == "0" => self.max_open_partitions = default_max_open_partitions(),
            "max.open.partitions" => self.max_open_partitions = to_usize(MAX_OPEN.parse(value)?),
            "checkpoint.interval.ms" => {
                self.checkpoint_interval = Duration::from_millis(CHECKPOINT.parse(value)?);
            }
            _ => {
                return Err(OptionKey::unknown(key, value, "segment engine", OPTION_KEYS));
            }
        }
        Ok(())
    }

    /// Refuses settings the engine cannot work with (each field against its key's range).
    pub fn validate(&self) -> Result<(), StorageError> {
        INDEX_BYTES.check(self.max_index_bytes as u64)?;
        MAX_OPEN.check(self.max_open_partitions as u64)?;
        let interval_ms = u64::try_from(self.checkpoint_interval.as_millis()).unwrap_or(u64::MAX);
        CHECKPOINT.check(interval_ms)?;
        Ok(())
    }
}

/// Half the soft descriptor limit (leaving the rest to sockets, readers and other engines), and no more than a
/// quarter of the kernel's mapping limit.
fn default_max_open_partitions() -> usize {
    let fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft as usize)
        .unwrap_or(1024);
    let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65530);
    (fds / 2).min(maps / 4).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_errors_name_the_key_and_range() {
        let mut o = SegmentOptions::default();
        o.set("segment.index.bytes", "4096").unwrap();
        o.set("max.open.partitions", "7").unwrap();
        o.set("checkpoint.interval.ms", "250").unwrap();
        assert_eq!(
            (o.max_index_bytes, o.max_open_partitions, o.checkpoint_interval),
            (4096, 7, Duration::from_millis(250))
        );
        o.validate().unwrap();
        for (k, v, range) in [
            ("segment.index.bytes", "63", "64 to 2147483647"),
            ("segment.index.bytes", "2147483648", "64 to 2147483647"),
            ("max.open.partitions", "-1", "at least 1"),
            ("checkpoint.interval.ms", "0", "1 to 86400000"),
            ("checkpoint.interval.ms", "86400001", "1 to 86400000"),
            ("checkpoint.interval.ms", "soon", "1 to 86400000"),
        ] {
            let err = o.set(k, v).unwrap_err();
            assert_eq!(err.key, k);
            assert!(err.to_string().contains(range), "{err}");
        }
        assert_eq!(o.max_index_bytes, 4096, "a refused value changes nothing");
        o.set("max.open.partitions", "0").unwrap();
        assert_eq!(o.max_open_partitions, SegmentOptions::default().max_open_partitions, "0 is the default");
        let err = o.set("segment.bytes", "1").unwrap_err();
        assert!(err.to_string().contains("unknown") && err.to_string().contains("max.open.partitions"), "{err}");
        let bad = SegmentOptions { checkpoint_interval: Duration::ZERO, ..SegmentOptions::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("checkpoint.interval.ms"));
    }
}
