//! The real `janusd` binary: starts on port 0 with a temp data dir, prints its listening line on stdout,
//! serves, exits cleanly on SIGTERM (and SIGINT) with the engines' clean-shutdown markers written, and a
//! restart serves the same data. Bad configuration makes it exit with an error naming the key.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::e2e_common::{Janusd, janusd_command};
use janus_proto::v1;

/// `janusd` with the engine sizes of [`config`], `RUST_LOG=info`, stderr kept, and `env` set; its listening
/// line must be the first line on stdout.
fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> Janusd {
    let sets = [
        "commitlog.file_bytes=1048576",
        "commitlog.index_slots=1024",
        "commitlog.index_entries=4096",
        "segment.index_bytes=65536",
    ];
    let mut cmd = janusd_command(data_dir, &sets);
    cmd.env("RUST_LOG", "info").stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let janusd = Janusd::start(&mut cmd, Duration::from_secs(120));
    assert!(janusd.before_listening.is_empty(), "unexpected line: {:?}", janusd.before_listening);
    janusd
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill -{sig}");
}

/// Waits for janusd to exit, keeping this test's runtime running (the client connections it holds must be
/// able to answer the broker's HTTP/2 GOAWAY/PING for the graceful shutdown to finish at once).
async fn wait_exit(mut j: Janusd) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = j.child.try_wait().unwrap() {
            let mut err = String::new();
            j.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status, err);
        }
        assert!(Instant::now() < deadline, "janusd did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn janusd_serves_stops_on_sigterm_and_restarts_with_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let j = spawn(dir.path(), &[("JANUS_TOPIC_DEFAULTS__PARTITIONS", "3")]);
    assert_ne!(j.grpc.port(), 0);
    assert_ne!(j.metrics.port(), 0);
    {
        let mut c = connect(j.grpc).await;
        // The env var set the default partition count.
        create(&mut c, "durable", v1::Engine::Segment, 0, &[("flush.policy", "sync")]).await;
        let d = c.admin.describe_topic(v1::DescribeTopicRequest { name: "durable".into() }).await.unwrap().into_inner();
        assert_eq!(d.partitions.len(), 3);
        create(&mut c, "durable-cl", v1::Engine::Commitlog, 1, &[]).await;
        for topic in ["durable", "durable-cl"] {
            produce(&mut c, topic, Some(0), vec![msg(None, "kept across restarts")]).await;
        }
        commit_offsets(&mut c, "bin", "durable", &[(0, 1)]).await;
        assert!(scrape(j.metrics).await.contains("janus_messages_in_total"));
        // Health and reflection are served.
        let mut health = tonic_health::pb::health_client::HealthClient::new(
            tonic::transport::Channel::from_shared(format!("http://{}", j.grpc)).unwrap().connect().await.unwrap(),
        );
        let h = health
            .check(tonic_health::pb::HealthCheckRequest { service: "janus.v1.Producer".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(h.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    }
    signal(&j.child, "TERM");
    let stopping = Instant::now();
    let (status, stderr) = wait_exit(j).await;
    assert!(status.success(), "janusd exited with {status}: {stderr}");
    assert!(stopping.elapsed() < Duration::from_secs(20), "shutdown took {:?}: {stderr}", stopping.elapsed());
    assert!(stderr.contains("janusd listening grpc=127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("shut down cleanly"), "{stderr}");
    assert!(dir.path().join("segment/.clean-shutdown").exists());
    assert!(dir.path().join("meta/CURRENT").exists());

    let j = spawn(dir.path(), &[]);
    {
        let mut c = connect(j.grpc).await;
        for topic in ["durable", "durable-cl"] {
            assert_eq!(values(&fetch(&mut c, topic, 0, 0).await.unwrap()), vec!["kept across restarts"]);
        }
        assert_eq!(fetch_offsets(&mut c, "bin", "durable").await, partition_offsets(&[(0, 1)]));
    }
    signal(&j.child, "INT");
    let (status, stderr) = wait_exit(j).await;
    assert!(status.success(), "janusd exited with {status}: {stderr}");
}

#[test]
fn janusd_refuses_bad_configuration_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (env, key) in [
        (("JANUS_LIMITS__NOPE", "1"), "nope"),
        (("JANUS_TOPIC_DEFAULTS__RETENTION_MS", "-7"), "topic_defaults.retention_ms"),
    ] {
        let out = janusd_command(dir.path(), &[]).env(env.0, env.1).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
    }
}

#[tokio::test]
async fn acknowledged_data_topics_and_offsets_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let j = spawn(dir.path(), &[]);
    {
        let mut c = connect(j.grpc).await;
        create(&mut c, "crash-seg", v1::Engine::Segment, 1, &[("flush.policy", "sync")]).await;
        create(&mut c, "crash-cl", v1::Engine::Commitlog, 1, &[("flush.policy", "sync")]).await;
        for topic in ["crash-seg", "crash-cl"] {
            c.producer
                .produce(v1::ProduceRequest {
                    topic: topic.into(),
                    partition: Some(0),
                    messages: vec![msg(None, "acked-1"), msg(None, "acked-2")],
                    wait_durable: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            commit_offsets(&mut c, "crashers", topic, &[(0, 1)]).await;
        }
    }
    signal(&j.child, "KILL");
    let (status, _) = wait_exit(j).await;
    assert!(!status.success());
    assert!(!dir.path().join("segment/.clean-shutdown").exists());

    let j = spawn(dir.path(), &[]);
    let mut c = connect(j.grpc).await;
    for topic in ["crash-seg", "crash-cl"] {
        assert_eq!(values(&fetch(&mut c, topic, 0, 0).await.unwrap()), vec!["acked-1", "acked-2"], "{topic}");
        assert_eq!(fetch_offsets(&mut c, "crashers", topic).await, partition_offsets(&[(0, 1)]), "{topic}");
    }
    signal(&j.child, "TERM");
    let (status, stderr) = wait_exit(j).await;
    assert!(status.success(), "{stderr}");
}
