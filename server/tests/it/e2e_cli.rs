//! The `janus` CLI end to end, driven in-process through `janus_client::cli::run` against a broker:
//! a tour of every command on one topic of each engine, and the errors a person must be able to act on.

use std::io::Cursor;

use crate::e2e_common::start;
use janus_client::cli::{self, CliError};
use janus_client::partitioner::partition_for_key;

/// Runs `janus --broker URL ARGS...` with `stdin`; returns the result, stdout and stderr.
async fn janus(url: &str, args: &[&str], stdin: &str) -> (Result<(), CliError>, String, String) {
    let mut argv = vec!["janus", "--broker", url];
    argv.extend_from_slice(args);
    let mut input = Cursor::new(stdin.as_bytes().to_vec());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = cli::run(argv, &mut input, &mut out, &mut err).await;
    (result, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// Like [`janus`] but the command must succeed; returns stdout.
async fn ok(url: &str, args: &[&str], stdin: &str) -> String {
    let (result, out, err) = janus(url, args, stdin).await;
    if let Err(e) = result {
        panic!("janus {args:?} failed: {e}\nstdout: {out}\nstderr: {err}");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_tour_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _client) = start(dir.path()).await;
    let url = format!("http://{}", broker.grpc_addr());
    let url = url.as_str();

    for (topic, engine) in [("tour-seg", "segment"), ("tour-cl", "commitlog")] {
        let group = format!("tour-{engine}");
        let group = group.as_str();
        let out = ok(
            url,
            &["topic", "create", topic, "--engine", engine, "--partitions", "2", "--config", "retention.ms=-1"],
            "",
        )
        .await;
        assert_eq!(out, format!("created topic {topic} ({engine}, 2 partitions)\n"));

        // Keyed lines all land on one partition; the summary says where.
        let lines: String = (0..10).map(|i| format!("line {i}\n")).collect();
        let out = ok(url, &["produce", topic, "--key", "k", "--tag", "red", "--header", "src=cli"], &lines).await;
        assert!(out.starts_with(&format!("produced 10 messages to {topic}\n")), "{out}");
        assert!(out.contains(": 10 messages, offsets 0..=9\n"), "{out}");
        // An explicit partition (the one key "k" does not go to), from a file.
        let other = (1 - partition_for_key(b"k", 2)).to_string();
        let other = other.as_str();
        let file = dir.path().join(format!("{topic}.txt"));
        std::fs::write(&file, "a\nb\r\nc").unwrap();
        let out =
            ok(url, &["produce", topic, "--partition", other, "--tag", "blue", "--file", file.to_str().unwrap()], "")
                .await;
        assert!(out.contains(&format!("partition {other}: 3 messages, offsets 0..=2")), "{out}");

        let out = ok(url, &["topic", "describe", topic], "").await;
        assert!(out.contains(&format!("engine {engine}")), "{out}");
        assert!(out.contains("retention.ms=-1"), "{out}");
        assert!(out.contains("PARTITION") && out.contains("START") && out.contains("END"), "{out}");

        // Consume part with a group, then the rest: the group resumes where it stopped.
        let out = ok(url, &["consume", topic, "--group", group, "--max", "4", "--timeout-ms", "2000"], "").await;
        assert_eq!(out.lines().count(), 4, "{out}");
        let out = ok(url, &["consume", topic, "--group", group, "--timeout-ms", "500"], "").await;
        assert_eq!(out.lines().count(), 9, "{out}");
        let out = ok(url, &["consume", topic, "--group", group, "--timeout-ms", "300"], "").await;
        assert_eq!(out, "", "nothing is re-delivered to the group");

        let out = ok(url, &["group", "describe", group], "").await;
        let row = out.lines().find(|l| l.starts_with(topic)).unwrap_or_else(|| panic!("{out}"));
        assert!(row.split_whitespace().last() == Some("0"), "lag 0: {out}");
        assert!(out.contains("total lag 0"), "{out}");

        // Tag filter and JSON output.
        let out = ok(url, &["consume", topic, "--tag", "blue", "--format", "json", "--timeout-ms", "500"], "").await;
        let values: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(values.len(), 3, "{out}");
        assert_eq!(values[0]["value"], "a");
        assert_eq!(values[1]["value"], "b");
        assert_eq!(values[0]["headers"]["TAGS"], "blue");
        assert_eq!(values[0]["partition"].to_string(), other);
        let out =
            ok(url, &["consume", topic, "--partition", other, "--from", "2", "--max", "1", "--timeout-ms", "2000"], "")
                .await;
        assert_eq!(out, "c\n");
        let out = ok(url, &["consume", topic, "--from", "latest", "--timeout-ms", "200"], "").await;
        assert_eq!(out, "");

        // Reset the group to the start: everything comes again.
        let out = ok(url, &["group", "reset", group, "--topic", topic, "--to", "earliest"], "").await;
        assert!(out.contains("partition 0: offset 0") && out.contains("partition 1: offset 0"), "{out}");
        let out = ok(url, &["consume", topic, "--group", group, "--timeout-ms", "500"], "").await;
        assert_eq!(out.lines().count(), 13, "{out}");

        let out = ok(url, &["topic", "alter", topic, "--config", "retention.ms=3600000"], "").await;
        assert!(out.contains("retention.ms=3600000"), "{out}");

        // A small benchmark run of each kind.
        let out =
            ok(url, &["bench", "produce", topic, "--messages", "2000", "--size", "100", "--concurrency", "2"], "")
                .await;
        assert!(out.starts_with("bench produce: 2000 messages"), "{out}");
        assert!(out.contains("latency per produce request") && out.contains("p99"), "{out}");
        let out = ok(url, &["bench", "consume", topic, "--messages", "2013", "--size", "100"], "").await;
        assert!(out.starts_with("bench consume: 2013 messages"), "{out}");
    }

    let out = ok(url, &["topic", "list"], "").await;
    assert!(out.contains("tour-seg") && out.contains("segment"), "{out}");
    assert!(out.contains("tour-cl") && out.contains("commitlog"), "{out}");
    // Every consumer closed (left): both groups are empty.
    let out = ok(url, &["group", "list"], "").await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [vec!["GROUP", "STATE", "MEMBERS"], vec!["tour-commitlog", "Empty", "0"], vec!["tour-segment", "Empty", "0"]],
        "{out}"
    );

    ok(url, &["topic", "delete", "tour-cl"], "").await;
    let out = ok(url, &["topic", "list"], "").await;
    assert!(!out.contains("tour-cl"), "{out}");
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _client) = start(dir.path()).await;
    let url = format!("http://{}", broker.grpc_addr());
    let url = url.as_str();
    ok(url, &["topic", "create", "errs", "--engine", "segment", "--partitions", "1"], "").await;
    ok(url, &["produce", "errs"], "1\n2\n3\n4\n5\n").await;

    let (r, _, _) = janus(url, &["consume", "errs", "--from", "9", "--max", "1", "--timeout-ms", "2000"], "").await;
    let text = r.unwrap_err().to_string();
    assert!(text.starts_with("OUT_OF_RANGE: offset 9 is out of range"), "{text}");
    assert!(text.contains("0..5"), "{text}");

    let (r, _, _) = janus(url, &["topic", "describe", "nope"], "").await;
    assert!(r.unwrap_err().to_string().starts_with("NOT_FOUND: "));
    let (r, _, _) = janus(url, &["topic", "create", "errs", "--engine", "segment"], "").await;
    assert!(r.unwrap_err().to_string().starts_with("ALREADY_EXISTS: "));
    let (r, _, _) = janus(url, &["topic", "create", "x", "--engine", "segment", "--config", "bogus.key=1"], "").await;
    let text = r.unwrap_err().to_string();
    assert!(text.starts_with("INVALID_ARGUMENT: ") && text.contains("bogus.key"), "{text}");
    let (r, _, _) = janus(url, &["produce", "errs", "--partition", "7"], "x\n").await;
    assert!(r.unwrap_err().to_string().contains("partition 7 does not exist"));

    // Usage errors: clap's message, exit code 2.
    for args in [
        &["topic", "create", "x", "--engine", "kafka"][..],
        &["consume", "errs", "--from", "yesterday"],
        &["topic", "create", "x", "--engine", "segment", "--config", "novalue"],
        &["bench", "produce", "errs", "--messages", "ten", "--size", "1"],
        &["nonsense"],
    ] {
        let (r, _, _) = janus(url, args, "").await;
        let e = r.unwrap_err();
        assert!(matches!(e, CliError::Usage(_)), "{args:?}: {e:?}");
        assert_eq!(e.exit_code(), 2);
    }
    let (r, out, _) = janus(url, &["--help"], "").await;
    assert!(r.is_ok() && out.contains("Usage"), "{out}");

    // Broker down / bad URL. The port stays bound (without listening, so connections are refused) until the
    // test ends: released, it could be taken by the listener of another test of this process meanwhile.
    let unused = tokio::net::TcpSocket::new_v4().unwrap();
    unused.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = unused.local_addr().unwrap().port();
    let down = format!("http://127.0.0.1:{port}");
    let (r, _, _) = janus(&down, &["topic", "list"], "").await;
    let text = r.unwrap_err().to_string();
    assert!(text.starts_with(&format!("cannot connect to the broker at {down}")), "{text}");
    let (r, _, _) = janus("ftp://x", &["topic", "list"], "").await;
    assert!(r.unwrap_err().to_string().starts_with("invalid broker URL"));
    broker.shutdown().await.unwrap();
}
