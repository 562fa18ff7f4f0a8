//! Producer settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::types::Compression;

/// The codec of a client-built record batch.
pub use janus_codec::Compression as RecordCompression;

/// How the producer ships its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendMode {
    /// One unary `Produce` call per batch: every batch is acknowledged on its own, so each message's
    /// future resolves as soon as its batch is stored.
    #[default]
    Unary,
    /// Batches of a partition go on one client-streaming `ProduceStream` call, which the producer closes
    /// after `stream_bytes`, after `stream_time`, or on `flush`; messages are acknowledged when it closes.
    /// Order is kept and requests are pipelined without waiting for acks.
    Stream,
}

/// What a produce request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireFormat {
    /// Kafka RecordBatch v2 batches built here (compressed with `record_compression`), which the broker
    /// checks and stores without re-encoding: the fast path. Timestamps of 0 become this client's clock.
    #[default]
    Batches,
    /// One protobuf message per record; the broker builds the batches (timestamps of 0 become the
    /// broker's clock).
    Messages,
}

/// What the producer reports after each request (unary) or stream (stream mode).
#[derive(Debug, Clone)]
pub struct RequestReport {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Messages carried.
    pub messages: usize,
    /// Approximate bytes carried.
    pub bytes: usize,
    /// From sending the request (or opening the stream) to the broker's answer.
    pub latency: Duration,
    /// Whether the broker accepted it.
    pub ok: bool,
}

/// A callback invoked after each request; must be cheap (it runs on the sender task).
pub type RequestObserver = Arc<dyn Fn(&RequestReport) + Send + Sync>;

/// Producer settings; `ProducerConfig::default()` suits most uses.
#[derive(Clone)]
pub struct ProducerConfig {
    /// A partition's batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// ... or once its first message has waited this long.
    pub linger: Duration,
    /// Bound on bytes buffered or in flight; `send` waits while the bound is reached.
    pub max_buffered_bytes: usize,
    /// Unary requests in flight per partition. 1 (the default) keeps the order of messages within a
    /// partition; more pipelines requests, but two requests in flight may be stored in either order.
    pub max_in_flight: usize,
    /// Acknowledge only once messages are on disk per the topic's flush policy.
    pub wait_durable: bool,
    /// Compression of produce requests; `None` = the client's option.
    pub compression: Option<Compression>,
    /// What requests carry: client-built batches (default) or per-record messages.
    pub format: WireFormat,
    /// The codec of client-built batches (Kafka's `compression.type`): none, gzip, snappy, lz4 or zstd.
    pub record_compression: RecordCompression,
    /// Unary requests or a ProduceStream.
    pub mode: SendMode,
    /// Stream mode: close a partition's stream after this many bytes.
    pub stream_bytes: usize,
    /// Stream mode: close a partition's stream after this long.
    pub stream_time: Duration,
    /// Called after every request (e.g. to record latencies).
    pub observer: Option<RequestObserver>,
    /// Give every message a message id (RocketMQ's `UNIQ_KEY` header) unless it has one (default on; the
    /// id makes it findable with `janus message show --id` and is what dead letters and retries name).
    pub message_ids: bool,
    /// Idempotent produce (Kafka's `enable.idempotence`, default on): batches carry a producer id and
    /// sequences, so a retried batch is stored once. Applies to client-built batches.
    pub idempotent: bool,
    /// How long an idempotent unary batch may keep being retried after transport failures (Kafka's
    /// `delivery.timeout.ms`; 30 s).
    pub delivery_timeout: Duration,
    /// The first wait before a retry, doubling up to 1 s (Kafka's `retry.backoff.ms`, 100 ms).
    pub retry_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_bytes: 256 * 1024,
            linger: Duration::from_millis(5),
            max_buffered_bytes: 64 * 1024 * 1024,
            max_in_flight: 1,
            wait_durable: false,
            compression: None,
            format: WireFormat::Batches,
            record_compression: RecordCompression::None,
            mode: SendMode::Unary,
            stream_bytes: 16 * 1024 * 1024,
            stream_time: Duration::from_millis(100),
            observer: None,
            message_ids: true,
            idempotent: true,
            delivery_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

impl fmt::Debug for ProducerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerConfig")
            .field("batch_bytes", &self.batch_bytes)
            .field("linger", &self.linger)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_in_flight", &self.max_in_flight)
            .field("wait_durable", &self.wait_durable)
            .field("compression", &self.compression)
            .field("format", &self.format)
            .field("record_compression", &self.record_compression)
            .field("mode", &self.mode)
            .field("stream_bytes", &self.stream_bytes)
            .field("stream_time", &self.stream_time)
            .field("observer", &self.observer.as_ref().map(|_| "<fn>"))
            .field("message_ids", &self.message_ids)
            .field("idempotent", &self.idempotent)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("retry_backoff", &self.retry_backoff)
            .finish()
    }
}
