//! Timers survive kill -9: 100,000 messages scheduled on a real `janusd` (half on each engine), the
//! process killed with SIGKILL while they are falling due, then restarted. None is lost, none is
//! delivered before its due time, and duplicates (a delivery round appended but not yet removed from the
//! store) stay within one round (`messaging.timer_delivery_batch`, 10,000).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_client::{Client, Engine, proto as v1};

use crate::e2e_common::{Janusd, create};

const PER_ENGINE: usize = 50_000;
const REQUEST: usize = 1000;
const ROUND: usize = 10_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Every record of partition 0 of `topic`: (id, due, timestamp).
async fn read_back(client: &Client, topic: &str) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let request =
            v1::FetchRequest { topic: topic.into(), partition: 0, offset, max_bytes: 4 << 20, ..Default::default() };
        let r = client.fetch(request).await.unwrap();
        if r.messages.is_empty() {
            return out;
        }
        offset = r.next_offset;
        for m in r.messages {
            let h = |name: &str| {
                m.headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value.as_deref())
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            out.push((h("UNIQ_KEY"), h("JANUS_TIMER_DUE_MS").parse().unwrap_or(-1), m.timestamp_ms));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_timers_survive_kill_9_none_lost_none_early() {
    let dir = tempfile::tempdir().unwrap();
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    let topics = [("timers-segment", Engine::Segment), ("timers-commitlog", Engine::Commitlog)];
    for (name, engine) in topics {
        create(&client, name, engine, 1, &[]).await;
    }
    // Due between 12 s and 16 s from now, spread evenly; the kill comes at 14 s.
    let t0 = now_ms();
    let (first_due, spread) = (t0 + 12_000, 4_000i64);
    let mut due_of: HashMap<String, i64> = HashMap::new();
    for (name, _) in topics {
        for chunk in 0..PER_ENGINE / REQUEST {
            let messages = (0..REQUEST)
                .map(|i| {
                    let n = (chunk * REQUEST + i) as i64;
                    let due = first_due + n * spread / PER_ENGINE as i64;
                    v1::Message {
                        value: Some(Bytes::from(format!("{name}-{n}"))),
                        headers: vec![v1::Header {
                            key: "TIMER_DELIVER_MS".into(),
                            value: Some(Bytes::from(due.to_string())),
                        }],
                        ..Default::default()
                    }
                })
                .collect();
            let r = client.produce_messages(name, Some(0), messages, None, false).await.unwrap();
            assert_eq!(r.scheduled.len(), REQUEST);
            for s in r.scheduled {
                due_of.insert(s.message_id, s.deliver_at_ms);
            }
        }
    }
    assert!(now_ms() < first_due, "scheduling took {} ms: too slow for the test's timeline", now_ms() - t0);
    tokio::time::sleep(Duration::from_millis((first_due + spread / 2 - now_ms()).max(0) as u64)).await;
    janusd.kill9();
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut records = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if now_ms() < first_due + spread + 1000 {
            continue;
        }
        records.clear();
        for (name, _) in topics {
            records.extend(read_back(&client, name).await);
        }
        seen.clear();
        for (id, _, _) in &records {
            *seen.entry(id.clone()).or_default() += 1;
        }
        if due_of.keys().all(|id| seen.contains_key(id)) {
            break;
        }
    }
    let lost = due_of.keys().filter(|id| !seen.contains_key(*id)).count();
    assert_eq!(lost, 0, "{lost} of {} scheduled messages never arrived", due_of.len());
    for (id, due, ts) in &records {
        assert_eq!(due_of.get(id), Some(due), "message {id} carries its due time");
        assert!(ts >= due, "message {id} delivered at {ts}, before its due time {due}");
    }
    let duplicates = records.len() - due_of.len();
    eprintln!("kill -9 with {} pending timers: none lost, none early, {duplicates} duplicates", due_of.len());
    assert!(duplicates <= 2 * ROUND, "{duplicates} duplicates: more than one delivery round per engine topic");
    drop(janusd);
}
