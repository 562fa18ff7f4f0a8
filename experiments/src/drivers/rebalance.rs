//! Consumer-group rebalances through `janusd` (E8): how long a group takes to settle again, and how long its
//! partitions go unread, when a member joins, leaves or is killed.
//!
//! One case: a broker started in this process (as the gRPC driver does) with one topic of `partitions`
//! partitions on the engine; an open-loop producer sends `rate_msgs_per_s` messages a second, one
//! `batch_messages` request at a time, round-robin over the partitions, for the whole case; `consumers` group
//! members (the client library's group consumers, each on its own thread, runtime and connection) read the
//! topic and record, for every record handed to them, its partition, offset and the time. The members start
//! `join_spacing_s` apart, so that their heartbeats are not in step. Once `describe_group` shows the group
//! Stable with every partition owned, the case waits `steady_s` plus a random part of `event_jitter_s` (so
//! the event falls anywhere in the heartbeat cycle; the part drawn is the metric `event_jitter_s`, drawn from
//! the round and the point, so both engines of a round get the same), then the event:
//!
//! - `join`: one more member starts;
//! - `leave`: one member `close()`s (commits its positions and leaves the group);
//! - `kill`: one member stops dead without leaving: its runtime (heartbeats, reads, connection) is shut down
//!   and nothing more is sent, as after `kill -9` (see [`Member`]); the broker expels it after its session
//!   timeout.
//!
//! The group is described every [`DESCRIBE_EVERY`] until it is Stable again with the new member count and every
//! partition owned; the producer runs [`TAIL`] longer, stops, and the members then read to the end. Metrics:
//!
//! - `rebalance_s`: from the event to the group Stable again with every partition owned by a live member;
//! - `pause_s`: the worst partition's longest gap between consecutively consumed records, over the gaps that
//!   overlap the window from [`LEAD`] before the event to [`TAIL`] after Stable; `pause_median_s` the median
//!   over partitions of the same per-partition figure;
//! - `duplicates`: records handed out more than once (the same partition and offset), over the whole case;
//! - `moved_partitions`: partitions whose owner changed between before the event and after Stable;
//! - `generations`: how many generations the event took (rebalances);
//! - `setup_s`: from the first member joining to the first Stable (the initial rebalance delay and a
//!   heartbeat), `produced` and `consumed` messages.
//!
//! A case in which any message the broker stored is never consumed fails: no message may be lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use janus_client::proto as pb;
use janus_client::{Client, ConsumerConfig};
use tokio::sync::{Semaphore, oneshot};

use super::grpc::{self, Request};
use crate::measure::Pacer;
use crate::results::median;
use crate::scenario::{GroupEvent, Workload};

/// How often the group is described while waiting for it to settle.
const DESCRIBE_EVERY: Duration = Duration::from_millis(20);
/// How long a member waits in one poll before checking whether it should stop.
const POLL: Duration = Duration::from_millis(50);
/// The pause window starts this long before the event.
const LEAD: Duration = Duration::from_millis(500);
/// The pause window ends this long after the group is Stable again; the producer stops then too.
const TAIL: Duration = Duration::from_secs(1);
/// Most time to reach the first Stable.
const SETUP_LIMIT: Duration = Duration::from_secs(60);
/// Most time from the event to Stable again, beyond the members' session timeout.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Most time the members get to read what was produced once the producer stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);
/// Most time a member gets to close when the case ends.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);
/// Most produce requests in flight at once.
const MAX_IN_FLIGHT: usize = 64;
/// The group every case uses (each case has its own broker).
const GROUP: &str = "e8";

/// One record handed to a member.
#[derive(Clone, Copy, Debug)]
struct Consumed {
    partition: u32,
    offset: i64,
    at: Instant,
}

/// What every member appends to; kept outside the members so a killed member's records stay counted.
type Log = Arc<Mutex<Vec<Consumed>>>;

/// A running group member. Each member is a process of its own in miniature: a thread with its own tokio
/// runtime, on which its connection, heartbeat task and readers run, so that killing it stops all of them at
/// once and sends nothing (no LeaveGroup, whatever the consumer's `Drop` would do), as after `kill -9`.
struct Member {
    /// Asks the member to close: commit its positions and leave the group.
    stop: Arc<AtomicBool>,
    /// Kills the member (see [`Member::kill`]).
    kill: Option<oneshot::Sender<()>>,
    /// The member's outcome, sent when its thread ends.
    done: oneshot::Receiver<Result<()>>,
}

impl Member {
    /// Starts the member's thread, which connects (its own connection), joins the group and starts reading;
    /// returns once it joined.
    async fn start(url: &str, topic: &str, workload: &Workload, index: usize, log: Log) -> Result<Member> {
        let config = ConsumerConfig {
            group: Some(GROUP.to_string()),
            session_timeout: workload.session_timeout_ms.map(Duration::from_millis),
            assignor: workload.assignor.clone(),
            client_id: format!("e8-member-{index}"),
            ..ConsumerConfig::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = oneshot::channel();
        let (kill_tx, kill_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let (url, topic, flag) = (url.to_string(), topic.to_string(), stop.clone());
        std::thread::Builder::new()
            .name(format!("e8-member-{index}"))
            .spawn(move || {
                let _ = done_tx.send(member_process(&url, &topic, config, flag, kill_rx, log, ready_tx));
            })
            .context("starting a member's thread")?;
        ready_rx
            .await
            .map_err(|_| anyhow!("member {index} stopped before joining"))?
            .with_context(|| format!("member {index} joining"))?;
        Ok(Member { stop, kill: Some(kill_tx), done: done_rx })
    }

    /// Kills the member: its runtime is shut down with every task on it (heartbeats, readers, the
    /// connection) and the consumer is forgotten, so nothing is committed and no leave is sent.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }

    /// Asks the member to close (commit and leave; a killed member just ends) and waits for it, at most
    /// [`CLOSE_LIMIT`].
    async fn close(self) -> Result<()> {
        let Member { stop, kill, done } = self;
        stop.store(true, Ordering::Relaxed);
        let outcome = tokio::time::timeout(CLOSE_LIMIT, done).await;
        drop(kill);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(anyhow!("a member's thread ended without an outcome")),
            Err(_) => Err(anyhow!("a member did not close within {CLOSE_LIMIT:?}")),
        }
    }
}

/// A member's thread: joins (telling `ready` how that went), then polls and records what it is handed until
/// asked to close (commit and leave) or killed (the consumer is forgotten and the runtime shut down).
fn member_process(
    url: &str,
    topic: &str,
    config: ConsumerConfig,
    stop: Arc<AtomicBool>,
    mut kill: oneshot::Receiver<()>,
    log: Log,
    ready: oneshot::Sender<Result<()>>,
) -> Result<()> {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(anyhow!("building the member's runtime: {e}")));
            return Ok(());
        }
    };
    let outcome = runtime.block_on(async {
        let joined = async {
            let client = Client::connect(url).await.context("connecting")?;
            Ok::<_, anyhow::Error>(client.consumer(topic, config).await?)
        };
        let mut consumer = match joined.await {
            Ok(consumer) => {
                let _ = ready.send(Ok(()));
                consumer
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return Ok(());
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return consumer.close().await.context("closing");
            }
            let polled = tokio::select! {
                biased;
                _ = &mut kill => None,
                polled = consumer.poll_batch(Some(POLL)) => Some(polled),
            };
            let Some(polled) = polled else {
                // Killed: no close and no commit; not even Drop runs, so the kill does not depend on what
                // the consumer does when dropped. The runtime's shutdown below stops its tasks.
                std::mem::forget(consumer);
                return Ok(());
            };
            let Some(batch) = polled.context("polling")? else { continue };
            let at = Instant::now();
            let mut log = log.lock().map_err(|_| anyhow!("consumption log poisoned"))?;
            log.extend(batch.records.iter().map(|r| Consumed { partition: batch.partition, offset: r.offset, at }));
        }
    });
    // Drops every task still on this runtime: a killed member's heartbeat task, readers and connection.
    runtime.shutdown_background();
    outcome
}

/// The open-loop producer of a case.
struct Producer {
    client: Client,
    topic: String,
    partitions: u32,
    requests: Arc<Vec<Request>>,
    requests_per_s: f64,
    max_requests: u64,
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

impl Producer {
    /// Request `n` is due at `start + n / rate` and goes to partition `n % partitions`; stops when asked, at
    /// `max_requests` or at `deadline`. Returns the messages acknowledged.
    async fn run(self) -> Result<u64> {
        let Producer { client, topic, partitions, requests, requests_per_s, max_requests, deadline, stop } = self;
        let pacer = Pacer::new(requests_per_s);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let acked = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for n in 0..max_requests {
            let due = pacer.due(n);
            if due >= deadline || stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let permit = slots.clone().acquire_owned().await?;
            let request = &requests[n as usize % requests.len()];
            let (batch, messages) = (request.batch.clone(), request.messages);
            let (client, topic, acked) = (client.clone(), topic.clone(), acked.clone());
            let partition = (n % u64::from(partitions)) as u32;
            tasks.push(tokio::spawn(async move {
                let request = pb::ProduceRequest {
                    topic: topic.clone(),
                    batches: vec![pb::PartitionBatches { partition, record_batches: batch }],
                    ..Default::default()
                };
                let result = client.produce(request).await.with_context(|| format!("producing to {topic}/{partition}"));
                drop(permit);
                result?;
                acked.fetch_add(messages, Ordering::Relaxed);
                Ok::<_, anyhow::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(acked.load(Ordering::Relaxed))
    }
}

/// The group as one description saw it.
struct Seen {
    at: Instant,
    generation: i32,
    /// Partition -> owning member id.
    owners: BTreeMap<u32, String>,
}

/// Describes the group every [`DESCRIBE_EVERY`] until it is Stable with `members` members and every partition
/// of `topic` owned; fails at `deadline` with the last state seen.
async fn wait_stable(client: &Client, topic: &str, partitions: u32, members: usize, deadline: Instant) -> Result<Seen> {
    loop {
        let now = Instant::now();
        let last = match client.describe_group(GROUP).await {
            Ok(d) => {
                let mut owners = BTreeMap::new();
                for m in &d.members {
                    for &p in m.assignment.get(topic).into_iter().flatten() {
                        owners.insert(p, m.member_id.clone());
                    }
                }
                if d.state == "Stable" && d.members.len() == members && owners.len() == partitions as usize {
                    return Ok(Seen { at: now, generation: d.generation, owners });
                }
                format!(
                    "{} generation {}, {} members, {} of {partitions} partitions owned",
                    d.state,
                    d.generation,
                    d.members.len(),
                    owners.len()
                )
            }
            Err(e) => format!("describe failed: {e}"),
        };
        if now >= deadline {
            bail!("the group did not become Stable with {members} members owning every partition: last {last}");
        }
        tokio::time::sleep(DESCRIBE_EVERY).await;
    }
}

/// The random part of the event's delay, as a fraction in `0..1`: drawn from the round, the partition count and
/// the event, so both engines of a round get the same (the A/B comparison is paired) and rounds and points
/// differ.
fn phase(round: u32, workload: &Workload, event: GroupEvent) -> f64 {
    let event = match event {
        GroupEvent::Join => 1,
        GroupEvent::Leave => 2,
        GroupEvent::Kill => 3,
    };
    let bits = splitmix(splitmix(splitmix(u64::from(round)) ^ u64::from(workload.partitions)) ^ event);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's mixing function: nearby inputs give unrelated outputs.
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Per partition, the consumption times in order.
fn times_by_partition(log: &[Consumed]) -> BTreeMap<u32, Vec<Instant>> {
    let mut out: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
    for c in log {
        out.entry(c.partition).or_default().push(c.at);
    }
    for times in out.values_mut() {
        times.sort();
    }
    out
}

/// Per partition of `0..partitions`, the longest gap between consecutive consumption times that overlaps
/// `from..to`; a partition never consumed after `from` counts the whole window.
fn pauses(log: &[Consumed], partitions: u32, from: Instant, to: Instant) -> Vec<Duration> {
    let by_partition = times_by_partition(log);
    (0..partitions)
        .map(|p| {
            let times = by_partition.get(&p).map_or(&[][..], Vec::as_slice);
            let mut worst = Duration::ZERO;
            for pair in times.windows(2) {
                if pair[1] > from && pair[0] < to {
                    worst = worst.max(pair[1] - pair[0]);
                }
            }
            match times.iter().find(|t| **t > from) {
                None => to - from,
                Some(_) => worst,
            }
        })
        .collect()
}

/// Records handed out more than once (same partition and offset).
fn duplicates(log: &[Consumed]) -> u64 {
    let mut seen = BTreeSet::new();
    log.iter().filter(|c| !seen.insert((c.partition, c.offset))).count() as u64
}

/// Offsets in `start..end` of each partition that no member consumed, as `(partition, count, first missing)`.
fn missing(log: &[Consumed], ends: &BTreeMap<u32, (i64, i64)>) -> Vec<(u32, u64, i64)> {
    let mut consumed: BTreeMap<u32, BTreeSet<i64>> = BTreeMap::new();
    for c in log {
        consumed.entry(c.partition).or_default().insert(c.offset);
    }
    let empty = BTreeSet::new();
    ends.iter()
        .filter_map(|(&p, &(start, end))| {
            let have = consumed.get(&p).unwrap_or(&empty);
            let gaps: Vec<i64> = (start..end).filter(|o| !have.contains(o)).collect();
            gaps.first().map(|&first| (p, gaps.len() as u64, first))
        })
        .collect()
}

/// Whether every partition's records up to its end were consumed (checked by the highest offset seen).
fn drained(log: &[Consumed], ends: &BTreeMap<u32, (i64, i64)>) -> bool {
    let mut next: BTreeMap<u32, i64> = BTreeMap::new();
    for c in log {
        let n = next.entry(c.partition).or_insert(0);
        *n = (*n).max(c.offset + 1);
    }
    ends.iter().all(|(p, &(start, end))| end <= start || next.get(p).is_some_and(|&n| n >= end))
}

/// One rebalance case on `engine_name` with its files in `dir`; see the module docs.
pub fn rebalance(engine_name: &str, dir: &Path, workload: &Workload, round: u32) -> Result<BTreeMap<String, f64>> {
    let event = workload.event.context("a rebalance case needs the workload key `event` (join, leave or kill)")?;
    let rate = workload.rate_msgs_per_s.context("a rebalance case needs the workload key `rate_msgs_per_s`")?;
    ensure!(workload.topics == 1, "a rebalance case reads one topic (`topics = 1`)");
    grpc::block_on(case(engine_name, dir, workload, event, rate, round))
}

async fn case(
    engine_name: &str,
    dir: &Path,
    workload: &Workload,
    event: GroupEvent,
    rate: f64,
    round: u32,
) -> Result<BTreeMap<String, f64>> {
    let rig = grpc::rig(engine_name, dir, workload).await?;
    let topic = rig.topics[0].clone();
    let partitions = workload.partitions;
    let url = format!("http://{}", rig.broker.grpc_addr());
    let case_deadline = Instant::now() + Duration::from_secs_f64(workload.duration_s);
    let log: Log = Arc::new(Mutex::new(Vec::new()));

    let requests = grpc::requests(workload);
    let per_request = workload.messages_per_batch() as f64;
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(
        Producer {
            client: rig.client.clone(),
            topic: topic.clone(),
            partitions,
            requests,
            requests_per_s: rate / per_request,
            max_requests: (workload.messages as f64 / per_request).ceil() as u64,
            deadline: case_deadline,
            stop: stop_producing.clone(),
        }
        .run(),
    );

    let joined = Instant::now();
    let spacing = Duration::from_secs_f64(workload.join_spacing_s);
    let mut members = Vec::new();
    for i in 0..workload.consumers {
        tokio::time::sleep_until((joined + spacing * i as u32).into()).await;
        members.push(Member::start(&url, &topic, workload, i, log.clone()).await?);
    }
    let first = wait_stable(&rig.client, &topic, partitions, members.len(), joined + SETUP_LIMIT).await?;
    let setup = first.at - joined;
    let jitter = workload.event_jitter_s * phase(round, workload, event);
    tokio::time::sleep(Duration::from_secs_f64(workload.steady_s + jitter)).await;
    let before = wait_stable(&rig.client, &topic, partitions, members.len(), Instant::now() + SETUP_LIMIT).await?;

    let session = Duration::from_millis(workload.session_timeout_ms.unwrap_or(45_000));
    let event_at = Instant::now();
    let mut gone = None;
    let expected = match event {
        GroupEvent::Join => {
            members.push(Member::start(&url, &topic, workload, members.len(), log.clone()).await?);
            members.len()
        }
        GroupEvent::Leave => {
            let member = members.remove(0);
            member.stop.store(true, Ordering::Relaxed);
            gone = Some(member);
            members.len()
        }
        GroupEvent::Kill => {
            let mut member = members.remove(0);
            member.kill();
            gone = Some(member);
            members.len()
        }
    };
    let after = wait_stable(&rig.client, &topic, partitions, expected, event_at + session + SETTLE_LIMIT).await?;
    let window_end = after.at + TAIL;
    tokio::time::sleep_until(window_end.into()).await;

    // The producer must cover the whole window, or the pauses would be of its making.
    if producer.is_finished() {
        producer.await.context("the producer's task")??;
        bail!("the producer stopped before the pause window ended: raise `messages` or `duration_s`");
    }
    stop_producing.store(true, Ordering::Relaxed);
    let produced = producer.await.context("the producer's task")??;
    let description = rig.client.describe_topic(&topic).await.context("describing the topic")?;
    let ends: BTreeMap<u32, (i64, i64)> =
        description.partitions.iter().map(|p| (p.partition, (p.log_start_offset, p.log_end_offset))).collect();
    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let done = drained(&log.lock().map_err(|_| anyhow!("consumption log poisoned"))?, &ends);
        if done || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(DESCRIBE_EVERY).await;
    }
    let mut closing = match gone {
        Some(member) => member.close().await.context("the member that left or was killed"),
        None => Ok(()),
    };
    for member in members {
        closing = closing.and(member.close().await);
    }
    rig.broker.shutdown().await.context("stopping janusd")?;
    closing?;

    let log = std::mem::take(&mut *log.lock().map_err(|_| anyhow!("consumption log poisoned"))?);
    let lost = missing(&log, &ends);
    if !lost.is_empty() {
        let total: u64 = lost.iter().map(|l| l.1).sum();
        let detail: Vec<String> =
            lost.iter().map(|(p, n, first)| format!("partition {p}: {n} from offset {first}")).collect();
        bail!("{total} stored messages were never consumed ({})", detail.join(", "));
    }
    let stored: i64 = ends.values().map(|(start, end)| end - start).sum();
    ensure!(stored as u64 == produced, "the broker stored {stored} messages, the producer had {produced} acknowledged");

    let pauses = pauses(&log, partitions, event_at - LEAD, window_end);
    let secs: Vec<f64> = pauses.iter().map(Duration::as_secs_f64).collect();
    let moved = before.owners.iter().filter(|(p, owner)| after.owners.get(p) != Some(owner)).count();
    let mut m = BTreeMap::new();
    m.insert("rebalance_s".into(), (after.at - event_at).as_secs_f64());
    m.insert("pause_s".into(), secs.iter().copied().fold(0.0, f64::max));
    m.insert("pause_median_s".into(), median(&secs).unwrap_or(0.0));
    m.insert("duplicates".into(), duplicates(&log) as f64);
    m.insert("moved_partitions".into(), moved as f64);
    m.insert("generations".into(), f64::from(after.generation - before.generation));
    m.insert("setup_s".into(), setup.as_secs_f64());
    m.insert("event_jitter_s".into(), jitter);
    m.insert("produced".into(), produced as f64);
    m.insert("consumed".into(), log.len() as f64);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn pauses_take_gaps_overlapping_the_window() {
        let t = Instant::now();
        let c = |partition, offset, ms| Consumed { partition, offset, at: at(t, ms) };
        let log = vec![
            // Partition 0: steady, then a 900 ms gap that starts before the window.
            c(0, 0, 0),
            c(0, 1, 100),
            c(0, 2, 1000),
            c(0, 3, 1100),
            // Partition 1: a 2 s gap inside, one running past the end, then a 4 s one entirely after.
            c(1, 0, 300),
            c(1, 1, 2300),
            c(1, 2, 3100),
            c(1, 3, 7100),
        ];
        let p = pauses(&log, 3, at(t, 500), at(t, 3000));
        assert_eq!(p[0], Duration::from_millis(900));
        assert_eq!(p[1], Duration::from_millis(2000));
        // Partition 2 was never consumed: the whole window.
        assert_eq!(p[2], Duration::from_millis(2500));
    }

    #[test]
    fn phases_are_spread_and_differ_by_round_and_point() {
        let w = |partitions| Workload { partitions, ..Workload::default() };
        let all: Vec<f64> = (0..3)
            .flat_map(|r| {
                [4, 16, 64].map(|p| [GroupEvent::Join, GroupEvent::Leave, GroupEvent::Kill].map(|e| (r, p, e)))
            })
            .flatten()
            .map(|(r, p, e)| phase(r, &w(p), e))
            .collect();
        assert!(all.iter().all(|f| (0.0..1.0).contains(f)));
        let mut distinct = all.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert_eq!(distinct.len(), all.len());
        assert!(all.iter().any(|f| *f < 0.25) && all.iter().any(|f| *f > 0.75));
    }

    #[test]
    fn duplicates_and_missing_offsets_are_counted() {
        let t = Instant::now();
        let c = |partition, offset| Consumed { partition, offset, at: t };
        let log = vec![c(0, 0), c(0, 1), c(0, 1), c(0, 2), c(1, 0), c(1, 2), c(1, 2)];
        assert_eq!(duplicates(&log), 2);
        let ends = BTreeMap::from([(0, (0, 3)), (1, (0, 4))]);
        assert_eq!(missing(&log, &ends), vec![(1, 2, 1)]);
        assert!(!drained(&log, &ends));
        assert!(drained(&log, &BTreeMap::from([(0, (0, 3)), (1, (0, 3)), (2, (0, 0))])));
    }
}
