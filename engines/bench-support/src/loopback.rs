//! The zero-copy send baseline: a loopback TCP connection drained by a thread, and blocking `sendfile(2)`
//! of a file in the page cache to it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::scratch_path;
use crate::timing::{Stopwatch, Timing};

/// Size of the drain thread's receive buffer.
const DRAIN_BUFFER: usize = 1 << 20;

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

    /// The copying baseline (what a user-space sender such as a gRPC server pays): `write(2)` of `chunk`
    /// from memory, repeated until at least `total` bytes are sent, then waits until the draining thread has
    /// read them all. Returns the time from the first write until the last byte arrived. Panics if `chunk` is
    /// empty.
    pub fn raw_write(&self, chunk: &[u8], total: u64) -> io::Result<Duration> {
        assert!(!chunk.is_empty(), "raw_write needs a non-empty chunk");
        let target = self.received() + total.div_ceil(chunk.len() as u64) * chunk.len() as u64;
        let watch = Stopwatch::start();
        let mut sent = 0u64;
        let mut sender = &self.sender;
        while sent < total {
            std::io::Write::write_all(&mut sender, chunk)?;
            sent += chunk.len() as u64;
        }
        self.wait_received(target, Duration::from_secs(60))?;
        Ok(watch.stop().wall)
    }

    /// The baseline: sends the first `len` bytes of `file` with blocking `sendfile(2)` calls
    /// ([`janus_transfer::send_file_range_blocking`], looping over partial sends) on the sending end, which
    /// must be in blocking mode, and waits until the draining thread has read them all. Returns the time from the first call until the last byte arrived.
    pub fn raw_sendfile(&self, file: &File, len: u64) -> io::Result<Duration> {
        self.raw_sendfile_timed(file, len).map(|t| t.wall)
    }

    /// As [`LoopbackDrain::raw_sendfile`], returning wall and CPU time (the CPU time is the sending thread's,
    /// which on loopback includes part of the receiving network stack; compare wall times).
    pub fn raw_sendfile_timed(&self, file: &File, len: u64) -> io::Result<Timing> {
        let target = self.received() + len;
        let watch = Stopwatch::start();
        janus_transfer::send_file_range_blocking(&self.sender, file, 0, len)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn raw_write_delivers_whole_chunks() {
        let drain = LoopbackDrain::new().unwrap();
        drain.raw_write(&[7u8; 1000], 2500).unwrap();
        assert_eq!(drain.received(), 3000);
    }
}
