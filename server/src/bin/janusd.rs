//! `janusd`: the Janus broker.
//!
//! Runs on embedded defaults with no arguments; see `janusd --help` and the `janus_server::config` docs
//! for the TOML file and the `JANUS_*` environment variables. Once it serves, it prints one line to
//! stdout, `janusd listening grpc=<addr> metrics=<addr> kafka=<addr>` (`kafka=` only when the Kafka face
//! runs; the same text is logged to stderr). SIGINT or
//! SIGTERM shut it down gracefully; the exit status is 0 after a clean shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use janus_server::{Broker, BrokerConfig, ConfigOverrides};
use tracing_subscriber::EnvFilter;

/// The Janus message broker.
#[derive(Debug, Parser)]
#[command(name = "janusd", version, about)]
struct Args {
    /// TOML config file (optional; every key has a default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (meta/, segment/, commitlog/); overrides `data_dir` and JANUS_DATA_DIR.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC listen address (port 0 picks a free port); overrides `grpc_addr` and JANUS_GRPC_ADDR.
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<SocketAddr>,
    /// Prometheus metrics listen address; overrides `metrics_addr` and JANUS_METRICS_ADDR.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Sets any config key by its TOML path, e.g. `--set limits.inflight_bytes=1048576` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut set = Vec::with_capacity(args.set.len());
    for pair in &args.set {
        let (k, v) = pair.split_once('=').with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
        set.push((k.trim().to_string(), v.trim().to_string()));
    }
    let overrides =
        ConfigOverrides { data_dir: args.data_dir, grpc_addr: args.grpc_addr, metrics_addr: args.metrics_addr, set };
    let config = BrokerConfig::load(args.config.as_deref(), &overrides)?;
    let broker = Broker::start(config).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let kafka = broker.kafka_addr().map(|a| format!(" kafka={a}")).unwrap_or_default();
        writeln!(out, "janusd listening grpc={} metrics={}{kafka}", broker.grpc_addr(), broker.metrics_addr())?;
        out.flush()?;
    }
    let signal = wait_for_signal().await?;
    tracing::info!(signal, "received signal");
    broker.shutdown().await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("janusd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janusd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
