//! A response frame in parts: bytes in memory (framing, batches re-encoded by an engine) and ranges of
//! files (stored batches), written to the socket as one frame: the 4-byte size, then each part, memory with
//! `writev(2)` and file ranges with `sendfile(2)`, so stored batches never pass through the broker's memory.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use janus_core::metrics::{self, SendPath};
use janus_core::transfer::{send_file_range, write_regions};
use tokio::net::TcpStream;

/// The face's name in the `janus_response_bytes_total` metric.
const FACE: &str = "kafka";

/// One part of a response frame.
#[derive(Clone, Debug)]
pub enum Part {
    /// Bytes in memory.
    Memory(Bytes),
    /// `len` bytes at `position` of `file`, sent with `sendfile(2)`.
    File {
        /// The file (holding it keeps the bytes even if the file is unlinked meanwhile).
        file: Arc<File>,
        /// Byte position of the range.
        position: u64,
        /// Length of the range.
        len: u32,
    },
}

impl Part {
    /// The part's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Part::Memory(bytes) => bytes.len(),
            Part::File { len, .. } => *len as usize,
        }
    }

    /// Whether the part holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response frame (without its size) as a list of parts; empty parts are left out.
#[derive(Clone, Debug, Default)]
pub struct Parts {
    parts: Vec<Part>,
    len: usize,
    in_memory: usize,
}

impl Parts {
    /// No parts yet.
    pub fn new() -> Self {
        Parts::default()
    }

    /// Appends `part` (nothing when it is empty).
    pub fn push(&mut self, part: Part) {
        if part.is_empty() {
            return;
        }
        self.len += part.len();
        if let Part::Memory(_) = part {
            self.in_memory += part.len();
        }
        self.parts.push(part);
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes of the frame held in memory (what counts against the memory budgets while it is sent).
    pub fn in_memory_len(&self) -> usize {
        self.in_memory
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

/// Writes `parts` to `stream` as one frame: the 4-byte big-endian size, then the parts in order, each run
/// of memory parts with one `writev(2)` (resumed when partial) and each file range with `sendfile(2)`.
///
/// A file that ends before its range fails with [`io::ErrorKind::UnexpectedEof`] after its bytes up to
/// there are sent: the frame is then short of its announced size, so the caller must close the connection.
pub async fn write_frame(stream: &TcpStream, parts: &Parts) -> io::Result<()> {
    let size = i32::try_from(parts.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a response frame larger than 2 GiB"))?;
    let mut memory = vec![Bytes::copy_from_slice(&size.to_be_bytes())];
    for part in &parts.parts {
        match part {
            Part::Memory(bytes) => memory.push(bytes.clone()),
            Part::File { file, position, len } => {
                flush(stream, &mut memory).await?;
                let sent = send_file_range(stream, file, *position, u64::from(*len)).await?;
                metrics::record_sent(FACE, SendPath::Sendfile, sent);
            }
        }
    }
    flush(stream, &mut memory).await
}

/// Writes the memory parts gathered so far in one `writev(2)` and empties the list.
async fn flush(stream: &TcpStream, memory: &mut Vec<Bytes>) -> io::Result<()> {
    if memory.is_empty() {
        return Ok(());
    }
    let written = write_regions(stream, memory).await?;
    metrics::record_sent(FACE, SendPath::Write, written);
    memory.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    fn file_of(data: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        Arc::new(f)
    }

    /// Writes `parts` over a loopback connection; returns the write's outcome and every byte that arrived.
    async fn ship(parts: &Parts) -> (io::Result<()>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut receiver, _) = listener.accept().await.unwrap();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).await.unwrap();
            got
        });
        let outcome = write_frame(&sender, parts).await;
        drop(sender);
        (outcome, reader.await.unwrap())
    }

    #[test]
    fn empty_parts_are_left_out_and_only_memory_counts_as_in_memory() {
        let mut parts = Parts::new();
        parts.push(Part::Memory(Bytes::from_static(b"abc")));
        parts.push(Part::Memory(Bytes::new()));
        parts.push(Part::File { file: file_of(b"0123456789"), position: 2, len: 5 });
        parts.push(Part::File { file: file_of(b""), position: 0, len: 0 });
        assert_eq!((parts.parts().len(), parts.len(), parts.in_memory_len()), (2, 8, 3));
        assert!(!parts.is_empty() && Parts::new().is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_frame_arrives_as_its_size_then_its_parts_in_order() {
        // Larger than a loopback socket buffer, so both kinds of sends are partial and resume.
        let big: Vec<u8> = (0..(6 << 20)).map(|i: u32| (i % 251) as u8).collect();
        let file = file_of(&big);
        let mut parts = Parts::new();
        parts.push(Part::Memory(Bytes::from_static(b"head")));
        parts.push(Part::File { file: Arc::clone(&file), position: 10, len: 3 << 20 });
        parts.push(Part::Memory(Bytes::from_static(b"mid")));
        parts.push(Part::Memory(Bytes::from(big[..(2 << 20)].to_vec())));
        parts.push(Part::File { file, position: 0, len: 7 });
        parts.push(Part::Memory(Bytes::from_static(b"end")));
        let (outcome, got) = ship(&parts).await;
        outcome.unwrap();
        let mut expected = (parts.len() as i32).to_be_bytes().to_vec();
        expected.extend_from_slice(b"head");
        expected.extend_from_slice(&big[10..10 + (3 << 20)]);
        expected.extend_from_slice(b"mid");
        expected.extend_from_slice(&big[..(2 << 20)]);
        expected.extend_from_slice(&big[..7]);
        expected.extend_from_slice(b"end");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the frame differs from its parts");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_file_shorter_than_its_range_fails_the_write() {
        let mut parts = Parts::new();
        parts.push(Part::Memory(Bytes::from_static(b"head")));
        parts.push(Part::File { file: file_of(b"0123456789"), position: 4, len: 20 });
        parts.push(Part::Memory(Bytes::from_static(b"never")));
        let (outcome, got) = ship(&parts).await;
        assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        // What was sent is short of the announced size: the caller closes the connection.
        assert_eq!(&got[..4], &29i32.to_be_bytes());
        assert_eq!(&got[4..], b"head456789");
    }
}
