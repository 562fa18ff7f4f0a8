//! The Kafka face driven by unmodified Kafka clients: confluent-kafka (librdkafka), kafka-python, aiokafka
//! and kafkajs, each through a small script in `server/tests/kafka_clients/` that runs one scenario and
//! prints JSON lines, and kcat's balanced consumer (`-G`). Every scenario runs on a topic of each engine:
//! produce with every codec and consume back in order, a consumer group of two members that rebalances,
//! commits and resumes, offsets by time, an idempotent producer whose connection is cut mid-stream, and
//! topic creation through each client's admin API.
//!
//! The clients are installed by `scripts/setup` under the shared target dir; a missing one fails the test
//! with that instruction (nothing is skipped). A failing run shows the end of the client's stderr; with
//! `KAFKA_CLIENT_DEBUG=1` in the environment that holds the client's protocol log.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use janus_client::proto as v1;
use janus_client::{Client, Engine};
use janus_server::Broker;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::e2e_common::{config, create};
use crate::kafka_face::stored_batches;

/// The engines every scenario runs on, with the short name topics carry.
const ENGINES: [(Engine, &str); 2] = [(Engine::Segment, "seg"), (Engine::Commitlog, "cl")];

/// The compression codecs every client produces with (kafkajs's lz4 and zstd come from its script's
/// codec adapters).
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// How long one client run may take before it is killed and the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(45);

/// A Kafka client the tests drive through its script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KafkaClient {
    Confluent,
    KafkaPython,
    Aiokafka,
    Kafkajs,
}

impl KafkaClient {
    /// Every client.
    const ALL: [KafkaClient; 4] =
        [KafkaClient::Confluent, KafkaClient::KafkaPython, KafkaClient::Aiokafka, KafkaClient::Kafkajs];

    /// The short name its topics and groups carry.
    fn name(self) -> &'static str {
        match self {
            KafkaClient::Confluent => "confluent",
            KafkaClient::KafkaPython => "kafkapython",
            KafkaClient::Aiokafka => "aiokafka",
            KafkaClient::Kafkajs => "kafkajs",
        }
    }

    /// Its script and the program that runs it, checked to be installed.
    fn command(self) -> Command {
        let installed = clients_dir();
        let (program, script) = match self {
            KafkaClient::Kafkajs => (PathBuf::from("node"), "kafkajs.js"),
            KafkaClient::Confluent => (installed.join("venv/bin/python"), "confluent.py"),
            KafkaClient::KafkaPython => (installed.join("venv/bin/python"), "kafka_python.py"),
            KafkaClient::Aiokafka => (installed.join("venv/bin/python"), "aiokafka_client.py"),
        };
        let installed_marker = match self {
            KafkaClient::Kafkajs => installed.join("node/node_modules/kafkajs/package.json"),
            _ => installed.join("venv/bin/python"),
        };
        assert!(
            installed_marker.exists(),
            "{self:?} is not installed ({} is missing): run scripts/setup",
            installed_marker.display()
        );
        let mut cmd = Command::new(program);
        cmd.arg(scripts_dir().join(script)).env("NODE_PATH", installed.join("node/node_modules"));
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }
}

/// Where `scripts/setup` installs the clients: `kafka-clients` in the shared target dir.
fn clients_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        Path::new(&home).join(".cache/janus-target")
    });
    target.join("kafka-clients")
}

/// The client scripts, in the repository.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_clients")
}

/// Runs `cmd` to its end (killed after `limit`), asserting it exited 0; returns its stdout.
fn run_to_end(mut cmd: Command, what: &str, limit: Duration) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (out_dir.path().join("out"), out_dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start ({e}): run scripts/setup"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let tail = |s: &str| s.chars().rev().take(6000).collect::<Vec<_>>().into_iter().rev().collect::<String>();
    match status {
        None => panic!("{what}: still running after {limit:?}\nstdout: {}\nstderr: {}", tail(&stdout), tail(&stderr)),
        Some(s) if !s.success() => panic!("{what}: {s}\nstdout: {}\nstderr: {}", tail(&stdout), tail(&stderr)),
        Some(_) => stdout,
    }
}

/// What one scenario run printed: one JSON object per line.
#[derive(Debug)]
struct Output {
    /// Which run (client, scenario, topic), for messages.
    what: String,
    /// The lines, in order.
    events: Vec<Value>,
}

impl Output {
    /// The lines of one event kind.
    fn of(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == event).collect()
    }

    /// The one line of `event`.
    fn one(&self, event: &str) -> &Value {
        let found = self.of(event);
        assert_eq!(found.len(), 1, "{}: one '{event}' line expected: {:?}", self.what, self.events);
        found[0]
    }

    /// The consumed messages.
    fn messages(&self) -> Vec<Consumed> {
        self.of("message").into_iter().map(Consumed::from_json).collect()
    }
}

/// Runs `client`'s script with `scenario` and `args` (after `--bootstrap` and `--scenario`).
async fn run(client: KafkaClient, bootstrap: SocketAddr, scenario: &str, args: Vec<String>) -> Output {
    let what = format!("{client:?} {scenario} {args:?}");
    let mut cmd = client.command();
    cmd.args(["--bootstrap", &bootstrap.to_string(), "--scenario", scenario]).args(&args);
    let label = what.clone();
    let stdout = tokio::task::spawn_blocking(move || run_to_end(cmd, &label, RUN_LIMIT)).await.unwrap();
    let events = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {l}")))
        .collect();
    Output { what, events }
}

/// `--name value` pairs as arguments.
fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    pairs.iter().flat_map(|(k, v)| [format!("--{k}"), v.clone()]).collect()
}

/// One message a client printed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Consumed {
    /// The group member that read it (`a`, `b`, `c`), if read in a group.
    member: Option<String>,
    partition: i64,
    offset: i64,
    value: String,
    key: Option<String>,
}

impl Consumed {
    /// From a `message` line.
    fn from_json(v: &Value) -> Consumed {
        Consumed {
            member: v["member"].as_str().map(str::to_owned),
            partition: v["partition"].as_i64().unwrap(),
            offset: v["offset"].as_i64().unwrap(),
            value: v["value"].as_str().unwrap_or_default().to_owned(),
            key: v["key"].as_str().map(str::to_owned),
        }
    }
}

/// Per partition, the consumed messages in the order they came.
fn by_partition(messages: &[Consumed]) -> BTreeMap<i64, Vec<&Consumed>> {
    let mut out: BTreeMap<i64, Vec<&Consumed>> = BTreeMap::new();
    for m in messages {
        out.entry(m.partition).or_default().push(m);
    }
    out
}

/// Produces `values` to `topic` through the gRPC face, message `i` to partition `i % partitions` with
/// key `k<i>` and timestamp `timestamp(i)` (0: the broker's clock).
async fn produce_direct(
    client: &Client,
    topic: &str,
    partitions: u32,
    values: &[String],
    timestamp: impl Fn(usize) -> i64,
) {
    for p in 0..partitions {
        let messages: Vec<v1::Message> = values
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % partitions == p)
            .map(|(i, v)| v1::Message {
                key: Some(bytes::Bytes::from(format!("k{i}"))),
                value: Some(bytes::Bytes::from(v.clone())),
                headers: vec![],
                timestamp_ms: timestamp(i),
            })
            .collect();
        if messages.is_empty() {
            continue;
        }
        let req = v1::ProduceRequest { topic: topic.into(), partition: Some(p), messages, ..Default::default() };
        client.produce(req).await.unwrap_or_else(|e| panic!("produce to {topic}: {e}"));
    }
}

/// The values stored in `partition` of `topic`, read through the gRPC face.
async fn stored_values(client: &Client, topic: &str, partition: u32) -> Vec<String> {
    let fetched = client
        .fetch(v1::FetchRequest { topic: topic.into(), partition, offset: 0, max_bytes: 4 << 20, ..Default::default() })
        .await
        .unwrap();
    fetched
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// `<prefix>-<i>` for `i` in `0..count`.
fn wave(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Starts a broker on `dir` (configured by `adjust`) and connects the client library to it.
async fn start_broker(
    dir: &Path,
    adjust: impl FnOnce(&mut janus_server::BrokerConfig),
) -> (Broker, Client, SocketAddr) {
    let mut c = config(dir);
    adjust(&mut c);
    let broker = Broker::start(c).await.expect("broker starts");
    let client = Client::connect(&format!("http://{}", broker.grpc_addr())).await.expect("client connects");
    let kafka = broker.kafka_addr().expect("the Kafka face runs");
    (broker, client, kafka)
}

/// Runs `runs` concurrently, each on its own task, to their ends; a panic in one is the test's panic.
async fn all<F: std::future::Future<Output = ()> + Send + 'static>(runs: impl IntoIterator<Item = F>) {
    let tasks: Vec<_> = runs.into_iter().map(tokio::spawn).collect();
    let mut first_panic = None;
    for task in tasks {
        if let Err(e) = task.await {
            first_panic.get_or_insert(e);
        }
    }
    if let Some(e) = first_panic {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Every (client, engine) pair.
fn every_client_and_engine() -> Vec<(KafkaClient, Engine, &'static str)> {
    KafkaClient::ALL.iter().flat_map(|c| ENGINES.iter().map(move |(e, short)| (*c, *e, *short))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_produces_with_every_codec_and_consumes_back_in_order() {
    const PARTITIONS: u32 = 3;
    const PER_CODEC: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let (broker, client, kafka) = start_broker(dir.path(), |_| {}).await;
    let runs = every_client_and_engine().into_iter().map(|(kc, engine, short)| {
        let client = client.clone();
        async move {
            let topic = format!("{}-codecs-{short}", kc.name());
            create(&client, &topic, engine, PARTITIONS, &[]).await;
            let common = [("topic", topic.clone()), ("partitions", PARTITIONS.to_string())];
            let mut args = flags(&common);
            args.extend(flags(&[("count", PER_CODEC.to_string()), ("codecs", CODECS.join(","))]));
            let produced = run(kc, kafka, "produce", args).await;
            for codec in CODECS {
                let line = produced.of("produced").into_iter().find(|l| l["codec"] == codec).cloned();
                let line = line.unwrap_or_else(|| panic!("{}: no line for {codec}", produced.what));
                assert_eq!(line["acked"], PER_CODEC, "{}: {codec}: {line}", produced.what);
                assert_eq!(line["errors"], serde_json::json!([]), "{}: {codec}", produced.what);
            }
            // Per partition: each codec's messages of that partition, in the order sent.
            let expected = |p: i64| -> Vec<(String, String)> {
                CODECS
                    .iter()
                    .flat_map(|codec| {
                        (0..PER_CODEC)
                            .filter(move |i| *i as i64 % PARTITIONS as i64 == p)
                            .map(move |i| (format!("{codec}-{i}"), format!("k{i}")))
                    })
                    .collect()
            };
            for p in 0..PARTITIONS {
                let stored = stored_values(&client, &topic, p).await;
                let want: Vec<String> = expected(p.into()).into_iter().map(|(v, _)| v).collect();
                assert_eq!(stored, want, "{kc:?} {engine:?}: partition {p} stored once each, in order");
            }
            let mut args = flags(&common);
            args.extend(flags(&[("count", (PER_CODEC * CODECS.len()).to_string())]));
            let consumed = run(kc, kafka, "consume", args).await;
            let messages = consumed.messages();
            assert_eq!(messages.len(), PER_CODEC * CODECS.len(), "{}", consumed.what);
            for (p, ms) in by_partition(&messages) {
                let got: Vec<(String, String)> =
                    ms.iter().map(|m| (m.value.clone(), m.key.clone().unwrap_or_default())).collect();
                assert_eq!(got, expected(p), "{}: partition {p} values and keys in order", consumed.what);
                let offsets: Vec<i64> = ms.iter().map(|m| m.offset).collect();
                assert_eq!(offsets, (0..ms.len() as i64).collect::<Vec<_>>(), "{}: partition {p}", consumed.what);
            }
            if engine == Engine::Segment {
                let seen = stored_codecs(&client, &topic, PARTITIONS).await;
                // Stored byte-exact: each codec's batches come back compressed with it.
                for (bits, codec) in CODECS.iter().enumerate() {
                    assert!(seen.contains(&(bits as i16)), "{kc:?}: {codec} batch stored as sent: {seen:?}");
                }
            }
        }
    });
    all(runs).await;
    broker.shutdown().await.unwrap();
}

/// The compression codecs (attribute bits) of the batches stored in `topic`'s `partitions`.
async fn stored_codecs(client: &Client, topic: &str, partitions: u32) -> BTreeSet<i16> {
    let mut seen = BTreeSet::new();
    for partition in 0..partitions {
        seen.extend(stored_batches(client, topic, partition).await.iter().map(|h| h.attributes & 7));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_lists_offsets_by_time() {
    const PARTITIONS: u32 = 2;
    const PER_PARTITION: i64 = 10;
    const T0: i64 = 1_700_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let (broker, client, kafka) = start_broker(dir.path(), |_| {}).await;
    let mut topics = Vec::new();
    for (engine, short) in ENGINES {
        let topic = format!("times-{short}");
        create(&client, &topic, engine, PARTITIONS, &[]).await;
        // Message j of each partition at T0 + j seconds.
        let values = wave("t", (PER_PARTITION * PARTITIONS as i64) as usize);
        produce_direct(&client, &topic, PARTITIONS, &values, |i| T0 + (i as i64 / PARTITIONS as i64) * 1000).await;
        topics.push(topic);
    }
    // Before the first, between two, at one, and after the last message.
    let asked = [(T0 - 1, 0), (T0 + 2500, 3), (T0 + 9000, 9), (T0 + 10_000, -1)];
    let timestamps: Vec<String> = asked.iter().map(|(t, _)| t.to_string()).collect();
    let pairs: Vec<(KafkaClient, String)> =
        KafkaClient::ALL.iter().flat_map(|kc| topics.iter().map(move |t| (*kc, t.clone()))).collect();
    let runs = pairs.into_iter().map(|(kc, topic)| {
        let args =
            flags(&[("topic", topic), ("partitions", PARTITIONS.to_string()), ("timestamps", timestamps.join(","))]);
        let asked = asked.to_vec();
        async move {
            let out = run(kc, kafka, "offsets-for-times", args).await;
            for (ts, offset) in asked {
                // kafkajs answers the end of the log where no message is that late.
                let offset = if offset == -1 && kc == KafkaClient::Kafkajs { PER_PARTITION } else { offset };
                let lines: Vec<&Value> = out.of("offset").into_iter().filter(|l| l["timestamp"] == ts).collect();
                let found: Vec<(i64, i64)> =
                    lines.iter().map(|l| (l["partition"].as_i64().unwrap(), l["offset"].as_i64().unwrap())).collect();
                assert_eq!(found, vec![(0, offset), (1, offset)], "{}: at {ts}", out.what);
                // The Python clients also give the found message's timestamp (message j is at T0 + j s).
                if matches!(kc, KafkaClient::KafkaPython | KafkaClient::Aiokafka) {
                    let want = if offset >= 0 { serde_json::json!(T0 + offset * 1000) } else { Value::Null };
                    assert!(lines.iter().all(|l| l["found_timestamp"] == want), "{}: at {ts}: {lines:?}", out.what);
                }
            }
            let marks: Vec<(i64, i64)> = out
                .of("watermarks")
                .iter()
                .map(|l| (l["low"].as_i64().unwrap(), l["high"].as_i64().unwrap()))
                .collect();
            assert_eq!(marks, vec![(0, PER_PARTITION); 2], "{}", out.what);
        }
    });
    all(runs).await;
    broker.shutdown().await.unwrap();
}

/// A TCP proxy to the broker's Kafka listener that, once armed, lets `after` more bytes through from the
/// client side, then drops the connection that next carries the broker's answer (so the request was
/// served and its answer lost), once.
struct CuttingProxy {
    /// Where clients connect (what the broker advertises).
    addr: SocketAddr,
    listener: Option<TcpListener>,
    /// Bytes from clients still to let through before the cut; `usize::MAX`: not armed.
    budget: Arc<AtomicUsize>,
    /// Set when the cut is due (the budget ran out), cleared by the cut.
    due: Arc<AtomicBool>,
    /// How many connections were cut.
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    /// Binds the proxy's listener (it serves once [`CuttingProxy::serve`] says where the broker is).
    async fn bind() -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        CuttingProxy {
            addr: listener.local_addr().unwrap(),
            listener: Some(listener),
            budget: Arc::new(AtomicUsize::new(usize::MAX)),
            due: Arc::new(AtomicBool::new(false)),
            cuts: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Forwards every accepted connection to `upstream`.
    fn serve(&mut self, upstream: SocketAddr) {
        let listener = self.listener.take().expect("served once");
        let (budget, due, cuts) = (Arc::clone(&self.budget), Arc::clone(&self.due), Arc::clone(&self.cuts));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (budget, due, cuts) = (Arc::clone(&budget), Arc::clone(&due), Arc::clone(&cuts));
                tokio::spawn(forward(client, server, budget, due, cuts));
            }
        });
    }

    /// Arms the cut: after `after` more bytes from clients.
    fn arm(&self, after: usize) {
        self.due.store(false, Ordering::SeqCst);
        self.budget.store(after, Ordering::SeqCst);
    }
}

/// Copies bytes both ways between `client` and `server`, spending `budget` on the client's bytes and
/// dropping both sides at the first answer once the cut is `due`.
async fn forward(
    client: TcpStream,
    server: TcpStream,
    budget: Arc<AtomicUsize>,
    due: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = {
        let due = Arc::clone(&due);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let left = budget.load(Ordering::SeqCst);
                if left != usize::MAX {
                    if n >= left {
                        budget.store(usize::MAX, Ordering::SeqCst);
                        due.store(true, Ordering::SeqCst);
                    } else {
                        budget.store(left - n, Ordering::SeqCst);
                    }
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if due.swap(false, Ordering::SeqCst) {
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_idempotent_producer_survives_a_cut_connection_without_duplicates() {
    const COUNT: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = CuttingProxy::bind().await;
    let advertised = proxy.addr.to_string();
    let (broker, client, kafka) = start_broker(dir.path(), |c| c.kafka.advertised = advertised).await;
    proxy.serve(kafka);
    // One run at a time: the cut belongs to the run that armed it.
    for (kc, engine, short) in every_client_and_engine() {
        let topic = format!("{}-idem-{short}", kc.name());
        create(&client, &topic, engine, 1, &[]).await;
        let cuts_before = proxy.cuts.load(Ordering::SeqCst);
        // About a third of the way into the stream (each message takes some 30 bytes of requests).
        proxy.arm(3000);
        let args = flags(&[("topic", topic.clone()), ("count", COUNT.to_string())]);
        let out = run(kc, proxy.addr, "idempotent", args).await;
        let line = out.one("produced");
        assert_eq!(
            (line["acked"].as_u64(), &line["errors"]),
            (Some(COUNT as u64), &serde_json::json!([])),
            "{}",
            out.what
        );
        assert_eq!(proxy.cuts.load(Ordering::SeqCst), cuts_before + 1, "{}: the connection was cut once", out.what);
        assert_eq!(
            stored_values(&client, &topic, 0).await,
            wave("idem", COUNT),
            "{}: each message once, in order",
            out.what
        );
        let duplicates = duplicates_refused(broker.metrics_addr(), &topic).await;
        assert!(duplicates >= 1, "{}: the batch whose answer was cut came again and was recognised", out.what);
        let headers = stored_batches(&client, &topic, 0).await;
        assert!(
            headers.iter().all(|h| h.producer_id >= 0),
            "{}: every batch from the idempotent producer: {headers:?}",
            out.what
        );
    }
    broker.shutdown().await.unwrap();
}

/// How many retried batches of an idempotent producer the broker recognised in `topic` (and did not
/// store again): `janus_producer_duplicates_total` from its metrics endpoint.
async fn duplicates_refused(metrics: SocketAddr, topic: &str) -> u64 {
    let text = crate::common::scrape(metrics).await;
    let series = format!("janus_producer_duplicates_total{{topic=\"{topic}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_consumes_in_a_group_of_two_and_resumes_from_its_commit() {
    const PARTITIONS: u32 = 4;
    const WAVE: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let (broker, client, kafka) = start_broker(dir.path(), |_| {}).await;
    let runs = every_client_and_engine().into_iter().map(|(kc, engine, short)| {
        let client = client.clone();
        async move {
            let topic = format!("{}-group-{short}", kc.name());
            let group = format!("{}-g-{short}", kc.name());
            create(&client, &topic, engine, PARTITIONS, &[]).await;
            produce_direct(&client, &topic, PARTITIONS, &wave("w1", WAVE), |_| 0).await;
            let common = [("topic", topic.clone()), ("partitions", PARTITIONS.to_string()), ("group", group.clone())];
            // Member a reads the first wave alone; b joins; the script then produces a second wave.
            let mut args = flags(&common);
            args.extend(flags(&[("count", WAVE.to_string()), ("count2", WAVE.to_string())]));
            let out = run(kc, kafka, "group", args).await;
            check_group_run(&out, PARTITIONS, WAVE);
            // A third wave, read by a new member from the committed offsets.
            produce_direct(&client, &topic, PARTITIONS, &wave("w3", WAVE), |_| 0).await;
            let mut args = flags(&common);
            args.extend(flags(&[("count", WAVE.to_string())]));
            let resumed = run(kc, kafka, "group-resume", args).await;
            let messages = resumed.messages();
            let mut values: Vec<String> = messages.iter().map(|m| m.value.clone()).collect();
            values.sort();
            let mut want = wave("w3", WAVE);
            want.sort();
            assert_eq!(values, want, "{}: the third wave only: nothing read again, nothing skipped", resumed.what);
            let per_partition = (2 * WAVE) as i64 / PARTITIONS as i64;
            for (p, ms) in by_partition(&messages) {
                let offsets: Vec<i64> = ms.iter().map(|m| m.offset).collect();
                let want: Vec<i64> = (per_partition..per_partition + WAVE as i64 / PARTITIONS as i64).collect();
                assert_eq!(offsets, want, "{}: partition {p} from its commit", resumed.what);
            }
        }
    });
    all(runs).await;
    broker.shutdown().await.unwrap();
}

/// The checks of one `group` run: both members got partitions, each message of both waves was read once
/// across them, the second member read some of the second wave, and the commits cover everything read.
fn check_group_run(out: &Output, partitions: u32, wave_size: usize) {
    let stable = out.one("stable");
    let a = stable["assignments"]["a"].as_array().map_or(0, Vec::len);
    let b = stable["assignments"]["b"].as_array().map_or(0, Vec::len);
    assert!(a > 0 && b > 0 && a + b == partitions as usize, "{}: the partitions shared: {stable}", out.what);
    let produced = out.one("produced");
    assert_eq!(produced["errors"], serde_json::json!([]), "{}: {produced}", out.what);
    let messages = out.messages();
    let mut values: Vec<String> = messages.iter().map(|m| m.value.clone()).collect();
    values.sort();
    let mut want = [wave("w1", wave_size), wave("w2", wave_size)].concat();
    want.sort();
    assert_eq!(values, want, "{}: each message once across the two members", out.what);
    let b_second_wave =
        messages.iter().filter(|m| m.member.as_deref() == Some("b") && m.value.starts_with("w2")).count();
    assert!(b_second_wave > 0, "{}: the member that joined read part of the second wave", out.what);
    let per_partition = (2 * wave_size) as i64 / partitions as i64;
    for (p, ms) in by_partition(&messages) {
        let mut offsets: Vec<i64> = ms.iter().map(|m| m.offset).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, (0..per_partition).collect::<Vec<_>>(), "{}: partition {p}", out.what);
    }
    let committed = &out.one("committed")["offsets"];
    for p in 0..partitions {
        assert_eq!(committed[p.to_string()], per_partition, "{}: partition {p} committed: {committed}", out.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_creates_topics_of_both_engines_through_its_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client, kafka) = start_broker(dir.path(), |_| {}).await;
    let runs = KafkaClient::ALL.map(|kc| {
        let client = client.clone();
        async move {
            let names: Vec<(String, Engine)> =
                ENGINES.iter().map(|(e, short)| (format!("{}-admin-{short}", kc.name()), *e)).collect();
            let mut args = flags(&[("partitions", "3".to_string())]);
            for (name, engine) in &names {
                args.extend(flags(&[("topic", format!("{name}:{engine}"))]));
            }
            let out = run(kc, kafka, "create-topics", args).await;
            for (name, engine) in names {
                let line = out.of("created").into_iter().find(|l| l["topic"] == name.as_str()).cloned();
                let line = line.unwrap_or_else(|| panic!("{}: no line for {name}", out.what));
                assert_eq!(line["error"], Value::Null, "{}: {line}", out.what);
                let described = client.describe_topic(&name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(described.topic.engine, Some(engine), "{}: {name}", out.what);
                assert_eq!(described.partitions.len(), 3, "{}: {name}", out.what);
            }
        }
    });
    all(runs).await;
    broker.shutdown().await.unwrap();
}

/// kcat's balanced consumer (`-G`) reading `count` messages of `topic` in `group`; returns
/// `partition offset value` lines.
fn kcat_group(kafka: SocketAddr, group: &str, topic: &str, count: usize) -> Vec<String> {
    let mut cmd = Command::new("kcat");
    cmd.args(["-b", &kafka.to_string(), "-G", group, "-c", &count.to_string(), "-q", "-f", "%p %o %s\\n"])
        .args(["-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"])
        .arg(topic);
    let stdout = run_to_end(cmd, &format!("kcat -G {group} {topic}"), Duration::from_secs(30));
    stdout.lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_consumes_in_a_balanced_group_and_resumes_from_its_commit() {
    const PARTITIONS: u32 = 2;
    const WAVE: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let (broker, client, kafka) = start_broker(dir.path(), |_| {}).await;
    for (engine, short) in ENGINES {
        let topic = format!("kcat-group-{short}");
        let group = format!("kcat-g-{short}");
        create(&client, &topic, engine, PARTITIONS, &[]).await;
        for prefix in ["first", "second"] {
            produce_direct(&client, &topic, PARTITIONS, &wave(prefix, WAVE), |_| 0).await;
            let (g, t) = (group.clone(), topic.clone());
            let lines = tokio::task::spawn_blocking(move || kcat_group(kafka, &g, &t, WAVE)).await.unwrap();
            let mut values: Vec<&str> = lines.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
            values.sort_unstable();
            let mut want = wave(prefix, WAVE);
            want.sort();
            assert_eq!(values, want, "{topic}: the {prefix} wave, once (the second resumes from the commit)");
        }
    }
    broker.shutdown().await.unwrap();
}
