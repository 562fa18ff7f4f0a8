//! The protocol-neutral core of janusd: everything a face (gRPC today, Kafka next) needs, decided once.
//!
//! | module | holds |
//! |---|---|
//! | [`topics`] | the [`EngineSet`](topics::EngineSet) (the one place that names concrete engines), the crash-safe topic registry, per-topic state |
//! | [`producers`] | the idempotent producer's per-partition sequence state and checks |
//! | [`produce`] | routing, partitioning, validation, batching, appends, durability waits |
//! | [`fetch`] | reads with tag filters, long-poll waits, positions, subscriptions |
//! | [`groups`] | consumer groups: the coordinator (membership, generations, assignment) and fenced offsets |
//! | [`messaging`] | RocketMQ delivery: delayed and timed messages, receive/ack, retry and dead letters, lookup by id or key |
//! | [`admin`] | topic administration |
//! | [`maintenance`] | retention, compaction and lag passes the runtime schedules |
//! | [`meta`] | the RocksDB metadata store |
//! | [`limits`] | in-flight byte budgets and the bounded blocking pool |
//! | [`disk`] | the free-space guard over the volumes the broker writes |
//! | [`metrics`] | what the core records |
//! | [`error`] | [`BrokerError`] with stable numeric codes that each face maps to its own |
//! | [`transfer`] | shipping a read's bytes to a socket (`sendfile`, `writev`): the `janus-transfer` crate |
//!
//! Faces hold a [`Core`] (cheap to clone), decode a request into the core's types, call one method and
//! encode the answer. The core never sees a protocol type; engines never see the core.

pub mod admin;
pub mod disk;
pub mod error;
pub mod fetch;
pub mod groups;
pub mod limits;
pub mod maintenance;
pub mod messaging;
pub mod meta;
pub mod metrics;
pub mod produce;
pub mod producers;
pub mod topics;

/// Ship a [`janus_api::ReadSlice`] to a socket: `sendfile(2)` for file ranges, `writev(2)` for mapped regions.
pub use janus_transfer as transfer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use error::{BrokerError, ErrorCode};
pub use fetch::{
    FetchLimits, FetchRequest, FetchResult, Fetched, Position, RecordFormat, SubscribeRequest, Subscription,
};
pub use produce::{PartitionAppend, PartitionBatches, ProduceBatchesRequest, ProduceOutcome, ProduceRequest};
use tokio::sync::watch;

use crate::disk::DiskGuard;
use crate::groups::{Coordinator, GroupConfig};
use crate::limits::{BlockingPool, InflightLimiter, InflightPermit};
use crate::messaging::{Messaging, MessagingConfig};
use crate::topics::{Registry, Topic};

/// The handle every face holds: topics and engines, budgets, the blocking pool, the shutdown signal.
#[derive(Clone)]
pub struct Core {
    registry: Arc<Registry>,
    limiter: Arc<InflightLimiter>,
    pool: BlockingPool,
    fetch_limits: FetchLimits,
    disk: Arc<DiskGuard>,
    shutdown: watch::Receiver<bool>,
    subscribe_buffered: Arc<AtomicU64>,
    coordinator: Arc<Coordinator>,
    messaging: Arc<Messaging>,
    producer_ids: Arc<producers::ProducerIds>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("fetch_limits", &self.fetch_limits).finish_non_exhaustive()
    }
}

impl Core {
    /// A core over an opened registry whose writes `disk` guards; `shutdown` turns true when the broker
    /// shuts down (long-polls answer, subscriptions end). Opens the group coordinator over the stored
    /// groups (the caller runs [`Coordinator::run_timers`]) and the messaging layer over the stored timers
    /// (the caller runs [`Core::run_timer_delivery`] and [`Core::run_lease_tasks`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<Registry>,
        limiter: Arc<InflightLimiter>,
        pool: BlockingPool,
        fetch_limits: FetchLimits,
        disk: Arc<DiskGuard>,
        groups: GroupConfig,
        messaging: MessagingConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, BrokerError> {
        let coordinator = Arc::new(Coordinator::open(Arc::clone(&registry), groups)?);
        let pending_timers = registry.meta().count_timers()?;
        let messaging = Arc::new(Messaging::new(messaging, pending_timers));
        // Stored transactions are back before any request is served: pending ones in the table, ones a crash
        // interrupted while completing queued for the check task to finish.
        messaging.transactions.load(registry.meta().open_transactions()?);
        Ok(Core {
            registry,
            limiter,
            pool,
            fetch_limits,
            disk,
            shutdown,
            subscribe_buffered: Arc::new(AtomicU64::new(0)),
            coordinator,
            messaging,
            producer_ids: Arc::default(),
        })
    }

    /// The messaging layer (timers, leases).
    pub fn messaging(&self) -> &Arc<Messaging> {
        &self.messaging
    }

    /// The group coordinator.
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.coordinator
    }

    /// The free-space guard (for the runtime's metrics).
    pub fn disk(&self) -> &Arc<DiskGuard> {
        &self.disk
    }

    /// The topic registry (for the runtime's background tasks).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The bounded pool engine calls run on.
    pub fn pool(&self) -> &BlockingPool {
        &self.pool
    }

    /// The in-flight byte budgets.
    pub fn limiter(&self) -> &Arc<InflightLimiter> {
        &self.limiter
    }

    /// Bytes a face has read ahead for subscriptions and not yet sent (faces add and subtract).
    pub fn subscribe_buffered(&self) -> &Arc<AtomicU64> {
        &self.subscribe_buffered
    }

    /// A receiver of the shutdown signal.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Whether the broker is shutting down.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A live topic (`UnknownTopic`, or `InvalidArgument` for an impossible name).
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.registry.topic(name)
    }

    /// Admits a request that will hold `bytes` of memory once decoded (faces measure it before decoding):
    /// waits until they fit in the budgets of `connection` and of the broker, and refuses, with
    /// `LimitExceeded`, a request larger than either budget on its own. Hold the permit until the request
    /// is answered.
    pub async fn admit(&self, connection: Option<SocketAddr>, bytes: usize) -> Result<InflightPermit, BrokerError> {
        Ok(self.limiter.admit(connection, bytes).await?)
    }

    /// Runs a blocking registry or engine call on the pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, BrokerError>
    where
        F: FnOnce(&Registry) -> Result<T, BrokerError> + Send + 'static,
        T: Send + 'static,
    {
        let registry = Arc::clone(&self.registry);
        self.pool.run(move || f(&registry)).await?
    }
}
