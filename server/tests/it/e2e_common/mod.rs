//! Helpers of the end-to-end tests (`e2e_*`, `janusd_binary`): a broker in-process on 127.0.0.1 port 0
//! with a temp data dir (engine files sized for the 100,000-message runs), or the real `janusd` binary as a
//! child process; and the client library.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use janus_client::{Client, Engine, NewTopic};
use janus_server::{Broker, BrokerConfig};

/// A broker config for the end-to-end tests: [`crate::common::config`] with larger commitlog files and index.
pub fn config(data_dir: &Path) -> BrokerConfig {
    let mut c = crate::common::config(data_dir);
    c.commitlog.insert("file_bytes".into(), (8 << 20).to_string());
    c.commitlog.insert("consumequeue_file_entries".into(), (16 * 1024).to_string());
    c.commitlog.insert("index_entries".into(), (64 * 1024).to_string());
    c
}

/// Starts an in-process broker on `data_dir` and connects the client library to it.
pub async fn start(data_dir: &Path) -> (Broker, Client) {
    let broker = Broker::start(config(data_dir)).await.expect("broker starts");
    let client = Client::connect(&format!("http://{}", broker.grpc_addr())).await.expect("client connects");
    (broker, client)
}

/// Creates a topic through the client.
pub async fn create(client: &Client, name: &str, engine: Engine, partitions: u32, configs: &[(&str, &str)]) {
    let mut spec = NewTopic::new(name, engine).partitions(partitions);
    for (k, v) in configs {
        spec = spec.config(*k, *v);
    }
    client.create_topic(&spec).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// The engine sizes `janusd` gets in the end-to-end tests, as `--set` values: those of [`config`] but
/// `commitlog.consumequeue_file_entries` (left at its default).
pub const E2E_SETS: &[&str] = &[
    "commitlog.file_bytes=8388608",
    "commitlog.index_slots=1024",
    "commitlog.index_entries=65536",
    "segment.index_bytes=65536",
];

/// The number of cycles of the crash loop (`e2e_crash`).
pub const CRASH_CYCLES_ENV: &str = "JANUS_CRASH_CYCLES";

/// Variables that set the tests, not `janusd`: removed from its environment, since janusd refuses a
/// `JANUS_*` variable that is not one of its keys.
pub const TEST_ENV: &[&str] = &[CRASH_CYCLES_ENV];

/// A `janusd` command on `data_dir` with loopback port-0 listeners, each of `sets` as a `--set` flag,
/// and stdout piped (for [`Janusd::start`]). Environment (but [`TEST_ENV`]) and stderr are the caller's
/// to set.
pub fn janusd_command(data_dir: &Path, sets: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_janusd"));
    for name in TEST_ENV {
        cmd.env_remove(name);
    }
    cmd.arg("--data-dir").arg(data_dir).args(["--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]);
    cmd.args(["--set", "kafka.listen=127.0.0.1:0"]);
    for set in sets {
        cmd.arg("--set").arg(set);
    }
    cmd.stdout(Stdio::piped());
    cmd
}

/// The real `janusd` as a child process; killed (SIGKILL) and reaped on drop.
pub struct Janusd {
    /// The process.
    pub child: Child,
    /// Its gRPC address.
    pub grpc: SocketAddr,
    /// Its metrics address.
    pub metrics: SocketAddr,
    /// Its Kafka address, when the Kafka face runs.
    pub kafka: Option<SocketAddr>,
    /// The lines it printed on stdout before its listening line.
    pub before_listening: Vec<String>,
}

impl Janusd {
    /// Starts `janusd` on `data_dir` with loopback port-0 listeners and the [`E2E_SETS`] engine sizes,
    /// stderr discarded, and waits for its listening line.
    pub fn spawn(data_dir: &Path) -> Janusd {
        let mut cmd = janusd_command(data_dir, E2E_SETS);
        cmd.stderr(Stdio::null());
        Janusd::start(&mut cmd, Duration::from_secs(60))
    }

    /// Spawns `cmd` (from [`janusd_command`]) and waits up to `wait` for its listening line
    /// (`janusd listening grpc=<addr> metrics=<addr>`) on stdout.
    pub fn start(cmd: &mut Command, wait: Duration) -> Janusd {
        let child = cmd.spawn().expect("janusd starts");
        // Owned by the guard at once, so it is killed and reaped whatever happens next.
        let unknown = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut janusd = Janusd { child, grpc: unknown, metrics: unknown, kafka: None, before_listening: Vec::new() };
        let stdout = janusd.child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("janusd prints its listening line");
            if let Some(rest) = line.strip_prefix("janusd listening ") {
                for pair in rest.split_whitespace() {
                    let (name, addr) = pair.split_once('=').unwrap_or_else(|| panic!("unexpected line: {line}"));
                    let addr: SocketAddr = addr.parse().expect("a socket address");
                    match name {
                        "grpc" => janusd.grpc = addr,
                        "metrics" => janusd.metrics = addr,
                        "kafka" => janusd.kafka = Some(addr),
                        _ => {}
                    }
                }
                return janusd;
            }
            janusd.before_listening.push(line);
        }
    }

    /// The URL for the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Janusd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
