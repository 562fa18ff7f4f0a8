//! Crash safety end to end: producers write to a `flush.policy=sync` topic of each engine with
//! `wait_durable`, `janusd` is killed with SIGKILL mid-stream, and after a restart every acknowledged message
//! is there, at the offset it was acknowledged with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::e2e_common::{Janusd, create};
use janus_client::{Client, ConsumerConfig, Engine, ProducerConfig, ProducerRecord};

/// (partition, offset) -> value of every acknowledged message.
type Acked = Arc<Mutex<BTreeMap<(u32, i64), String>>>;

/// Sends until `limit` messages or until the broker goes away; records what was acknowledged.
async fn write_until_killed(client: Client, topic: String, acked: Acked, limit: u64) {
    let config = ProducerConfig {
        wait_durable: true,
        batch_bytes: 4 * 1024,
        linger: Duration::from_millis(1),
        max_in_flight: 2,
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    let mut waiting = tokio::task::JoinSet::new();
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for i in 0..limit {
        if failed.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let value = format!("{topic}-{i}");
        let Ok(delivery) = producer.send(ProducerRecord::new(topic.clone(), value.clone())).await else { break };
        let (acked, failed) = (acked.clone(), failed.clone());
        waiting.spawn(async move {
            match delivery.await {
                Ok(stored) => {
                    acked.lock().unwrap().insert((stored.partition, stored.offset), value);
                }
                Err(_) => failed.store(true, std::sync::atomic::Ordering::Relaxed),
            }
        });
        if i % 64 == 63 {
            // Let acknowledgements land so the kill happens with many of them recorded.
            tokio::task::yield_now().await;
        }
        while waiting.len() > 10_000 {
            waiting.join_next().await;
        }
    }
    let _ = producer.flush().await;
    while waiting.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    let topics = [("crash-seg", Engine::Segment), ("crash-cl", Engine::Commitlog)];
    for (name, engine) in topics {
        create(&client, name, engine, 2, &[("flush.policy", "sync")]).await;
    }
    let acked: Vec<Acked> = topics.iter().map(|_| Acked::default()).collect();
    let writers: Vec<_> = topics
        .iter()
        .zip(&acked)
        .map(|((name, _), acked)| {
            tokio::spawn(write_until_killed(client.clone(), name.to_string(), acked.clone(), 200_000))
        })
        .collect();
    // Kill once both topics have a good number of acknowledged messages (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.iter().any(|a| a.lock().unwrap().len() < 2_000) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    janusd.kill9();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(30), w).await.expect("writers stop once the broker is gone").unwrap();
    }
    drop(client);

    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    for ((name, engine), acked) in topics.iter().zip(&acked) {
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 100, "{name}: only {} messages were acknowledged before the kill", acked.len());
        let description = client.describe_topic(name).await.unwrap();
        let config = ConsumerConfig { auto_commit: None, ..ConsumerConfig::default() };
        let mut consumer = client.consumer(name, config).await.unwrap();
        let end: i64 = description.partitions.iter().map(|p| p.log_end_offset).sum();
        let mut stored = BTreeMap::new();
        while (stored.len() as i64) < end {
            let Some(r) = consumer.poll(Some(Duration::from_secs(10))).await.unwrap() else { break };
            stored.insert((r.partition, r.offset), String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        eprintln!("{name}: {} acknowledged before the kill, {} stored after the restart", acked.len(), stored.len());
        let missing: Vec<_> = acked.iter().filter(|(k, v)| stored.get(k) != Some(v)).take(5).collect();
        assert!(
            missing.is_empty(),
            "{name} ({engine}): {} acknowledged messages, {} stored after the crash; first missing: {missing:?}",
            acked.len(),
            stored.len()
        );
    }
    janusd.kill9();
}
