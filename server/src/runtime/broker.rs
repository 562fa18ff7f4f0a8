//! A running broker: opens the data directory (RocksDB and the engine set), builds the [`Core`], binds and
//! serves every face's listener and the metrics endpoint, runs the background tasks (retention and
//! compaction, disk use and lag metrics), and shuts all of it down gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use janus_core::disk::DiskGuard;
use janus_core::limits::{BlockingPool, InflightLimiter, InflightStats};
use janus_core::meta::MetaStore;
use janus_core::topics::{ENGINE_KINDS, EngineSet, Reconciliation, Registry, engine_dir};
use janus_core::{Core, FetchLimits, maintenance};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::face::Listener;
use super::metrics;
use super::tasks::{Tasks, tick};
use crate::config::BrokerConfig;
use crate::error::ServerError;
use crate::faces::grpc::GrpcFace;
use crate::faces::kafka::KafkaFace;

/// Subdirectory of the data dir holding RocksDB.
pub const META_DIR: &str = "meta";

/// A running broker (see the module docs). Dropping it without [`Broker::shutdown`] stops serving but
/// leaves the engines without their clean-shutdown markers, as a crash would.
pub struct Broker {
    listeners: Vec<(&'static str, SocketAddr)>,
    metrics_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    faces: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    tasks: Tasks,
    core: Core,
    reconciliation: Reconciliation,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("listeners", &self.listeners)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

fn create_dir(path: &Path) -> Result<(), ServerError> {
    std::fs::create_dir_all(path).map_err(|source| ServerError::DataDir { path: path.to_path_buf(), source })
}

/// Opens RocksDB and the engines and reconciles them (blocking).
fn open_storage(config: &BrokerConfig) -> Result<(Registry, Reconciliation), ServerError> {
    let data = &config.data_dir;
    create_dir(data)?;
    let meta_dir = data.join(META_DIR);
    create_dir(&meta_dir)?;
    let meta = Arc::new(MetaStore::open(&meta_dir)?);
    let engines = EngineSet::open(data, &config.engine_options()?)?;
    let default_engine = config.default_engine.parse().map_err(|e| crate::config::ConfigError::Invalid {
        key: "default_engine".into(),
        value: config.default_engine.clone(),
        allowed: e,
    })?;
    match Registry::open(meta, engines.clone(), config.topic_defaults()?, default_engine) {
        Ok(r) => Ok(r),
        Err(e) => {
            // Close what was opened cleanly: nothing was written that recovery would need.
            let _ = engines.shutdown();
            Err(e.into())
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, source })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind { what, addr, source })?;
    Ok((listener, local))
}

impl Broker {
    /// Starts the broker with its configured faces (gRPC on `grpc_addr`).
    pub async fn start(config: BrokerConfig) -> Result<Broker, ServerError> {
        let compression = config.response_compression.then_some(config.response_compression_min_bytes);
        let grpc =
            Listener { face: Box::new(GrpcFace::new(config.limits.clone(), compression)), addr: config.grpc_addr };
        let mut listeners = vec![grpc];
        if config.kafka.enabled {
            let advertised = Some(config.kafka.advertised.clone()).filter(|a| !a.is_empty());
            let face = KafkaFace::new(advertised, config.limits.max_request_bytes, config.kafka.auto_create_topics);
            listeners.push(Listener { face: Box::new(face), addr: config.kafka.listen });
        }
        Broker::start_with(config, listeners).await
    }

    /// Validates `config`, binds every listener and the metrics endpoint, opens RocksDB and the engines,
    /// reconciles them, and starts serving. Returns once the broker accepts requests.
    pub async fn start_with(config: BrokerConfig, listeners: Vec<Listener>) -> Result<Broker, ServerError> {
        config.validate()?;
        let prometheus = metrics::install();
        let mut bound = Vec::with_capacity(listeners.len());
        for l in listeners {
            let (listener, addr) = bind(l.face.name(), l.addr).await?;
            bound.push((l.face, listener, addr));
        }
        let (metrics_listener, metrics_addr) = bind("metrics", config.metrics_addr).await?;

        let storage_config = config.clone();
        let (registry, reconciliation) = tokio::task::spawn_blocking(move || open_storage(&storage_config))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        tracing::info!(
            data_dir = %config.data_dir.display(),
            topics = reconciliation.opened.len(),
            recreated = reconciliation.recreated.len(),
            rolled_back = reconciliation.rolled_back.len(),
            finished_deletes = reconciliation.finished_deletes.len(),
            orphans_removed = reconciliation.orphans_removed.len(),
            "storage open"
        );

        let limits = &config.limits;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let engine_dirs = ENGINE_KINDS.iter().map(|&k| (k, engine_dir(&config.data_dir, k))).collect();
        let disk = DiskGuard::new(engine_dirs, config.data_dir.join(META_DIR), config.storage.min_free_bytes);
        let core = Core::new(
            Arc::new(registry),
            InflightLimiter::new(limits.inflight_bytes, limits.connection_inflight_bytes),
            BlockingPool::new(limits.blocking_threads),
            FetchLimits {
                default_fetch_bytes: limits.default_fetch_bytes,
                max_fetch_bytes: limits.max_fetch_bytes,
                max_fetch_wait_ms: limits.max_fetch_wait_ms,
            },
            Arc::new(disk),
            config.groups.group_config(),
            config.messaging.messaging_config(),
            shutdown_rx.clone(),
        )?;

        let mut addrs = Vec::with_capacity(bound.len());
        let mut faces = Vec::with_capacity(bound.len());
        for (face, listener, addr) in bound {
            let name = face.name();
            addrs.push((name, addr));
            faces.push((name, tokio::spawn(face.serve(core.clone(), listener))));
        }

        let mut tasks = Tasks::default();
        tasks.spawn("metrics endpoint", metrics::serve(metrics_listener, prometheus.clone(), shutdown_rx.clone()));
        tasks.spawn("group timers", Arc::clone(core.coordinator()).run_timers(shutdown_rx.clone()));
        let c = core.clone();
        tasks.spawn("timer delivery", async move { c.run_timer_delivery().await });
        let c = core.clone();
        tasks.spawn("leases", async move { c.run_lease_tasks().await });
        let c = core.clone();
        tasks.spawn("producer snapshots", async move { c.run_producer_snapshots().await });
        let c = core.clone();
        tasks.spawn("transaction checks", async move { c.run_transaction_checks().await });
        tasks.spawn(
            "retention",
            retention_loop(core.clone(), Duration::from_millis(config.retention_check_interval_ms)),
        );
        tasks.spawn(
            "metrics",
            metrics_loop(
                core.clone(),
                prometheus,
                config.data_dir.clone(),
                Duration::from_millis(config.metrics_interval_ms),
            ),
        );

        let listening: Vec<String> = addrs.iter().map(|(n, a)| format!("{}={a}", n.to_lowercase())).collect();
        tracing::info!("janusd listening {} metrics={metrics_addr}", listening.join(" "));
        Ok(Broker {
            listeners: addrs,
            metrics_addr,
            shutdown_tx,
            faces,
            tasks,
            core,
            reconciliation,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        })
    }

    /// The bound address of the face named `name` (`gRPC`), if it runs.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, a)| *a)
    }

    /// The bound gRPC address (the real port when configured with port 0); the unspecified address
    /// `0.0.0.0:0` for a broker started with [`Broker::start_with`] without a gRPC face.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.listener_addr(GrpcFace::NAME).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The bound Kafka address, if the Kafka face runs.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.listener_addr(KafkaFace::NAME)
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The in-flight byte accounting (current, peak, limit, waits).
    pub fn inflight(&self) -> InflightStats {
        self.core.limiter().stats()
    }

    /// Bytes read ahead for subscriptions and not yet taken by a face.
    pub fn subscribe_buffered_bytes(&self) -> u64 {
        self.core.subscribe_buffered().load(Ordering::Acquire)
    }

    /// What startup reconciliation did.
    pub fn reconciliation(&self) -> &Reconciliation {
        &self.reconciliation
    }

    /// Shuts down gracefully, as on SIGTERM: stops accepting connections, lets in-flight requests finish
    /// (ending long-polls and subscriptions at once), waits at most `shutdown_timeout_ms` for them, then
    /// flushes every engine, writes their clean-shutdown markers and closes RocksDB.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        tracing::info!("shutting down");
        let _ = self.shutdown_tx.send(true);
        let mut result = Ok(());
        for (name, mut face) in std::mem::take(&mut self.faces) {
            match tokio::time::timeout(self.shutdown_timeout, &mut face).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(ServerError::Transport(format!("{name}: {e}"))),
                Ok(Err(e)) => result = Err(ServerError::Task(e.to_string())),
                Err(_) => {
                    tracing::warn!(face = name, timeout = ?self.shutdown_timeout,
                        "in-flight requests did not finish; closing them");
                    face.abort();
                    let _ = face.await;
                }
            }
        }
        self.tasks.join(self.shutdown_timeout).await;
        let registry = Arc::clone(self.core.registry());
        tokio::task::spawn_blocking(move || registry.shutdown())
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        tracing::info!("shut down cleanly");
        result
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for (_, face) in &self.faces {
            face.abort();
        }
        self.tasks.abort_all();
    }
}

/// Runs a retention and compaction pass every `interval`.
async fn retention_loop(core: Core, interval: Duration) {
    let mut shutdown = core.shutdown_signal();
    while !tick(&mut shutdown, interval).await {
        let registry = Arc::clone(core.registry());
        if let Err(e) = core.pool().run(move || maintenance::retention_pass(&registry)).await {
            tracing::warn!(error = %e, "retention task failed");
        }
        if let Err(e) = core.expire_offsets().await {
            tracing::warn!(error = %e, "offsets retention pass failed");
        }
    }
}

/// Measures disk use per engine, free space per volume and every group's lag every `interval`; runs the recorder's upkeep.
async fn metrics_loop(
    core: Core,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    data_dir: std::path::PathBuf,
    interval: Duration,
) {
    let mut shutdown = core.shutdown_signal();
    loop {
        let registry = Arc::clone(core.registry());
        let disk = Arc::clone(core.disk());
        let dir = data_dir.clone();
        let result = core
            .pool()
            .run(move || {
                for kind in ENGINE_KINDS {
                    janus_core::metrics::set_disk_bytes(kind.as_str(), metrics::disk_usage(&engine_dir(&dir, kind)));
                }
                janus_core::metrics::set_disk_bytes("meta", metrics::disk_usage(&dir.join(META_DIR)));
                disk.report().iter().for_each(janus_core::metrics::set_volume);
                maintenance::lag_pass(&registry);
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "metrics task failed");
        }
        metrics::upkeep(&prometheus);
        if tick(&mut shutdown, interval).await {
            return;
        }
    }
}
