//! Timer delivery under tokio's paused clock (the messaging layer's `Clock::Tokio`): messages scheduled with
//! every kind of schedule, in random order of due times, each appear in their partition no earlier than
//! their due time and at most one precision tick (1 s) after it, with no wall-clock waiting.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use janus_api::{EngineKind, Header, NewRecord};
use janus_core::messaging::config::Clock;
use janus_core::messaging::{MessagingConfig, Schedule};
use janus_core::{Core, FetchRequest, Fetched, ProduceRequest, RecordFormat};

fn record(delay_header: Option<(&str, String)>) -> NewRecord {
    NewRecord {
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: delay_header.map(|(k, v)| Header::new(k, Bytes::from(v))).into_iter().collect(),
        timestamp_ms: 0,
    }
}

async fn produce(core: &Core, messages: Vec<NewRecord>, schedule: Option<Schedule>) -> Vec<(String, i64)> {
    let permit = core.admit(None, 1 << 16).await.unwrap();
    let request =
        ProduceRequest { topic: "paused".into(), partition: Some(0), messages, wait_durable: false, schedule };
    let outcome = core.produce(permit, request).await.unwrap();
    outcome.scheduled.into_iter().map(|s| (s.message_id, s.deliver_at_ms)).collect()
}

async fn delivered(core: &Core) -> Vec<janus_api::Record> {
    let request = FetchRequest {
        topic: "paused".into(),
        partition: 0,
        offset: 0,
        max_bytes: 8 << 20,
        max_wait_ms: 0,
        tags: vec![],
        format: RecordFormat::Records,
    };
    match core.fetch(None, request).await.unwrap().data {
        Fetched::Records(r) => r,
        Fetched::Batches { .. } | Fetched::File { .. } => unreachable!("asked for records"),
    }
}

fn header(r: &janus_api::Record, name: &str) -> Option<String> {
    r.headers.iter().find(|h| h.key == name).and_then(|h| h.value.as_deref()).map(|v| String::from_utf8_lossy(v).into())
}

async fn run(dir: &Path) {
    let config = MessagingConfig { clock: Clock::tokio(), ..MessagingConfig::default() };
    let clock = config.clock;
    let (core, shutdown) = crate::common::open_core(dir, janus_core::groups::GroupConfig::default(), config);
    core.create_topic("paused".into(), Some(EngineKind::Commitlog), 1, BTreeMap::new()).await.unwrap();
    let c = core.clone();
    let task = tokio::spawn(async move { c.run_timer_delivery().await });

    let mut due_of: HashMap<String, i64> = HashMap::new();
    let start = clock.now_ms();
    // Levels, relative delays (request-wide and per message) and absolute times, due out of order.
    for level in [3u32, 1, 2] {
        due_of.extend(produce(&core, vec![record(None)], Some(Schedule::Level(level))).await);
    }
    for i in 0..60i64 {
        let delay = (i * 7919) % 9000 + 1;
        let headers = match i % 3 {
            0 => Some(("TIMER_DELAY_MS", delay.to_string())),
            1 => Some(("TIMER_DELIVER_MS", (start + delay).to_string())),
            _ => Some(("DELAY", (1 + i % 3).to_string())),
        };
        due_of.extend(produce(&core, vec![record(headers)], None).await);
    }
    assert_eq!(due_of.len(), 63);
    assert!(delivered(&core).await.is_empty(), "nothing is due yet");

    let mut max_late = 0;
    for _ in 0..250 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = clock.now_ms();
        for r in delivered(&core).await {
            let id = header(&r, "UNIQ_KEY").unwrap();
            let due = due_of[&id];
            assert_eq!(header(&r, "JANUS_TIMER_DUE_MS"), Some(due.to_string()));
            assert!(r.timestamp_ms >= due, "{id} delivered at {} before its due time {due}", r.timestamp_ms);
            assert!(r.timestamp_ms <= now, "delivered in the future");
            max_late = max_late.max(r.timestamp_ms - due);
        }
        let pending: Vec<i64> = due_of.values().copied().filter(|d| *d <= now - 1000).collect();
        let count = delivered(&core).await.len();
        let due_long_ago = pending.len();
        assert!(count >= due_long_ago, "at {now}: {due_long_ago} messages due over a tick ago, {count} delivered");
    }
    assert_eq!(delivered(&core).await.len(), 63, "every message delivered, once");
    assert!(max_late <= 1000, "{max_late} ms late: more than one tick");
    assert_eq!(core.messaging().pending_timers(), 0);
    let _ = shutdown.send(true);
    task.await.unwrap();
    core.registry().shutdown().unwrap();
}

#[tokio::test(start_paused = true)]
async fn timers_fire_no_earlier_than_due_and_within_a_tick_under_paused_time() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path()).await;
}
