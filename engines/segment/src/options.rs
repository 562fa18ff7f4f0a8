//! Engine-wide settings of the segment engine (per-topic settings live in `TopicConfig`).

use std::time::Duration;

use janus_api::{ConfigError, StorageError};

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    /// Preallocated size of each index file of an active segment (Kafka's `segment.index.bytes`, 10 MiB);
    /// a segment rolls when either index is full.
    pub max_index_bytes: usize,
    /// Most partitions whose active segment keeps its descriptor and two index mappings open; the least
    /// recently used are closed beyond this (each open partition costs 1 descriptor and 2 mappings).
    pub max_open_partitions: usize,
    /// How often the flush thread rewrites the recovery-point checkpoint.
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

impl SegmentOptions {
    /// Refuses settings the engine cannot work with.
    pub fn validate(&self) -> Result<(), StorageError> {
        if self.max_index_bytes < 64 || self.max_index_bytes > i32::MAX as usize {
            return Err(ConfigError::new(
                "segment.index.bytes",
                self.max_index_bytes.to_string(),
                "an integer from 64 to 2147483647",
            )
            .into());
        }
        if self.max_open_partitions == 0 {
            return Err(ConfigError::new("max.open.partitions", "0", "an integer of at least 1").into());
        }
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
