//! RocketMQ's transactional messages through the client library, the CLI and the core, on both engines:
//! rolled back never visible, committed visible once, deciding twice or an unknown id refused; a producer
//! that died after preparing is checked and its answer applied; 15 "unknown" answers end in
//! TRANS_CHECK_MAX_TIME_TOPIC; 1,000 concurrent transactions; pending transactions and their checks survive
//! kill -9 of `janusd`; and a commit interrupted between its record and its appends ends with each message
//! exactly once. The brokers check after 300 ms and every 200 ms (see [`config`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use janus_client::error::codes;
use janus_client::{
    Client, ConsumerRecord, Engine, HalfMessages, ReceiveOptions, TransactionDecision, TransactionProducer, proto as v1,
};
use janus_server::{Broker, BrokerConfig};

use crate::e2e_common::{Janusd, create, janusd_command};

const ENGINES: [Engine; 2] = [Engine::Segment, Engine::Commitlog];

fn config(dir: &Path) -> BrokerConfig {
    let mut c = crate::e2e_common::config(dir);
    c.messaging.transaction_timeout_ms = 300;
    c.messaging.transaction_check_interval_ms = 200;
    c
}

async fn start(dir: &Path) -> (Broker, Client) {
    let broker = Broker::start(config(dir)).await.expect("broker starts");
    let client = Client::connect(&format!("http://{}", broker.grpc_addr())).await.expect("client connects");
    (broker, client)
}

fn half(topic: &str, values: &[&str]) -> HalfMessages {
    HalfMessages {
        topic: topic.into(),
        partition: Some(0),
        messages: values
            .iter()
            .map(|v| v1::Message { value: Some(Bytes::from(v.to_string())), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

async fn values(client: &Client, topic: &str) -> Vec<String> {
    let r = client
        .fetch(v1::FetchRequest { topic: topic.into(), partition: 0, offset: 0, max_wait_ms: 0, ..Default::default() })
        .await
        .unwrap();
    r.messages.iter().map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned()).collect()
}

fn header<'a>(m: &'a ConsumerRecord, name: &str) -> Option<&'a str> {
    m.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref()).and_then(|v| std::str::from_utf8(v).ok())
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, limit: Duration, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolled_back_never_visible_committed_once_and_deciding_twice_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("txn-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let keep = client.prepare_transaction("pg", half(&topic, &["k1", "k2"])).await.unwrap();
        let drop_ = client.prepare_transaction("pg", half(&topic, &["r1"])).await.unwrap();
        assert_eq!(keep.message_ids.len(), 2);
        // Half messages: stored, but no fetch, receive, offset or lag sees them.
        assert!(values(&client, &topic).await.is_empty());
        assert_eq!(client.describe_topic(&topic).await.unwrap().partitions[0].log_end_offset, 0);
        let received = client
            .receive(&ReceiveOptions { wait: Duration::from_millis(200), ..ReceiveOptions::new("rg", topic.as_str()) })
            .await
            .unwrap();
        assert!(received.is_empty(), "{engine:?}");
        let pending = client.list_transactions(Some("pg")).await.unwrap();
        let ids: BTreeSet<_> = pending.iter().map(|t| t.transaction_id.clone()).collect();
        assert!(ids.contains(&keep.transaction_id) && ids.contains(&drop_.transaction_id));

        let appends = client.end_transaction(&keep.transaction_id, "pg", TransactionDecision::Commit).await.unwrap();
        assert_eq!((appends[0].base_offset, appends[0].last_offset), (0, 1));
        client.end_transaction(&drop_.transaction_id, "pg", TransactionDecision::Rollback).await.unwrap();
        assert_eq!(values(&client, &topic).await, ["k1", "k2"], "{engine:?}");

        // Deciding again, or the other way, or an id never prepared: refused, nothing changes.
        for (id, d) in [
            (&keep.transaction_id, TransactionDecision::Commit),
            (&keep.transaction_id, TransactionDecision::Rollback),
            (&drop_.transaction_id, TransactionDecision::Commit),
        ] {
            let e = client.end_transaction(id, "pg", d).await.unwrap_err();
            assert_eq!(e.broker_code(), Some(codes::INVALID_TRANSACTION_STATE), "{e}");
        }
        let e = client.end_transaction("0000000000000000000000000000beef", "pg", TransactionDecision::Commit).await;
        assert_eq!(e.unwrap_err().broker_code(), Some(codes::UNKNOWN_TRANSACTION));
        // An immunity beyond any clock is cut to 7 days, not an overflow.
        let far = HalfMessages { check_immunity: Some(Duration::MAX), ..half(&topic, &["far"]) };
        let far = client.prepare_transaction("pg", far).await.unwrap();
        let listed = client.list_transactions(Some("pg")).await.unwrap();
        let entry = listed.iter().find(|t| t.transaction_id == far.transaction_id).unwrap();
        assert!(entry.next_check_ms > entry.prepared_ms + 6 * 86_400_000, "{entry:?}");
        client.end_transaction(&far.transaction_id, "pg", TransactionDecision::Rollback).await.unwrap();
        let other = client.prepare_transaction("pg", half(&topic, &["o"])).await.unwrap();
        let e = client.end_transaction(&other.transaction_id, "not-pg", TransactionDecision::Commit).await.unwrap_err();
        assert!(e.to_string().contains("belongs to producer group 'pg'"), "{e}");
        client.end_transaction(&other.transaction_id, "pg", TransactionDecision::Rollback).await.unwrap();
        assert_eq!(values(&client, &topic).await, ["k1", "k2"], "{engine:?}: exactly the committed ones, once");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_transaction_is_checked_and_unknown_answers_end_in_the_max_check_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("txn-check-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        // A producer prepares, then dies before deciding.
        let commit_me = client.prepare_transaction("orders", half(&topic, &["checked-in"])).await.unwrap();
        let limbo = client.prepare_transaction("limbo", half(&topic, &["never"])).await.unwrap();
        // A new producer of the group answers checks: commit what it knows of.
        let known = commit_me.transaction_id.clone();
        let producer = TransactionProducer::start(client.clone(), "orders", move |c| {
            if c.transaction_id == known { TransactionDecision::Commit } else { TransactionDecision::Rollback }
        })
        .await
        .unwrap();
        wait_until("the checked transaction is committed", Duration::from_secs(10), || async {
            values(&client, &topic).await == ["checked-in"]
        })
        .await;
        // A producer that never knows: 15 checks, then TRANS_CHECK_MAX_TIME_TOPIC.
        let asked = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&asked);
        let unsure = TransactionProducer::start(client.clone(), "limbo", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            TransactionDecision::Unknown
        })
        .await
        .unwrap();
        wait_until("the undecided transaction is discarded", Duration::from_secs(20), || async {
            client.list_transactions(Some("limbo")).await.unwrap().is_empty()
        })
        .await;
        assert!((1..=15).contains(&asked.load(Ordering::SeqCst)), "asked {} times", asked.load(Ordering::SeqCst));
        let discarded = client
            .fetch(v1::FetchRequest { topic: "TRANS_CHECK_MAX_TIME_TOPIC".into(), partition: 0, ..Default::default() })
            .await
            .unwrap();
        let records: Vec<ConsumerRecord> =
            discarded.messages.into_iter().map(|m| ConsumerRecord::from_proto(0, m)).collect();
        let ours: Vec<_> = records.iter().filter(|r| header(r, "REAL_TOPIC") == Some(topic.as_str())).collect();
        assert_eq!(ours.len(), 1, "{engine:?}");
        assert_eq!(header(ours[0], "UNIQ_KEY"), Some(limbo.message_ids[0].as_str()));
        assert_eq!(header(ours[0], "TRANSACTION_CHECK_TIMES"), Some("15"));
        assert_eq!(values(&client, &topic).await, ["checked-in"], "{engine:?}: never delivered to its topic");
        let e = client.end_transaction(&limbo.transaction_id, "limbo", TransactionDecision::Commit).await.unwrap_err();
        assert_eq!(e.broker_code(), Some(codes::INVALID_TRANSACTION_STATE));
        drop((producer, unsure));
    }
    let metrics = crate::common::scrape(broker.metrics_addr()).await;
    for name in
        ["janus_transactions_committed_total", "janus_transactions_discarded_total", "janus_transaction_checks_total"]
    {
        assert!(metrics.contains(name), "{name} missing");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_transactions_each_end_as_decided() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("txn-many-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let producer = Arc::new(
            TransactionProducer::start(client.clone(), "many", |_| TransactionDecision::Rollback).await.unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let (producer, topic) = (Arc::clone(&producer), topic.clone());
            tasks.push(tokio::spawn(async move {
                let value = format!("m{i}");
                let decision = if i % 2 == 0 { TransactionDecision::Commit } else { TransactionDecision::Rollback };
                producer.send(half(&topic, &[value.as_str()]), |_| decision).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < 500 {
            let r = client
                .fetch(v1::FetchRequest { topic: topic.clone(), partition: 0, offset, ..Default::default() })
                .await
                .unwrap();
            offset = r.next_offset;
            got.extend(
                r.messages.iter().map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned()),
            );
        }
        let expected: BTreeSet<String> = (0..1000).filter(|i| i % 2 == 0).map(|i| format!("m{i}")).collect();
        assert_eq!(got.len(), 500, "{engine:?}");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
        assert_eq!(client.describe_topic(&topic).await.unwrap().partitions[0].log_end_offset, 500);
        assert!(client.list_transactions(Some("many")).await.unwrap().is_empty());
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transactions_and_their_checks_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        crate::e2e_common::E2E_SETS,
        &["messaging.transaction_timeout_ms=200", "messaging.transaction_check_interval_ms=100000"],
    ]
    .concat();
    let spawn = || {
        let mut cmd = janusd_command(dir.path(), &sets);
        cmd.stderr(std::process::Stdio::null());
        Janusd::start(&mut cmd, Duration::from_secs(60))
    };
    let janusd = spawn();
    let client = Client::connect(&janusd.url()).await.unwrap();
    let mut prepared = Vec::new();
    for engine in ENGINES {
        let topic = format!("txn-kill-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let commit = client.prepare_transaction("kg", half(&topic, &["c1", "c2"])).await.unwrap();
        let rollback = client.prepare_transaction("kg", half(&topic, &["r1"])).await.unwrap();
        prepared.push((topic, commit.transaction_id, rollback.transaction_id));
    }
    // One check each (no producer is there to take it), then kill -9 between prepare and decision.
    wait_until("every transaction was checked once", Duration::from_secs(10), || async {
        let list = client.list_transactions(Some("kg")).await.unwrap();
        list.len() == 4 && list.iter().all(|t| t.checks == 1)
    })
    .await;
    janusd.kill9();
    let janusd = spawn();
    let client = Client::connect(&janusd.url()).await.unwrap();
    let list = client.list_transactions(Some("kg")).await.unwrap();
    assert_eq!(list.len(), 4, "every pending transaction is back");
    assert!(list.iter().all(|t| t.checks == 1), "check counts survive: {list:?}");
    for (topic, commit, rollback) in &prepared {
        assert!(values(&client, topic).await.is_empty(), "{topic}: nothing visible before the decision");
        client.end_transaction(commit, "kg", TransactionDecision::Commit).await.unwrap();
        client.end_transaction(rollback, "kg", TransactionDecision::Rollback).await.unwrap();
    }
    // Decisions survive kill -9 too.
    janusd.kill9();
    let janusd = spawn();
    let client = Client::connect(&janusd.url()).await.unwrap();
    for (topic, commit, rollback) in &prepared {
        assert_eq!(values(&client, topic).await, ["c1", "c2"], "{topic}");
        let e = client.end_transaction(rollback, "kg", TransactionDecision::Commit).await.unwrap_err();
        assert_eq!(e.broker_code(), Some(codes::INVALID_TRANSACTION_STATE), "{e}");
        let e = client.end_transaction(commit, "kg", TransactionDecision::Rollback).await.unwrap_err();
        assert_eq!(e.broker_code(), Some(codes::INVALID_TRANSACTION_STATE), "{e}");
    }
    assert!(client.list_transactions(None).await.unwrap().is_empty());
    janusd.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_interrupted_between_its_record_and_its_appends_ends_with_each_message_once() {
    use janus_core::messaging::{Decision, MessagingConfig, PrepareRequest};
    use janus_core::meta::transactions::TxnState;

    let dir = tempfile::tempdir().unwrap();
    let messaging = MessagingConfig { transaction_timeout_ms: 60_000, ..MessagingConfig::default() };
    let mut ids = Vec::new();
    {
        let (core, stop) = crate::common::open_core(dir.path(), Default::default(), messaging.clone());
        for (name, engine) in
            [("txn-crash-seg", janus_api::EngineKind::Segment), ("txn-crash-cl", janus_api::EngineKind::Commitlog)]
        {
            core.blocking(move |r| r.create_topic(name, Some(engine), 2, Default::default()).map(|_| ()))
                .await
                .unwrap();
            let admission = core.admit(None, 1024).await.unwrap();
            let records = (0..4)
                .map(|i| janus_api::NewRecord {
                    key: Some(Bytes::from(format!("k{i}"))),
                    value: Some(Bytes::from(format!("v{i}"))),
                    headers: vec![],
                    timestamp_ms: 0,
                })
                .collect();
            let req = PrepareRequest {
                topic: name.into(),
                partition: None,
                messages: records,
                producer_group: "crash".into(),
                check_immunity_ms: None,
                wait_durable: true,
            };
            let prepared = core.prepare_transaction(admission, req).await.unwrap();
            // The crash: the commit recorded each partition's log end, then appended only the first message.
            let id = prepared.transaction_id.clone();
            let stored = core
                .blocking(move |r| {
                    let meta = r.meta();
                    let record = meta.transaction(&id)?.unwrap();
                    let messages = meta.transaction_messages(&id)?;
                    let from = vec![(0, 0), (1, 0)];
                    let completing = janus_core::meta::transactions::TxnRecord {
                        state: TxnState::Completing { target: name.into(), from, commit: true },
                        ..record
                    };
                    meta.update_transaction(&completing, true)?;
                    Ok(messages)
                })
                .await
                .unwrap();
            let (partition, mut first) = stored[0].clone();
            // As the interrupted commit appended it.
            first
                .headers
                .push(janus_api::Header::new("JANUS_TRANSACTION_ID", prepared.transaction_id.clone().into_bytes()));
            let admission = core.admit(None, 1024).await.unwrap();
            let req = janus_core::ProduceRequest {
                topic: name.into(),
                partition: Some(partition),
                messages: vec![first],
                wait_durable: true,
                schedule: None,
            };
            core.produce(admission, req).await.unwrap();
            ids.push((name, prepared.transaction_id, prepared.message_ids));
        }
        stop.send(true).unwrap();
        core.registry().shutdown().unwrap();
    }
    let (core, stop) = crate::common::open_core(dir.path(), Default::default(), messaging);
    let c = core.clone();
    let checks = tokio::spawn(async move { c.run_transaction_checks().await });
    for (name, id, message_ids) in &ids {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = core.end_transaction(id, None, Decision::Rollback).await.unwrap_err();
            if e.message().contains("already committed") {
                break;
            }
            assert!(Instant::now() < deadline, "{name}: still {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = name.to_string();
        let mut seen: Vec<String> = core
            .blocking(move |r| {
                let topic = r.topic(&n)?;
                let engine = r.engine(topic.engine);
                let mut seen = Vec::new();
                for partition in 0..2 {
                    let tp = janus_api::TopicPartition::new(n.clone(), partition);
                    let slice = engine.read(&tp, 0, 1 << 20)?;
                    for rec in engine.decode_records(&slice, 0)? {
                        let uniq = rec.headers.iter().find(|h| h.key == "UNIQ_KEY").and_then(|h| h.value.clone());
                        seen.push(String::from_utf8_lossy(&uniq.unwrap_or_default()).into_owned());
                    }
                }
                Ok(seen)
            })
            .await
            .unwrap();
        seen.sort();
        let mut expected = message_ids.clone();
        expected.sort();
        assert_eq!(seen, expected, "{name}: each message exactly once");
    }
    stop.send(true).unwrap();
    checks.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_in_a_transaction_and_lists_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "txn-cli", Engine::Segment, 1, &[]).await;
    let url = format!("http://{}", broker.grpc_addr());
    let run = |args: &'static [&'static str], input: &'static str| {
        let url = url.clone();
        async move {
            let mut argv = vec!["janus", "--broker", url.as_str()];
            argv.extend_from_slice(args);
            let mut stdin = std::io::Cursor::new(input.as_bytes().to_vec());
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let result = janus_client::cli::run(argv, &mut stdin, &mut out, &mut err).await;
            assert!(result.is_ok(), "{args:?}: {result:?} {}", String::from_utf8_lossy(&err));
            String::from_utf8(out).unwrap()
        }
    };
    let out = run(&["produce", "txn-cli", "--transactional"], "a\nb\n").await;
    assert!(out.contains("2 messages committed to txn-cli"), "{out}");
    let out = run(&["produce", "txn-cli", "--transactional", "--rollback"], "gone\n").await;
    assert!(out.contains("1 messages rolled back"), "{out}");
    assert_eq!(values(&client, "txn-cli").await, ["a", "b"]);
    let pending = client.prepare_transaction("cli-group", half("txn-cli", &["p"])).await.unwrap();
    let out = run(&["txn", "list"], "").await;
    assert!(out.contains(&pending.transaction_id) && out.contains("cli-group") && out.contains("1 pending"), "{out}");
    let id: &'static str = Box::leak(pending.transaction_id.clone().into_boxed_str());
    let args: &'static [&'static str] = Box::leak(vec!["txn", "commit", id].into_boxed_slice());
    let out = run(args, "").await;
    assert!(out.contains("committed"), "{out}");
    assert_eq!(values(&client, "txn-cli").await, ["a", "b", "p"]);
    broker.shutdown().await.unwrap();
}
