//! A consumer group under churn, end to end with real processes: 100,000 messages are produced over a few
//! seconds into a 4-partition topic of each engine while `janus consume --group` processes are started,
//! killed with SIGKILL, and stopped with SIGINT (which leaves the group cleanly). Every message must be
//! printed by some member (at least once, none lost); the duplicates are counted and must be explained by
//! the uncommitted window: only messages a killed member printed after its last commit can be printed
//! again by the member that takes its partition over, so duplicates never exceed what the killed members
//! printed.
//!
//! The members are the `janus` binary of this workspace (built by `cargo test --workspace`, which the
//! README's test command runs).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use janus_client::{Engine, ProducerConfig, ProducerRecord};

use crate::e2e_common::create;

/// Messages produced per topic.
const MESSAGES: usize = 100_000;
/// Partitions per topic.
const PARTITIONS: u32 = 4;
/// How long production is spread over.
const PRODUCE_FOR: Duration = Duration::from_secs(8);
/// Bound on the whole wait for the members to drain the topic.
const DRAIN_WAIT: Duration = Duration::from_secs(90);

/// The `janus` binary next to `janusd` in the target directory.
fn janus_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_janusd")).with_file_name("janus");
    assert!(
        path.exists(),
        "{} is missing: run the workspace's tests (`scripts/test`, or `cargo build -p janus-client` first)",
        path.display()
    );
    path
}

/// One `janus consume --group` process and the values it printed.
struct Member {
    name: &'static str,
    child: Child,
    printed: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(name: &'static str, url: &str, topic: &str, group: &str) -> Member {
        let mut child = Command::new(janus_binary())
            .args(["--broker", url, "consume", topic, "--group", group, "--from", "earliest"])
            .args(["--session-timeout", "2s", "--timeout-ms", "6000"])
            .env_remove("JANUS_BROKER")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("janus starts");
        let stdout = child.stdout.take().expect("piped");
        let printed = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Member { name, child, printed, reader: Some(reader) }
    }

    /// Sends `signal` (`KILL`, `INT`) with kill(1), as the janusd binary tests do.
    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.expect("kill runs").success(), "kill -{signal} {}", self.name);
    }

    /// Waits for the process to exit (bounded) and for its output to be read; returns how it exited and
    /// what it printed.
    fn finish(&mut self, wait: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + wait;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("member {} did not exit within {wait:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("reader thread");
        }
        (status, self.printed.lock().unwrap().clone())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn churn(engine: Engine, topic: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::e2e_common::config(dir.path());
    config.groups.initial_rebalance_delay_ms = 0;
    config.groups.min_session_timeout_ms = 1_000;
    config.groups.heartbeat_interval_ms = 500;
    let broker = janus_server::Broker::start(config).await.expect("broker starts");
    let url = format!("http://{}", broker.grpc_addr());
    let client = janus_client::Client::connect(&url).await.unwrap();
    create(&client, topic, engine, PARTITIONS, &[]).await;

    // Production in the background: MESSAGES unique values spread over PRODUCE_FOR.
    let producer_client = client.clone();
    let name = topic.to_string();
    let producer = tokio::spawn(async move {
        let producer = producer_client.producer(ProducerConfig::default());
        let chunks = 80;
        let per_chunk = MESSAGES / chunks;
        for c in 0..chunks {
            for i in 0..per_chunk {
                let n = c * per_chunk + i;
                producer.send(ProducerRecord::new(name.clone(), format!("m{n}"))).await.unwrap();
            }
            producer.flush().await.unwrap();
            tokio::time::sleep(PRODUCE_FOR / chunks as u32).await;
        }
    });

    let group = format!("churn-{topic}");
    let mut a = Member::start("a", &url, topic, &group);
    let mut b = Member::start("b", &url, topic, &group);
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.signal("KILL");
    let mut c = Member::start("c", &url, topic, &group);
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.signal("KILL");
    let mut d = Member::start("d", &url, topic, &group);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.signal("INT");
    producer.await.expect("producer task");

    let killed: Vec<String> = [&mut a, &mut b].into_iter().flat_map(|m| m.finish(Duration::from_secs(5)).1).collect();
    let (status, stopped) = c.finish(Duration::from_secs(20));
    assert!(status.success(), "{topic}: Ctrl-C commits, leaves and exits cleanly: {status}");
    // `d` exits by itself once the topic has been quiet for its timeout.
    let (_, last) = tokio::task::spawn_blocking(move || d.finish(DRAIN_WAIT)).await.unwrap();

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for v in killed.iter().chain(&stopped).chain(&last) {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..MESSAGES).filter(|n| !counts.contains_key(format!("m{n}").as_str())).collect();
    assert!(
        missing.is_empty(),
        "{topic}: {} of {MESSAGES} messages were never consumed (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(counts.len(), MESSAGES, "{topic}: only produced values are printed");
    let printed = killed.len() + stopped.len() + last.len();
    let duplicates = printed - MESSAGES;
    eprintln!(
        "{topic}: {printed} lines for {MESSAGES} messages: {duplicates} duplicates; the killed members printed {}, \
         the stopped member {}, the last {}",
        killed.len(),
        stopped.len(),
        last.len()
    );
    assert!(
        duplicates <= killed.len(),
        "{topic}: {duplicates} duplicates, more than the {} lines the killed members printed (a clean leave must \
         commit before giving partitions up)",
        killed.len()
    );
    assert!(!stopped.is_empty() && !last.is_empty(), "every surviving member got partitions");
    let d = client.describe_group(&group).await.unwrap();
    assert!(d.partitions.iter().all(|p| p.lag == 0), "{topic}: the group's committed offsets reach the end: {d:?}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_under_churn_consumes_every_message_of_a_segment_topic() {
    churn(Engine::Segment, "churn-seg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_under_churn_consumes_every_message_of_a_commitlog_topic() {
    churn(Engine::Commitlog, "churn-cl").await;
}
