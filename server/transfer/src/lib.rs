//! Shipping what a storage engine read ([`janus_api::ReadSlice`]) to a TCP socket without copying it through
//! user space:
//!
//! - [`send_slice`]: any slice, dispatching on its kind;
//! - [`send_file_range`]: a file range (the segment engine's [`ReadSlice::File`]) with `sendfile(2)`, the
//!   kernel moving page-cache pages to the socket; [`send_file_range_blocking`] does the same on a blocking
//!   `std` socket (benchmarks and their baselines);
//! - [`write_regions`]: memory regions (the commitlog engine's [`ReadSlice::Mapped`], slices of the file
//!   mapping) with `writev(2)`.
//!
//! The async functions take a non-blocking tokio [`tokio::net::TcpStream`], wait for writability whenever the
//! socket buffer is full, and resume partial sends where they stopped; each returns the bytes sent, which is
//! all of them or an error. Engines stay free of sockets: this crate is the server's transfer layer.
//!
//! [`ReadSlice::File`]: janus_api::ReadSlice::File
//! [`ReadSlice::Mapped`]: janus_api::ReadSlice::Mapped

mod file_range;
mod regions;
mod slice;
#[cfg(test)]
mod test_support;

pub use file_range::{send_file_range, send_file_range_blocking};
pub use regions::write_regions;
pub use slice::send_slice;

/// Whether a failed send should simply be tried again: the socket was full (tokio then waits for it to be
/// writable) or a signal interrupted the call.
fn is_retryable(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted)
}
