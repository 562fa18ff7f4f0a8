//! The gRPC face (`janus.v1`): [`admin`], [`producer`] and [`consumer`] services, plus health and server
//! reflection (`v1` and `v1alpha`, so grpcurl before 1.9, Postman, evans and Python's `grpc_reflection`
//! work). Each service decodes a request into the core's types ([`convert`]), calls one [`Core`] method
//! and encodes the answer; errors become statuses in [`status`].

pub mod admin;
pub mod admission;
pub mod consumer;
pub mod convert;
pub mod handshake;
pub mod messaging;
pub mod producer;
pub mod status;
pub mod timer;
pub mod transactions;
pub mod wire_status;

use std::future::Future;
use std::pin::Pin;

use janus_core::Core;
use janus_proto::v1::admin_server::AdminServer;
use janus_proto::v1::consumer_server::ConsumerServer;
use janus_proto::v1::messaging_server::MessagingServer;
use janus_proto::v1::producer_server::ProducerServer;
use janus_proto::v1::transactions_server::TransactionsServer;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tonic::codec::CompressionEncoding;

use self::admin::AdminService;
use self::consumer::{ConsumerService, ReadAhead};
use self::handshake::HandshakeDeadline;
use self::messaging::MessagingService;
use self::producer::ProducerService;
use self::transactions::TransactionsService;
use crate::config::LimitsSection;
use crate::runtime::face::Face;

/// The gRPC face, configured by the broker's `[limits]` and response compression.
#[derive(Debug)]
pub struct GrpcFace {
    limits: LimitsSection,
    compression: Option<u32>,
}

impl GrpcFace {
    /// The face's name.
    pub const NAME: &'static str = "gRPC";

    /// A face applying `limits` (message size, concurrency, streams, subscription read-ahead) that
    /// compresses responses for clients accepting it only when `compression` is set: `Some(min)` compresses
    /// Fetch responses of at least `min` bytes and every other response; `None` compresses nothing.
    pub fn new(limits: LimitsSection, compression: Option<u32>) -> Self {
        GrpcFace { limits, compression }
    }
}

impl Face for GrpcFace {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn serve(
        self: Box<Self>,
        core: Core,
        listener: TcpListener,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(serve(self.limits, self.compression, core, listener))
    }
}

/// TCP keep-alive on accepted connections: the kernel finds peers that vanished without a FIN.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

fn non_zero_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

async fn serve(
    limits: LimitsSection,
    compression: Option<u32>,
    core: Core,
    listener: TcpListener,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServer<AdminService>>().await;
    health.set_serving::<ProducerServer<ProducerService>>().await;
    health.set_serving::<ConsumerServer<ConsumerService>>().await;
    health.set_serving::<MessagingServer<MessagingService>>().await;
    health.set_serving::<TransactionsServer<TransactionsService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(janus_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| format!("reflection service: {e}"))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| format!("reflection service: {e}"))?;

    let max = limits.max_request_bytes;
    let admin = AdminServer::new(AdminService::new(core.clone()));
    let producer = ProducerServer::new(ProducerService::new(core.clone()));
    let read_ahead = ReadAhead { responses: limits.subscribe_buffer, bytes: limits.subscribe_buffer_bytes };
    let consumer = ConsumerServer::new(ConsumerService::new(core.clone(), read_ahead, compression));
    // Requests may always come gzip- or zstd-compressed; responses are compressed only when the operator
    // turned it on (and the client accepts it).
    let (gzip, zstd) = (CompressionEncoding::Gzip, CompressionEncoding::Zstd);
    let mut admin = admin.accept_compressed(gzip).accept_compressed(zstd);
    let mut producer = producer.accept_compressed(gzip).accept_compressed(zstd);
    let mut consumer = consumer.accept_compressed(gzip).accept_compressed(zstd);
    let mut messaging =
        MessagingServer::new(MessagingService::new(core.clone())).accept_compressed(gzip).accept_compressed(zstd);
    let mut transactions =
        TransactionsServer::new(TransactionsService::new(core.clone())).accept_compressed(gzip).accept_compressed(zstd);
    if compression.is_some() {
        transactions = transactions.send_compressed(gzip).send_compressed(zstd);
        messaging = messaging.send_compressed(gzip).send_compressed(zstd);
        admin = admin.send_compressed(gzip).send_compressed(zstd);
        producer = producer.send_compressed(gzip).send_compressed(zstd);
        consumer = consumer.send_compressed(gzip).send_compressed(zstd);
    }
    let router = tonic::transport::Server::builder()
        .layer(wire_status::layer())
        .layer(admission::AdmissionLayer::new(core.clone(), max))
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .tcp_nodelay(true)
        .http2_keepalive_interval(non_zero_ms(limits.http2_keepalive_interval_ms))
        .http2_keepalive_timeout(non_zero_ms(limits.http2_keepalive_timeout_ms))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(admin.max_decoding_message_size(max))
        .add_service(producer.max_decoding_message_size(max))
        .add_service(consumer.max_decoding_message_size(max))
        .add_service(messaging.max_decoding_message_size(max))
        .add_service(transactions.max_decoding_message_size(max));
    let handshake_timeout = Duration::from_millis(limits.handshake_timeout_ms);
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
        .map(move |accepted| accepted.map(|stream| HandshakeDeadline::new(stream, handshake_timeout)));
    let mut shutdown = core.shutdown_signal();
    router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|s| *s).await;
            health.set_not_serving::<AdminServer<AdminService>>().await;
            health.set_not_serving::<ProducerServer<ProducerService>>().await;
            health.set_not_serving::<ConsumerServer<ConsumerService>>().await;
            health.set_not_serving::<MessagingServer<MessagingService>>().await;
        })
        .await
        .map_err(|e| e.to_string())
}
