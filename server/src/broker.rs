//! A running broker: opens the data directory, binds the listeners, serves gRPC and metrics, runs the
//! background tasks (retention and compaction, disk use and lag metrics), and shuts all of it down
//! gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use janus_api::{Compaction, EngineKind, TopicPartition, now_ms};
use janus_commitlog::CommitLogEngine;
use janus_proto::v1::admin_server::AdminServer;
use janus_proto::v1::consumer_server::ConsumerServer;
use janus_proto::v1::producer_server::ProducerServer;
use janus_segment::SegmentEngine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;

use crate::config::BrokerConfig;
use crate::error::ServerError;
use crate::limits::{BlockingPool, InflightLimiter, InflightStats};
use crate::meta::MetaStore;
use crate::metrics;
use crate::registry::{Engines, Reconciliation, Registry};
use crate::services::Context;
use crate::services::admin::AdminService;
use crate::services::consumer::ConsumerService;
use crate::services::producer::ProducerService;

/// Subdirectory of the data dir holding RocksDB.
pub const META_DIR: &str = "meta";
/// Subdirectory of the data dir holding the segment engine.
pub const SEGMENT_DIR: &str = "segment";
/// Subdirectory of the data dir holding the commitlog engine.
pub const COMMITLOG_DIR: &str = "commitlog";

/// A running broker (see the module docs). Dropping it without [`Broker::shutdown`] stops serving but
/// leaves the engines without their clean-shutdown markers, as a crash would.
pub struct Broker {
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    background: Vec<JoinHandle<()>>,
    registry: Arc<Registry>,
    limiter: Arc<InflightLimiter>,
    subscribe_buffered: Arc<AtomicU64>,
    health: tonic_health::server::HealthReporter,
    reconciliation: Reconciliation,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("grpc_addr", &self.grpc_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

fn create_dir(path: &Path) -> Result<(), ServerError> {
    std::fs::create_dir_all(path).map_err(|source| ServerError::DataDir { path: path.to_path_buf(), source })
}

/// Opens RocksDB and both engines and reconciles them (blocking).
fn open_storage(config: &BrokerConfig) -> Result<(Registry, Reconciliation), ServerError> {
    let data = &config.data_dir;
    create_dir(data)?;
    let meta_dir = data.join(META_DIR);
    create_dir(&meta_dir)?;
    let meta = Arc::new(MetaStore::open(&meta_dir)?);
    let segment = Arc::new(SegmentEngine::open(&data.join(SEGMENT_DIR), config.segment.to_options()?)?);
    let commitlog = Arc::new(CommitLogEngine::open(&data.join(COMMITLOG_DIR), config.commitlog.to_options()?)?);
    let engines = Engines { segment, commitlog };
    let default_engine =
        config.default_engine.parse::<EngineKind>().map_err(|e| crate::config::ConfigError::Invalid {
            key: "default_engine".into(),
            value: config.default_engine.clone(),
            allowed: e,
        })?;
    let result = Registry::open(meta, engines.clone(), config.topic_defaults()?, default_engine);
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            // Close what was opened cleanly: nothing was written that recovery would need.
            let _ = engines.get(EngineKind::Segment).shutdown();
            let _ = engines.get(EngineKind::Commitlog).shutdown();
            Err(match e {
                crate::registry::RegistryError::Storage(s) => ServerError::Storage(s),
                crate::registry::RegistryError::Meta(m) => ServerError::Meta(m),
                other => ServerError::Task(other.to_string()),
            })
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, source })
}

impl Broker {
    /// Validates `config`, binds both listeners, opens RocksDB and the engines, reconciles them, and starts
    /// serving. Returns once the broker accepts requests.
    pub async fn start(config: BrokerConfig) -> Result<Broker, ServerError> {
        config.validate()?;
        let prometheus = metrics::install();
        let grpc_listener = bind("gRPC", config.grpc_addr).await?;
        let metrics_listener = bind("metrics", config.metrics_addr).await?;
        let local = |l: &TcpListener, what: &'static str, addr: SocketAddr| {
            l.local_addr().map_err(|source| ServerError::Bind { what, addr, source })
        };
        let grpc_addr = local(&grpc_listener, "gRPC", config.grpc_addr)?;
        let metrics_addr = local(&metrics_listener, "metrics", config.metrics_addr)?;

        let storage_config = config.clone();
        let (registry, reconciliation) = tokio::task::spawn_blocking(move || open_storage(&storage_config))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let registry = Arc::new(registry);
        tracing::info!(
            data_dir = %config.data_dir.display(),
            topics = reconciliation.opened.len(),
            recreated = reconciliation.recreated.len(),
            rolled_back = reconciliation.rolled_back.len(),
            finished_deletes = reconciliation.finished_deletes.len(),
            orphans_removed = reconciliation.orphans_removed.len(),
            "storage open"
        );

        let limits = config.limits.clone();
        let limiter = InflightLimiter::new(limits.inflight_bytes, limits.connection_inflight_bytes);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let subscribe_buffered = Arc::new(AtomicU64::new(0));
        let ctx = Context {
            registry: Arc::clone(&registry),
            limiter: Arc::clone(&limiter),
            pool: BlockingPool::new(limits.blocking_threads),
            limits: limits.clone(),
            shutdown: shutdown_rx.clone(),
            subscribe_buffered: Arc::clone(&subscribe_buffered),
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AdminServer<AdminService>>().await;
        health.set_serving::<ProducerServer<ProducerService>>().await;
        health.set_serving::<ConsumerServer<ConsumerService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(janus_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Transport(format!("reflection service: {e}")))?;

        let max = limits.max_request_bytes;
        let (gzip, zstd) = (CompressionEncoding::Gzip, CompressionEncoding::Zstd);
        let admin = AdminServer::new(AdminService::new(ctx.clone()));
        let producer = ProducerServer::new(ProducerService::new(ctx.clone()));
        let consumer = ConsumerServer::new(ConsumerService::new(ctx.clone()));
        // Requests may come gzip- or zstd-compressed; responses are compressed when the client accepts it.
        let admin = admin.accept_compressed(gzip).accept_compressed(zstd).send_compressed(gzip).send_compressed(zstd);
        let producer =
            producer.accept_compressed(gzip).accept_compressed(zstd).send_compressed(gzip).send_compressed(zstd);
        let consumer =
            consumer.accept_compressed(gzip).accept_compressed(zstd).send_compressed(gzip).send_compressed(zstd);
        let router = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(limits.concurrency_per_connection)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .tcp_nodelay(true)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(admin.max_decoding_message_size(max))
            .add_service(producer.max_decoding_message_size(max))
            .add_service(consumer.max_decoding_message_size(max));
        let incoming = tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        let mut server_shutdown = shutdown_rx.clone();
        let server = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = server_shutdown.wait_for(|s| *s).await;
                })
                .await
        });

        let background = vec![
            tokio::spawn(metrics::serve(metrics_listener, prometheus.clone(), shutdown_rx.clone())),
            tokio::spawn(retention_loop(ctx.clone(), Duration::from_millis(config.retention_check_interval_ms))),
            tokio::spawn(metrics_loop(
                ctx.clone(),
                prometheus,
                config.data_dir.clone(),
                Duration::from_millis(config.metrics_interval_ms),
            )),
        ];

        tracing::info!("janusd listening grpc={grpc_addr} metrics={metrics_addr}");
        Ok(Broker {
            grpc_addr,
            metrics_addr,
            shutdown_tx,
            server: Some(server),
            background,
            registry,
            limiter,
            subscribe_buffered,
            health,
            reconciliation,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
        })
    }

    /// The bound gRPC address (the real port when configured with port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The in-flight byte accounting (current, peak, limit, waits).
    pub fn inflight(&self) -> InflightStats {
        self.limiter.stats()
    }

    /// Bytes read ahead for subscriptions and not yet taken by gRPC.
    pub fn subscribe_buffered_bytes(&self) -> u64 {
        self.subscribe_buffered.load(Ordering::Acquire)
    }

    /// What startup reconciliation did.
    pub fn reconciliation(&self) -> &Reconciliation {
        &self.reconciliation
    }

    /// Shuts down gracefully, as on SIGTERM: stops accepting connections, lets in-flight requests finish
    /// (ending long-polls and subscriptions at once), waits at most `shutdown_timeout_ms` for them, then
    /// flushes both engines, writes their clean-shutdown markers and closes RocksDB.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        tracing::info!("shutting down");
        self.health.set_not_serving::<AdminServer<AdminService>>().await;
        self.health.set_not_serving::<ProducerServer<ProducerService>>().await;
        self.health.set_not_serving::<ConsumerServer<ConsumerService>>().await;
        let _ = self.shutdown_tx.send(true);
        let mut result = Ok(());
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(self.shutdown_timeout, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(ServerError::Transport(e.to_string())),
                Ok(Err(e)) => result = Err(ServerError::Task(e.to_string())),
                Err(_) => {
                    tracing::warn!(timeout = ?self.shutdown_timeout, "in-flight requests did not finish; closing them");
                    server.abort();
                    let _ = server.await;
                }
            }
        }
        for task in std::mem::take(&mut self.background) {
            if tokio::time::timeout(self.shutdown_timeout, task).await.is_err() {
                tracing::warn!("a background task did not stop in time");
            }
        }
        let registry = Arc::clone(&self.registry);
        let closed = tokio::task::spawn_blocking(move || registry.shutdown())
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?;
        if let Err(e) = closed {
            return Err(match e {
                crate::registry::RegistryError::Storage(s) => ServerError::Storage(s),
                crate::registry::RegistryError::Meta(m) => ServerError::Meta(m),
                other => ServerError::Task(other.to_string()),
            });
        }
        tracing::info!("shut down cleanly");
        result
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for task in &self.background {
            task.abort();
        }
    }
}

/// Waits `interval` or until shutdown; returns whether the broker is shutting down.
async fn tick(shutdown: &mut watch::Receiver<bool>, interval: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(interval) => false,
        _ = shutdown.wait_for(|s| *s) => true,
    };
    stopped || *shutdown.borrow()
}

/// Enforces retention on both engines and compacts the segment engine every `interval`.
async fn retention_loop(ctx: Context, interval: Duration) {
    let mut shutdown = ctx.shutdown.clone();
    while !tick(&mut shutdown, interval).await {
        let result = ctx
            .pool
            .run({
                let registry = Arc::clone(&ctx.registry);
                move || {
                    let now = now_ms();
                    for kind in [EngineKind::Segment, EngineKind::Commitlog] {
                        match registry.engine(kind).enforce_retention(now) {
                            Ok(r) => {
                                if r.files_deleted > 0 {
                                    tracing::info!(engine = %kind, files = r.files_deleted, bytes = r.bytes_deleted,
                                        "retention deleted old data");
                                }
                                metrics::record_retention(kind.as_str(), r.files_deleted, r.bytes_deleted);
                            }
                            Err(e) => tracing::warn!(engine = %kind, error = %e, "retention pass failed"),
                        }
                    }
                    match registry.engines().segment.compact(now) {
                        Ok(n) => metrics::record_compaction(n),
                        Err(e) => tracing::warn!(error = %e, "compaction pass failed"),
                    }
                }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "retention task failed");
        }
    }
}

/// Measures disk use per engine and every group's lag every `interval`; runs the recorder's upkeep.
async fn metrics_loop(
    ctx: Context,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    data_dir: std::path::PathBuf,
    interval: Duration,
) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let registry = Arc::clone(&ctx.registry);
        let dir = data_dir.clone();
        let result = ctx
            .pool
            .run(move || {
                metrics::set_disk_bytes("segment", metrics::disk_usage(&dir.join(SEGMENT_DIR)));
                metrics::set_disk_bytes("commitlog", metrics::disk_usage(&dir.join(COMMITLOG_DIR)));
                metrics::set_disk_bytes("meta", metrics::disk_usage(&dir.join(META_DIR)));
                match registry.meta().all_offsets() {
                    Ok(offsets) => {
                        for o in offsets {
                            let Ok(topic) = registry.topic(&o.topic) else { continue };
                            let tp = TopicPartition::new(o.topic.clone(), o.partition);
                            if let Ok(end) = registry.engine(topic.engine).offsets(&tp) {
                                metrics::set_lag(&o.group, &o.topic, o.partition, (end.log_end - o.offset).max(0));
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not read committed offsets for lag metrics"),
                }
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
