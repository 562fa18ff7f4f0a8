//! Shared helpers of the server's integration tests: brokers on 127.0.0.1 port 0 with temp data dirs,
//! small engine files, and the generated tonic clients.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use janus_proto::v1;
use janus_proto::v1::admin_client::AdminClient;
use janus_proto::v1::consumer_client::ConsumerClient;
use janus_proto::v1::producer_client::ProducerClient;
use janus_server::{Broker, BrokerConfig};
use tonic::transport::Channel;

/// A config for tests: loopback port 0 for every listener, small engine files.
pub fn config(data_dir: &Path) -> BrokerConfig {
    let mut c = BrokerConfig {
        data_dir: data_dir.to_path_buf(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        shutdown_timeout_ms: 10_000,
        ..BrokerConfig::default()
    };
    c.kafka.listen = "127.0.0.1:0".parse().unwrap();
    c.commitlog.insert("file_bytes".into(), (1 << 20).to_string());
    c.commitlog.insert("consumequeue_file_entries".into(), (1024).to_string());
    c.commitlog.insert("index_slots".into(), (1024).to_string());
    c.commitlog.insert("index_entries".into(), (4096).to_string());
    c.segment.insert("index_bytes".into(), (64 * 1024).to_string());
    // Groups form at once (Kafka's tests do the same with group.initial.rebalance.delay.ms), and members
    // learn of assignment changes within 200 ms instead of 3 s.
    c.groups.initial_rebalance_delay_ms = 0;
    c.groups.heartbeat_interval_ms = 200;
    c
}

/// The three API clients of a broker.
pub struct Clients {
    pub admin: AdminClient<Channel>,
    pub producer: ProducerClient<Channel>,
    pub consumer: ConsumerClient<Channel>,
}

pub async fn connect(addr: std::net::SocketAddr) -> Clients {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    Clients {
        admin: AdminClient::new(channel.clone()),
        producer: ProducerClient::new(channel.clone()).max_decoding_message_size(64 << 20),
        consumer: ConsumerClient::new(channel).max_decoding_message_size(64 << 20),
    }
}

pub async fn start(config: BrokerConfig) -> (Broker, Clients) {
    let broker = Broker::start(config).await.expect("broker starts");
    let clients = connect(broker.grpc_addr()).await;
    (broker, clients)
}

pub async fn create(c: &mut Clients, name: &str, engine: v1::Engine, partitions: u32, configs: &[(&str, &str)]) {
    c.admin
        .create_topic(v1::CreateTopicRequest {
            name: name.into(),
            engine: engine as i32,
            partitions,
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
        })
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

pub fn msg(key: Option<&str>, value: &str) -> v1::Message {
    v1::Message {
        key: key.map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
        value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
        headers: vec![],
        timestamp_ms: 0,
    }
}

pub fn tagged(value: &str, tag: &str) -> v1::Message {
    v1::Message {
        headers: vec![v1::Header { key: "TAGS".into(), value: Some(bytes::Bytes::copy_from_slice(tag.as_bytes())) }],
        ..msg(None, value)
    }
}

pub async fn produce(
    c: &mut Clients,
    topic: &str,
    partition: Option<u32>,
    messages: Vec<v1::Message>,
) -> v1::ProduceResponse {
    c.producer
        .produce(v1::ProduceRequest {
            topic: topic.into(),
            partition,
            messages,
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("produce to {topic}: {e}"))
        .into_inner()
}

pub async fn fetch(
    c: &mut Clients,
    topic: &str,
    partition: u32,
    offset: i64,
) -> Result<v1::FetchResponse, tonic::Status> {
    c.consumer
        .fetch(v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 0,
            max_wait_ms: 0,
            tags: vec![],
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A subscription to partition 0 of `topic` from `at`, every message, the broker's default response size.
pub fn subscribe_request(topic: &str, at: v1::position::At) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        topic: topic.into(),
        partition: 0,
        start: Some(v1::Position { at: Some(at) }),
        tags: vec![],
        max_bytes: 0,
        ..Default::default()
    }
}

pub fn values(r: &v1::FetchResponse) -> Vec<String> {
    r.messages.iter().map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned()).collect()
}

/// `(partition, offset)` pairs as the API's partition offsets.
pub fn partition_offsets(o: &[(u32, i64)]) -> Vec<v1::PartitionOffset> {
    o.iter().map(|(p, o)| v1::PartitionOffset { partition: *p, offset: *o }).collect()
}

/// Commits `offsets` (`(partition, offset)` pairs) of `topic` for `group`.
pub async fn commit_offsets(c: &mut Clients, group: &str, topic: &str, offsets: &[(u32, i64)]) {
    c.consumer
        .commit_offsets(v1::CommitOffsetsRequest {
            group: group.into(),
            topic: topic.into(),
            offsets: partition_offsets(offsets),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("commit offsets of {group} on {topic}: {e}"));
}

/// The offsets `group` committed on `topic`.
pub async fn fetch_offsets(c: &mut Clients, group: &str, topic: &str) -> Vec<v1::PartitionOffset> {
    c.consumer
        .fetch_offsets(v1::FetchOffsetsRequest { group: group.into(), topic: topic.into(), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("fetch offsets of {group} on {topic}: {e}"))
        .into_inner()
        .offsets
}

/// GETs the metrics endpoint and returns the body.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// A core (no faces) over a real registry in `dir`: RocksDB and both engines, a 2-thread blocking pool;
/// for tests that drive the core's calls directly, under tokio's paused clock when they want. Send `true`
/// on the returned sender to shut it down.
pub fn open_core(
    dir: &Path,
    groups: janus_core::groups::GroupConfig,
    messaging: janus_core::messaging::MessagingConfig,
) -> (janus_core::Core, tokio::sync::watch::Sender<bool>) {
    use std::sync::Arc;

    use janus_core::limits::{BlockingPool, InflightLimiter};
    use janus_core::meta::MetaStore;
    use janus_core::topics::{EngineOptions, EngineSet, Registry, TopicDefaults};

    let meta = Arc::new(MetaStore::open(&dir.join("meta")).unwrap());
    let engines = EngineSet::open(dir, &EngineOptions::default()).unwrap();
    let (registry, _) =
        Registry::open(meta, engines, TopicDefaults::default(), janus_api::EngineKind::Segment).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let disk = janus_core::disk::DiskGuard::new(Vec::new(), dir.join("meta"), Some(0));
    let core = janus_core::Core::new(
        Arc::new(registry),
        InflightLimiter::new(64 << 20, 64 << 20),
        BlockingPool::new(2),
        janus_core::FetchLimits { default_fetch_bytes: 1 << 20, max_fetch_bytes: 8 << 20, max_fetch_wait_ms: 1000 },
        Arc::new(disk),
        groups,
        messaging,
        rx,
    )
    .unwrap();
    (core, tx)
}
