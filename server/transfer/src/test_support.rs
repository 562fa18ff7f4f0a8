//! Fixtures of this crate's tests: a loopback connection whose far end collects what arrives, and files.

use std::fs::File;
use std::io::Write;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A connected loopback pair: the sending end, and a task that reads the other end until the sender is
/// dropped and returns everything it read.
pub(crate) async fn loopback() -> (TcpStream, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sender = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    let (mut receiver, _) = listener.accept().await.unwrap();
    let received = tokio::spawn(async move {
        let mut got = Vec::new();
        receiver.read_to_end(&mut got).await.unwrap();
        got
    });
    (sender, received)
}

/// `len` bytes of a pattern that repeats every 251 bytes (so a misplaced chunk shows).
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A file holding `data`, opened for reading, in a temporary directory the caller keeps alive.
pub(crate) fn file_of(data: &[u8]) -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    File::create(&path).unwrap().write_all(data).unwrap();
    (dir, File::open(&path).unwrap())
}
