//! Raw baselines for the engines' benchmarks: what the operating system does without an engine in the way,
//! and the timing that compares the two.
//!
//! The design asks that every published figure be shown beside a baseline measured in the same run, and as
//! a ratio to it. Two baselines are shared by both engines' criterion benches and the experiments:
//!
//! - **sequential append**: plain `write(2)` of the same chunk size to a fresh file in the same directory
//!   (so on the same filesystem) as the engine's data ([`raw_append`]), optionally with an `fdatasync(2)`
//!   after every chunk ([`raw_append_sync`]), or spread round-robin over many files ([`RoundRobinFiles`],
//!   the counterpart of many partitions);
//! - **zero-copy send**: plain blocking `sendfile(2)` (`janus_transfer::send_file_range_blocking`, the
//!   broker's own transfer code) of a file already in the page cache ([`cached_file`]) to a loopback TCP
//!   socket whose other end a thread drains ([`LoopbackDrain`], [`LoopbackDrain::raw_sendfile`]). The
//!   engine's own send path uses the same [`LoopbackDrain`], so both pay the same receiving cost.
//!
//! Every helper times only the data path: creating, warming and removing files happen outside the returned
//! [`Duration`](std::time::Duration). The `*_timed` variants return a [`Timing`]: the wall-clock time and
//! the CPU time of the calling thread ([`Stopwatch`]). On a shared machine the wall time of a stretch
//! includes whatever time the thread spent preempted by other processes; its CPU time does not, so for work
//! done entirely on the calling thread (a `write(2)`, or an engine append under `flush.policy=os`) CPU-time
//! ratios are the steadier ones.
//!
//! [`paired`] alternates an engine measurement with its baseline round by round, and reports both ratios.

mod append;
mod loopback;
mod paired;
mod timing;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use append::{RoundRobinFiles, raw_append, raw_append_sync, raw_append_sync_timed, raw_append_timed};
pub use loopback::{LoopbackDrain, cached_file};
pub use paired::{Paired, paired, paired_enabled};
pub use timing::{Stopwatch, Timing, mb_per_s, thread_cpu_time};

/// A file name in `dir` that no other baseline run uses; the experiments remove leftovers by its
/// `baseline-` prefix.
fn scratch_path(dir: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("baseline-{what}-{}-{n}.bin", std::process::id()))
}
