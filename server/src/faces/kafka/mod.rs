//! The Kafka face: Kafka's wire protocol on its own listener, so unmodified Kafka clients reach the core.
//!
//! | module | holds |
//! |---|---|
//! | [`errors`] | the core's errors as Kafka error codes |
//! | [`connection`] | one connection: size-prefixed frames in, answered in order |
//! | [`apis`] | which APIs and versions this face serves (ApiVersions), and the dispatch |
//! | [`metadata`] | Metadata: this broker, the topics and their partitions |
//! | [`fetch`] | Fetch: stored batches per partition, long-polling when there is nothing |
//! | [`fetch_frame`] | the Fetch response written as framing bytes around each partition's records |
//! | [`parts`] | a response frame in parts (bytes, file ranges) and its writer (`writev`, `sendfile`) |
//! | [`offsets`] | ListOffsets: earliest, latest, by timestamp |
//! | [`producer_id`] | InitProducerId: ids and epochs of the idempotent producer |
//! | [`produce`] | Produce: record batches to the core's batch path |
//! | [`groups`] | the classic group protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups |
//! | [`commits`] | OffsetCommit and OffsetFetch |
//! | [`admin`] | CreateTopics, DeleteTopics, DescribeConfigs, DeleteRecords |
//!
//! Decoding and encoding use the `kafka-protocol` crate; every decision is the core's.

pub mod admin;
pub mod apis;
pub mod commits;
pub mod connection;
pub mod errors;
pub mod fetch;
pub mod fetch_frame;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod parts;
pub mod produce;
pub mod producer_id;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use janus_core::Core;
use tokio::net::TcpListener;

use crate::runtime::face::Face;

/// What every connection of the face shares.
#[derive(Clone, Debug)]
pub struct KafkaContext {
    /// The host and port Metadata gives clients for this broker (`kafka.advertised`, else the bound address).
    pub advertised: (String, i32),
    /// The largest request frame accepted; a larger one closes its connection.
    pub max_frame_bytes: usize,
    /// Whether Metadata creates the topics it is asked for that do not exist (`kafka.auto_create_topics`).
    pub auto_create_topics: bool,
}

/// Who sent a request: the connection's peer and the client id of the request header.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The peer address.
    pub peer: SocketAddr,
    /// The request header's client id (empty when none).
    pub client_id: String,
}

impl Caller {
    /// The client id cut to at most `max` bytes, at a character boundary.
    pub fn client_id_within(&self, max: usize) -> String {
        let mut end = self.client_id.len().min(max);
        while !self.client_id.is_char_boundary(end) {
            end -= 1;
        }
        self.client_id[..end].to_string()
    }

    /// The client host as Kafka's tools show it (`/127.0.0.1`).
    pub fn host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// The Kafka face (see the module docs).
#[derive(Debug)]
pub struct KafkaFace {
    advertised: Option<String>,
    max_frame_bytes: usize,
    auto_create_topics: bool,
}

impl KafkaFace {
    /// The face's name in logs and in the listening line.
    pub const NAME: &'static str = "Kafka";

    /// A face that advertises `advertised` (`host:port`; `None`: the address it binds), accepts frames of
    /// at most `max_frame_bytes` and creates topics Metadata asks for when `auto_create_topics`.
    pub fn new(advertised: Option<String>, max_frame_bytes: usize, auto_create_topics: bool) -> Self {
        KafkaFace { advertised, max_frame_bytes, auto_create_topics }
    }
}

/// Splits `host:port`; `None` when it is not one.
pub fn split_host_port(s: &str) -> Option<(String, i32)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.trim_start_matches('[').trim_end_matches(']').to_string(), i32::from(port)))
}

impl Face for KafkaFace {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn serve(
        self: Box<Self>,
        core: Core,
        listener: TcpListener,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        Box::pin(async move {
            let local = listener.local_addr().map_err(|e| format!("Kafka listener address: {e}"))?;
            let advertised = match self.advertised.as_deref().filter(|a| !a.is_empty()) {
                Some(a) => split_host_port(a).ok_or_else(|| format!("kafka.advertised '{a}' is not host:port"))?,
                None => (local.ip().to_string(), i32::from(local.port())),
            };
            let ctx = Arc::new(KafkaContext {
                advertised,
                max_frame_bytes: self.max_frame_bytes,
                auto_create_topics: self.auto_create_topics,
            });
            let mut shutdown = core.shutdown_signal();
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            let (core, ctx) = (core.clone(), Arc::clone(&ctx));
                            connections.spawn(connection::serve(core, ctx, stream, peer));
                        }
                        Err(e) => tracing::warn!(error = %e, "Kafka listener: accept failed"),
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
            connections.shutdown().await;
            Ok(())
        })
    }
}
