//! One Kafka connection: a 4-byte big-endian size, then the request; answers go back in request order
//! (one request at a time, as a Kafka broker processes a connection's requests). A frame that is negative,
//! larger than the face's limit or that cannot be decoded closes this connection alone, with a log line.
//! A response in parts (Fetch) goes out with `writev(2)` for its bytes and `sendfile(2)` for its file
//! ranges; if a file ends before its range, the connection is closed, as its frame size is already sent.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use janus_core::Core;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::KafkaContext;
use super::apis::{self, Handled};
use super::parts;

/// Serves one connection until the client closes it, a frame is refused, or the broker shuts down.
pub async fn serve(core: Core, ctx: Arc<KafkaContext>, mut stream: TcpStream, peer: SocketAddr) {
    let mut shutdown = core.shutdown_signal();
    loop {
        let mut size = [0u8; 4];
        tokio::select! {
            read = stream.read_exact(&mut size) => {
                if read.is_err() {
                    return; // closed by the client
                }
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let size = i32::from_be_bytes(size);
        let Some(len) = usize::try_from(size).ok().filter(|n| *n <= ctx.max_frame_bytes && *n >= 8) else {
            tracing::warn!(%peer, size, max = ctx.max_frame_bytes, "Kafka: refused a frame size; closing the connection");
            return;
        };
        // Counted against the connection's and the broker's memory budgets while it is handled.
        let admission = match core.admit(Some(peer), len).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "Kafka: request refused by the memory limits; closing the connection");
                return;
            }
        };
        let mut frame = BytesMut::zeroed(len);
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let answer = apis::handle(&core, &ctx, peer, frame.freeze()).await;
        drop(admission);
        match answer {
            Handled::Answer(bytes) => {
                if write_frame(&mut stream, &bytes).await.is_err() {
                    return;
                }
            }
            Handled::Parts(parts) => {
                // Only the bytes in memory count against the budgets: file ranges go from the page cache.
                let Ok(_held) = core.limiter().acquire(Some(peer), parts.in_memory_len()).await else { return };
                if let Err(e) = parts::write_frame(&stream, &parts).await {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        // The frame's size is sent: a short frame would desynchronise the client.
                        tracing::warn!(%peer, error = %e, "Kafka: a stored range ended early; closing the connection");
                    }
                    return;
                }
            }
            Handled::NoAnswer => {}
            Handled::Close(why) => {
                tracing::warn!(%peer, "Kafka: {why}; closing the connection");
                return;
            }
        }
    }
}

async fn write_frame(stream: &mut TcpStream, body: &Bytes) -> std::io::Result<()> {
    let len = i32::try_from(body.len()).map_err(|_| std::io::Error::other("response larger than 2 GiB"))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(body).await
}
