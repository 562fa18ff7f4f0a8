//! Connections that never finish the HTTP/2 handshake are closed: each accepted TCP stream gets a deadline
//! by which the client must have sent the connection preface and the header of its first frame (the
//! SETTINGS every client sends at once). Without it, a client that opens a connection and says nothing
//! holds a descriptor and a task for ever (issue 11: 300 half-open connections were held indefinitely).
//! Once the handshake is through, HTTP/2 keep-alive pings (configured on the server) find dead peers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The client's connection preface (24 bytes) and the 9-byte header of its first frame.
pub const HANDSHAKE_BYTES: usize = 24 + 9;

/// A TCP stream that fails its reads with `TimedOut` when the client has not sent [`HANDSHAKE_BYTES`]
/// within the deadline; hyper then closes the connection.
#[derive(Debug)]
pub struct HandshakeDeadline {
    inner: TcpStream,
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    received: usize,
}

impl HandshakeDeadline {
    /// Wraps a freshly accepted stream whose handshake must arrive within `timeout` (call within the
    /// runtime).
    pub fn new(inner: TcpStream, timeout: Duration) -> Self {
        HandshakeDeadline { inner, deadline: Some(Box::pin(tokio::time::sleep(timeout))), timeout, received: 0 }
    }
}

impl AsyncRead for HandshakeDeadline {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.received += buf.filled().len() - before;
                if this.received >= HANDSHAKE_BYTES {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this.deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no HTTP/2 handshake within {:?} (limits.handshake_timeout_ms)", this.timeout),
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for HandshakeDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for HandshakeDeadline {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}
