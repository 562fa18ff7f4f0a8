//! The Kafka face driven by a real Kafka client, kcat (librdkafka; `scripts/setup` installs it): Metadata
//! lists the topics of both engines with their partitions and this broker as their leader, and a client
//! that asks for a newer ApiVersions than served gets the ranges and carries on.

use std::process::Command;

use janus_client::Engine;
use janus_server::Broker;

use crate::e2e_common::{config, create};

/// Runs kcat against `addr` with `args`; returns stdout (asserting it exited 0).
pub(crate) fn kcat(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let out = Command::new("kcat")
        .arg("-b")
        .arg(addr.to_string())
        .args(args)
        .output()
        .expect("kcat runs (scripts/setup installs it)");
    assert!(out.status.success(), "kcat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_lists_the_topics_of_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    create(&client, "kafka-seg", Engine::Segment, 3, &[]).await;
    create(&client, "kafka-cl", Engine::Commitlog, 2, &[]).await;
    let addr = broker.kafka_addr().expect("the Kafka face runs by default");
    let listing = tokio::task::spawn_blocking(move || kcat(addr, &["-L", "-J", "-m", "10"])).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&listing).unwrap_or_else(|e| panic!("{e}: {listing}"));
    let brokers = json["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{json}");
    assert_eq!((brokers[0]["id"].as_i64(), brokers[0]["name"].as_str()), (Some(0), Some(addr.to_string().as_str())));
    assert_eq!(json["controllerid"], 0, "{json}");
    let topics = json["topics"].as_array().unwrap();
    for (name, partitions) in [("kafka-seg", 3), ("kafka-cl", 2)] {
        let t = topics.iter().find(|t| t["topic"] == name).unwrap_or_else(|| panic!("{name} missing: {json}"));
        let ps = t["partitions"].as_array().unwrap();
        assert_eq!(ps.len(), partitions, "{name}: {t}");
        assert!(ps.iter().all(|p| p["leader"] == 0 && p["replicas"][0]["id"] == 0), "{name}: {t}");
    }
    // One topic asked for by name; one the broker does not have.
    let one =
        tokio::task::spawn_blocking(move || kcat(addr, &["-L", "-J", "-t", "kafka-cl", "-m", "10"])).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(json["topics"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["topics"][0]["topic"], "kafka-cl");
    broker.shutdown().await.unwrap();
}

/// Sends one frame (`body` after its size) and reads one answer frame; `None` when the broker closed the
/// connection instead.
pub(crate) async fn exchange(stream: &mut tokio::net::TcpStream, body: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(&(body.len() as i32).to_be_bytes()).await.ok()?;
    stream.write_all(body).await.ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut answer).await.ok()?;
    Some(answer)
}

/// An encoded request: header (of the version `api` takes at `version`) then `body`.
pub(crate) fn request<R: kafka_protocol::protocol::Encodable>(api: ApiKey, version: i16, id: i32, body: &R) -> Vec<u8> {
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::Encodable;
    let mut out = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out.to_vec()
}

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_negotiates_and_bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let addr = broker.kafka_addr().unwrap();
    let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();

    // v3: the served APIs and their ranges.
    let answer =
        exchange(&mut good, &request(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default())).await.unwrap();
    let mut buf = bytes::Bytes::from(answer);
    assert_eq!(ResponseHeader::decode(&mut buf, 0).unwrap().correlation_id, 7);
    let r = ApiVersionsResponse::decode(&mut buf, 3).unwrap();
    assert_eq!(r.error_code, 0);
    let metadata = r.api_keys.iter().find(|k| k.api_key == ApiKey::Metadata as i16).unwrap();
    assert_eq!((metadata.min_version, metadata.max_version), (0, 12));

    // A newer ApiVersions than served: UNSUPPORTED_VERSION in the v0 format, with the ranges to retry with.
    let mut frame = request(ApiKey::ApiVersions, 3, 8, &ApiVersionsRequest::default());
    frame[2..4].copy_from_slice(&9i16.to_be_bytes());
    let answer = exchange(&mut good, &frame).await.expect("answered, not closed");
    let mut buf = bytes::Bytes::from(answer);
    assert_eq!(ResponseHeader::decode(&mut buf, 0).unwrap().correlation_id, 8);
    let r = ApiVersionsResponse::decode(&mut buf, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 3));

    // Each bad frame closes its own connection.
    for (what, frame) in [
        ("unknown API key", [&(-5i16).to_be_bytes()[..], &[0, 0, 0, 0, 0, 1, 0, 0]].concat()),
        (
            "an API not served",
            request(ApiKey::SaslHandshake, 1, 1, &kafka_protocol::messages::SaslHandshakeRequest::default()),
        ),
        (
            "a version not served",
            request(ApiKey::Metadata, 13, 1, &kafka_protocol::messages::MetadataRequest::default()),
        ),
        (
            "a truncated body",
            request(ApiKey::Metadata, 12, 1, &kafka_protocol::messages::MetadataRequest::default())[..12].to_vec(),
        ),
        // Array counts that promise more elements than the frame holds: decoding them once reserved that
        // many elements up front, and the failed allocation aborted the broker (vendor/kafka-protocol).
        (
            "a forged array count",
            // Metadata v0: header v1 (key, version, correlation id, null client id), then topics: i32::MAX.
            vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
        ),
        (
            "a forged compact array count",
            // Metadata v12: header v2 (as v1, then no tagged fields), then topics: uvarint 2^32 - 1.
            vec![0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ),
    ] {
        let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(exchange(&mut bad, &frame).await.is_none(), "{what}: the connection is closed");
    }
    let mut huge = tokio::net::TcpStream::connect(addr).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        huge.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
        let mut one = [0u8; 1];
        assert_eq!(huge.read(&mut one).await.unwrap_or(0), 0, "an oversized frame closes the connection");
    }
    // The first connection still works.
    let answer = exchange(&mut good, &request(ApiKey::ApiVersions, 0, 9, &ApiVersionsRequest::default())).await;
    assert!(answer.is_some(), "other connections are not affected");
    broker.shutdown().await.unwrap();
}

/// Runs kcat with `stdin` piped in.
fn kcat_with_input(addr: std::net::SocketAddr, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(addr.to_string())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kcat {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The headers of the batches stored in `partition` of `topic`, read through the gRPC face (at most 4 MiB).
pub(crate) async fn stored_batches(
    client: &janus_client::Client,
    topic: &str,
    partition: u32,
) -> Vec<janus_codec::batch::BatchHeader> {
    use janus_client::proto as v1;
    let raw = client
        .fetch(v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset: 0,
            max_bytes: 4 << 20,
            format: v1::RecordFormat::Batches as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    janus_codec::batch::split_batches(&raw.record_batches).map(|b| b.unwrap().0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produces_with_every_codec_and_consumes_on_both_engines() {
    use janus_client::proto as v1;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    let addr = broker.kafka_addr().unwrap();
    let codecs = [("none", 0), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)];
    for (topic, engine) in [("kcat-p-seg", Engine::Segment), ("kcat-p-cl", Engine::Commitlog)] {
        create(&client, topic, engine, 1, &[]).await;
        let mut expected = Vec::new();
        for (codec, _) in codecs {
            let lines: Vec<String> = (0..20).map(|i| format!("{codec}-{i}")).collect();
            let input = lines.join("\n") + "\n";
            let args = ["-P", "-t", topic, "-p", "0", "-z", codec, "-X", "linger.ms=50"];
            tokio::task::spawn_blocking(move || kcat_with_input(addr, &args, &input)).await.unwrap();
            expected.extend(lines);
        }
        let fetched = client
            .fetch(v1::FetchRequest {
                topic: topic.into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                ..Default::default()
            })
            .await
            .unwrap();
        let values: Vec<String> = fetched
            .messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        assert_eq!(values, expected, "{topic}: every message once, in order");
        // kcat reads them back through the Kafka face (ListOffsets, then Fetch until the end).
        let args = ["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %s\\n"];
        let consumed = tokio::task::spawn_blocking(move || kcat(addr, &args)).await.unwrap();
        let lines: Vec<&str> = consumed.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{topic}: {consumed}");
        for (i, (line, value)) in lines.iter().zip(&expected).enumerate() {
            assert_eq!(*line, format!("{i} {value}"), "{topic}");
        }
        // From the middle of a batch: the records before the offset are dropped by the client.
        let args = ["-C", "-t", topic, "-p", "0", "-o", "25", "-e", "-q", "-f", "%o\\n"];
        let tail = tokio::task::spawn_blocking(move || kcat(addr, &args)).await.unwrap();
        assert_eq!(tail.lines().next(), Some("25"), "{topic}: {tail}");
        assert_eq!(tail.lines().count(), expected.len() - 25, "{topic}");
        if engine == Engine::Segment {
            // Stored byte-exact: each codec's batch comes back compressed with it.
            let codecs_seen: Vec<i16> =
                stored_batches(&client, topic, 0).await.iter().map(|h| h.attributes & 7).collect();
            // (librdkafka compresses with lz4 only when the broker serves FindCoordinator: its feature map
            // ties LZ4 to it.)
            for (codec, bits) in &codecs {
                assert!(codecs_seen.contains(bits), "{codec} batch stored as sent: {codecs_seen:?}");
            }
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_with_an_idempotent_producer_gets_a_producer_id_and_its_batches_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    let addr = broker.kafka_addr().unwrap();
    for (topic, engine) in [("kcat-idem-seg", Engine::Segment), ("kcat-idem-cl", Engine::Commitlog)] {
        create(&client, topic, engine, 1, &[]).await;
        let input: String = (0..50).map(|i| format!("m{i}\n")).collect();
        let args = ["-P", "-t", topic, "-p", "0", "-X", "enable.idempotence=true", "-X", "linger.ms=20"];
        tokio::task::spawn_blocking(move || kcat_with_input(addr, &args, &input)).await.unwrap();
        let headers = stored_batches(&client, topic, 0).await;
        let records: i32 = headers.iter().map(|h| h.records_count).sum();
        assert_eq!(records, 50, "{topic}: every message once");
        assert!(headers.iter().all(|h| h.producer_id >= 1 && h.producer_epoch == 0), "{topic}: {headers:?}");
        assert_eq!(headers[0].base_sequence, 0, "{topic}: the producer's first sequence");
    }
    // A transactional id is refused clearly (Kafka transactions are not served).
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            kafka_protocol::protocol::StrBytes::from_static_str("tx-1"),
        )))
        .with_transaction_timeout_ms(60_000);
    let answer = exchange(&mut stream, &request(ApiKey::InitProducerId, 4, 3, &req)).await.unwrap();
    let mut buf = bytes::Bytes::from(answer);
    ResponseHeader::decode(&mut buf, ApiKey::InitProducerId.response_header_version(4)).unwrap();
    let r = kafka_protocol::messages::InitProducerIdResponse::decode(&mut buf, 4).unwrap();
    assert_eq!((r.error_code, r.producer_id.0), (42, -1));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_of_empty_partitions_waits_once_and_reports_bad_offsets() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    create(&client, "kafka-wait", Engine::Segment, 3, &[]).await;
    let fetch = |offsets: [i64; 3]| {
        let partitions = (0..3)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offsets[p as usize])
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let topic = FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("kafka-wait")))
            .with_partitions(partitions);
        FetchRequest::default()
            .with_max_wait_ms(1000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic])
    };
    let mut stream = tokio::net::TcpStream::connect(broker.kafka_addr().unwrap()).await.unwrap();
    let started = std::time::Instant::now();
    let answer = exchange(&mut stream, &request(ApiKey::Fetch, 12, 1, &fetch([0, 0, 0]))).await.unwrap();
    // One wait of max_wait_ms for the whole request, not one per empty partition (3 s).
    assert!(started.elapsed() < std::time::Duration::from_millis(2500), "{:?}", started.elapsed());
    let mut buf = bytes::Bytes::from(answer);
    ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(12)).unwrap();
    let r = FetchResponse::decode(&mut buf, 12).unwrap();
    assert!(r.responses[0].partitions.iter().all(|p| p.error_code == 0 && p.high_watermark == 0), "{r:?}");
    let answer = exchange(&mut stream, &request(ApiKey::Fetch, 12, 2, &fetch([0, 99, 0]))).await.unwrap();
    let mut buf = bytes::Bytes::from(answer);
    ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(12)).unwrap();
    let r = FetchResponse::decode(&mut buf, 12).unwrap();
    assert_eq!(r.responses[0].partitions[1].error_code, 1, "OFFSET_OUT_OF_RANGE: {r:?}");
    broker.shutdown().await.unwrap();
}
