//! Crash safety end to end, as a loop. Each cycle starts the real `janusd` on the same data dir; producers
//! write with `wait_durable` to a `flush.policy=sync` topic of each engine (2 partitions each); `janusd` is
//! killed with SIGKILL mid-stream, after a number of acknowledged messages and a delay that change from cycle
//! to cycle. After every restart, every message acknowledged in any cycle so far must be stored at the
//! offset it was acknowledged with, with its value; no partition's log end may be below an acknowledged
//! offset + 1, and no offset may be acknowledged twice.
//!
//! `JANUS_CRASH_CYCLES` sets the number of cycles (default [`DEFAULT_CYCLES`], sized for CI on two cores);
//! `janusd` does not see it (see [`crate::e2e_common::TEST_ENV`]). On a failure the data dir is kept, with
//! a copy of it as the kill left it (before recovery), and the panic message names both.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::e2e_common::{CRASH_CYCLES_ENV, Janusd, create};
use janus_client::types::PartitionInfo;
use janus_client::{Client, Engine, ProducerConfig, ProducerRecord, proto};

/// Cycles when `JANUS_CRASH_CYCLES` is not set.
const DEFAULT_CYCLES: u32 = 5;
/// The topics written in every cycle, one per engine.
const TOPICS: [(&str, Engine); 2] = [("crash-seg", Engine::Segment), ("crash-cl", Engine::Commitlog)];
/// Partitions per topic; the producers alternate between them.
const PARTITIONS: u32 = 2;
/// Bound on the messages one producer sends in one cycle.
const MAX_SENDS: u64 = 200_000;
/// Bound on the wait for a cycle's kill point; the kill happens then whatever was acknowledged.
const KILL_WAIT: Duration = Duration::from_secs(20);
/// Bound on reading one partition back.
const READ_WAIT: Duration = Duration::from_secs(60);

/// (partition, offset) -> value.
type Messages = BTreeMap<(u32, i64), String>;

/// An acknowledged message: where the broker said it stored it.
struct Ack {
    partition: u32,
    offset: i64,
    value: String,
}

/// The acknowledgements of one topic in one cycle, pushed by the delivery tasks.
type Acks = Arc<Mutex<Vec<Ack>>>;

fn cycles() -> u32 {
    match std::env::var(CRASH_CYCLES_ENV) {
        Err(_) => DEFAULT_CYCLES,
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{CRASH_CYCLES_ENV}={v:?}: want a positive integer")),
    }
}

/// When cycle `c` kills `janusd`: once each topic has this many acknowledged messages in the cycle
/// (200 to 2,599, spread over the range), and after this further delay (0 to 22 ms) while writes go on.
fn kill_point(c: u32) -> (usize, Duration) {
    let acks = 200 + (c as usize * 1_237 + 400) % 2_400;
    (acks, Duration::from_millis(u64::from(c * 7 % 23)))
}

/// Sends to alternating partitions until [`MAX_SENDS`] or until the broker goes away; records every
/// acknowledgement. Values are `<topic>/c<cycle>/p<partition>/<i>`, unique over the whole test.
async fn write_until_killed(client: Client, topic: &'static str, cycle: u32, acks: Acks) {
    let config = ProducerConfig {
        wait_durable: true,
        batch_bytes: 4 * 1024,
        linger: Duration::from_millis(1),
        max_in_flight: 2,
        // The idempotent producer retries a batch the broker may not have answered; this broker is gone
        // for good (the next cycle starts a new one), so give up soon.
        delivery_timeout: Duration::from_secs(2),
        ..ProducerConfig::default()
    };
    let producer = client.producer(config);
    let mut waiting = tokio::task::JoinSet::new();
    let failed = Arc::new(AtomicBool::new(false));
    for i in 0..MAX_SENDS {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let partition = (i % u64::from(PARTITIONS)) as u32;
        let value = format!("{topic}/c{cycle}/p{partition}/{i}");
        let record = ProducerRecord::new(topic, value.clone()).partition(partition);
        let Ok(delivery) = producer.send(record).await else { break };
        let (acks, failed) = (acks.clone(), failed.clone());
        waiting.spawn(async move {
            match delivery.await {
                Ok(stored) => {
                    acks.lock().unwrap().push(Ack { partition: stored.partition, offset: stored.offset, value })
                }
                Err(_) => failed.store(true, Ordering::Relaxed),
            }
        });
        if i % 64 == 63 {
            // Let acknowledgements land so the kill happens with many of them recorded.
            tokio::task::yield_now().await;
        }
        while waiting.len() > 10_000 {
            waiting.join_next().await;
        }
    }
    let _ = producer.flush().await;
    while waiting.join_next().await.is_some() {}
}

/// Every message of `topic`, each partition read with Fetch from its log start to its log end, and the
/// partitions as DescribeTopic reported them.
async fn read_all(client: &Client, topic: &str) -> Result<(Vec<PartitionInfo>, Messages), String> {
    let partitions = client.describe_topic(topic).await.map_err(|e| format!("describe {topic}: {e}"))?.partitions;
    let mut stored = Messages::new();
    for p in &partitions {
        let deadline = Instant::now() + READ_WAIT;
        let mut offset = p.log_start_offset;
        while offset < p.log_end_offset {
            if Instant::now() > deadline {
                return Err(format!(
                    "{topic}/{}: still at {offset} of {} after {READ_WAIT:?}",
                    p.partition, p.log_end_offset
                ));
            }
            let request = proto::FetchRequest {
                topic: topic.into(),
                partition: p.partition,
                offset,
                max_bytes: 0,
                max_wait_ms: 0,
                tags: vec![],
                ..Default::default()
            };
            let r =
                client.fetch(request).await.map_err(|e| format!("fetch {topic}/{} at {offset}: {e}", p.partition))?;
            if r.next_offset <= offset {
                return Err(format!(
                    "{topic}/{}: fetch at {offset} answered next offset {} below the log end {}",
                    p.partition, r.next_offset, p.log_end_offset
                ));
            }
            for m in r.messages {
                let value =
                    String::from_utf8(m.value.unwrap_or_default().to_vec()).unwrap_or_else(|e| format!("<{e}>"));
                stored.insert((p.partition, m.offset), value);
            }
            offset = r.next_offset;
        }
    }
    Ok((partitions, stored))
}

/// The checks after a restart: every acknowledged message at its offset with its value, log ends at or past
/// the highest acknowledged offset + 1, every partition dense from log start to log end, and every stored
/// message one the test sent, to the partition it is in, and stored once. Returns the log ends.
fn check(topic: &str, acked: &Messages, partitions: &[PartitionInfo], stored: &Messages) -> Result<Vec<i64>, String> {
    let mut problems = Vec::new();
    for p in partitions {
        let highest = acked.range((p.partition, i64::MIN)..=(p.partition, i64::MAX)).next_back().map(|((_, o), _)| *o);
        if let Some(highest) = highest
            && p.log_end_offset <= highest
        {
            problems.push(format!(
                "partition {}: log end {} but offset {highest} was acknowledged",
                p.partition, p.log_end_offset
            ));
        }
        let offsets: Vec<i64> =
            stored.range((p.partition, i64::MIN)..=(p.partition, i64::MAX)).map(|((_, o), _)| *o).collect();
        if !offsets.iter().copied().eq(p.log_start_offset..p.log_end_offset) {
            problems.push(format!(
                "partition {}: {} messages read from {}..{}, not every offset of it once",
                p.partition,
                offsets.len(),
                p.log_start_offset,
                p.log_end_offset
            ));
        }
    }
    let missing: Vec<_> = acked.iter().filter(|(k, v)| stored.get(k) != Some(v)).collect();
    if !missing.is_empty() {
        let first: Vec<_> =
            missing.iter().take(5).map(|((p, o), v)| format!("{v} at {p}/{o}: {:?}", stored.get(&(*p, *o)))).collect();
        problems.push(format!("{} acknowledged messages not stored as acknowledged; first: {first:?}", missing.len()));
    }
    let mut seen: HashMap<&str, (u32, i64)> = HashMap::new();
    for ((p, o), v) in stored {
        let sent = v.strip_prefix(topic).and_then(|rest| rest.split('/').nth(2)) == Some(format!("p{p}").as_str());
        if !sent {
            problems.push(format!("{v:?} at {p}/{o} is not a message the test sent to partition {p}"));
        } else if let Some(first) = seen.insert(v, (*p, *o)) {
            problems.push(format!("{v:?} stored twice, at {first:?} and {p}/{o}"));
        }
        if problems.len() > 20 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(partitions.iter().map(|p| p.log_end_offset).collect())
    } else {
        Err(format!("{topic}: {}", problems.join("; ")))
    }
}

/// Copies the directory tree `from` to `to` (which must not exist).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Keeps the data dir and the copy of its state before the last restart, and fails with their paths.
fn fail(dir: tempfile::TempDir, before_restart: &Path, failure: &str) -> ! {
    let kept = dir.keep();
    panic!(
        "{failure}\ndata dir kept at {} (after the restart) and {} (as the kill left it)",
        kept.join("data").display(),
        kept.join(before_restart.file_name().unwrap()).display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_durable_messages_survive_repeated_kill_9() {
    let cycles = cycles();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let before_restart: PathBuf = dir.path().join("before-restart");
    // Per topic: every message acknowledged in any cycle so far.
    let mut acked: Vec<Messages> = TOPICS.iter().map(|_| Messages::new()).collect();
    let mut last_acks = [0usize; TOPICS.len()];
    // Cycle `cycles` only restarts and checks.
    for cycle in 0..=cycles {
        if cycle > 0 {
            let _ = std::fs::remove_dir_all(&before_restart);
            copy_dir(&data, &before_restart).expect("copy the data dir");
        }
        let janusd = Janusd::spawn(&data);
        let client = Client::connect(&janusd.url()).await.expect("client connects");
        if cycle == 0 {
            for (name, engine) in TOPICS {
                create(&client, name, engine, PARTITIONS, &[("flush.policy", "sync")]).await;
            }
        }
        let mut ends = Vec::new();
        let mut line = format!("crash cycle {cycle}/{cycles} ({:.1?}):", started.elapsed());
        for (t, (name, _)) in TOPICS.iter().enumerate() {
            let checked = match read_all(&client, name).await {
                Ok((partitions, stored)) => check(name, &acked[t], &partitions, &stored).map(|e| (e, stored.len())),
                Err(e) => Err(e),
            };
            let (end, stored) = match checked {
                Ok(checked) => checked,
                Err(e) => fail(dir, &before_restart, &e),
            };
            line += &format!(
                " {name}: acked {} last cycle, {} in all, {stored} stored, log ends {end:?};",
                last_acks[t],
                acked[t].len()
            );
            ends.push(end);
        }
        if cycle > 0 {
            eprintln!("{line}");
        }
        if cycle == cycles {
            janusd.kill9();
            break;
        }

        let acks: Vec<Acks> = TOPICS.iter().map(|_| Acks::default()).collect();
        let writers: Vec<_> = TOPICS
            .iter()
            .zip(&acks)
            .map(|((name, _), acks)| tokio::spawn(write_until_killed(client.clone(), name, cycle + 1, acks.clone())))
            .collect();
        let (target, delay) = kill_point(cycle);
        let deadline = Instant::now() + KILL_WAIT;
        while acks.iter().any(|a| a.lock().unwrap().len() < target) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(delay).await;
        janusd.kill9();
        for w in writers {
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("writers stop once the broker is gone")
                .unwrap();
        }
        drop(client);

        for (t, (name, _)) in TOPICS.iter().enumerate() {
            let acks = std::mem::take(&mut *acks[t].lock().unwrap());
            last_acks[t] = acks.len();
            for p in 0..PARTITIONS {
                assert!(
                    acks.iter().any(|a| a.partition == p),
                    "{name}: nothing acknowledged on partition {p} in cycle {} (kill after {target} acks)",
                    cycle + 1
                );
            }
            for a in acks {
                let end = ends[t][a.partition as usize];
                if a.offset < end {
                    let e = format!(
                        "{name}: {} acknowledged at {}/{}, below the log end {end}",
                        a.value, a.partition, a.offset
                    );
                    fail(dir, &before_restart, &e);
                }
                if let Some(old) = acked[t].insert((a.partition, a.offset), a.value) {
                    let e = format!(
                        "{name}: offset {}/{} acknowledged twice, for {old} and another",
                        a.partition, a.offset
                    );
                    fail(dir, &before_restart, &e);
                }
            }
        }
    }
    eprintln!(
        "crash loop: {cycles} kill -9 cycles in {:.1?}; {} acknowledged messages all stored",
        started.elapsed(),
        acked.iter().map(BTreeMap::len).sum::<usize>()
    );
}
