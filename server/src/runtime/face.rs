//! What the runtime needs of a face: a name and a way to serve the core on a bound listener until the
//! broker's shutdown signal.

use std::future::Future;
use std::pin::Pin;

use janus_core::Core;
use tokio::net::TcpListener;

/// A protocol served on one listener (gRPC today; Kafka next).
pub trait Face: Send + 'static {
    /// The face's name in logs and errors (`gRPC`).
    fn name(&self) -> &'static str;

    /// Serves `core` on `listener` until the core's shutdown signal turns true and the requests in
    /// progress have finished; the error says why serving stopped early.
    fn serve(
        self: Box<Self>,
        core: Core,
        listener: TcpListener,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// A face and the address it listens on.
pub struct Listener {
    /// The face.
    pub face: Box<dyn Face>,
    /// Where it listens (port 0 picks a free port).
    pub addr: std::net::SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("face", &self.face.name()).field("addr", &self.addr).finish()
    }
}
