//! The client library's features against a real broker: send modes, compression, back-pressure, fetch
//! mode, tag filters, timestamps, admin calls, and errors that keep the gRPC code and the broker's words.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::e2e_common::{create, start};
use janus_client::{
    Client, ClientError, ClientOptions, Code, Compression, ConsumerConfig, Engine, FetchMode, Position, ProducerConfig,
    ProducerRecord, SendMode,
};

/// Reads `n` values of `topic` (all partitions, from the start), in arrival order.
async fn read_values(client: &Client, topic: &str, n: usize, config: ConsumerConfig) -> Vec<String> {
    let mut consumer = client.consumer(topic, config).await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let Some(r) = consumer.poll(Some(Duration::from_secs(10))).await.unwrap() else {
            panic!("only {} of {n} messages", out.len())
        };
        out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_modes_and_read_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in [Engine::Segment, Engine::Commitlog] {
        let topic = format!("modes-{engine}");
        create(&client, &topic, engine, 1, &[]).await;
        let mut expected = Vec::new();
        for (mode, in_flight) in [(SendMode::Unary, 1), (SendMode::Stream, 1), (SendMode::Unary, 4)] {
            let requests = Arc::new(AtomicUsize::new(0));
            let seen = requests.clone();
            let config = ProducerConfig {
                mode,
                max_in_flight: in_flight,
                batch_bytes: 2048,
                observer: Some(Arc::new(move |r| {
                    assert!(r.ok);
                    seen.fetch_add(1, Ordering::Relaxed);
                })),
                ..ProducerConfig::default()
            };
            let producer = client.producer(config);
            let mut deliveries = Vec::new();
            for i in 0..500 {
                let value = format!("{mode:?}-{in_flight}-{i:04}-{}", "x".repeat(50));
                deliveries.push(producer.send(ProducerRecord::new(topic.clone(), value.clone())).await.unwrap());
                expected.push(value);
            }
            let appends = producer.flush().await.unwrap();
            assert_eq!(appends.iter().map(|a| a.count()).sum::<u64>(), 500);
            assert!(requests.load(Ordering::Relaxed) >= 1);
            let mut offsets = Vec::new();
            for d in deliveries {
                offsets.push(d.await.unwrap().offset);
            }
            let base = offsets[0];
            if in_flight == 1 {
                // One request in flight per partition keeps the send order.
                assert_eq!(offsets, (base..base + 500).collect::<Vec<_>>(), "{mode:?}");
            } else {
                offsets.sort_unstable();
                offsets.dedup();
                assert_eq!(offsets.len(), 500);
            }
        }
        // Subscribe mode sees the offsets in order; the pipelined run may be stored in any order.
        let got = read_values(&client, &topic, 1500, ConsumerConfig::default()).await;
        assert_eq!(got[..1000], expected[..1000]);
        let mut tail = got[1000..].to_vec();
        tail.sort();
        assert_eq!(tail, expected[1000..]);
        // Fetch (long-poll) mode reads the same.
        let fetch =
            ConsumerConfig { mode: FetchMode::Fetch { max_wait: Duration::from_millis(200) }, ..Default::default() };
        assert_eq!(read_values(&client, &topic, 1500, fetch).await, got);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_produce_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _) = start(dir.path()).await;
    let url = format!("http://{}", broker.grpc_addr());
    for compression in [Compression::Gzip, Compression::Zstd] {
        let options = ClientOptions { compression, ..ClientOptions::default() };
        let client = Client::connect_with(&url, options).await.unwrap();
        let topic = format!("compressed-{compression:?}");
        create(&client, &topic, Engine::Segment, 1, &[]).await;
        let producer = client.producer(ProducerConfig::default());
        for i in 0..100 {
            drop(
                producer.send(ProducerRecord::new(topic.clone(), format!("{i} {}", "abc".repeat(100)))).await.unwrap(),
            );
        }
        let appends = producer.flush().await.unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(appends[0].count(), 100);
        let got = read_values(&client, &topic, 100, ConsumerConfig::default()).await;
        assert!(got[99].starts_with("99 abcabc"));
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_bounds_buffered_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "bp", Engine::Commitlog, 2, &[]).await;
    // A 64 KiB bound with 1 KiB messages: send must wait for acknowledgements, and all arrive.
    let config = ProducerConfig {
        max_buffered_bytes: 64 * 1024,
        batch_bytes: 16 * 1024,
        linger: Duration::from_millis(50),
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    let value = bytes::Bytes::from(vec![b'v'; 1024]);
    let sending = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..2000 {
            drop(producer.send(ProducerRecord::new("bp", value.clone())).await.unwrap());
        }
        producer.close().await.unwrap()
    });
    let appends = sending.await.expect("back-pressure never deadlocks");
    assert_eq!(appends.iter().map(|a| a.count()).sum::<u64>(), 2000);
    let err = producer.send(ProducerRecord::new("bp", "late")).await.unwrap_err();
    assert_eq!(err, ClientError::Closed("producer"));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_keys_timestamps_and_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in [Engine::Segment, Engine::Commitlog] {
        let topic = format!("tags-{engine}");
        create(&client, &topic, engine, 3, &[]).await;
        let producer = client.producer(ProducerConfig::default());
        let mut deliveries = Vec::new();
        for i in 0..30i64 {
            let tag = if i % 3 == 0 { "red" } else { "green" };
            let record = ProducerRecord::new(topic.clone(), format!("v{i}"))
                .key(format!("key{}", i % 5))
                .tag(tag)
                .header("n", i.to_string())
                .timestamp_ms(1_700_000_000_000 + i * 1000);
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.close().await.unwrap();
        for (i, d) in deliveries.into_iter().enumerate() {
            let stored = d.await.unwrap();
            // Keys go where Kafka's partitioner puts them.
            let key = format!("key{}", i % 5);
            assert_eq!(stored.partition, janus_client::partitioner::partition_for_key(key.as_bytes(), 3));
        }
        let red = ConsumerConfig { tags: vec!["red".into()], ..ConsumerConfig::default() };
        let mut got = read_values(&client, &topic, 10, red).await;
        got.sort();
        let mut want: Vec<String> = (0..30).filter(|i| i % 3 == 0).map(|i| format!("v{i}")).collect();
        want.sort();
        assert_eq!(got, want);
        // Start at a timestamp: only messages at or after it.
        let late = ConsumerConfig { start: Position::Timestamp(1_700_000_025_000), ..ConsumerConfig::default() };
        let mut consumer = client.consumer(&topic, late).await.unwrap();
        let mut values = Vec::new();
        while let Some(r) = consumer.poll(Some(Duration::from_millis(500))).await.unwrap() {
            assert!(r.timestamp_ms >= 1_700_000_025_000, "{r:?}");
            assert_eq!(r.header("n").map(|v| v.to_vec()), Some(r.value.as_ref().unwrap()[1..].to_vec()));
            values.push(r);
        }
        assert_eq!(values.len(), 5);
        let d = client.describe_topic(&topic).await.unwrap();
        assert_eq!(d.topic.engine, Some(engine));
        assert_eq!(d.partitions.iter().map(|p| p.log_end_offset).sum::<i64>(), 30);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_code_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "errs", Engine::Segment, 1, &[]).await;
    let producer = client.producer(ProducerConfig::default());
    for i in 0..5 {
        drop(producer.send(ProducerRecord::new("errs", format!("{i}"))).await.unwrap());
    }
    producer.flush().await.unwrap();

    let start_at_9 = ConsumerConfig { start: Position::Offset(9), ..ConsumerConfig::default() };
    let mut consumer = client.consumer("errs", start_at_9).await.unwrap();
    let err = consumer.poll(Some(Duration::from_secs(10))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::OutOfRange));
    let text = err.to_string();
    assert!(text.starts_with("OUT_OF_RANGE: offset 9 is out of range") && text.contains("0..5"), "{text}");

    let err = client.describe_topic("missing").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    let err = producer.send(ProducerRecord::new("missing", "x")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let err = producer.send(ProducerRecord::new("errs", "x").partition(3)).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    let mut no_group = client.consumer("errs", ConsumerConfig::default()).await.unwrap();
    assert!(matches!(no_group.commit().await, Err(ClientError::InvalidArgument(_))));
    let err = client.consumer("errs", ConsumerConfig { partitions: Some(vec![1]), ..Default::default() }).await;
    assert!(matches!(err, Err(ClientError::InvalidArgument(_))));

    // Groups: commit, fetch, reset, describe through the library.
    let mut consumer = client.consumer("errs", ConsumerConfig::with_group("g")).await.unwrap();
    for _ in 0..3 {
        consumer.poll(Some(Duration::from_secs(10))).await.unwrap().unwrap();
    }
    consumer.commit().await.unwrap();
    assert_eq!(client.fetch_offsets("g", "errs").await.unwrap().get(&0), Some(&3));
    let d = client.describe_group("g").await.unwrap().partitions;
    assert_eq!((d[0].committed_offset, d[0].log_end_offset, d[0].lag), (3, 5, 2));
    // A member commits as the member; resets (commits without a member) need a group without members.
    consumer.close().await.unwrap();
    let reset = client.reset_offsets("g", "errs", Position::Latest, None).await.unwrap();
    assert_eq!(reset.get(&0), Some(&5));
    let groups: Vec<String> = client.list_groups().await.unwrap().into_iter().map(|g| g.group).collect();
    assert_eq!(groups, vec!["g".to_string()]);

    // The broker goes away: calls fail with UNAVAILABLE, not a hang or a panic.
    broker.shutdown().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), client.list_topics()).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(Code::Unavailable), "{err}");
}
