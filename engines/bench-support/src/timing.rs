//! Measuring a stretch of work: wall-clock time and the calling thread's CPU time, and MB/s from them.

use std::time::{Duration, Instant};

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), user and system.
pub fn thread_cpu_time() -> Duration {
    let mut ts = nix::libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel always supports.
    let rc = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall-clock time and calling-thread CPU time of one measured stretch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Elapsed wall-clock time.
    pub wall: Duration,
    /// CPU time of the thread that measured (user and system), excluding time spent waiting or preempted.
    pub cpu: Duration,
}

impl std::ops::Add for Timing {
    type Output = Timing;

    fn add(self, other: Timing) -> Timing {
        Timing { wall: self.wall + other.wall, cpu: self.cpu + other.cpu }
    }
}

/// Measures a [`Timing`]: started by [`Stopwatch::start`], read by [`Stopwatch::stop`] on the same thread.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    /// Starts measuring on the calling thread.
    pub fn start() -> Self {
        Stopwatch { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    /// The time since [`Stopwatch::start`]; call it on the thread that started it.
    pub fn stop(&self) -> Timing {
        Timing { wall: self.wall.elapsed(), cpu: thread_cpu_time().saturating_sub(self.cpu) }
    }
}

/// Megabytes (10^6 bytes) per second for `bytes` moved in `elapsed`, as the benchmark tables report them.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwatch_counts_cpu_time() {
        let watch = Stopwatch::start();
        let mut x = 0u64;
        while watch.stop().wall < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let t = watch.stop();
        assert!(t.cpu > Duration::from_millis(1) && t.cpu <= t.wall + Duration::from_millis(5), "{t:?}");
    }
}
