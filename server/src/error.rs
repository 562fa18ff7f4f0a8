//! Errors of starting, running and stopping the broker.

use std::path::PathBuf;

use janus_api::StorageError;
use janus_core::BrokerError;
use janus_core::meta::MetaError;

use crate::config::ConfigError;

/// Everything that can stop the broker from starting or shutting down cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address could not be bound.
    #[error("could not listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener: a face (`gRPC`) or `metrics`.
        what: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the data dir could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A storage engine failed.
    #[error("storage engine: {0}")]
    Storage(#[from] StorageError),
    /// The core refused or failed (reconciling topics at startup, closing at shutdown).
    #[error("{0}")]
    Core(#[from] BrokerError),
    /// A face's server failed.
    #[error("listener: {0}")]
    Transport(String),
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}
