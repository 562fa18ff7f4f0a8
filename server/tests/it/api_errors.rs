//! Every error case of the API, through gRPC: NOT_FOUND, INVALID_ARGUMENT (name, config, oversized
//! message), OUT_OF_RANGE (with the valid range), ALREADY_EXISTS, and RESOURCE_EXHAUSTED on a really full
//! disk (a small tmpfs mounted over the segment engine's directory) while reads keep working.

use std::collections::HashMap;
use std::process::Command;

use crate::common::*;
use janus_proto::v1;
use tonic::Code;

#[tokio::test]
async fn every_error_maps_to_its_status_code() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "orders", v1::Engine::Segment, 2, &[("max.message.bytes", "1024")]).await;
    create(&mut c, "events", v1::Engine::Commitlog, 1, &[]).await;

    // NOT_FOUND: unknown topic on every kind of call, unknown partition.
    let e = fetch(&mut c, "nope", 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("'nope'") && e.message().contains("CreateTopic"), "{}", e.message());
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "nope".into(),
            partition: None,
            messages: vec![msg(None, "x")],
            wait_durable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.admin.describe_topic(v1::DescribeTopicRequest { name: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.admin.delete_topic(v1::DeleteTopicRequest { name: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = fetch(&mut c, "orders", 7, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no partition 7"), "{}", e.message());
    let e = c.consumer.describe_group(v1::DescribeGroupRequest { group: "ghosts".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // ALREADY_EXISTS.
    let e = c
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "orders".into(),
            engine: v1::Engine::Commitlog as i32,
            partitions: 1,
            configs: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("orders"));

    // INVALID_ARGUMENT: bad name, unknown key, out-of-range value, compaction on commitlog, oversized message.
    let bad = |name: &str, configs: &[(&str, &str)]| v1::CreateTopicRequest {
        name: name.into(),
        engine: v1::Engine::Segment as i32,
        partitions: 1,
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let e = c.admin.create_topic(bad("a/b", &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("a/b"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("retention.mss", "1")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("retention.mss") && e.message().contains("unknown"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("flush.policy", "often")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("flush.policy") && e.message().contains("os, interval, sync"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("partitions", "0")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut compact = bad("ok", &[("cleanup.policy", "compact")]);
    compact.engine = v1::Engine::Commitlog as i32;
    let e = c.admin.create_topic(compact).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("cleanup.policy"), "{}", e.message());
    let e = c
        .admin
        .alter_topic_config(v1::AlterTopicConfigRequest {
            name: "orders".into(),
            configs: [("retention.ms".to_string(), "-5".to_string())].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("retention.ms"), "{}", e.message());
    let big = "x".repeat(2000);
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "orders".into(),
            partition: Some(0),
            messages: vec![msg(None, &big)],
            wait_durable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("max.message.bytes = 1024"), "{}", e.message());
    let e = c
        .producer
        .produce(v1::ProduceRequest { topic: "orders".into(), partition: None, messages: vec![], wait_durable: false })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A failed create leaves nothing behind.
    let list = c.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap().into_inner();
    let names: Vec<_> = list.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["events", "orders"]);

    // OUT_OF_RANGE with the valid range, on both engines; reading at the end is fine.
    for topic in ["orders", "events"] {
        produce(&mut c, topic, Some(0), vec![msg(None, "a"), msg(None, "b"), msg(None, "c")]).await;
        let e = fetch(&mut c, topic, 0, 10).await.unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{topic}: {e:?}");
        assert!(e.message().contains("0..3"), "{topic}: {}", e.message());
        let at_end = fetch(&mut c, topic, 0, 3).await.unwrap();
        assert!(at_end.messages.is_empty());
        assert_eq!(at_end.log_end_offset, 3);
        let e = c.consumer.subscribe(subscribe_request(topic, v1::position::At::Offset(99))).await.unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(e.message().contains("0..3"), "{}", e.message());
    }
    broker.shutdown().await.unwrap();
}

/// Unmounts a test mount, even when the test fails.
struct Mount(std::path::PathBuf);

/// Mounts a tmpfs of `size` (`1m`, `8m`) over `dir` (created if missing): a real filesystem that fills up.
/// `None`, after saying so, where this process may not mount (it needs root).
fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs over {} (needs root); this disk-full case is not exercised",
            dir.display()
        );
    }
    mounted.then(|| Mount(dir.to_path_buf()))
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_disk_is_resource_exhausted_and_reads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    // A real full disk: a 1 MiB tmpfs over the segment engine's directory (RocksDB stays on the normal disk).
    let Some(_mount) = mount_tmpfs(&dir.path().join("segment"), "1m") else { return };
    let mut cfg = config(dir.path());
    cfg.segment.insert("index_bytes".into(), 4096.to_string());
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "full", v1::Engine::Segment, 1, &[]).await;

    let value = "v".repeat(16 * 1024);
    let mut written = 0i64;
    let mut exhausted = None;
    for _ in 0..200 {
        let r = c
            .producer
            .produce(v1::ProduceRequest {
                topic: "full".into(),
                partition: Some(0),
                messages: vec![msg(None, &value)],
                wait_durable: false,
            })
            .await;
        match r {
            Ok(_) => written += 1,
            Err(e) => {
                exhausted = Some(e);
                break;
            }
        }
    }
    let e = exhausted.expect("a 1 MiB filesystem fills up");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("no space left"), "{}", e.message());
    assert!(written > 10, "only {written} messages fit");

    // Reads keep working, and every acknowledged message is there.
    let mut offset = 0;
    let mut read = 0;
    while offset < written {
        let r = fetch(&mut c, "full", 0, offset).await.unwrap();
        assert!(!r.messages.is_empty());
        read += r.messages.len() as i64;
        offset = r.next_offset;
    }
    assert_eq!(read, written);
    // Other topics (other engines) keep taking writes.
    create(&mut c, "elsewhere", v1::Engine::Commitlog, 1, &[]).await;
    produce(&mut c, "elsewhere", None, vec![msg(None, "still fine")]).await;
    // Freeing space lets the topic take writes again.
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "full".into() }).await.unwrap();
    create(&mut c, "full", v1::Engine::Segment, 1, &[]).await;
    produce(&mut c, "full", Some(0), vec![msg(None, "after")]).await;
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_disk_on_the_commitlog_engine_clears_when_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    // A real full disk: an 8 MiB tmpfs over the commitlog engine's directory, 2 MiB of it an operator's file.
    let commitlog_dir = dir.path().join("commitlog");
    let Some(_mount) = mount_tmpfs(&commitlog_dir, "8m") else { return };
    let ballast = commitlog_dir.join("operator-ballast");
    std::fs::write(&ballast, vec![1u8; 2 << 20]).unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "cl-full", v1::Engine::Commitlog, 1, &[]).await;
    let value = "v".repeat(16 * 1024);
    let request = || v1::ProduceRequest {
        topic: "cl-full".into(),
        partition: Some(0),
        messages: vec![msg(None, &value)],
        wait_durable: false,
    };
    let mut written = 0i64;
    let mut exhausted = None;
    for _ in 0..1000 {
        match c.producer.produce(request()).await {
            Ok(_) => written += 1,
            Err(e) => {
                exhausted = Some(e);
                break;
            }
        }
    }
    let e = exhausted.expect("an 8 MiB filesystem fills up");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(written > 10, "only {written} messages fit");
    // Still full: refused the same way again, not with a leftover file's "File exists".
    let e = c.producer.produce(request()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The operator frees space: writes resume without a restart, and nothing acknowledged is lost.
    std::fs::remove_file(&ballast).unwrap();
    c.producer.produce(request()).await.expect("writes resume once space is freed");
    let mut offset = 0;
    let mut read = 0;
    while offset < written + 1 {
        let r = fetch(&mut c, "cl-full", 0, offset).await.unwrap();
        assert!(!r.messages.is_empty(), "offset {offset} of {}", written + 1);
        read += r.messages.len() as i64;
        offset = r.next_offset;
    }
    assert_eq!(read, written + 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_fresh_broker_preallocates_nothing_and_starts_on_a_small_volume() {
    let dir = tempfile::tempdir().unwrap();
    // The whole data directory on a 200 MB filesystem, with the embedded defaults (1 GiB CommitLog files).
    let data = dir.path().join("data");
    let Some(_mount) = mount_tmpfs(&data, "200m") else { return };
    let cfg = janus_server::BrokerConfig {
        data_dir: data.clone(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        ..janus_server::BrokerConfig::default()
    };
    let (broker, mut c) = start(cfg).await;
    let commitlog_files = || std::fs::read_dir(data.join("commitlog/commitlog")).map_or(0, |d| d.count());
    assert_eq!(commitlog_files(), 0, "no CommitLog file before any commitlog write");
    create(&mut c, "small", v1::Engine::Segment, 1, &[("segment.bytes", "1048576")]).await;
    produce(&mut c, "small", None, vec![msg(None, "fits")]).await;
    create(&mut c, "queued", v1::Engine::Commitlog, 1, &[]).await;
    assert_eq!(commitlog_files(), 0, "creating a commitlog topic writes no CommitLog file either");
    // Its first write needs a 1 GiB file on a 200 MB volume: refused as a full disk, and nothing is left.
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "queued".into(),
            partition: Some(0),
            messages: vec![msg(None, "too big a file for this disk")],
            wait_durable: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(commitlog_files(), 0, "a file that could not be preallocated is not left behind");
    assert_eq!(values(&fetch(&mut c, "small", 0, 0).await.unwrap()), vec!["fits"]);
    broker.shutdown().await.unwrap();
}
