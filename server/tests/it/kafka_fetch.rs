//! Zero-copy Fetch through the Kafka face: on a segment topic the records of a Fetch response are the
//! segment file's bytes, unmodified, sent with `sendfile(2)` (the `janus_response_bytes_total` metric counts
//! them under `path="sendfile"`), in every version 4-12; a commitlog topic's records are re-encoded with
//! their `TAGS` and `KEYS` headers; one request over many partitions with a huge `partition_max_bytes`
//! gets every partition's batches. The core's `Shipped` format is checked on both engines.

use std::path::Path;

use bytes::Bytes;
use janus_proto::v1;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

use crate::common::{Clients, config, create, msg, produce, scrape, start};
use crate::kafka_face::{exchange, request};

/// A Fetch of `partitions` (topic, partition, offset) with `partition_max_bytes` each, not waiting.
fn fetch_request(partitions: &[(&str, i32, i64)], partition_max_bytes: i32, max_bytes: i32) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, partition, offset) in partitions {
        let p = FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(*offset)
            .with_partition_max_bytes(partition_max_bytes);
        match topics.iter_mut().find(|t| t.topic.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(max_bytes).with_topics(topics)
}

/// Sends `req` as a Fetch of `version` and decodes the answer (asserting the correlation id).
async fn fetch(stream: &mut tokio::net::TcpStream, version: i16, req: &FetchRequest) -> FetchResponse {
    let id = 1000 + i32::from(version);
    let answer = exchange(stream, &request(ApiKey::Fetch, version, id, req)).await.expect("answered");
    let mut buf = Bytes::from(answer);
    let header = ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, id, "v{version}");
    let r = FetchResponse::decode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
    assert!(buf.is_empty(), "v{version}: {} bytes after the response", buf.len());
    r
}

/// The bytes of the first segment of partition 0 of `topic` under `data_dir`.
fn first_segment(data_dir: &Path, topic: &str) -> Vec<u8> {
    std::fs::read(data_dir.join("segment").join(format!("{topic}-0")).join(format!("{:020}.log", 0))).unwrap()
}

/// The `janus_response_bytes_total` series of the Kafka face for `path` (0 before any).
async fn sent_bytes(metrics: std::net::SocketAddr, path: &str) -> f64 {
    let text = scrape(metrics).await;
    text.lines()
        .filter(|l| l.starts_with("janus_response_bytes_total{"))
        .filter(|l| l.contains("face=\"kafka\"") && l.contains(&format!("path=\"{path}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Produces `batches` requests of `per_batch` messages of `size` bytes to `topic`'s `partition` (each
/// request is stored as one batch).
async fn fill(c: &mut Clients, topic: &str, partition: u32, batches: usize, per_batch: usize, size: usize) {
    for b in 0..batches {
        let messages = (0..per_batch)
            .map(|i| {
                let mut m = msg(Some(&format!("k{i}")), &format!("{b}-{i}-{}", "x".repeat(size)));
                m.timestamp_ms = 1_700_000_000_000 + (b * per_batch + i) as i64;
                m
            })
            .collect();
        produce(c, topic, Some(partition), messages).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_fetch_sends_the_stored_bytes_unmodified_by_sendfile_in_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "zc-seg", v1::Engine::Segment, 1, &[]).await;
    fill(&mut c, "zc-seg", 0, 6, 40, 300).await;
    let stored = first_segment(dir.path(), "zc-seg");
    assert!(stored.len() > 6 * 40 * 300, "{}", stored.len());
    let before = sent_bytes(broker.metrics_addr(), "sendfile").await;
    let mut stream = tokio::net::TcpStream::connect(broker.kafka_addr().unwrap()).await.unwrap();
    for version in 4..=12 {
        // From the start, and from the middle of the first batch: the whole batch comes back either way.
        for offset in [0, 17] {
            let r = fetch(&mut stream, version, &fetch_request(&[("zc-seg", 0, offset)], 1 << 20, 16 << 20)).await;
            let p = &r.responses[0].partitions[0];
            assert_eq!((p.error_code, p.high_watermark, p.last_stable_offset), (0, 240, 240), "v{version}");
            let records = p.records.as_ref().expect("records");
            assert!(records[..] == stored[..], "v{version} from {offset}: the records are the segment's bytes");
        }
    }
    let after = sent_bytes(broker.metrics_addr(), "sendfile").await;
    // Other tests of this process only add to the series.
    assert!(after - before >= (18 * stored.len()) as f64, "sendfile sent {} bytes", after - before);
    // The records decode as the messages produced.
    let r = fetch(&mut stream, 12, &fetch_request(&[("zc-seg", 0, 0)], 1 << 20, 16 << 20)).await;
    let mut records = r.responses[0].partitions[0].records.clone().unwrap();
    let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
    let values: Vec<Bytes> = sets.iter().flat_map(|s| s.records.iter().filter_map(|r| r.value.clone())).collect();
    assert_eq!(values.len(), 240);
    assert!(values[41].starts_with(b"1-1-x"), "{:?}", &values[41][..8]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commitlog_fetch_reencodes_the_records_with_their_tags_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "zc-cl", v1::Engine::Commitlog, 1, &[]).await;
    let messages = (0..30)
        .map(|i| {
            let mut m = msg(Some(&format!("key{i}")), &format!("value-{i}"));
            m.headers = vec![
                v1::Header { key: "TAGS".into(), value: Some(Bytes::from(format!("Tag{}", i % 3))) },
                v1::Header { key: "KEYS".into(), value: Some(Bytes::from(format!("order-{i} user-{}", i % 5))) },
            ];
            m
        })
        .collect();
    produce(&mut c, "zc-cl", Some(0), messages).await;
    let addr = broker.kafka_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    for version in [4, 11, 12] {
        let r = fetch(&mut stream, version, &fetch_request(&[("zc-cl", 0, 0)], 1 << 20, 16 << 20)).await;
        let mut records = r.responses[0].partitions[0].records.clone().unwrap();
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        let all: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
        assert_eq!(all.len(), 30, "v{version}");
        for (i, rec) in all.iter().enumerate() {
            assert_eq!(rec.offset, i as i64);
            assert_eq!(rec.value.as_deref(), Some(format!("value-{i}").as_bytes()));
            let header = |k: &'static str| rec.headers.get(&StrBytes::from_static_str(k)).cloned().flatten();
            assert_eq!(header("TAGS").as_deref(), Some(format!("Tag{}", i % 3).as_bytes()), "v{version} #{i}");
            assert_eq!(header("KEYS").as_deref(), Some(format!("order-{i} user-{}", i % 5).as_bytes()));
        }
    }
    // A Kafka client sees them too.
    let args = ["-C", "-t", "zc-cl", "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%h\\n"];
    let out = tokio::task::spawn_blocking(move || crate::kafka_face::kcat(addr, &args)).await.unwrap();
    // (The broker adds the message id, `UNIQ_KEY`, after them.)
    assert!(out.lines().next().is_some_and(|l| l.starts_with("TAGS=Tag0,KEYS=order-0 user-0")), "{out}");
    assert_eq!(out.lines().count(), 30);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_over_many_partitions_with_a_huge_partition_max_bytes_gets_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "zc-many-seg", v1::Engine::Segment, 8, &[]).await;
    create(&mut c, "zc-many-cl", v1::Engine::Commitlog, 3, &[]).await;
    let mut wanted = Vec::new();
    for p in 0..8 {
        fill(&mut c, "zc-many-seg", p, 3, 50, 1000).await;
        wanted.push(("zc-many-seg", p as i32, 0));
    }
    for p in 0..3 {
        fill(&mut c, "zc-many-cl", p, 2, 50, 1000).await;
        wanted.push(("zc-many-cl", p as i32, 0));
    }
    let mut stream = tokio::net::TcpStream::connect(broker.kafka_addr().unwrap()).await.unwrap();
    for version in [4, 12] {
        let r = fetch(&mut stream, version, &fetch_request(&wanted, i32::MAX, i32::MAX)).await;
        let mut partitions = 0;
        for t in &r.responses {
            let expected = if t.topic.0.as_str() == "zc-many-seg" { 150 } else { 100 };
            for p in &t.partitions {
                assert_eq!(
                    (p.error_code, p.high_watermark),
                    (0, expected),
                    "v{version} {:?} {}",
                    t.topic,
                    p.partition_index
                );
                let mut records = p.records.clone().unwrap();
                let count: usize =
                    RecordBatchDecoder::decode_all(&mut records).unwrap().iter().map(|s| s.records.len()).sum();
                assert_eq!(count, expected as usize, "v{version} {:?} {}", t.topic, p.partition_index);
                partitions += 1;
            }
        }
        assert_eq!(partitions, 11, "v{version}");
    }
    // A small request limit still returns whole batches: at least the first partition's first batch.
    let r = fetch(&mut stream, 12, &fetch_request(&wanted, i32::MAX, 1)).await;
    let first = r.responses[0].partitions[0].records.clone().unwrap();
    assert!(first.len() > 50 * 1000, "the first batch whole: {}", first.len());
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_format_keeps_segment_reads_as_file_ranges_and_encodes_the_others() {
    use janus_core::{FetchRequest as CoreFetch, Fetched, RecordFormat};
    let dir = tempfile::tempdir().unwrap();
    let (core, stop) = crate::common::open_core(dir.path(), Default::default(), Default::default());
    for (topic, engine) in
        [("shipped-seg", janus_api::EngineKind::Segment), ("shipped-cl", janus_api::EngineKind::Commitlog)]
    {
        core.blocking(move |r| r.create_topic(topic, Some(engine), 1, Default::default()).map(|_| ())).await.unwrap();
        let messages = (0..10)
            .map(|i| janus_api::NewRecord {
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Vec::new(),
                timestamp_ms: 0,
            })
            .collect();
        let permit = core.admit(None, 1 << 16).await.unwrap();
        let req = janus_core::ProduceRequest {
            topic: topic.into(),
            partition: Some(0),
            messages,
            wait_durable: false,
            schedule: None,
        };
        core.produce(permit, req).await.unwrap();
        let req = CoreFetch {
            topic: topic.into(),
            partition: 0,
            offset: 4,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
            tags: Vec::new(),
            format: RecordFormat::Shipped,
        };
        let read = core.fetch(None, req).await.unwrap();
        assert_eq!(read.next_offset, 10, "{topic}");
        match (engine, &read.data) {
            (janus_api::EngineKind::Segment, Fetched::File { len, records, .. }) => {
                // The whole batch from its start; the count is from the offset asked for, without reading.
                assert_eq!((*records, *len as usize), (6, read.data.batch_len()), "{topic}");
            }
            (janus_api::EngineKind::Commitlog, Fetched::Batches { bytes, records }) => {
                assert_eq!(*records, 6, "{topic}: re-encoded from the offset asked for");
                assert!(!bytes.is_empty());
            }
            (engine, other) => panic!("{engine:?}: {other:?}"),
        }
    }
    stop.send(true).unwrap();
    core.registry().shutdown().unwrap();
}
