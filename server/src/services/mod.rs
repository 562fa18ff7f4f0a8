//! The gRPC services (`janus.v1`): [`admin`], [`producer`], [`consumer`], and what they share.

pub mod admin;
pub mod consumer;
pub mod producer;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use janus_api::EngineKind;
use janus_proto::v1;
use tokio::sync::watch;
use tonic::Status;

use crate::config::LimitsSection;
use crate::limits::{BlockingPool, InflightLimiter};
use crate::registry::{Registry, RegistryError, Topic};
use crate::status;

/// What every service needs: the registry, the memory limits, the blocking pool, the shutdown signal.
#[derive(Clone)]
pub struct Context {
    /// Topics and engines.
    pub registry: Arc<Registry>,
    /// In-flight byte budgets.
    pub limiter: Arc<InflightLimiter>,
    /// The bounded pool engine calls run on.
    pub pool: BlockingPool,
    /// Memory and concurrency limits.
    pub limits: LimitsSection,
    /// Turns true when the broker shuts down (long-polls answer, subscriptions end).
    pub shutdown: watch::Receiver<bool>,
    /// Bytes read for subscriptions and not yet taken by gRPC.
    pub subscribe_buffered: Arc<AtomicU64>,
}

impl Context {
    /// Runs a blocking registry or engine call on the pool, mapping its error to a status.
    pub async fn blocking<T, E, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce(&Registry) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<RegistryError> + Send + 'static,
    {
        let registry = Arc::clone(&self.registry);
        self.pool
            .run(move || f(&registry))
            .await
            .map_err(status::from_blocking)?
            .map_err(|e| status::from_registry(e.into()))
    }

    /// A live topic (`NOT_FOUND`, or `INVALID_ARGUMENT` for an impossible name).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, Status> {
        self.registry.topic(name).map_err(status::from_registry)
    }

    /// Whether the broker is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The API's engine enum for an engine kind.
pub fn engine_to_proto(kind: EngineKind) -> v1::Engine {
    match kind {
        EngineKind::Segment => v1::Engine::Segment,
        EngineKind::Commitlog => v1::Engine::Commitlog,
    }
}

/// The engine kind a request names (`None` for unspecified: the broker default).
pub fn engine_from_proto(value: i32) -> Result<Option<EngineKind>, Status> {
    match v1::Engine::try_from(value) {
        Ok(v1::Engine::Unspecified) => Ok(None),
        Ok(v1::Engine::Segment) => Ok(Some(EngineKind::Segment)),
        Ok(v1::Engine::Commitlog) => Ok(Some(EngineKind::Commitlog)),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown engine {value}: use ENGINE_SEGMENT (1) or ENGINE_COMMITLOG (2)"
        ))),
    }
}

/// The API's description of a topic: name, engine, partitions and every effective config value.
pub fn topic_info(topic: &Topic) -> v1::TopicInfo {
    v1::TopicInfo {
        name: topic.name.clone(),
        engine: engine_to_proto(topic.engine) as i32,
        partitions: topic.partitions,
        configs: topic.config().to_pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}
