//! Zero-copy transfer of a segment file range to a TCP socket with `sendfile(2)`.

use std::io;
use std::os::fd::AsFd;

use janus_api::ReadSlice;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Sends `len` bytes of `file` starting at `position` to `socket` with `sendfile(2)`, looping over partial
/// sends and waiting for writability when the non-blocking socket is full. Returns the bytes sent.
pub async fn sendfile_range(socket: &TcpStream, file: &std::fs::File, position: u64, len: u64) -> io::Result<u64> {
    let mut offset = position as i64;
    let end = position + len;
    while (offset as u64) < end {
        let remaining = (end - offset as u64).min(1 << 30) as usize;
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(socket.as_fd(), file.as_fd(), Some(&mut offset), remaining)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended at {offset} before {end} bytes of the range were sent"),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Sends a [`ReadSlice::File`] (or nothing for [`ReadSlice::Empty`]) to `socket`; mapped slices belong to the
/// commitlog engine's writer and are refused here.
pub async fn send_slice(socket: &TcpStream, slice: &ReadSlice) -> io::Result<u64> {
    match slice {
        ReadSlice::Empty { .. } => Ok(0),
        ReadSlice::File { file, position, len, .. } => sendfile_range(socket, file, *position, *len as u64).await,
        ReadSlice::Mapped { .. } => {
            Err(io::Error::new(io::ErrorKind::Unsupported, "mapped slices are written with the commitlog writer"))
        }
    }
}
