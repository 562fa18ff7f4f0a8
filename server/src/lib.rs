//! The janusd broker: configuration, the RocksDB metadata store, the topic registry over both storage
//! engines, the gRPC services, memory limits and metrics.
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

pub mod broker;
pub mod config;
pub mod error;
pub mod limits;
pub mod meta;
pub mod metrics;
pub mod partitioner;
pub mod registry;
pub mod services;
pub mod status;

pub use broker::Broker;
pub use config::{BrokerConfig, ConfigError, ConfigOverrides};
pub use error::ServerError;
pub use limits::InflightStats;
