//! The background tasks: retention (both engines, every `retention_check_interval_ms`) deletes old segments,
//! and compaction keeps the newest record per key of a `compact` segment topic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use janus_proto::v1;

async fn log_start(c: &mut Clients, topic: &str) -> i64 {
    let d = c.admin.describe_topic(v1::DescribeTopicRequest { name: topic.into() }).await.unwrap().into_inner();
    d.partitions[0].log_start_offset
}

#[tokio::test]
async fn retention_and_compaction_run_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.retention_check_interval_ms = 100;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "old", v1::Engine::Segment, 1, &[("retention.ms", "1"), ("segment.bytes", "1024")]).await;
    create(&mut c, "latest", v1::Engine::Segment, 1, &[("cleanup.policy", "compact"), ("segment.bytes", "1024")]).await;
    let value = "r".repeat(700);
    for i in 0..10 {
        produce(&mut c, "old", Some(0), vec![msg(None, &value)]).await;
        let key = format!("k{}", i % 3);
        produce(&mut c, "latest", Some(0), vec![msg(Some(&key), &format!("{key}={i}-{value}"))]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_start(&mut c, "old").await == 0 {
        assert!(Instant::now() < deadline, "retention never deleted a segment");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Compaction: reading everything gives fewer records than were written, and each key's newest value.
    loop {
        let mut offset = 0;
        let mut newest: BTreeMap<String, String> = BTreeMap::new();
        let mut count = 0;
        loop {
            let r = fetch(&mut c, "latest", 0, offset).await.unwrap();
            if r.messages.is_empty() {
                break;
            }
            for m in &r.messages {
                let key = String::from_utf8_lossy(m.key.as_deref().unwrap()).into_owned();
                let v = String::from_utf8_lossy(m.value.as_deref().unwrap()).into_owned();
                newest.insert(key, v.split('-').next().unwrap().to_string());
                count += 1;
            }
            offset = r.next_offset;
        }
        assert_eq!(offset, 10);
        let expected: BTreeMap<String, String> = [("k0", "k0=9"), ("k1", "k1=7"), ("k2", "k2=8")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(newest, expected);
        if count < 10 {
            break;
        }
        assert!(Instant::now() < deadline, "compaction never removed a record");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.shutdown().await.unwrap();
}
