//! Shipping mapped regions to a socket: `writev` straight from the CommitLog mapping, no copy in user space.

use std::io::{self, IoSlice};

use bytes::Bytes;
use janus_api::ReadSlice;
use tokio::net::TcpStream;

/// Most buffers handed to one `writev` (Linux's `IOV_MAX`).
const MAX_IOV: usize = 1024;

/// Writes every byte of `regions`, in order, to `stream` with `writev` from the mapped memory: waits for the
/// (non-blocking) socket to become writable, and loops on partial writes. Returns the bytes written.
pub async fn write_regions(stream: &TcpStream, regions: &[Bytes]) -> io::Result<usize> {
    let (mut region, mut offset, mut written) = (0usize, 0usize, 0usize);
    while region < regions.len() {
        if offset >= regions[region].len() {
            region += 1;
            offset = 0;
            continue;
        }
        stream.writable().await?;
        let mut slices = Vec::with_capacity((regions.len() - region).min(MAX_IOV));
        slices.push(IoSlice::new(&regions[region][offset..]));
        slices.extend(regions[region + 1..].iter().take(MAX_IOV - 1).map(|r| IoSlice::new(r)));
        match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes")),
            Ok(mut n) => {
                written += n;
                while n > 0 {
                    let left = regions[region].len() - offset;
                    if n >= left {
                        n -= left;
                        region += 1;
                        offset = 0;
                    } else {
                        offset += n;
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Writes a read's bytes to `stream`: the regions of a [`ReadSlice::Mapped`] (see [`write_regions`]), nothing
/// for [`ReadSlice::Empty`]. A [`ReadSlice::File`] (segment engine) is refused: send it with `sendfile`.
pub async fn write_slice(stream: &TcpStream, slice: &ReadSlice) -> io::Result<usize> {
    match slice {
        ReadSlice::Empty { .. } => Ok(0),
        ReadSlice::Mapped { regions, .. } => write_regions(stream, regions).await,
        ReadSlice::File { .. } => {
            Err(io::Error::new(io::ErrorKind::Unsupported, "a file slice is shipped with sendfile, not from memory"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test(flavor = "current_thread")]
    async fn regions_arrive_whole_over_loopback_despite_partial_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (server, _) = listener.accept().await.unwrap();
        // Far more than a socket buffer, in many regions: the writes are partial and must resume mid-region.
        let regions: Vec<Bytes> =
            (0..3000u32).map(|i| Bytes::from(vec![(i % 251) as u8; 1000 + (i as usize % 7) * 100])).collect();
        let expected: Vec<u8> = regions.concat();
        let n = write_regions(&server, &regions).await.unwrap();
        assert_eq!(n, expected.len());
        drop(server);
        let got = client.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected);
    }
}
