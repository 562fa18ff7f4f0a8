//! Free space of the volume (file system) holding a path, and the default free-space guard.
//!
//! Both engines and the core ask the same question before they take disk: how much is free on the volume
//! this directory lives on, and how much must stay free. The answer comes from `statvfs` (space available to
//! unprivileged users, as `df` shows it); the volume is named by its mount point, found by walking up the
//! path while the device stays the same.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{IoResultExt, StorageError};

/// The default guard's ceiling: 1 GiB.
pub const DEFAULT_MIN_FREE_CEILING: u64 = 1 << 30;

/// The default guard's share of the volume: 5% (one in twenty).
pub const DEFAULT_MIN_FREE_SHARE: u64 = 20;

/// Space on one volume at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpace {
    /// The volume's mount point (the topmost directory of the path on the same device).
    pub mount_point: PathBuf,
    /// Bytes an unprivileged writer can still use.
    pub free: u64,
    /// The volume's size in bytes.
    pub total: u64,
}

impl VolumeSpace {
    /// The free space with `reserve` bytes held back (0 when the volume is already below it).
    pub fn usable(&self, reserve: u64) -> u64 {
        self.free.saturating_sub(reserve)
    }
}

impl std::fmt::Display for VolumeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "volume {} has {} free of {}",
            self.mount_point.display(),
            human_bytes(self.free),
            human_bytes(self.total)
        )
    }
}

/// The default free-space guard of a volume of `total` bytes: 1 GiB or 5% of it, whichever is smaller
/// (Redpanda's `storage_min_free_bytes` rule).
pub fn default_min_free(total: u64) -> u64 {
    DEFAULT_MIN_FREE_CEILING.min(total / DEFAULT_MIN_FREE_SHARE)
}

/// Measures the volume holding `path` (which must exist).
pub fn space(path: &Path) -> Result<VolumeSpace, StorageError> {
    space_on(path, mount_point(path)?)
}

/// Measures the volume holding `path`, already known to be mounted at `mount_point` (one `statvfs`).
pub fn space_on(path: &Path, mount_point: PathBuf) -> Result<VolumeSpace, StorageError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|e| StorageError::io(path, e.into()))?;
    let unit = stat.fragment_size() as u64;
    Ok(VolumeSpace {
        mount_point,
        free: (stat.blocks_available() as u64).saturating_mul(unit),
        total: (stat.blocks() as u64).saturating_mul(unit),
    })
}

/// The mount point of the volume holding `path`: its topmost ancestor on the same device.
pub fn mount_point(path: &Path) -> Result<PathBuf, StorageError> {
    let path = path.canonicalize().at(path)?;
    let device = path.metadata().at(&path)?.dev();
    let mut top = path.as_path();
    while let Some(parent) = top.parent() {
        match parent.metadata() {
            Ok(m) if m.dev() == device => top = parent,
            _ => break,
        }
    }
    Ok(top.to_path_buf())
}

/// `n` bytes for people: `812.0 MiB`, `3 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_guard_is_the_smaller_of_a_gib_and_five_percent() {
        assert_eq!(default_min_free(200 << 20), 10 << 20);
        assert_eq!(default_min_free(1 << 40), 1 << 30);
        assert_eq!(default_min_free(0), 0);
    }

    #[test]
    fn a_directory_is_measured_on_its_volume() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let space = space(&nested).unwrap();
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert!(nested.canonicalize().unwrap().starts_with(&space.mount_point), "{space:?}");
        assert_eq!(space.mount_point, super::space(dir.path()).unwrap().mount_point);
        assert!(space.to_string().starts_with(&format!("volume {} has ", space.mount_point.display())));
        assert!(matches!(super::space(&dir.path().join("missing")), Err(StorageError::Io { .. })));
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(3), "3 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(812 << 20), "812.0 MiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
