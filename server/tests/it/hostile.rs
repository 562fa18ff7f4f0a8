//! The broker's memory under hostile but fair load, measured on the real `janusd` process with its default
//! limits: floods of requests of tiny messages (which grow many times over once decoded) and subscribers
//! that never read. The peak resident set (`VmHWM`) must stay under 1 GiB, requests larger than the memory
//! budget are refused with RESOURCE_EXHAUSTED, and buffered subscription memory is returned when the
//! streams end.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use janus_proto::v1;
use prost::Message as _;
use tonic::Code;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::common::{connect, create, msg, produce, scrape, subscribe_request};
use crate::e2e_common::Janusd;

/// Sends request bytes encoded once (so the test does not hold millions of decoded messages itself) and
/// decodes the response with prost.
#[derive(Default)]
struct PreEncoded;

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = v1::ProduceResponse;
    type Encoder = BytesEncoder;
    type Decoder = <tonic_prost::ProstCodec<v1::ProduceRequest, v1::ProduceResponse> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<v1::ProduceRequest, v1::ProduceResponse>::default().decoder()
    }
}

/// A ProduceRequest of `n` empty messages to partition 0 of `topic`: 2 bytes per message on the wire.
fn empty_messages(topic: &str, n: usize) -> Bytes {
    let mut out = bytes::BytesMut::new();
    v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        messages: vec![],
        wait_durable: false,
        ..Default::default()
    }
    .encode(&mut out)
    .unwrap();
    for _ in 0..n {
        out.put_slice(&[0x1a, 0x00]);
    }
    out.freeze()
}

async fn send_raw(channel: Channel, request: Bytes) -> Result<v1::ProduceResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = PathAndQuery::from_static("/janus.v1.Producer/Produce");
    grpc.unary(tonic::Request::new(request), path, PreEncoded).await.map(tonic::Response::into_inner)
}

/// The peak resident set of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

async fn channel(janusd: &Janusd) -> Channel {
    Channel::from_shared(janusd.url()).unwrap().connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_tiny_message_floods_and_stuck_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let janusd = Janusd::spawn(dir.path());
    let pid = janusd.child.id();
    let mut c = connect(janusd.grpc).await;
    create(&mut c, "backlog", v1::Engine::Segment, 1, &[]).await;
    create(&mut c, "tiny", v1::Engine::Segment, 1, &[]).await;
    let value = "v".repeat(1024);
    for _ in 0..48 {
        produce(&mut c, "backlog", Some(0), (0..1000).map(|_| msg(None, &value)).collect()).await;
    }

    // 100 subscribers that never read, each asking for the largest responses, on 10 connections.
    let mut stuck = Vec::new();
    for i in 0..100 {
        if i % 10 == 0 {
            c = connect(janusd.grpc).await;
        }
        let mut request = subscribe_request("backlog", v1::position::At::Earliest(true));
        request.max_bytes = 4 << 20;
        let subscribed = tokio::time::timeout(Duration::from_secs(30), c.consumer.clone().subscribe(request)).await;
        stuck.push(subscribed.expect("stuck subscribers do not block new requests").unwrap().into_inner());
    }

    // Requests of millions of empty messages: 14 MB on the wire, gigabytes once decoded. Refused.
    let huge = empty_messages("tiny", 7_000_000);
    let mut floods = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (ch, req) = (channel(&janusd).await, huge.clone());
        floods.spawn(async move { (true, send_raw(ch, req).await) });
    }
    // Requests of 100,000 empty messages (each given a message id by the broker, which the budget counts):
    // under every budget alone, over the broker's together. They wait
    // their turn and succeed.
    let large = empty_messages("tiny", 100_000);
    for _ in 0..8 {
        let (ch, req) = (channel(&janusd).await, large.clone());
        floods.spawn(async move { (false, send_raw(ch, req).await) });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while let Some(done) = tokio::time::timeout_at(deadline.into(), floods.join_next()).await.expect("floods end") {
        match done.unwrap() {
            (true, result) => {
                let e = result.expect_err("a request needing gigabytes once decoded is refused");
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("memory budget"), "{}", e.message());
            }
            (false, result) => {
                let appends = result.expect("a request within the budget waits its turn and succeeds").appends;
                stored += appends.iter().map(|a| a.last_offset - a.base_offset + 1).sum::<i64>();
            }
        }
    }
    assert_eq!(stored, 8 * 100_000);

    let peak = peak_rss(pid);
    eprintln!("janusd peak RSS {} MiB under 100 stuck subscribers and the floods", peak >> 20);
    assert!(peak < 1 << 30, "janusd peaked at {} MiB", peak >> 20);

    // The subscribers go away: their buffered responses are given back.
    drop(stuck);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(janusd.metrics).await;
        let buffered = text
            .lines()
            .find_map(|l| l.strip_prefix("janus_subscribe_buffered_bytes "))
            .map(|v| v.trim().parse::<f64>().unwrap());
        if buffered == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "subscription buffers still held: {buffered:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    janusd.kill9();
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_and_connection_churn_leaks_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut sets = crate::e2e_common::E2E_SETS.to_vec();
    sets.push("limits.handshake_timeout_ms=500");
    let mut cmd = crate::e2e_common::janusd_command(dir.path(), &sets);
    cmd.stderr(std::process::Stdio::null());
    let janusd = Janusd::start(&mut cmd, Duration::from_secs(60));
    let pid = janusd.child.id();
    let mut c = connect(janusd.grpc).await;
    create(&mut c, "churn", v1::Engine::Segment, 1, &[]).await;
    let baseline = open_descriptors(pid);

    // 300 connections that never finish the handshake: half silent, half stopping inside the preface.
    let mut half_open = Vec::new();
    for i in 0..300 {
        let mut s = tokio::net::TcpStream::connect(janusd.grpc).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        }
        half_open.push(s);
    }
    for (i, mut s) in half_open.into_iter().enumerate() {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue, // the broker's SETTINGS, sent before it gave up
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "half-open connection {i} is still held after 10 s");
    }

    // 500 clients come, make a call, and go.
    for i in 0..500 {
        let mut client = connect(janusd.grpc).await;
        produce(&mut client, "churn", Some(0), vec![msg(None, &format!("m{i}"))]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_descriptors(pid);
        if now <= baseline + 5 {
            break;
        }
        assert!(Instant::now() < deadline, "janusd holds {now} descriptors, {baseline} before the connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The broker still serves a well-behaved client.
    let r = crate::common::fetch(&mut c, "churn", 0, 0).await.unwrap();
    assert_eq!(r.log_end_offset, 500);
    janusd.kill9();
}
