//! The janusd broker: the runtime (configuration, [`Broker::start`] over a list of listeners, background
//! tasks, the metrics endpoint) and the faces that serve the protocol-neutral core (`janus_core`) to
//! clients: today [`faces::grpc`].
//!
//! ```no_run
//! # async fn run() -> Result<(), janus_server::ServerError> {
//! use janus_server::{Broker, BrokerConfig, ConfigOverrides};
//! let config = BrokerConfig::load(None, &ConfigOverrides::default())?;
//! let broker = Broker::start(config).await?;
//! println!("gRPC on {}", broker.grpc_addr());
//! broker.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod error;
pub mod faces;
pub mod runtime;

pub use config::{BrokerConfig, ConfigError, ConfigOverrides, GroupsSection};
pub use error::ServerError;
pub use janus_core::limits::InflightStats;
/// The metadata store, re-exported for tools and tests that inspect a stopped broker's data directory.
pub use janus_core::meta;
pub use runtime::broker::Broker;
