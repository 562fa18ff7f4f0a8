//! Disk space, on real small filesystems (a tmpfs the test mounts; skipped with a message where it cannot):
//! a full disk is RESOURCE_EXHAUSTED naming the volume on both engines, reads keep working, a restart on the
//! full disk serves reads, writes resume by themselves once space is freed, the free-space guard refuses
//! produce before the disk is full, and a fresh broker preallocates nothing.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use janus_proto::v1;
use tonic::Code;

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
    let (broker, mut c) = start(cfg.clone()).await;
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
                ..Default::default()
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
    assert_names_the_volume(&e, &dir.path().join("segment"));
    assert!(written > 10, "only {written} messages fit");

    // Reads keep working, and every acknowledged message is there; also after a restart on the full disk.
    assert_eq!(read_all(&mut c, "full", written).await, written);
    shut_down_on_a_full_disk(broker).await;
    let (broker, mut c) = start(cfg).await;
    assert_eq!(read_all(&mut c, "full", written).await, written);
    // Other topics (other engines) keep taking writes.
    create(&mut c, "elsewhere", v1::Engine::Commitlog, 1, &[]).await;
    produce(&mut c, "elsewhere", None, vec![msg(None, "still fine")]).await;
    // Freeing space lets the topic take writes again.
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "full".into() }).await.unwrap();
    create(&mut c, "full", v1::Engine::Segment, 1, &[]).await;
    produce_eventually(&mut c, "full", "after").await;
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
        ..Default::default()
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
    assert_names_the_volume(&e, &commitlog_dir);
    assert!(written > 10, "only {written} messages fit");
    // Still full: refused the same way again, not with a leftover file's "File exists".
    let e = c.producer.produce(request()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // A restart on the full disk starts and serves reads.
    shut_down_on_a_full_disk(broker).await;
    let (broker, mut c) = start(config(dir.path())).await;
    assert_eq!(read_all(&mut c, "cl-full", written).await, written);
    // The operator frees space: writes resume without a restart, and nothing acknowledged is lost.
    std::fs::remove_file(&ballast).unwrap();
    produce_eventually(&mut c, "cl-full", &value).await;
    assert_eq!(read_all(&mut c, "cl-full", written + 1).await, written + 1);
    broker.shutdown().await.unwrap();
}

/// Produces one message to partition 0 of `topic`, retrying for a few seconds: space freed a moment ago
/// may take the guard's next measurement to be seen.
async fn produce_eventually(c: &mut Clients, topic: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let request = || v1::ProduceRequest {
        topic: topic.into(),
        partition: Some(0),
        messages: vec![msg(None, value)],
        wait_durable: false,
        ..Default::default()
    };
    while let Err(e) = c.producer.produce(request()).await {
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(Instant::now() < deadline, "writes did not resume once space was freed: {e:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Shuts `broker` down on a full disk: it may fail to write its checkpoints (then it says so, leaves no
/// clean-shutdown marker and the next start recovers), but it always ends.
async fn shut_down_on_a_full_disk(broker: janus_server::Broker) {
    if let Err(e) = broker.shutdown().await {
        assert!(e.to_string().contains("no space left on device"), "{e}");
    }
}

/// Reads partition 0 of `topic` from offset 0 up to `end`, returning how many messages came back.
async fn read_all(c: &mut Clients, topic: &str, end: i64) -> i64 {
    let (mut offset, mut read) = (0, 0);
    while offset < end {
        let r = fetch(c, topic, 0, offset).await.unwrap();
        assert!(!r.messages.is_empty(), "{topic}: nothing at offset {offset} of {end}");
        read += r.messages.len() as i64;
        offset = r.next_offset;
    }
    read
}

/// A full-disk status names the volume holding `dir` and its free space.
fn assert_names_the_volume(e: &tonic::Status, dir: &std::path::Path) {
    let volume = dir.canonicalize().unwrap();
    assert!(e.message().contains(&format!("volume {} has ", volume.display())), "{}", e.message());
    assert!(e.message().contains(" free of "), "{}", e.message());
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
        kafka: janus_server::config::KafkaSection { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() },
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
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(commitlog_files(), 0, "a file that could not be preallocated is not left behind");
    assert_eq!(values(&fetch(&mut c, "small", 0, 0).await.unwrap()), vec!["fits"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_free_space_guard_refuses_produce_before_the_disk_is_full_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = mount_tmpfs(&data, "64m") else { return };
    let mut cfg = config(&data);
    cfg.storage.min_free_bytes = Some(32 << 20);
    cfg.metrics_interval_ms = 50;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "guarded-seg", v1::Engine::Segment, 1, &[]).await;
    create(&mut c, "guarded-cl", v1::Engine::Commitlog, 1, &[]).await;
    let value = "g".repeat(256 * 1024);
    let mut written = 0i64;
    let mut refused = None;
    for _ in 0..400 {
        match c
            .producer
            .produce(v1::ProduceRequest {
                topic: "guarded-seg".into(),
                partition: Some(0),
                messages: vec![msg(None, &value)],
                wait_durable: false,
                ..Default::default()
            })
            .await
        {
            Ok(_) => written += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("the guard refuses writes once 32 MiB of 64 MiB are left");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_names_the_volume(&e, &data);
    assert!(e.message().contains("free-space guard storage.min_free_bytes = 32.0 MiB"), "{}", e.message());
    assert!(written > 10, "only {written} messages fit");
    // Refused before the disk is actually full: the guard's room is still there.
    let free = janus_api::volume::space(&data).unwrap().free;
    assert!(free > 24 << 20, "{free} bytes free");
    // Both engines' topics on the volume are refused alike, and reads keep working.
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "guarded-cl".into(),
            partition: Some(0),
            messages: vec![msg(None, "small")],
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(read_all(&mut c, "guarded-seg", written).await, written);
    // Metrics show the volume's free space below the guard (once the next measurement has run).
    let volume = data.canonicalize().unwrap().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(broker.metrics_addr()).await;
        let free = text
            .lines()
            .find(|l| {
                l.starts_with("janus_volume_free_bytes{")
                    && l.contains(&format!("volume=\"{volume}\""))
                    && l.contains("holds=\"segment\"")
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap());
        if free.is_some_and(|f| f > 0.0 && f < (32 << 20) as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "janus_volume_free_bytes for {volume} is {free:?}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleting the topic frees the space: writes to the other engine resume by themselves.
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "guarded-seg".into() }).await.unwrap();
    produce_eventually(&mut c, "guarded-cl", "after").await;
    broker.shutdown().await.unwrap();
}
