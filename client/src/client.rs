//! The connection to a broker and the raw RPCs the producer and consumer build on.

use std::time::Duration;

use janus_proto::v1 as pb;
use janus_proto::v1::admin_client::AdminClient;
use janus_proto::v1::consumer_client::ConsumerClient;
use janus_proto::v1::producer_client::ProducerClient;
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};

use crate::error::{ClientError, Result, error_chain};
use crate::types::Compression;

/// The largest gRPC message the client accepts (fetch responses carry at least one whole message).
const MAX_DECODING_BYTES: usize = 256 * 1024 * 1024;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// Deadline of each unary call (`None` = none). Long-poll fetches add their wait to it.
    pub request_timeout: Option<Duration>,
    /// Compression of produce requests (the broker must accept it; both gzip and zstd are built in).
    pub compression: Compression,
    /// HTTP/2 flow-control window per stream, in bytes.
    pub stream_window: u32,
    /// HTTP/2 flow-control window per connection, in bytes.
    pub connection_window: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(30)),
            compression: Compression::None,
            stream_window: 8 * 1024 * 1024,
            connection_window: 32 * 1024 * 1024,
        }
    }
}

/// A connection to one broker; cheap to clone (clones share the HTTP/2 connection).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) channel: Channel,
    url: String,
    options: ClientOptions,
}

impl Client {
    /// Connects to the broker at `url` (e.g. `http://127.0.0.1:7070`) with default options.
    pub async fn connect(url: &str) -> Result<Client> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with explicit options. A URL without a scheme gets `http://`.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client> {
        let url = normalize_url(url)?;
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| ClientError::InvalidUrl { url: url.clone(), reason: error_chain(&e) })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(options.stream_window)
            .initial_connection_window_size(options.connection_window);
        let channel =
            endpoint.connect().await.map_err(|e| ClientError::Connect { url: url.clone(), reason: error_chain(&e) })?;
        Ok(Client { channel, url, options })
    }

    /// The broker URL this client is connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// A generated Admin client on this connection.
    pub fn admin_rpc(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING_BYTES)
    }

    /// A generated Producer client on this connection, compressing requests (and accepting compressed
    /// responses) with `compression`.
    pub fn producer_rpc(&self, compression: Compression) -> ProducerClient<Channel> {
        let mut rpc = ProducerClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING_BYTES);
        if let Some(encoding) = compression.encoding() {
            rpc = rpc.send_compressed(encoding).accept_compressed(encoding);
        }
        rpc
    }

    /// A generated Consumer client on this connection. Compressed responses are accepted (so a broker
    /// may compress them) only when the client's `compression` option names an encoding: compressing
    /// fetch responses costs the broker far more CPU than it saves on loopback or a fast network.
    pub fn consumer_rpc(&self) -> ConsumerClient<Channel> {
        let mut rpc = ConsumerClient::new(self.channel.clone()).max_decoding_message_size(MAX_DECODING_BYTES);
        if let Some(encoding) = self.options.compression.encoding() {
            rpc = rpc.accept_compressed(encoding);
        }
        rpc
    }

    /// Wraps a message in a request with the configured deadline (plus `extra` for long polls).
    pub(crate) fn request<T>(&self, message: T, extra: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(timeout) = self.options.request_timeout {
            request.set_timeout(timeout + extra);
        }
        request
    }

    /// Sends one produce request; returns where its messages went.
    pub async fn produce(&self, request: pb::ProduceRequest) -> Result<Vec<pb::PartitionAppend>> {
        self.produce_with(request, self.options.compression).await
    }

    /// Sends one produce request with the given compression.
    pub async fn produce_with(
        &self,
        request: pb::ProduceRequest,
        compression: Compression,
    ) -> Result<Vec<pb::PartitionAppend>> {
        let response = self.producer_rpc(compression).produce(self.request(request, Duration::ZERO)).await?;
        Ok(response.into_inner().appends)
    }

    /// Sends many produce requests on one ProduceStream; returns the broker's summary at the end.
    pub async fn produce_stream<S>(&self, requests: S, compression: Compression) -> Result<Vec<pb::PartitionAppend>>
    where
        S: Stream<Item = pb::ProduceRequest> + Send + 'static,
    {
        let response = self.producer_rpc(compression).produce_stream(tonic::Request::new(requests)).await?;
        Ok(response.into_inner().appends)
    }

    /// One fetch (long-polls up to `request.max_wait_ms` when there is no data).
    pub async fn fetch(&self, request: pb::FetchRequest) -> Result<pb::FetchResponse> {
        let wait = Duration::from_millis(u64::from(request.max_wait_ms));
        Ok(self.consumer_rpc().fetch(self.request(request, wait)).await?.into_inner())
    }

    /// Opens a Subscribe stream (no deadline: it lasts until dropped).
    pub async fn subscribe(&self, request: pb::SubscribeRequest) -> Result<tonic::Streaming<pb::FetchResponse>> {
        Ok(self.consumer_rpc().subscribe(tonic::Request::new(request)).await?.into_inner())
    }
}

/// Adds `http://` to a bare `host:port` and refuses what cannot be a broker URL.
fn normalize_url(url: &str) -> Result<String> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(ClientError::InvalidUrl { url: url.to_string(), reason: "empty".into() });
    }
    let full = if trimmed.contains("://") { trimmed.to_string() } else { format!("http://{trimmed}") };
    let scheme = full.split("://").next().unwrap_or_default();
    if scheme != "http" && scheme != "https" {
        return Err(ClientError::InvalidUrl {
            url: url.to_string(),
            reason: format!("unsupported scheme {scheme:?} (expected http)"),
        });
    }
    let uri: tonic::transport::Uri =
        full.parse().map_err(|e| ClientError::InvalidUrl { url: url.to_string(), reason: error_chain(&e) })?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(ClientError::InvalidUrl { url: url.to_string(), reason: "no host".into() });
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("http://127.0.0.1:7070").unwrap(), "http://127.0.0.1:7070");
        assert_eq!(normalize_url("127.0.0.1:7070").unwrap(), "http://127.0.0.1:7070");
        for bad in ["", "ftp://x:1", "http://", "http://exa mple:1", "://"] {
            assert!(matches!(normalize_url(bad), Err(ClientError::InvalidUrl { .. })), "{bad}");
        }
    }

    #[tokio::test]
    async fn broker_down_is_a_clear_error() {
        // Bind then drop a listener so the port is (very likely) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = Client::connect(&format!("http://127.0.0.1:{port}")).await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("cannot connect to the broker at http://127.0.0.1:{port}")));
    }

    #[tokio::test]
    async fn bad_url_is_a_clear_error() {
        let err = Client::connect("nonsense://").await.unwrap_err();
        assert!(err.to_string().starts_with("invalid broker URL"), "{err}");
    }
}
