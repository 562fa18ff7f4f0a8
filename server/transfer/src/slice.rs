//! Shipping any [`ReadSlice`] the way its kind allows.

use std::io;

use janus_api::ReadSlice;
use tokio::net::TcpStream;

use crate::file_range::send_file_range;
use crate::regions::write_regions;

/// Sends the bytes of `slice` to the non-blocking `stream`: a [`ReadSlice::File`] with `sendfile(2)`
/// ([`send_file_range`]), a [`ReadSlice::Mapped`] with `writev(2)` ([`write_regions`]), nothing for a
/// [`ReadSlice::Empty`]. Returns the bytes sent ([`ReadSlice::byte_len`]).
pub async fn send_slice(stream: &TcpStream, slice: &ReadSlice) -> io::Result<u64> {
    match slice {
        ReadSlice::Empty { .. } => Ok(0),
        ReadSlice::File { file, position, len, .. } => send_file_range(stream, file, *position, u64::from(*len)).await,
        ReadSlice::Mapped { regions, .. } => write_regions(stream, regions).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::test_support::{file_of, loopback, pattern};

    /// Sends `slice` over a fresh loopback connection and returns what arrived.
    async fn ship(slice: &ReadSlice) -> Vec<u8> {
        let (socket, received) = loopback().await;
        let sent = send_slice(&socket, slice).await.unwrap();
        assert_eq!(sent, slice.byte_len() as u64);
        drop(socket);
        received.await.unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_kind_of_slice_arrives_as_its_bytes() {
        let data = pattern(3 << 20);
        let (_dir, file) = file_of(&data);
        let file = ReadSlice::File { file: Arc::new(file), position: 10, len: 2 << 20, next_offset: 5 };
        assert!(ship(&file).await == data[10..10 + (2 << 20)]);

        let regions = vec![Bytes::copy_from_slice(&data[..1000]), Bytes::new(), Bytes::copy_from_slice(&data[5..9])];
        let mapped = ReadSlice::Mapped { regions, next_offset: 2 };
        assert_eq!(ship(&mapped).await, mapped.to_bytes().unwrap());

        assert!(ship(&ReadSlice::Empty { next_offset: 0 }).await.is_empty());
    }
}
