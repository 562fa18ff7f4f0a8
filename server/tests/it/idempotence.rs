//! The idempotent producer through the gRPC API and the client library, on both engines: a retried batch
//! is stored once and answered with its first offsets; stale epochs, sequence gaps and forged ids are
//! refused with their codes; sequences wrap after i32::MAX; the state survives kill -9 of `janusd` (replayed
//! from the log) and a clean restart (from its snapshot); and a produce whose response is lost on the way
//! (a proxy cuts the connection) is retried by the client library and stored once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use janus_api::{Compression, NewRecord, RecordBatch};
use janus_client::error::codes;
use janus_client::{Client, ClientError, Engine, ProducerConfig, ProducerRecord, proto as v1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::e2e_common::{Janusd, create, start};

const ENGINES: [Engine; 2] = [Engine::Segment, Engine::Commitlog];

/// A batch of `n` records (values `tag-i`) stamped with a producer id, epoch and base sequence.
fn batch(tag: &str, n: usize, producer: (i64, i16, i32)) -> Bytes {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: vec![],
            // Now: a restart without a snapshot replays the log from the first message younger than
            // producer.id.expiration.ms (7 days), as Kafka expires producers by their batches' timestamps.
            timestamp_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as i64,
        })
        .collect();
    RecordBatch::build(&records, Compression::None)
        .unwrap()
        .with_producer(producer.0, producer.1, producer.2)
        .into_bytes()
}

async fn send(client: &Client, topic: &str, bytes: Bytes) -> Result<(i64, i64), ClientError> {
    let request = v1::ProduceRequest {
        topic: topic.into(),
        batches: vec![v1::PartitionBatches { partition: 0, record_batches: bytes }],
        ..Default::default()
    };
    let appends = client.produce(request).await?;
    assert_eq!(appends.len(), 1, "{appends:?}");
    Ok((appends[0].base_offset, appends[0].last_offset))
}

fn code(r: Result<(i64, i64), ClientError>) -> Option<u16> {
    r.expect_err("refused").broker_code()
}

async fn log_end(client: &Client, topic: &str) -> i64 {
    client.describe_topic(topic).await.unwrap().partitions[0].log_end_offset
}

async fn init(client: &Client, existing: Option<(i64, i16)>) -> (i64, i16) {
    let r = client.init_producer_id(existing).await.unwrap();
    (r.producer_id, r.producer_epoch as i16)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_stored_once_and_stale_epochs_gaps_and_forged_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("idem-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let (pid, epoch) = init(&client, None).await;
        assert_eq!(epoch, 0);
        assert_eq!(send(&client, &topic, batch("a", 3, (pid, 0, 0))).await.unwrap(), (0, 2));
        assert_eq!(send(&client, &topic, batch("b", 2, (pid, 0, 3))).await.unwrap(), (3, 4));
        // The same batch again (a retry): its first offsets, nothing stored.
        assert_eq!(send(&client, &topic, batch("a", 3, (pid, 0, 0))).await.unwrap(), (0, 2), "{engine:?}");
        assert_eq!(send(&client, &topic, batch("b", 2, (pid, 0, 3))).await.unwrap(), (3, 4));
        assert_eq!(log_end(&client, &topic).await, 5, "{engine:?}: retries stored nothing");
        // A gap, a forged id, an epoch never issued.
        assert_eq!(
            code(send(&client, &topic, batch("c", 1, (pid, 0, 9))).await),
            Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            code(send(&client, &topic, batch("c", 1, (pid + 1000, 0, 0))).await),
            Some(codes::UNKNOWN_PRODUCER_ID)
        );
        assert_eq!(code(send(&client, &topic, batch("c", 1, (pid, 7, 0))).await), Some(codes::INVALID_PRODUCER_EPOCH));
        // A new epoch fences the old one and starts at 0.
        let (same, bumped) = init(&client, Some((pid, 0))).await;
        assert_eq!((same, bumped), (pid, 1));
        assert_eq!(code(send(&client, &topic, batch("d", 1, (pid, 0, 5))).await), Some(codes::INVALID_PRODUCER_EPOCH));
        assert_eq!(
            code(send(&client, &topic, batch("d", 1, (pid, 1, 5))).await),
            Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(send(&client, &topic, batch("d", 1, (pid, 1, 0))).await.unwrap(), (5, 5));
        // Sequences wrap after i32::MAX: a new producer may start anywhere.
        let (wrap, _) = init(&client, None).await;
        assert_eq!(send(&client, &topic, batch("w", 3, (wrap, 0, i32::MAX - 1))).await.unwrap(), (6, 8));
        assert_eq!(send(&client, &topic, batch("x", 1, (wrap, 0, 1))).await.unwrap(), (9, 9), "1 follows the wrap");
        assert_eq!(send(&client, &topic, batch("w", 3, (wrap, 0, i32::MAX - 1))).await.unwrap(), (6, 8));
        assert_eq!(log_end(&client, &topic).await, 10, "{engine:?}");
        assert!(
            crate::common::scrape(broker.metrics_addr())
                .await
                .contains(&format!("janus_producer_duplicates_total{{topic=\"{topic}\"}} 3")),
            "duplicates counted per topic"
        );
    }
    broker.shutdown().await.unwrap();
}

/// Sends batches 0..n of 2 records each for `pid` (sequences 0, 2, 4, ...).
async fn send_run(client: &Client, topic: &str, pid: i64, from: usize, to: usize) {
    for i in from..to {
        let seq = (i * 2) as i32;
        assert_eq!(send(client, topic, batch(&format!("r{i}"), 2, (pid, 0, seq))).await.unwrap().0, (i * 2) as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_state_survives_kill_9_and_a_clean_restart_in_the_middle_of_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    let mut producers = Vec::new();
    for engine in ENGINES {
        let topic = format!("idem-restart-{engine:?}").to_lowercase();
        create(&client, &topic, engine, 1, &[]).await;
        let (pid, _) = init(&client, None).await;
        send_run(&client, &topic, pid, 0, 40).await;
        producers.push((topic, pid));
    }
    // kill -9 long before the first periodic snapshot (30 s): the state comes back from the snapshot taken
    // when each partition first needed it (empty) plus the whole log after it.
    janusd.kill9();
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    for (topic, pid) in &producers {
        // The last batch, retried after the crash: answered with its first offsets.
        assert_eq!(send(&client, topic, batch("r39", 2, (*pid, 0, 78))).await.unwrap(), (78, 79), "{topic}");
        assert_eq!(send(&client, topic, batch("r35", 2, (*pid, 0, 70))).await.unwrap(), (70, 71), "{topic}");
        assert_eq!(
            code(send(&client, topic, batch("gap", 1, (*pid, 0, 81))).await),
            Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        send_run(&client, topic, *pid, 40, 50).await;
    }
    // A clean stop writes the snapshots; the next start reads them.
    drop(client);
    let mut child = janusd;
    // SIGTERM: janusd shuts down cleanly.
    let pid = child.child.id();
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    let _ = child.child.wait();
    drop(child);
    let janusd = Janusd::spawn(dir.path());
    let client = Client::connect(&janusd.url()).await.unwrap();
    for (topic, pid) in &producers {
        assert_eq!(send(&client, topic, batch("r49", 2, (*pid, 0, 98))).await.unwrap(), (98, 99), "{topic}");
        send_run(&client, topic, *pid, 50, 52).await;
        assert_eq!(log_end(&client, topic).await, 104, "{topic}: every batch once");
    }
    janusd.kill9();
}

/// Whether HTTP/2 bytes from the server hold a HEADERS (1) or DATA (0) frame (frames: a 3-byte length, a
/// type byte, flags, a stream id, then the payload).
fn carries_response(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16) | (usize::from(bytes[at + 1]) << 8) | usize::from(bytes[at + 2]);
        if matches!(bytes[at + 3], 0 | 1) {
            return true;
        }
        at += 9 + len;
    }
    false
}

/// A TCP proxy to `upstream` that, while `cut` is set, drops the connection at the first bytes coming
/// back from the broker (the answer to a request the broker got), then clears `cut`.
async fn cutting_proxy(upstream: std::net::SocketAddr, cut: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let cut = Arc::clone(&cut);
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // Only a response (HEADERS or DATA frames) is cut, not pings or window updates.
                    if carries_response(&buf[..n]) && cut.swap(false, Ordering::SeqCst) {
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_whose_response_is_lost_is_retried_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, direct) = start(dir.path()).await;
    for engine in ENGINES {
        let topic = format!("idem-cut-{engine:?}").to_lowercase();
        create(&direct, &topic, engine, 1, &[]).await;
        let cut = Arc::new(AtomicBool::new(false));
        let proxy = cutting_proxy(broker.grpc_addr(), Arc::clone(&cut)).await;
        let client = Client::connect(&format!("http://{proxy}")).await.unwrap();
        let producer = client.producer(ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() });
        let first = producer.send(ProducerRecord::new(topic.clone(), Bytes::from("one"))).await.unwrap();
        assert_eq!(first.await.unwrap().offset, 0);
        cut.store(true, Ordering::SeqCst);
        let second = producer.send(ProducerRecord::new(topic.clone(), Bytes::from("two"))).await.unwrap();
        let stored = second.await.expect("retried after the lost answer");
        assert!(!cut.load(Ordering::SeqCst), "{engine:?}: an answer was cut");
        assert_eq!(stored.offset, 1, "{engine:?}: the retry got the first append's offset");
        producer.close().await.unwrap();
        assert_eq!(log_end(&direct, &topic).await, 2, "{engine:?}: stored once");
        let fetched = direct
            .fetch(v1::FetchRequest { topic: topic.clone(), partition: 0, offset: 0, ..Default::default() })
            .await
            .unwrap();
        let values: Vec<_> = fetched.messages.iter().map(|m| m.value.clone().unwrap_or_default()).collect();
        assert_eq!(values, vec![Bytes::from("one"), Bytes::from("two")]);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_takes_the_state_from_its_snapshot() {
    use janus_core::{PartitionBatches, ProduceBatchesRequest};

    // Batches stamped two years ago: a replay without a snapshot starts at the first message younger than
    // producer.id.expiration.ms (7 days) and so never sees them; only the snapshot can carry their state.
    let old = |tag: &str, seq: i32, pid: i64| {
        let records: Vec<NewRecord> = (0..2)
            .map(|i| NewRecord {
                key: None,
                value: Some(Bytes::from(format!("{tag}-{i}"))),
                headers: vec![],
                timestamp_ms: 1_700_000_000_000,
            })
            .collect();
        RecordBatch::build(&records, Compression::None).unwrap().with_producer(pid, 0, seq).into_bytes()
    };
    for engine in [janus_api::EngineKind::Segment, janus_api::EngineKind::Commitlog] {
        let dir = tempfile::tempdir().unwrap();
        let produce = |core: janus_core::Core, bytes: Bytes| async move {
            let admission = core.admit(None, bytes.len()).await.unwrap();
            let req = ProduceBatchesRequest {
                topic: "snap".into(),
                batches: vec![PartitionBatches { partition: 0, bytes }],
                wait_durable: false,
            };
            core.produce_batches(admission, req).await.map(|a| (a[0].base_offset, a[0].last_offset))
        };
        let pid = {
            let (core, stop) = crate::common::open_core(dir.path(), Default::default(), Default::default());
            core.blocking(move |r| r.create_topic("snap", Some(engine), 1, Default::default()).map(|_| ()))
                .await
                .unwrap();
            let pid = core.init_producer_id(None).await.unwrap().producer_id;
            assert_eq!(produce(core.clone(), old("a", 0, pid)).await.unwrap(), (0, 1));
            assert_eq!(produce(core.clone(), old("b", 2, pid)).await.unwrap(), (2, 3));
            assert_eq!(core.snapshot_producers().await.unwrap(), 1, "{engine:?}: the changed partition");
            assert_eq!(core.snapshot_producers().await.unwrap(), 0, "{engine:?}: nothing changed since");
            stop.send(true).unwrap();
            core.registry().shutdown().unwrap();
            pid
        };
        let (core, stop) = crate::common::open_core(dir.path(), Default::default(), Default::default());
        assert_eq!(produce(core.clone(), old("b", 2, pid)).await.unwrap(), (2, 3), "{engine:?}: a duplicate");
        let gap = produce(core.clone(), old("c", 9, pid)).await.unwrap_err();
        assert_eq!(gap.code(), janus_core::ErrorCode::OutOfOrderSequenceNumber, "{engine:?}");
        assert_eq!(produce(core.clone(), old("c", 4, pid)).await.unwrap(), (4, 5), "{engine:?}");
        stop.send(true).unwrap();
        core.registry().shutdown().unwrap();
    }
}
