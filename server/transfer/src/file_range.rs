//! `sendfile(2)` of a byte range of a file to a TCP socket.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::is_retryable;

/// Most bytes asked of one `sendfile(2)` call (Linux moves at most about 2 GiB per call anyway).
const MAX_BYTES_PER_CALL: i64 = 1 << 30;

/// How far the sending of one file range has got.
#[derive(Debug)]
struct FileRange<'a> {
    file: &'a File,
    /// File position of the next byte to send; `sendfile(2)` advances it.
    next: i64,
    /// File position just past the range.
    end: i64,
}

impl<'a> FileRange<'a> {
    /// The range of `len` bytes at `position` of `file`; refused if it ends past the largest file offset.
    fn new(file: &'a File, position: u64, len: u64) -> io::Result<Self> {
        let bounds = i64::try_from(position).ok().zip(position.checked_add(len).and_then(|e| i64::try_from(e).ok()));
        let Some((next, end)) = bounds else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a range of {len} bytes at {position} ends past the largest file offset"),
            ));
        };
        Ok(FileRange { file, next, end })
    }

    /// Whether every byte of the range has been sent.
    fn is_done(&self) -> bool {
        self.next >= self.end
    }

    /// One `sendfile(2)` call from the current position to `socket`; returns the bytes the kernel took. A file
    /// that ends before the range does is an [`io::ErrorKind::UnexpectedEof`] error.
    fn send_once(&mut self, socket: BorrowedFd<'_>) -> io::Result<usize> {
        let count = (self.end - self.next).min(MAX_BYTES_PER_CALL) as usize;
        match nix::sys::sendfile::sendfile64(socket, self.file.as_fd(), Some(&mut self.next), count)? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ended at byte {} before the range's end at {}", self.next, self.end),
            )),
            sent => Ok(sent),
        }
    }
}

/// Sends the `len` bytes of `file` at `position` to the non-blocking `socket` with `sendfile(2)`, waiting
/// for writability when the socket is full and resuming partial sends. Returns `len`.
///
/// Fails with [`io::ErrorKind::UnexpectedEof`] if the file ends before the range does, with
/// [`io::ErrorKind::InvalidInput`] if the range ends past the largest file offset, and with the socket's
/// error otherwise; bytes sent before an error stay sent.
pub async fn send_file_range(socket: &TcpStream, file: &File, position: u64, len: u64) -> io::Result<u64> {
    let mut range = FileRange::new(file, position, len)?;
    while !range.is_done() {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || range.send_once(socket.as_fd())) {
            Ok(_) => {}
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// As [`send_file_range`], on a `std` socket in blocking mode (each call waits for room in the socket
/// buffer): for benchmarks and their baselines, outside any runtime. Returns `len`.
pub fn send_file_range_blocking(socket: &std::net::TcpStream, file: &File, position: u64, len: u64) -> io::Result<u64> {
    let mut range = FileRange::new(file, position, len)?;
    while !range.is_done() {
        match range.send_once(socket.as_fd()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{file_of, loopback, pattern};

    /// Far more than a loopback socket buffer holds, so sends are partial and must resume.
    const LARGE: usize = 8 << 20;

    #[tokio::test(flavor = "current_thread")]
    async fn a_large_range_arrives_whole_despite_partial_sends() {
        let data = pattern(LARGE + 100);
        let (_dir, file) = file_of(&data);
        let (socket, received) = loopback().await;
        let sent = send_file_range(&socket, &file, 100, LARGE as u64).await.unwrap();
        assert_eq!(sent, LARGE as u64);
        drop(socket);
        let got = received.await.unwrap();
        assert_eq!(got.len(), LARGE);
        assert!(got == data[100..], "the bytes differ from the file's range");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_blocking_variant_sends_the_same_bytes() {
        let data = pattern(LARGE);
        let (_dir, file) = file_of(&data);
        let (socket, received) = loopback().await;
        let socket = socket.into_std().unwrap();
        socket.set_nonblocking(false).unwrap();
        // The sending thread closes the socket when done; meanwhile this runtime thread runs the reader.
        let sender = std::thread::spawn(move || send_file_range_blocking(&socket, &file, 7, LARGE as u64 - 7));
        let got = received.await.unwrap();
        assert_eq!(sender.join().unwrap().unwrap(), LARGE as u64 - 7);
        assert!(got == data[7..], "the bytes differ from the file's range");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_empty_range_sends_nothing() {
        let (_dir, file) = file_of(b"abc");
        let (socket, received) = loopback().await;
        assert_eq!(send_file_range(&socket, &file, 3, 0).await.unwrap(), 0);
        drop(socket);
        assert!(received.await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_range_past_the_end_of_the_file_fails_after_sending_what_exists() {
        let (_dir, file) = file_of(b"0123456789");
        let (socket, received) = loopback().await;
        let err = send_file_range(&socket, &file, 4, 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        drop(socket);
        assert_eq!(received.await.unwrap(), b"456789");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_range_beyond_the_largest_offset_is_refused() {
        let (_dir, file) = file_of(b"x");
        let (socket, _received) = loopback().await;
        for (position, len) in [(u64::MAX, 1), (i64::MAX as u64, 1), (1, u64::MAX)] {
            let err = send_file_range(&socket, &file, position, len).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{position}+{len}: {err}");
        }
    }
}
