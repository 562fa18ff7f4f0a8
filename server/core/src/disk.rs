//! The free-space guard: produce is refused before a volume is actually full (Redpanda's
//! `storage_min_free_bytes` approach), so RocksDB, the engines' indexes and the operator keep room to work,
//! and writes resume by themselves once space is freed.
//!
//! Each engine's directory (and RocksDB's) is measured on its volume with one `statvfs`. Far from the guard
//! (more than [`TRUSTED_HEADROOM`] above it) a measurement is reused for [`MEASURE_EVERY`]; near it every
//! write measures again, so a burst cannot run far past the guard on a stale figure.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use janus_api::volume::{self, VolumeSpace, human_bytes};
use janus_api::{EngineKind, StorageError, sync};

use crate::error::{BrokerError, ErrorCode};

/// How long a measurement is trusted when the volume is far from its guard.
pub const MEASURE_EVERY: Duration = Duration::from_millis(200);

/// Free bytes above the guard beyond which a recent measurement is trusted.
pub const TRUSTED_HEADROOM: u64 = 1 << 30;

/// What one guarded directory's volume looked like at its last measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeReport {
    /// What the directory holds: an engine's name or `meta`.
    pub holds: &'static str,
    /// The volume and its space.
    pub space: VolumeSpace,
    /// Bytes that must stay free on it.
    pub min_free: u64,
}

#[derive(Debug)]
struct Guarded {
    holds: &'static str,
    engine: Option<EngineKind>,
    dir: PathBuf,
    mount_point: OnceLock<PathBuf>,
    last: Mutex<Option<(Instant, VolumeSpace)>>,
}

impl Guarded {
    fn new(holds: &'static str, engine: Option<EngineKind>, dir: PathBuf) -> Self {
        Guarded { holds, engine, dir, mount_point: OnceLock::new(), last: Mutex::new(None) }
    }
}

/// The guard over every directory the broker writes (see the module docs).
#[derive(Debug)]
pub struct DiskGuard {
    dirs: Vec<Guarded>,
    min_free: Option<u64>,
}

impl DiskGuard {
    /// A guard keeping `min_free` bytes free on the volumes of `engine_dirs` and `meta_dir` (`None`: 1 GiB
    /// or 5% of each volume, whichever is smaller; `Some(0)`: no guard, only the real full disk).
    pub fn new(engine_dirs: Vec<(EngineKind, PathBuf)>, meta_dir: PathBuf, min_free: Option<u64>) -> Self {
        let mut dirs: Vec<Guarded> =
            engine_dirs.into_iter().map(|(kind, dir)| Guarded::new(kind.as_str(), Some(kind), dir)).collect();
        dirs.push(Guarded::new("meta", None, meta_dir));
        DiskGuard { dirs, min_free }
    }

    fn min_free_of(&self, space: &VolumeSpace) -> u64 {
        self.min_free.unwrap_or_else(|| volume::default_min_free(space.total))
    }

    /// The volume of `g`, measured now unless a measurement younger than `max_age` is far from the guard.
    fn measure(&self, g: &Guarded, max_age: Duration) -> Result<VolumeSpace, StorageError> {
        let mut last = sync::lock(&g.last);
        if let Some((at, space)) = last.as_ref()
            && at.elapsed() < max_age
            && space.usable(self.min_free_of(space)) > TRUSTED_HEADROOM
        {
            return Ok(space.clone());
        }
        let mount_point = match g.mount_point.get() {
            Some(m) => m.clone(),
            None => g.mount_point.get_or_init(|| volume::mount_point(&g.dir).unwrap_or_else(|_| g.dir.clone())).clone(),
        };
        let space = volume::space_on(&g.dir, mount_point)?;
        *last = Some((Instant::now(), space.clone()));
        Ok(space)
    }

    /// Refuses a write to `engine`'s topics with `DiskFull` when its volume, or RocksDB's, is below the
    /// guard. A volume that cannot be measured is not held against the write (the write itself reports a
    /// real full disk).
    pub fn check(&self, engine: EngineKind) -> Result<(), BrokerError> {
        for g in self.dirs.iter().filter(|g| g.engine.is_none_or(|e| e == engine)) {
            let Ok(space) = self.measure(g, MEASURE_EVERY) else { continue };
            let min_free = self.min_free_of(&space);
            if space.free < min_free {
                return Err(BrokerError::new(
                    ErrorCode::DiskFull,
                    format!(
                        "writes refused: {space}, below the free-space guard storage.min_free_bytes = {} (it holds \
                         the broker's {} data)",
                        human_bytes(min_free),
                        g.holds
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Measures every guarded directory now (for metrics); directories that cannot be measured are left
    /// out.
    pub fn report(&self) -> Vec<VolumeReport> {
        self.dirs
            .iter()
            .filter_map(|g| {
                let space = self.measure(g, Duration::ZERO).ok()?;
                Some(VolumeReport { holds: g.holds, min_free: self.min_free_of(&space), space })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(dir: &std::path::Path, min_free: Option<u64>) -> DiskGuard {
        DiskGuard::new(vec![(EngineKind::Segment, dir.to_path_buf())], dir.to_path_buf(), min_free)
    }

    #[test]
    fn a_guard_above_the_free_space_refuses_writes_naming_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let free = volume::space(dir.path()).unwrap().free;
        let err = guard(dir.path(), Some(free + (1 << 30))).check(EngineKind::Segment).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DiskFull);
        let mount = volume::space(dir.path()).unwrap().mount_point;
        assert!(err.message().contains(&format!("volume {} has ", mount.display())), "{}", err.message());
        assert!(err.message().contains("storage.min_free_bytes"), "{}", err.message());
        // Commitlog writes go to another directory (unmeasured here) but RocksDB's volume is the same one.
        assert!(guard(dir.path(), Some(free + (1 << 30))).check(EngineKind::Commitlog).is_err());
    }

    #[test]
    fn no_guard_lets_writes_through_and_reports_every_directory() {
        let dir = tempfile::tempdir().unwrap();
        let g = guard(dir.path(), Some(0));
        g.check(EngineKind::Segment).unwrap();
        let report = g.report();
        assert_eq!(report.iter().map(|r| r.holds).collect::<Vec<_>>(), vec!["segment", "meta"]);
        assert!(report.iter().all(|r| r.min_free == 0 && r.space.total > 0));
        let default = guard(dir.path(), None).report();
        assert_eq!(default[0].min_free, volume::default_min_free(default[0].space.total));
    }
}
