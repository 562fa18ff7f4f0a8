//! `writev(2)` of memory regions (slices of a file mapping) to a TCP socket.

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::is_retryable;

/// Most buffers handed to one `writev(2)` (Linux's `IOV_MAX`).
const MAX_IOV: usize = 1024;

/// How far the writing of a list of regions has got: the next unwritten byte is `offset` into
/// `regions[region]`, and never at the end of a region unless all are written.
#[derive(Debug)]
struct RegionCursor<'a> {
    regions: &'a [Bytes],
    region: usize,
    offset: usize,
}

impl<'a> RegionCursor<'a> {
    /// A cursor at the first byte of `regions`.
    fn new(regions: &'a [Bytes]) -> Self {
        let mut cursor = RegionCursor { regions, region: 0, offset: 0 };
        cursor.skip_written_regions();
        cursor
    }

    /// Whether every byte has been written.
    fn is_done(&self) -> bool {
        self.region >= self.regions.len()
    }

    /// The unwritten bytes, as at most [`MAX_IOV`] buffers for one `writev(2)`.
    fn io_slices(&self) -> Vec<IoSlice<'a>> {
        let rest = &self.regions[self.region.min(self.regions.len())..];
        let mut slices = Vec::with_capacity(rest.len().min(MAX_IOV));
        let mut regions = rest.iter();
        if let Some(first) = regions.next() {
            slices.push(IoSlice::new(&first[self.offset..]));
        }
        slices.extend(regions.take(MAX_IOV - 1).map(|r| IoSlice::new(r)));
        slices
    }

    /// Moves past `written` bytes.
    fn advance(&mut self, mut written: usize) {
        while written > 0 && !self.is_done() {
            let step = written.min(self.regions[self.region].len() - self.offset);
            self.offset += step;
            written -= step;
            self.skip_written_regions();
        }
    }

    /// Moves from the end of a region (or an empty one) to the start of the next region with bytes left.
    fn skip_written_regions(&mut self) {
        while !self.is_done() && self.offset >= self.regions[self.region].len() {
            self.region += 1;
            self.offset = 0;
        }
    }
}

/// Writes every byte of `regions`, in order, to the non-blocking `stream` with `writev(2)` straight from
/// their memory, waiting for writability when the socket is full and resuming partial writes mid-region.
/// Returns the bytes written (the regions' total length).
pub async fn write_regions(stream: &TcpStream, regions: &[Bytes]) -> io::Result<u64> {
    let mut cursor = RegionCursor::new(regions);
    let mut written = 0u64;
    while !cursor.is_done() {
        stream.writable().await?;
        match stream.try_write_vectored(&cursor.io_slices()) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes")),
            Ok(n) => {
                cursor.advance(n);
                written += n as u64;
            }
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::loopback;

    #[test]
    fn the_cursor_skips_empty_regions_and_resumes_mid_region() {
        let regions = [Bytes::new(), Bytes::from_static(b"abc"), Bytes::new(), Bytes::from_static(b"de")];
        let mut cursor = RegionCursor::new(&regions);
        let lens = |c: &RegionCursor<'_>| c.io_slices().iter().map(|s| s.len()).collect::<Vec<_>>();
        assert_eq!(lens(&cursor), [3, 0, 2]);
        cursor.advance(2);
        assert_eq!(&*cursor.io_slices()[0], b"c");
        cursor.advance(1);
        assert_eq!(&*cursor.io_slices()[0], b"de", "the empty region between is passed over");
        cursor.advance(2);
        assert!(cursor.is_done());
        assert!(cursor.io_slices().is_empty());
        assert!(RegionCursor::new(&[Bytes::new(), Bytes::new()]).is_done());
    }

    #[test]
    fn one_write_takes_at_most_iov_max_buffers() {
        let regions = vec![Bytes::from_static(b"x"); MAX_IOV + 5];
        let mut cursor = RegionCursor::new(&regions);
        assert_eq!(cursor.io_slices().len(), MAX_IOV);
        cursor.advance(MAX_IOV);
        assert_eq!(cursor.io_slices().len(), 5);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn regions_arrive_whole_over_loopback_despite_partial_writes() {
        let (socket, received) = loopback().await;
        // Far more than a socket buffer, in many regions: the writes are partial and must resume mid-region.
        let regions: Vec<Bytes> =
            (0..3000u32).map(|i| Bytes::from(vec![(i % 251) as u8; 1000 + (i as usize % 7) * 100])).collect();
        let expected: Vec<u8> = regions.concat();
        let n = write_regions(&socket, &regions).await.unwrap();
        assert_eq!(n, expected.len() as u64);
        drop(socket);
        let got = received.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes differ from the regions'");
    }
}
