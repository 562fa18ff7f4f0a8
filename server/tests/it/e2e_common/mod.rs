//! Helpers of the end-to-end tests (`e2e_*.rs`): a broker in-process on 127.0.0.1 port 0 with a temp
//! data dir (small engine files), or the real `janusd` binary as a child process; and the client library.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use janus_client::{Client, Engine, NewTopic};
use janus_server::{Broker, BrokerConfig};

/// A broker config for tests: loopback port 0 for both listeners, small engine files.
#[allow(clippy::field_reassign_with_default)]
pub fn config(data_dir: &Path) -> BrokerConfig {
    let mut c = BrokerConfig::default();
    c.data_dir = data_dir.to_path_buf();
    c.grpc_addr = "127.0.0.1:0".parse().unwrap();
    c.metrics_addr = "127.0.0.1:0".parse().unwrap();
    c.commitlog.file_bytes = 8 << 20;
    c.commitlog.consumequeue_file_entries = 16 * 1024;
    c.commitlog.index_slots = 1024;
    c.commitlog.index_entries = 64 * 1024;
    c.segment.index_bytes = 64 * 1024;
    c.shutdown_timeout_ms = 10_000;
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

/// The real `janusd` as a child process; killed (SIGKILL) on drop.
pub struct Janusd {
    /// The process.
    pub child: Child,
    /// Its gRPC address.
    pub grpc: SocketAddr,
}

impl Janusd {
    /// Starts `janusd` on `data_dir` with loopback port-0 listeners and waits for its listening line.
    pub fn spawn(data_dir: &Path) -> Janusd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_janusd"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--set", "commitlog.file_bytes=8388608", "--set", "commitlog.index_slots=1024"])
            .args(["--set", "commitlog.index_entries=65536", "--set", "segment.index_bytes=65536"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("janusd starts");
        // Owned by the guard at once, so it is killed and reaped whatever happens next.
        let mut janusd = Janusd { child, grpc: SocketAddr::from(([127, 0, 0, 1], 0)) };
        let stdout = janusd.child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).expect("janusd prints its listening line");
            if let Some(rest) = line.split("janusd listening grpc=").nth(1) {
                janusd.grpc = rest.split_whitespace().next().expect("an address").parse().expect("a socket address");
                return janusd;
            }
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
