//! Facts about the machine a run measured, recorded beside its results.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the results depend on and a reader cannot see.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Filesystem type of the data directory (from `/proc/mounts`).
    pub filesystem: String,
    /// The mount point holding the data directory.
    pub mount_point: String,
    /// The 1-minute load average when the run started (other work on a shared machine).
    pub load_average_1m: f64,
    /// The commit checked out when the run started, with `-dirty` when the working tree had uncommitted
    /// changes (empty if `git` could not tell).
    pub commit: String,
    /// Whether the binary was built with optimisations (results from a debug build are not comparable).
    pub optimized: bool,
}

impl Machine {
    /// Collects the facts; `data_dir` is where the engines' files go.
    pub fn collect(data_dir: &Path) -> Machine {
        let (mount_point, filesystem) = mount_of(data_dir).unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: read("/proc/cpuinfo")
                .lines()
                .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
                .unwrap_or_default(),
            memory_bytes: read("/proc/meminfo")
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            filesystem,
            mount_point,
            load_average_1m: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
            commit: std::process::Command::new("git")
                // `--exclude=*` ignores tags: always the abbreviated commit hash.
                .args(["describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default(),
            optimized: !cfg!(debug_assertions),
        }
    }

    /// The hardware and system, for reports: `2 cores (model), 24.0 GiB memory, Linux 6.x, ext4 filesystem at /`.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB memory, Linux {}, {} filesystem at {}",
            self.cores,
            self.cpu_model,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.kernel,
            self.filesystem,
            self.mount_point,
        )
    }

    /// What one scenario's run started from: `commit abc1234, load average 0.52 at start`. Scenarios of one
    /// run id may be re-run later, from another commit, so each report section names its own.
    pub fn provenance(&self) -> String {
        format!(
            "commit {}, load average {:.2} at start{}",
            if self.commit.is_empty() { "unknown" } else { &self.commit },
            self.load_average_1m,
            if self.optimized { "" } else { " (unoptimised build)" },
        )
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The longest mount point in `/proc/mounts` that contains `dir`, and its filesystem type.
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    read("/proc/mounts")
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, fs) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(mount).then(|| (mount.to_string(), fs.to_string()))
        })
        .max_by_key(|(mount, _)| mount.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_the_facts_of_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let m = Machine::collect(dir.path());
        assert!(m.cores >= 1);
        assert!(m.memory_bytes > 0);
        assert!(!m.kernel.is_empty());
        assert!(!m.filesystem.is_empty(), "the temp dir is on some mounted filesystem");
        assert!(m.describe().contains(&m.kernel));
        assert!(m.provenance().starts_with("commit "));
    }
}
