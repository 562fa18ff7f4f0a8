//! End to end through the client library, for both engines: produce 100,000 messages, consume them all in
//! order per partition with a group (committing half way and at the end), restart the broker, and resume
//! from the committed offsets: nothing is delivered twice and nothing is missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::e2e_common::{create, start};
use janus_client::{Client, ConsumerConfig, Engine, ProducerConfig, ProducerRecord};

const MESSAGES: u64 = 100_000;
const PARTITIONS: u32 = 4;
const KEYS: u64 = 32;

/// Value of message `i`: its key and its sequence number within the key.
fn value(i: u64) -> String {
    format!("k{}-{}", i % KEYS, i / KEYS)
}

/// Produces messages `from..to` (keyed, so each key stays on one partition in order).
async fn produce(client: &Client, topic: &str, from: u64, to: u64) {
    let producer = client.producer(ProducerConfig { batch_bytes: 64 * 1024, ..ProducerConfig::default() });
    let mut sampled = Vec::new();
    for i in from..to {
        let record = ProducerRecord::new(topic, value(i)).key(format!("k{}", i % KEYS));
        let delivery = producer.send(record).await.expect("send");
        if i % 9973 == 0 {
            sampled.push(delivery);
        }
    }
    let appends = producer.close().await.expect("flush");
    assert_eq!(appends.iter().map(|a| a.count()).sum::<u64>(), to - from, "{appends:?}");
    for d in sampled {
        let stored = d.await.expect("acknowledged");
        assert!(stored.partition < PARTITIONS && stored.offset >= 0, "{stored:?}");
    }
}

/// What a consumer has seen: per partition the last offset, per key the last sequence number.
#[derive(Default)]
struct Seen {
    last_offset: BTreeMap<u32, i64>,
    last_seq: BTreeMap<u64, i64>,
    count: u64,
}

impl Seen {
    fn check(&mut self, partition: u32, offset: i64, value: &str) {
        let (key, seq) = value.trim_start_matches('k').split_once('-').expect("k<key>-<seq>");
        let (key, seq): (u64, i64) = (key.parse().unwrap(), seq.parse().unwrap());
        if let Some(&prev) = self.last_offset.get(&partition) {
            assert_eq!(offset, prev + 1, "partition {partition}: offsets must be consecutive");
        }
        self.last_offset.insert(partition, offset);
        let prev = self.last_seq.get(&key).copied().unwrap_or(-1);
        assert_eq!(seq, prev + 1, "key {key}: each message exactly once and in order (got {value})");
        self.last_seq.insert(key, seq);
        self.count += 1;
    }
}

/// Consumes `n` messages with the group, checking order, then closes (which commits).
async fn consume(client: &Client, topic: &str, group: &str, n: u64, seen: &mut Seen) {
    let mut consumer = client.consumer(topic, ConsumerConfig::with_group(group)).await.expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while got < n {
        assert!(Instant::now() < deadline, "only {got} of {n} messages arrived in time");
        let Some(r) = consumer.poll(Some(Duration::from_secs(10))).await.expect("poll") else {
            panic!("nothing arrived for 10 s after {got} of {n} messages")
        };
        seen.check(r.partition, r.offset, std::str::from_utf8(r.value.as_deref().unwrap()).unwrap());
        got += 1;
    }
    consumer.close().await.expect("close commits");
}

/// After everything was consumed and committed: a resumed consumer gets nothing more.
async fn assert_nothing_more(client: &Client, topic: &str, group: &str) {
    let mut consumer = client.consumer(topic, ConsumerConfig::with_group(group)).await.expect("consumer");
    // Wait for the member to own every partition, so the quiet poll below means something.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (consumer.assignment().len() as u32) < PARTITIONS {
        assert!(Instant::now() < deadline, "the member got {:?} of {PARTITIONS} partitions", consumer.assignment());
        let early = consumer.poll(Some(Duration::from_millis(50))).await.expect("poll");
        assert!(early.is_none(), "re-delivered: {early:?}");
    }
    let extra = consumer.poll(Some(Duration::from_millis(500))).await.expect("poll");
    assert!(extra.is_none(), "re-delivered: {extra:?}");
    // Leave the group: a member that just went away would hold its partitions until its session timeout.
    consumer.close().await.expect("close leaves the group");
}

async fn round_trip(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("rt-{engine}");
    let group = "e2e-group";
    let mut seen = Seen::default();
    {
        let (broker, client) = start(dir.path()).await;
        create(&client, &topic, engine, PARTITIONS, &[]).await;
        produce(&client, &topic, 0, MESSAGES).await;
        // Half, commit, then the rest with a fresh consumer that resumes from the commit.
        consume(&client, &topic, group, MESSAGES / 2, &mut seen).await;
        consume(&client, &topic, group, MESSAGES - MESSAGES / 2, &mut seen).await;
        assert_eq!(seen.count, MESSAGES);
        assert_nothing_more(&client, &topic, group).await;
        let lag: i64 = client.describe_group(group).await.unwrap().partitions.iter().map(|p| p.lag).sum();
        assert_eq!(lag, 0);
        broker.shutdown().await.expect("clean shutdown");
    }
    let (broker, client) = start(dir.path()).await;
    let committed = client.fetch_offsets(group, &topic).await.unwrap();
    assert_eq!(committed.values().sum::<i64>() as u64, MESSAGES, "{committed:?}");
    assert_nothing_more(&client, &topic, group).await;
    // New messages after the restart arrive exactly once, in order.
    produce(&client, &topic, MESSAGES, MESSAGES + 1000).await;
    consume(&client, &topic, group, 1000, &mut seen).await;
    assert_nothing_more(&client, &topic, group).await;
    assert_eq!(seen.count, MESSAGES + 1000);
    broker.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_100k_messages_round_trip_with_a_group_across_a_restart() {
    round_trip(Engine::Segment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commitlog_100k_messages_round_trip_with_a_group_across_a_restart() {
    round_trip(Engine::Commitlog).await;
}
