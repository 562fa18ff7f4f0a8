//! RocketMQ delivery through the client library and the CLI: delayed and timed messages (never early, at
//! most a tick late, cancellable, bounded ahead), receive/ack with invisible durations, nack back-off,
//! dead letters after the 17th failure and their resend, receivers that never share a message, the
//! committed offset as the lowest unacknowledged, receipt handles that are forged, stale or another
//! group's, and lookup by id and key; each on both engines. The brokers use 100-300 ms delay levels and a
//! 500 ms minimum invisible duration so retries take moments (see [`config`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_client::{Client, Delivery, Engine, Lookup, ReceiveOptions, ReceivedMessage, proto as v1};
use janus_server::{Broker, BrokerConfig};

use crate::e2e_common::create;

const ENGINES: [Engine; 2] = [Engine::Segment, Engine::Commitlog];
const FAST_LEVELS: &str = "100ms 100ms 100ms 150ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms \
                           200ms 200ms 300ms 300ms";

fn config(dir: &Path) -> BrokerConfig {
    let mut c = crate::e2e_common::config(dir);
    c.messaging.delay_levels = FAST_LEVELS.into();
    c.messaging.min_invisible_ms = 500;
    c
}

async fn start(dir: &Path) -> (Broker, Client) {
    let broker = Broker::start(config(dir)).await.expect("broker starts");
    let client = Client::connect(&format!("http://{}", broker.grpc_addr())).await.expect("client connects");
    (broker, client)
}

fn msg(value: &str) -> v1::Message {
    v1::Message { value: Some(Bytes::from(value.to_string())), ..Default::default() }
}

fn value(m: &ReceivedMessage) -> String {
    String::from_utf8_lossy(m.record.value.as_deref().unwrap_or_default()).into_owned()
}

fn header<'a>(m: &'a janus_client::ConsumerRecord, name: &str) -> Option<&'a str> {
    m.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref()).and_then(|v| std::str::from_utf8(v).ok())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn fetch_all(client: &Client, topic: &str, partition: u32) -> Vec<janus_client::ConsumerRecord> {
    let request = v1::FetchRequest { topic: topic.into(), partition, offset: 0, ..Default::default() };
    let r = client.fetch(request).await.unwrap();
    r.messages.into_iter().map(|m| janus_client::ConsumerRecord::from_proto(partition, m)).collect()
}

fn receive_opts(group: &str, topic: &str, max: u32, invisible_ms: u64) -> ReceiveOptions {
    ReceiveOptions {
        max_messages: max,
        invisible: Some(Duration::from_millis(invisible_ms)),
        wait: Duration::from_secs(5),
        ..ReceiveOptions::new(group, topic)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_timed_messages_are_never_early_and_at_most_a_tick_late() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("delay-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let sent_at = now_ms();
        let r = client
            .produce_messages(
                &topic,
                Some(0),
                vec![msg("later")],
                Some(Delivery::After(Duration::from_millis(1500))),
                false,
            )
            .await
            .unwrap();
        let at = now_ms() + 2500;
        client.produce_messages(&topic, Some(0), vec![msg("at")], Some(Delivery::At(at)), false).await.unwrap();
        assert!(r.appends.is_empty(), "a delayed message is not appended at once");
        let due = r.scheduled[0].deliver_at_ms;
        assert!(due >= sent_at + 1500, "due {due} is the delay after the send");
        assert!(fetch_all(&client, &topic, 0).await.is_empty(), "{topic}: nothing before it is due");
        let deadline = Instant::now() + Duration::from_secs(10);
        let records = loop {
            let records = fetch_all(&client, &topic, 0).await;
            if records.len() == 2 || Instant::now() > deadline {
                break records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(records.len(), 2, "{topic}: both delivered");
        for (r, want_due) in records.iter().zip([due, at]) {
            let stored_due: i64 = header(r, "JANUS_TIMER_DUE_MS").unwrap().parse().unwrap();
            assert_eq!(stored_due, want_due);
            assert!(
                r.timestamp_ms >= want_due,
                "{topic}: delivered at {} before its due time {want_due}",
                r.timestamp_ms
            );
            assert!(
                r.timestamp_ms - want_due <= 1000,
                "{topic}: {} ms late (more than one tick)",
                r.timestamp_ms - want_due
            );
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_beyond_the_maximum_are_refused_and_cancelled_ones_never_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "sched", Engine::Commitlog, 1, &[]).await;
    let four_days = Delivery::After(Duration::from_secs(4 * 86_400));
    let err = client.produce_messages("sched", None, vec![msg("x")], Some(four_days), false).await.unwrap_err();
    assert!(err.to_string().contains("timer.max.delay.ms"), "{err}");
    let err =
        client.produce_messages("sched", None, vec![msg("x")], Some(Delivery::Level(19)), false).await.unwrap_err();
    assert!(err.to_string().contains("delay level 19"), "{err}");
    let mut bad = msg("x");
    bad.headers.push(v1::Header { key: "DELAY".into(), value: Some(Bytes::from_static(b"soon")) });
    assert!(client.produce_messages("sched", None, vec![bad], None, false).await.is_err());

    let r = client
        .produce_messages(
            "sched",
            Some(0),
            vec![msg("cancel me"), msg("keep me")],
            Some(Delivery::After(Duration::from_millis(800))),
            false,
        )
        .await
        .unwrap();
    let (cancel, keep) = (&r.message_ids[0], &r.message_ids[1]);
    // Without return_message_ids the answer stays small: a count, no ids.
    let quiet = v1::ProduceRequest {
        topic: "sched".into(),
        messages: vec![msg("quiet")],
        delay_ms: Some(3_600_000),
        ..Default::default()
    };
    let plain = client.producer_rpc(janus_client::Compression::None).produce(quiet).await.unwrap().into_inner();
    assert_eq!((plain.scheduled_count, plain.message_ids.len(), plain.scheduled.len()), (1, 0, 0));
    let pending = client.lookup_message("sched", &Lookup::Id(cancel.clone())).await.unwrap();
    assert_eq!(pending.pending.unwrap().message_id, *cancel);
    let out = cli(&client, &["timer", "cancel", cancel]).await.unwrap();
    assert!(out.contains(&format!("cancelled {cancel}")), "{out}");
    let again = cli(&client, &["timer", "cancel", cancel]).await.unwrap_err();
    assert!(again.contains("no scheduled message"), "{again}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let records = fetch_all(&client, "sched", 0).await;
    let ids: Vec<&str> = records.iter().filter_map(|r| header(r, "UNIQ_KEY")).collect();
    assert_eq!(ids, vec![keep.as_str()], "only the kept message arrives");
    let found = client.lookup_message("sched", &Lookup::Id(keep.clone())).await.unwrap();
    assert_eq!(found.messages.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_back_with_their_attempt_and_nacks_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("redeliver-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 2, &[]).await;
        client.produce_messages(&topic, Some(1), vec![msg("m")], None, false).await.unwrap();
        let first = client.receive(&receive_opts("g", &topic, 10, 600)).await.unwrap();
        assert_eq!((first.len(), first[0].attempt), (1, 1));
        assert!(!first[0].message_id.is_empty());
        // Invisible: another receive of the group gets nothing while it is.
        let mut quick = receive_opts("g", &topic, 10, 600);
        quick.wait = Duration::from_millis(200);
        assert!(client.receive(&quick).await.unwrap().is_empty());
        // Timed out: back after the invisible duration plus the first back-off, attempt 2.
        let started = Instant::now();
        let second = client.receive(&receive_opts("g", &topic, 10, 600)).await.unwrap();
        assert_eq!((second.len(), second[0].attempt), (1, 2), "{topic}");
        assert_eq!((second[0].topic.as_str(), second[0].partition, second[0].offset), (topic.as_str(), 1, 0));
        assert_eq!(second[0].message_id, first[0].message_id);
        assert!(started.elapsed() >= Duration::from_millis(300), "came back before its invisible duration ended");
        // Nacked: back after the back-off, attempt 3; then acknowledged, gone.
        client.nack("g", &second[0].receipt_handle).await.unwrap();
        let third = client.receive(&receive_opts("g", &topic, 10, 600)).await.unwrap();
        assert_eq!(third[0].attempt, 3);
        client.ack_one("g", &third[0].receipt_handle).await.unwrap();
        let mut none = receive_opts("g", &topic, 10, 600);
        none.wait = Duration::from_millis(1500);
        assert!(client.receive(&none).await.unwrap().is_empty(), "{topic}: an acknowledged message stays gone");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seventeenth_failure_lands_in_the_dead_letter_topic_and_resend_puts_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let (topic, group) = (format!("dlq-{engine:?}").to_lowercase(), format!("dlq-g-{engine:?}").to_lowercase());
        create(&client, &topic, engine, 3, &[]).await;
        let r = client.produce_messages(&topic, Some(2), vec![msg("poison")], None, false).await.unwrap();
        let id = r.message_ids[0].clone();
        let mut attempts = Vec::new();
        for _ in 0..17 {
            let got = client.receive(&receive_opts(&group, &topic, 1, 5000)).await.unwrap();
            assert_eq!(got.len(), 1, "{topic}: redelivered after attempt {attempts:?}");
            attempts.push(got[0].attempt);
            client.nack(&group, &got[0].receipt_handle).await.unwrap();
        }
        assert_eq!(attempts, (1..=17).collect::<Vec<u32>>());
        let mut none = receive_opts(&group, &topic, 1, 5000);
        none.wait = Duration::from_millis(1500);
        assert!(client.receive(&none).await.unwrap().is_empty(), "{topic}: dead-lettered, not redelivered");
        let dead = fetch_all(&client, &format!("%DLQ%{group}"), 0).await;
        assert_eq!(dead.len(), 1);
        let d = &dead[0];
        assert_eq!(header(d, "RETRY_TOPIC"), Some(topic.as_str()));
        assert_eq!(header(d, "JANUS_ORIGIN_PARTITION"), Some("2"));
        assert_eq!(header(d, "JANUS_ORIGIN_OFFSET"), Some("0"));
        assert_eq!(header(d, "ORIGIN_MESSAGE_ID"), Some(id.as_str()));
        assert_eq!(header(d, "JANUS_DLQ_ATTEMPTS"), Some("17"));
        let listed = cli(&client, &["dlq", "list", &group]).await.unwrap();
        assert!(listed.contains(&id) && listed.contains("1 dead letters"), "{listed}");
        let resent = cli(&client, &["dlq", "resend", &group, "--offset", "0"]).await.unwrap();
        assert!(resent.contains(&format!("to {topic} partition 2 offset 1")), "{resent}");
        let back = fetch_all(&client, &topic, 2).await;
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].value.as_deref(), Some(&b"poison"[..]));
        assert_eq!(header(&back[1], "UNIQ_KEY"), Some(id.as_str()), "the resent copy keeps its id");
        assert_eq!(header(&back[1], "RETRY_TOPIC"), None, "and drops the dead-letter headers");
        // The group's series (no other test uses these group names; the registry is process-wide).
        let metrics = crate::common::scrape(broker.metrics_addr()).await;
        for (series, value) in [("janus_retries_total", "16"), ("janus_dead_letters_total", "1")] {
            let line = format!("{series}{{group=\"{group}\"}} {value}");
            assert!(metrics.lines().any(|l| l == line), "{line} missing from the metrics");
        }
        for name in ["janus_timers_pending", "janus_timer_lateness_seconds_count", "janus_leases_inflight"] {
            assert!(metrics.lines().any(|l| l.starts_with(name)), "{name} missing from the metrics");
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_of_a_group_never_hold_the_same_message_and_the_commit_is_the_lowest_unacked() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("share-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 3, &[]).await;
        for p in 0..3 {
            let batch = (0..100).map(|i| msg(&format!("p{p}-{i}"))).collect();
            client.produce_messages(&topic, Some(p), batch, None, false).await.unwrap();
        }
        let receiver = |client: Client, topic: String| async move {
            let mut held = Vec::new();
            loop {
                let mut o = receive_opts("share", &topic, 16, 60_000);
                o.wait = Duration::from_millis(300);
                let got = client.receive(&o).await.unwrap();
                if got.is_empty() {
                    return held;
                }
                held.extend(got);
            }
        };
        let (a, b) = tokio::join!(receiver(client.clone(), topic.clone()), receiver(client.clone(), topic.clone()));
        let ids_a: BTreeSet<String> = a.iter().map(value).collect();
        let ids_b: BTreeSet<String> = b.iter().map(value).collect();
        assert_eq!(ids_a.len() + ids_b.len(), 300, "{topic}: every message handed out once");
        assert!(ids_a.is_disjoint(&ids_b), "{topic}: a message was held by both receivers");
        // Acknowledge all of partition 0 but its offset 10: the committed offset stays at 10.
        let all: Vec<&ReceivedMessage> = a.iter().chain(b.iter()).collect();
        let p0: BTreeMap<i64, &ReceivedMessage> =
            all.iter().filter(|m| m.partition == 0).map(|m| (m.offset, *m)).collect();
        for (offset, m) in &p0 {
            if *offset != 10 {
                client.ack_one("share", &m.receipt_handle).await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(client.fetch_offsets("share", &topic).await.unwrap().get(&0), Some(&10), "{topic}");
        client.ack_one("share", &p0[&10].receipt_handle).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(client.fetch_offsets("share", &topic).await.unwrap().get(&0), Some(&100), "{topic}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_foreign_receipt_handles_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "handles", Engine::Segment, 1, &[]).await;
    client.produce_messages("handles", None, vec![msg("a")], None, false).await.unwrap();
    let got = client.receive(&receive_opts("h", "handles", 1, 5000)).await.unwrap();
    let handle = got[0].receipt_handle.clone();
    let refused = |r: janus_client::error::Result<()>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Some(janus_client::Code::InvalidArgument), "{e}");
        e.to_string()
    };
    assert!(refused(client.ack_one("h", "not-a-handle").await).contains("malformed"));
    let mut forged = handle.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert!(!refused(client.ack_one("h", &forged).await).is_empty());
    let forged_nonce = format!("{}{}", &handle[..2], "00".repeat(8)) + &handle[18..];
    assert!(refused(client.ack_one("h", &forged_nonce).await).contains("not current"));
    assert!(refused(client.ack_one("other", &handle).await).contains("belongs to group 'h'"));
    assert!(client.nack("other", &handle).await.is_err());
    // Replaced by a change of invisible duration: the old handle is stale, the new one works.
    let (new_handle, until) = client.change_invisible("h", &handle, Duration::from_secs(30)).await.unwrap();
    assert!(until > now_ms() + 20_000);
    assert!(refused(client.ack_one("h", &handle).await).contains("not current"));
    let err = client.change_invisible("h", &new_handle, Duration::from_millis(100)).await.unwrap_err();
    assert!(err.to_string().contains("invisible duration"), "{err}");
    client.ack_one("h", &new_handle).await.unwrap();
    assert!(refused(client.ack_one("h", &new_handle).await).contains("acknowledged"));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_found_by_id_and_key_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("lookup-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 2, &[]).await;
        let mut messages: Vec<v1::Message> = (0..50).map(|i| msg(&format!("v{i}"))).collect();
        messages[7].headers.push(v1::Header { key: "KEYS".into(), value: Some(Bytes::from_static(b"order-7 vip")) });
        let r = client.produce_messages(&topic, Some(1), messages, None, false).await.unwrap();
        let found = client.lookup_message(&topic, &Lookup::Id(r.message_ids[20].clone())).await.unwrap();
        assert_eq!(found.messages.len(), 1, "{topic}");
        assert_eq!((found.messages[0].partition, found.messages[0].message.as_ref().unwrap().offset), (1, 20));
        let by_key = client.lookup_message(&topic, &Lookup::Key("vip".into())).await.unwrap();
        assert_eq!(by_key.messages.len(), 1, "{topic}");
        assert_eq!(by_key.messages[0].message.as_ref().unwrap().value.as_deref(), Some(&b"v7"[..]));
        let shown = cli(&client, &["message", "show", &topic, "--key", "order-7"]).await.unwrap();
        assert!(shown.contains("\"v7\""), "{shown}");
        let missing = client.lookup_message(&topic, &Lookup::Id("nope".into())).await.unwrap_err();
        assert_eq!(missing.code(), Some(janus_client::Code::NotFound), "{missing}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_max_reconsume_times_is_stored_and_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "short-lived", Engine::Commitlog, 1, &[]).await;
    client.set_max_reconsume_times("impatient", 1).await.unwrap();
    assert!(client.set_max_reconsume_times("impatient", 5000).await.is_err(), "out of range is refused");
    broker.shutdown().await.unwrap();
    let (broker, client) = start(dir.path()).await;
    client.produce_messages("short-lived", None, vec![msg("x")], None, false).await.unwrap();
    let mut attempts = Vec::new();
    loop {
        let mut o = receive_opts("impatient", "short-lived", 1, 5000);
        o.wait = Duration::from_secs(3);
        let got = client.receive(&o).await.unwrap();
        let Some(m) = got.first() else { break };
        attempts.push(m.attempt);
        client.nack("impatient", &m.receipt_handle).await.unwrap();
        assert!(attempts.len() <= 3, "redelivered past max.reconsume.times = 1: {attempts:?}");
    }
    assert_eq!(attempts, vec![1, 2], "one redelivery, then the dead-letter topic");
    assert_eq!(fetch_all(&client, "%DLQ%impatient", 0).await.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_message_that_no_longer_fits_is_dropped_without_holding_up_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "fits", Engine::Segment, 1, &[]).await;
    create(&client, "shrinks", Engine::Commitlog, 1, &[]).await;
    let soon = Some(Delivery::After(Duration::from_millis(800)));
    client.produce_messages("shrinks", Some(0), vec![msg(&"x".repeat(4000))], soon, false).await.unwrap();
    client.produce_messages("fits", Some(0), vec![msg("small")], soon, false).await.unwrap();
    let limit = BTreeMap::from([("max.message.bytes".to_string(), "1024".to_string())]);
    client.alter_topic_config("shrinks", limit).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch_all(&client, "fits", 0).await.is_empty() {
        assert!(Instant::now() < deadline, "the other topic's message was held up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fetch_all(&client, "shrinks", 0).await.is_empty(), "a message over the new limit is not appended");
    assert_eq!(fetch_all(&client, "fits", 0).await.len(), 1, "and the other is delivered once");
    broker.shutdown().await.unwrap();
}

/// Runs the `janus` CLI in-process against the client's broker; stdout, or stderr on failure.
async fn cli(client: &Client, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["janus", "--broker", client.url()];
    argv.extend_from_slice(args);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = janus_client::cli::run(argv, &mut Cursor::new(Vec::new()), &mut stdout, &mut stderr).await;
    match result {
        Ok(()) => Ok(String::from_utf8_lossy(&stdout).into_owned()),
        Err(e) => Err(format!("{e}")),
    }
}
