//! `janus bench produce|consume --json` end to end against an in-process broker: the figures, the latency
//! quantiles, and the broker CPU read from the broker's own metrics endpoint (`process_cpu_seconds_total`).
//! In this test process the counter is the whole process's (the broker, the bench client and the other
//! tests), so only its presence and sign are asserted, not its size.

use std::io::Cursor;

use crate::e2e_common::{create, start};
use janus_client::Engine;
use janus_client::cli;
use serde_json::Value;

/// Runs `janus --broker URL bench ARGS... --json` in-process; the command must succeed and print one JSON
/// object on one line.
async fn bench_json(url: &str, args: &[&str]) -> Value {
    let mut argv = vec!["janus", "--broker", url, "bench"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = cli::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err).await;
    let (out, err) = (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap());
    if let Err(e) = result {
        panic!("janus bench {args:?} failed: {e}\nstdout: {out}\nstderr: {err}");
    }
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn f(report: &Value, path: &[&str]) -> f64 {
    let v = path.iter().fold(report, |v, k| &v[*k]);
    v.as_f64().unwrap_or_else(|| panic!("{path:?} is not a number: {report}"))
}

/// The figures every report must have, whatever was measured.
fn check_report(r: &Value, what: &str, messages: u64, size: u64, latency_unit: &str) {
    assert_eq!(r["what"], what, "{r}");
    assert_eq!(r["messages"], messages, "{r}");
    assert_eq!(r["bytes"], messages * size, "{r}");
    assert_eq!(r["latency_unit"], latency_unit, "{r}");
    let seconds = f(r, &["seconds"]);
    assert!(seconds > 0.0, "{r}");
    assert!(f(r, &["msgs_per_s"]) > 0.0 && f(r, &["mb_per_s"]) > 0.0, "{r}");
    let mb_per_s = (messages * size) as f64 / seconds / 1e6;
    assert!((f(r, &["mb_per_s"]) - mb_per_s).abs() <= 1e-6 * mb_per_s, "MB is 10^6 bytes per second: {r}");
    let q = |k| f(r, &["latency_ms", k]);
    assert!(q("count") >= 1.0, "{r}");
    assert!(q("p50") > 0.0 && q("p50") <= q("p99") && q("p99") <= q("p999") && q("p999") <= q("max"), "{r}");
    // The broker CPU, from the broker's metrics endpoint.
    assert!(r["broker_cpu_error"].is_null(), "{r}");
    let cpu = f(r, &["broker_cpu_s"]);
    let per_gb = f(r, &["broker_cpu_s_per_gb"]);
    assert!(cpu > 0.0 && per_gb > 0.0, "{r}");
    let expected = cpu / ((messages * size) as f64 / 1e9);
    assert!((per_gb - expected).abs() <= 1e-6 * expected, "CPU seconds per 10^9 bytes of values: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_json_reports_throughput_latency_and_broker_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let url = format!("http://{}", broker.grpc_addr());
    let metrics = format!("http://{}/metrics", broker.metrics_addr());

    // The endpoint serves the counter, as a Prometheus counter.
    let text = crate::common::scrape(broker.metrics_addr()).await;
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"), "{text}");

    let (messages, size) = (3000u64, 200u64);
    let (n, s) = (messages.to_string(), size.to_string());
    for (topic, engine) in [("bench-json-seg", Engine::Segment), ("bench-json-cl", Engine::Commitlog)] {
        create(&client, topic, engine, 2, &[]).await;
        // Small batches, so that there are many requests to take quantiles of.
        let common = ["--messages", &n, "--size", &s, "--metrics", &metrics];
        let mut args = vec!["produce", topic, "--concurrency", "2", "--batch-bytes", "16384"];
        args.extend_from_slice(&common);
        let r = bench_json(&url, &args).await;
        check_report(&r, "produce", messages, size, "request");
        assert_eq!(r["mode"], "unary", "{r}");

        let mut args = vec!["consume", topic, "--max-bytes", "65536", "--mode", "fetch"];
        args.extend_from_slice(&common);
        let r = bench_json(&url, &args).await;
        check_report(&r, "consume", messages, size, "batch");
        assert_eq!(r["mode"], "fetch", "{r}");
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_succeeds_and_says_why_when_the_broker_cpu_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let url = format!("http://{}", broker.grpc_addr());
    create(&client, "bench-nocpu", Engine::Segment, 1, &[]).await;
    // A port with no listener, kept bound until the test ends (see main.rs).
    let unused = tokio::net::TcpSocket::new_v4().unwrap();
    unused.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let down = format!("http://{}/metrics", unused.local_addr().unwrap());

    for (metrics, why) in [(down.as_str(), "cannot connect to the metrics endpoint"), ("https://x/", "only http://")] {
        let args = ["produce", "bench-nocpu", "--messages", "100", "--size", "10", "--metrics", metrics];
        let r = bench_json(&url, &args).await;
        assert_eq!(r["messages"], 100, "{r}");
        assert!(r["broker_cpu_s"].is_null() && r["broker_cpu_s_per_gb"].is_null(), "{r}");
        let error = r["broker_cpu_error"].as_str().unwrap_or_else(|| panic!("a reason: {r}"));
        assert!(error.contains(why), "{r}");
    }

    // The summary line says so too.
    let argv = ["janus", "--broker", &url, "bench", "consume", "bench-nocpu", "--messages", "200", "--size", "10"];
    let argv: Vec<&str> = argv.into_iter().chain(["--metrics", down.as_str()]).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    cli::run(argv, &mut Cursor::new(Vec::new()), &mut out, &mut err).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("bench consume: 200 messages"), "{out}");
    assert!(out.contains("p99.9") && out.contains("; broker CPU unavailable: cannot connect"), "{out}");
    broker.shutdown().await.unwrap();
}
