//! Raw baselines for the engines' benchmarks: what the operating system does without an engine in the way.
//!
//! The design asks that every published figure be shown beside a baseline measured in the same run, and as
//! a ratio to it. Two baselines are shared by both engines' criterion benches:
//!
//! - **sequential append**: plain `write(2)` of the same chunk size to a fresh file in the same directory
//!   (so on the same filesystem) as the engine's data ([`raw_append`]), optionally with an `fdatasync(2)`
//!   after every chunk ([`raw_append_sync`]), or spread round-robin over many files ([`RoundRobinFiles`], the
//!   counterpart of many partitions);
//! - **zero-copy send**: plain blocking `sendfile(2)` of a file already in the page cache ([`cached_file`])
//!   to a loopback TCP socket whose other end a thread drains ([`LoopbackDrain`],
//!   [`LoopbackDrain::raw_sendfile`]). The engine's own send path uses the same [`LoopbackDrain`], so both
//!   pay the same receiving cost.
//!
//! Every helper times only the data path: creating, warming and removing files happen outside the returned
//! [`Duration`]. The `*_timed` variants return a [`Timing`]: the wall-clock time and the CPU time of the
//! calling thread ([`Stopwatch`]). On a shared machine the wall time of a stretch includes whatever time the
//! thread spent preempted by other processes; its CPU time does not, so for work done entirely on the calling
//! thread (a `write(2)`, or an engine append under `flush.policy=os`) CPU-time ratios are the steadier ones.
//!
//! [`paired`] alternates an engine measurement with its baseline round by round, and reports both ratios.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Size of the drain thread's receive buffer.
const DRAIN_BUFFER: usize = 1 << 20;

/// A file name in `dir` that no other baseline run uses.
fn scratch_path(dir: &Path, what: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("baseline-{what}-{}-{n}.bin", std::process::id()))
}

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

/// Writes `chunk` repeatedly to a new file in `dir` until at least `total_bytes` are written, one `write(2)`
/// per chunk (looping only over short writes), and returns how long the writes took. The file is created
/// before and removed after the timed part. Panics if `chunk` is empty.
pub fn raw_append(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Duration> {
    raw_append_timed(dir, chunk, total_bytes).map(|t| t.wall)
}

/// As [`raw_append`], returning wall and CPU time.
pub fn raw_append_timed(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Timing> {
    append_chunks(dir, chunk, total_bytes, false)
}

/// As [`raw_append`], with an `fdatasync(2)` after every chunk: the simplest durable writer, and what the
/// `sync` flush policy is measured against.
pub fn raw_append_sync(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Duration> {
    raw_append_sync_timed(dir, chunk, total_bytes).map(|t| t.wall)
}

/// As [`raw_append_sync`], returning wall and CPU time.
pub fn raw_append_sync_timed(dir: &Path, chunk: &[u8], total_bytes: u64) -> io::Result<Timing> {
    append_chunks(dir, chunk, total_bytes, true)
}

fn append_chunks(dir: &Path, chunk: &[u8], total_bytes: u64, sync: bool) -> io::Result<Timing> {
    assert!(!chunk.is_empty(), "raw_append needs a non-empty chunk");
    let path = scratch_path(dir, "append");
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    let watch = Stopwatch::start();
    let mut written = 0u64;
    let result = (|| {
        while written < total_bytes {
            file.write_all(chunk)?;
            if sync {
                file.sync_data()?;
            }
            written += chunk.len() as u64;
        }
        Ok::<(), io::Error>(())
    })();
    let timing = watch.stop();
    drop(file);
    let removed = fs::remove_file(&path);
    result?;
    removed?;
    Ok(timing)
}

/// `n` files in one directory written round-robin, one `write(2)` of the chunk to each file in turn: the raw
/// counterpart of appending to `n` partitions (each its own file). The files are created by
/// [`RoundRobinFiles::create`], keep growing across [`RoundRobinFiles::append`] calls (as partitions do), and
/// are removed on drop. Holds `n` open descriptors.
pub struct RoundRobinFiles {
    files: Vec<(PathBuf, File)>,
    next: usize,
}

impl RoundRobinFiles {
    /// Creates `n` (at least 1) empty files in `dir`.
    pub fn create(dir: &Path, n: usize) -> io::Result<Self> {
        let mut out = RoundRobinFiles { files: Vec::with_capacity(n.max(1)), next: 0 };
        for _ in 0..n.max(1) {
            let path = scratch_path(dir, "rr");
            let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
            out.files.push((path, file));
        }
        Ok(out)
    }

    /// Writes `chunk` `chunks` times, each to the next file in turn (continuing where the previous call
    /// stopped), and returns how long the writes took.
    pub fn append(&mut self, chunk: &[u8], chunks: u64) -> io::Result<Duration> {
        self.append_timed(chunk, chunks).map(|t| t.wall)
    }

    /// As [`RoundRobinFiles::append`], returning wall and CPU time.
    pub fn append_timed(&mut self, chunk: &[u8], chunks: u64) -> io::Result<Timing> {
        let watch = Stopwatch::start();
        for _ in 0..chunks {
            self.files[self.next].1.write_all(chunk)?;
            self.next = (self.next + 1) % self.files.len();
        }
        Ok(watch.stop())
    }
}

impl RoundRobinFiles {
    /// Truncates every file to zero bytes, freeing their data (and dropping any of it not yet written back)
    /// while keeping the files: removing many files can slow down creating the next ones on some filesystems.
    pub fn truncate_all(&mut self) -> io::Result<()> {
        self.files.iter().try_for_each(|(_, file)| file.set_len(0))
    }
}

impl Drop for RoundRobinFiles {
    fn drop(&mut self) {
        for (path, file) in self.files.drain(..) {
            drop(file);
            let _ = fs::remove_file(path);
        }
    }
}

/// Creates a file of `len` bytes (a repeating byte pattern) in `dir` and reads it back once, so that it is
/// in the page cache; returns it opened for reading. The caller removes it (it lives in a temp dir).
pub fn cached_file(dir: &Path, len: u64) -> io::Result<File> {
    let path = scratch_path(dir, "cached");
    let chunk: Vec<u8> = (0..DRAIN_BUFFER).map(|i| (i % 251) as u8).collect();
    {
        let mut file = File::create(&path)?;
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
    }
    let mut file = File::open(&path)?;
    warm(&mut file)?;
    Ok(file)
}

/// Reads `file` from start to end (to pull it into the page cache).
fn warm(file: &mut File) -> io::Result<()> {
    let mut buf = vec![0u8; DRAIN_BUFFER];
    let mut pos = 0u64;
    loop {
        let n = std::os::unix::fs::FileExt::read_at(file, &mut buf, pos)?;
        if n == 0 {
            return Ok(());
        }
        pos += n as u64;
    }
}

/// A connected loopback TCP pair whose receiving end a thread reads and discards, counting the bytes.
///
/// Send on [`LoopbackDrain::sender`] (or a clone of it from [`LoopbackDrain::clone_sender`], e.g. turned
/// into a tokio stream), then call [`LoopbackDrain::wait_received`] so a timing includes the bytes still in
/// flight. Dropping it shuts the connection down and joins the thread.
pub struct LoopbackDrain {
    sender: TcpStream,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl LoopbackDrain {
    /// Listens on an ephemeral 127.0.0.1 port, connects to it, and starts the draining thread.
    pub fn new() -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let sender = TcpStream::connect(listener.local_addr()?)?;
        let (mut receiver, _) = listener.accept()?;
        sender.set_nodelay(true)?;
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let thread = std::thread::Builder::new().name("loopback-drain".into()).spawn(move || {
            let mut buf = vec![0u8; DRAIN_BUFFER];
            loop {
                match receiver.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        counter.fetch_add(n as u64, Ordering::Release);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })?;
        Ok(LoopbackDrain { sender, received, thread: Some(thread) })
    }

    /// The sending end (blocking).
    pub fn sender(&self) -> &TcpStream {
        &self.sender
    }

    /// Another handle to the sending end (a duplicated descriptor), e.g. for `tokio::net::TcpStream::from_std`
    /// after `set_nonblocking(true)`. Note that the blocking mode is shared between the two handles.
    pub fn clone_sender(&self) -> io::Result<TcpStream> {
        self.sender.try_clone()
    }

    /// Bytes the draining thread has read so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// Waits (spinning with `yield_now`) until the thread has read at least `total` bytes in all; fails after
    /// `timeout` or if the thread has stopped.
    pub fn wait_received(&self, total: u64, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.received() < total {
            if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the draining thread stopped"));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("only {} of {total} bytes arrived", self.received()),
                ));
            }
            std::thread::yield_now();
        }
        Ok(())
    }

    /// The baseline: sends the first `len` bytes of `file` with blocking `sendfile(2)` calls (looping over
    /// partial sends) on the sending end, which must be in blocking mode, and waits until the draining
    /// thread has read them all. Returns the time from the first call until the last byte arrived.
    pub fn raw_sendfile(&self, file: &File, len: u64) -> io::Result<Duration> {
        self.raw_sendfile_timed(file, len).map(|t| t.wall)
    }

    /// As [`LoopbackDrain::raw_sendfile`], returning wall and CPU time (the CPU time is the sending thread's,
    /// which on loopback includes part of the receiving network stack; compare wall times).
    pub fn raw_sendfile_timed(&self, file: &File, len: u64) -> io::Result<Timing> {
        let target = self.received() + len;
        let watch = Stopwatch::start();
        let mut offset: i64 = 0;
        while (offset as u64) < len {
            let remaining = (len - offset as u64).min(1 << 30) as usize;
            match nix::sys::sendfile::sendfile64(self.sender.as_fd(), file.as_fd(), Some(&mut offset), remaining) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("file ended at {offset}")));
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.wait_received(target, Duration::from_secs(60))?;
        Ok(watch.stop())
    }
}

impl Drop for LoopbackDrain {
    fn drop(&mut self) {
        let _ = self.sender.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An engine measurement and its baseline taken in alternation by [`paired`], round by round, so that both
/// see the same machine: on a shared machine the load changes between two criterion runs of a few seconds,
/// while the ratio of neighbouring rounds stays meaningful.
#[derive(Clone, Debug, Default)]
pub struct Paired {
    /// Engine wall-clock MB/s of every round.
    pub engine: Vec<f64>,
    /// Baseline wall-clock MB/s of every round.
    pub baseline: Vec<f64>,
    /// Engine MB/s per second of calling-thread CPU time, every round.
    pub engine_cpu: Vec<f64>,
    /// Baseline MB/s per second of calling-thread CPU time, every round.
    pub baseline_cpu: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn ratios(engine: &[f64], baseline: &[f64]) -> Vec<f64> {
    engine.iter().zip(baseline).map(|(e, b)| e / b).collect()
}

impl Paired {
    /// Median engine wall-clock MB/s.
    pub fn engine_median(&self) -> f64 {
        median(&self.engine)
    }

    /// Median baseline wall-clock MB/s.
    pub fn baseline_median(&self) -> f64 {
        median(&self.baseline)
    }

    /// Engine over baseline wall-clock MB/s of each round.
    pub fn ratios(&self) -> Vec<f64> {
        ratios(&self.engine, &self.baseline)
    }

    /// Median of the per-round wall-clock ratios.
    pub fn ratio_median(&self) -> f64 {
        median(&self.ratios())
    }

    /// Median of the per-round CPU-time ratios (engine MB per CPU-second over the baseline's).
    pub fn cpu_ratio_median(&self) -> f64 {
        median(&ratios(&self.engine_cpu, &self.baseline_cpu))
    }

    /// Whether every round has CPU times (a closure that returns a zero [`Timing::cpu`], e.g. because the work
    /// ran on other threads, opts out).
    pub fn has_cpu(&self) -> bool {
        self.engine_cpu.iter().chain(&self.baseline_cpu).all(|v| v.is_finite())
    }
}

impl std::fmt::Display for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratios = self.ratios();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        write!(
            f,
            "engine {:.0} MB/s, baseline {:.0} MB/s (medians of {} rounds); ratio {:.2} (median; rounds {lo:.2}..{hi:.2})",
            self.engine_median(),
            self.baseline_median(),
            ratios.len(),
            self.ratio_median(),
        )?;
        if self.has_cpu() {
            write!(
                f,
                "; per CPU-second: engine {:.0} MB, baseline {:.0} MB, ratio {:.2}",
                median(&self.engine_cpu),
                median(&self.baseline_cpu),
                self.cpu_ratio_median(),
            )?;
        }
        Ok(())
    }
}

/// Runs `rounds` rounds, each timing `engine` and `baseline` once (alternating which goes first); both must move
/// `bytes_per_round` bytes and return the [`Timing`] of doing so.
pub fn paired(
    rounds: usize,
    bytes_per_round: u64,
    mut engine: impl FnMut() -> Timing,
    mut baseline: impl FnMut() -> Timing,
) -> Paired {
    let mut out = Paired::default();
    for round in 0..rounds {
        let (e, b) = if round % 2 == 0 {
            let e = engine();
            (e, baseline())
        } else {
            let b = baseline();
            (engine(), b)
        };
        out.engine.push(mb_per_s(bytes_per_round, e.wall));
        out.baseline.push(mb_per_s(bytes_per_round, b.wall));
        out.engine_cpu.push(mb_per_s(bytes_per_round, e.cpu));
        out.baseline_cpu.push(mb_per_s(bytes_per_round, b.cpu));
    }
    out
}

/// Megabytes (10^6 bytes) per second for `bytes` moved in `elapsed`, as the benchmark tables report them.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_append_writes_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        raw_append(dir.path(), &[7u8; 4096], 64 * 1024).unwrap();
        raw_append_sync(dir.path(), &[7u8; 4096], 16 * 1024).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn paired_reports_medians_and_ratios() {
        let mut n = 0u32;
        let ms = |n: u32| Timing { wall: Duration::from_millis(n.into()), cpu: Duration::from_millis(n.into()) };
        let p = paired(
            3,
            1_000_000,
            || {
                n += 1;
                ms(n)
            },
            || ms(1),
        );
        assert_eq!(p.baseline_median(), 1000.0);
        assert_eq!(p.engine_median(), 500.0);
        assert!((p.ratio_median() - 0.5).abs() < 1e-9);
        assert!((p.cpu_ratio_median() - 0.5).abs() < 1e-9);
        assert!(p.to_string().contains("ratio 0.50"), "{p}");
    }

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

    #[test]
    fn round_robin_files_spread_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RoundRobinFiles::create(dir.path(), 3).unwrap();
        files.append(&[1u8; 10], 4).unwrap();
        files.append(&[1u8; 10], 2).unwrap();
        let mut sizes: Vec<u64> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [20, 20, 20]);
        files.truncate_all().unwrap();
        assert!(fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().metadata().unwrap().len() == 0));
        drop(files);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn raw_sendfile_delivers_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * DRAIN_BUFFER as u64 + 17;
        let file = cached_file(dir.path(), len).unwrap();
        let drain = LoopbackDrain::new().unwrap();
        drain.raw_sendfile(&file, len).unwrap();
        drain.raw_sendfile(&file, len).unwrap();
        assert_eq!(drain.received(), 2 * len);
    }
}
