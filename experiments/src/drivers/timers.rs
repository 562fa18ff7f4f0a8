//! Delayed messages through `janusd` (E9): how late RocketMQ-style scheduled messages are delivered, whether
//! the broker delivers a burst of them, and what pending timers cost in memory.
//!
//! One case: a broker started in this process (as the gRPC driver does) with one topic of `partitions`
//! partitions on the engine. Message `i` (its id, the 8-byte big-endian key) carries a `message_bytes` value
//! and goes to partition `(i / batch_messages) % partitions`; `producers` tasks schedule the messages as fast
//! as they can, `batch_messages` per `produce_messages` request, in id order. The timer store is the
//! broker's (RocksDB, the same for both engines); the engine is where due messages are appended.
//!
//! - `spread`: `messages` messages due evenly over `spread_s` seconds, the first [`SPREAD_LEAD`] after
//!   scheduling begins, so delivery runs while the rest is still being scheduled; each message names its
//!   own due time in its `TIMER_DELIVER_MS` header (milliseconds since the epoch, as decimal text).
//! - `burst`: `burst_messages` messages all due at the same whole second, named by the request-level
//!   `deliver_at_ms`. That second must come after the last one is scheduled, so the scheduling rate is
//!   measured first on a topic of its own (a 20th of the burst, at most [`CALIBRATION_MAX`], each due 1 ms
//!   after the broker receives it, and waited for until delivered); the due second is then the first whole
//!   second at least [`BURST_GAP`] after [`BURST_MARGIN`] times the estimated scheduling time. A burst whose
//!   scheduling ends after its due second fails the case.
//!
//! Once every message is scheduled, one task per partition fetches it from offset 0 (long-polling) until
//! all its messages arrived or [`GRACE`] after the last due time. A delivered copy's timestamp is when the
//! broker's delivery round began (it is set before the append, so the append's own time is not in it) and its
//! `JANUS_TIMER_DUE_MS` header the due time the broker held. Metrics:
//!
//! - `lateness_p50_ms`, `lateness_p99_ms`, `lateness_p999_ms`, `lateness_max_ms`: timestamp minus the due
//!   time the producer asked for (the broker may only move a due time later, never earlier, see
//!   `due_header_mismatch`);
//! - `early` (timestamp before the due time), `delivered` (distinct ids), `lost`, `duplicates`: a case with
//!   an early or a lost message fails;
//! - `immediate`: messages the broker did not hold because their due time had passed when it received them
//!   (appended at once, without the due header; their lateness counts from the due time all the same);
//!   `due_header_mismatch`: delivered copies whose `JANUS_TIMER_DUE_MS` is not the due time asked for;
//! - `schedule_msgs_per_s`, `schedule_s`: messages scheduled per second, and how long it took;
//! - `all_fetched_after_due_s`: from the last due time until the consumer held every message (the
//!   append and the consumer's poll included);
//! - `burst_all_delivered_s` (burst): from the due second to the last delivery, `lateness_max_ms / 1000`;
//!   `due_after_schedule_s`: how long the scheduled burst waited for its second; `calibration_msgs_per_s`;
//! - `rss_mb_start`: resident memory of this process (broker, client and harness: see
//!   [`measure::rss_mb`]) before scheduling; `rss_mb_peak_pending` right after the last message was
//!   scheduled, when `pending_at_peak` of them were not due yet (all of a burst; for a spread those due
//!   later, by the schedule); `rss_mb` at the end. `VmRSS` counts the pages of mapped files (the commitlog's
//!   files), so `rss_anon_mb_start`, `rss_anon_mb_peak_pending` and `rss_anon_mb` give the anonymous part
//!   (heap: RocksDB's memtables and caches among it) at the same moments. The client's share is the
//!   requests in flight and, at the end, the consumer's state (a bit per message and a histogram), a few
//!   MB; cases run one after the other in the same process, so memory the allocator kept from earlier
//!   cases is in `*_start` and may be reused: compare the growth from `*_start`, not the absolute figures;
//! - `cpu_s`: CPU time of the process (broker, client and consumer) from the start of scheduling to the
//!   end of consumption.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use janus_api::{headers, now_ms};
use janus_client::proto as pb;
use janus_client::{Client, Delivery};

use super::grpc::{self, Rig};
use crate::data::{self, Rng};
use crate::measure::{self, Phase};
use crate::scenario::{TimerPattern, Workload};

/// Spread cases: the first message is due this long after scheduling begins.
const SPREAD_LEAD: Duration = Duration::from_secs(2);
/// Burst cases: the due second is at least this long after the estimated end of scheduling.
const BURST_GAP: Duration = Duration::from_secs(3);
/// Burst cases: the scheduling time estimated from the calibration is stretched by this factor.
const BURST_MARGIN: f64 = 1.5;
/// Burst cases: the calibration schedules a 20th of the burst, at most this many messages.
const CALIBRATION_MAX: u64 = 25_000;
/// Burst cases: the calibration topic (one partition, same engine).
const CALIBRATION_TOPIC: &str = "calibration";
/// Most time the calibration's messages get to be delivered.
const CALIBRATION_LIMIT: Duration = Duration::from_secs(60);
/// How long after the last due time the consumer keeps waiting for missing messages.
const GRACE: Duration = Duration::from_secs(120);
/// Longest wait of one fetch when nothing new is there, in ms.
const FETCH_WAIT_MS: u32 = 500;
/// Bytes per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// The largest lateness the histogram holds, in ms (a day); larger values are clamped to it.
const LATENESS_HIGH_MS: u64 = 86_400_000;

/// When the messages of one scheduling pass are due.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Message `i` of `n` at `first_ms + i * span_ms / n`, each named in its `TIMER_DELIVER_MS` header.
    Spread {
        /// When message 0 is due, ms since the epoch.
        first_ms: i64,
        /// The span of the due times, ms.
        span_ms: i64,
    },
    /// Every message at this time (ms since the epoch), named by the request's `deliver_at_ms`.
    At(i64),
    /// Every message this long after the broker receives it (the calibration).
    After(Duration),
}

impl Plan {
    /// The due time of message `id` of `n`, when the plan fixes one.
    fn due_ms(self, id: u64, n: u64) -> Option<i64> {
        match self {
            Plan::Spread { first_ms, span_ms } => {
                Some(first_ms + (i128::from(id) * i128::from(span_ms) / i128::from(n.max(1))) as i64)
            }
            Plan::At(at) => Some(at),
            Plan::After(_) => None,
        }
    }

    /// Messages of `0..n` not yet due at `now_ms` (by the plan, not by what the broker did).
    fn pending_at(self, n: u64, now_ms: i64) -> u64 {
        match self {
            Plan::Spread { .. } => {
                (0..n).rev().take_while(|&i| self.due_ms(i, n).is_some_and(|d| d > now_ms)).count() as u64
            }
            Plan::At(at) if at > now_ms => n,
            Plan::At(_) | Plan::After(_) => 0,
        }
    }
}

/// The partition of message `id`: requests go round-robin over the partitions.
fn partition_of(id: u64, per_request: u64, partitions: u32) -> u32 {
    ((id / per_request.max(1)) % u64::from(partitions.max(1))) as u32
}

/// What a scheduling pass did.
struct Scheduled {
    /// From the first request sent to the last answered.
    took: Duration,
    /// Messages the broker held as timers (the rest were due already and appended at once).
    held: u64,
}

/// Schedules messages `0..n` to `topic` as `plan` says, `batch_messages` per request and `producers` requests
/// in flight.
async fn schedule(client: &Client, topic: &str, n: u64, plan: Plan, workload: &Workload) -> Result<Scheduled> {
    let per_request = workload.batch_messages as u64;
    let requests = n.div_ceil(per_request);
    let value = data::payload(workload.message_bytes, &mut Rng::new(0x7469_6d65));
    let next = Arc::new(AtomicU64::new(0));
    let held = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workload.producers {
        let (client, topic, value, next, held) =
            (client.clone(), topic.to_string(), value.clone(), next.clone(), held.clone());
        let partitions = workload.partitions;
        tasks.push(tokio::spawn(async move {
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    return Ok::<_, anyhow::Error>(());
                }
                let ids = r * per_request..((r + 1) * per_request).min(n);
                let messages: Vec<pb::Message> = ids
                    .map(|id| {
                        let headers = match plan {
                            Plan::Spread { .. } => vec![pb::Header {
                                key: headers::TIMER_DELIVER_MS.into(),
                                value: plan.due_ms(id, n).map(|d| Bytes::from(d.to_string())),
                            }],
                            Plan::At(_) | Plan::After(_) => Vec::new(),
                        };
                        pb::Message {
                            key: Some(Bytes::copy_from_slice(&id.to_be_bytes())),
                            value: Some(value.clone()),
                            headers,
                            timestamp_ms: 0,
                        }
                    })
                    .collect();
                let delivery = match plan {
                    Plan::Spread { .. } => None,
                    Plan::At(at) => Some(Delivery::At(at)),
                    Plan::After(d) => Some(Delivery::After(d)),
                };
                let partition = partition_of(r * per_request, per_request, partitions);
                let response = client
                    .produce_messages(&topic, Some(partition), messages, delivery, false)
                    .await
                    .with_context(|| format!("scheduling request {r} to {topic}/{partition}"))?;
                held.fetch_add(response.scheduled.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.context("a scheduling task")??;
    }
    Ok(Scheduled { took: started.elapsed(), held: held.load(Ordering::Relaxed) })
}

/// Burst cases: schedules a 20th of the burst (at most [`CALIBRATION_MAX`]) to [`CALIBRATION_TOPIC`], each
/// message due 1 ms after the broker receives it, waits until all were delivered, and returns the messages
/// scheduled per second. Deliveries run beside the scheduling here, so the rate errs on the slow side.
async fn calibrate(rig: &Rig, engine_name: &str, workload: &Workload, burst: u64) -> Result<f64> {
    let n = (burst / 20).clamp(1, CALIBRATION_MAX);
    let single = Workload { partitions: 1, ..workload.clone() };
    grpc::create_topic(&rig.client, CALIBRATION_TOPIC, engine_name, 1, workload).await?;
    let scheduled = schedule(&rig.client, CALIBRATION_TOPIC, n, Plan::After(Duration::from_millis(1)), &single).await?;
    let deadline = Instant::now() + CALIBRATION_LIMIT;
    loop {
        let description = rig.client.describe_topic(CALIBRATION_TOPIC).await.context("describing the calibration")?;
        let stored: i64 = description.partitions.iter().map(|p| p.log_end_offset - p.log_start_offset).sum();
        if stored as u64 >= n {
            break;
        }
        if Instant::now() >= deadline {
            bail!("the calibration's {n} messages were not delivered within {CALIBRATION_LIMIT:?} ({stored} were)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(n as f64 / scheduled.took.as_secs_f64().max(1e-6))
}

/// What the consumer saw, over every partition.
struct Tally {
    /// One bit per message id: delivered at least once.
    seen: Vec<u64>,
    /// Distinct ids delivered.
    delivered: u64,
    /// Deliveries of an id already seen.
    duplicates: u64,
    /// Deliveries stamped before their due time.
    early: u64,
    /// The first early delivery: (id, timestamp, due).
    first_early: Option<(u64, i64, i64)>,
    /// Deliveries whose `JANUS_TIMER_DUE_MS` is not the due time asked for (absent included, see
    /// `immediate`).
    due_header_mismatch: u64,
    /// Lateness of first deliveries in ms (early ones as 0).
    lateness: Histogram<u64>,
    /// The largest lateness, exactly, in ms.
    max_lateness_ms: i64,
    /// When each partition's consumer held all its messages, ms since the epoch.
    complete_at_ms: Vec<Option<i64>>,
}

impl Tally {
    /// A tally of messages `0..n` read from `partitions` partitions.
    fn new(n: u64, partitions: u32) -> Result<Tally> {
        Ok(Tally {
            seen: vec![0; n.div_ceil(64) as usize],
            delivered: 0,
            duplicates: 0,
            early: 0,
            first_early: None,
            due_header_mismatch: 0,
            lateness: Histogram::new_with_bounds(1, LATENESS_HIGH_MS, 3).context("the lateness histogram")?,
            max_lateness_ms: 0,
            complete_at_ms: vec![None; partitions as usize],
        })
    }

    /// Counts one delivered record of message `id`, due at `due_ms`; returns whether it was new.
    fn add(&mut self, id: u64, due_ms: i64, timestamp_ms: i64, header_due_ms: Option<i64>) -> bool {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        let Some(slot) = self.seen.get_mut(word) else { return false };
        if *slot & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *slot |= bit;
        self.delivered += 1;
        if header_due_ms != Some(due_ms) {
            self.due_header_mismatch += 1;
        }
        let lateness = timestamp_ms - due_ms;
        if lateness < 0 {
            self.early += 1;
            self.first_early.get_or_insert((id, timestamp_ms, due_ms));
        }
        self.max_lateness_ms = self.max_lateness_ms.max(lateness);
        let _ = self.lateness.record((lateness.max(0) as u64).min(LATENESS_HIGH_MS));
        true
    }
}

/// The due time a delivered copy carries in `JANUS_TIMER_DUE_MS`, if it carries one.
fn header_due(message: &pb::ConsumedMessage) -> Option<i64> {
    let h = message.headers.iter().find(|h| h.key == headers::TIMER_DUE_MS)?;
    std::str::from_utf8(h.value.as_deref()?).ok()?.trim().parse().ok()
}

/// The reader of one partition: fetches it from offset 0 into the shared tally.
struct Reader {
    client: Client,
    topic: String,
    partition: u32,
    /// Messages of the case in this partition.
    expected: u64,
    /// Messages of the case in all.
    n: u64,
    plan: Plan,
    tally: Arc<Mutex<Tally>>,
    deadline: Instant,
}

impl Reader {
    /// Reads until every expected message arrived or the deadline, and records when it had them all.
    async fn run(self) -> Result<()> {
        let Reader { client, topic, partition, expected, n, plan, tally, deadline } = self;
        let (mut offset, mut got) = (0i64, 0u64);
        while got < expected && Instant::now() < deadline {
            let request = pb::FetchRequest {
                topic: topic.clone(),
                partition,
                offset,
                max_bytes: FETCH_BYTES,
                max_wait_ms: FETCH_WAIT_MS,
                ..Default::default()
            };
            let response = client.fetch(request).await.with_context(|| format!("fetching {topic}/{partition}"))?;
            let mut tally = tally.lock().map_err(|_| anyhow!("the consumer's tally is poisoned"))?;
            for message in &response.messages {
                let id = message
                    .key
                    .as_deref()
                    .and_then(|k| <[u8; 8]>::try_from(k).ok())
                    .map(u64::from_be_bytes)
                    .filter(|id| *id < n)
                    .with_context(|| {
                        format!("{topic}/{partition} offset {} is not a message of the case", message.offset)
                    })?;
                let due = plan.due_ms(id, n).context("the plan of a measured pass fixes every due time")?;
                got += u64::from(tally.add(id, due, message.timestamp_ms, header_due(message)));
            }
            if got >= expected
                && let Some(at) = tally.complete_at_ms.get_mut(partition as usize)
            {
                *at = Some(now_ms());
            }
            offset = offset.max(response.next_offset);
        }
        Ok(())
    }
}

/// One timers case on `engine_name` with its files in `dir`; see the module docs.
pub fn timers(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    let pattern = workload.timer_pattern.context("a timers case needs the workload key `timer_pattern`")?;
    ensure!(workload.topics == 1, "a timers case schedules to one topic (`topics = 1`)");
    grpc::block_on(case(engine_name, dir, workload, pattern))
}

/// The case itself, on the runtime [`timers`] starts.
async fn case(
    engine_name: &str,
    dir: &Path,
    workload: &Workload,
    pattern: TimerPattern,
) -> Result<BTreeMap<String, f64>> {
    let rig = grpc::rig(engine_name, dir, workload).await?;
    let topic = rig.topics.first().context("the case's topic")?.clone();
    let mut m = BTreeMap::new();
    let (n, plan) = match pattern {
        TimerPattern::Spread => {
            let first_ms = now_ms() + SPREAD_LEAD.as_millis() as i64;
            (workload.messages, Plan::Spread { first_ms, span_ms: (workload.spread_s * 1000.0) as i64 })
        }
        TimerPattern::Burst => {
            let n = workload.burst_messages.unwrap_or(workload.messages);
            let rate = calibrate(&rig, engine_name, workload, n).await?;
            m.insert("calibration_msgs_per_s".to_string(), rate);
            let estimate = Duration::from_secs_f64(n as f64 / rate.max(1e-3) * BURST_MARGIN) + BURST_GAP;
            let at = now_ms() + estimate.as_millis() as i64;
            // The first whole second at or after `at`.
            (n, Plan::At((at + 999) / 1000 * 1000))
        }
    };
    let rss_start = (measure::rss_mb(), measure::rss_anon_mb());
    let phase = Phase::start();
    let scheduled = schedule(&rig.client, &topic, n, plan, workload).await?;
    let scheduled_at = now_ms();
    let rss_peak = (measure::rss_mb(), measure::rss_anon_mb());
    let pending_at_peak = plan.pending_at(n, scheduled_at);
    if let Plan::At(at) = plan {
        let margin = at - scheduled_at;
        ensure!(
            margin > 0,
            "scheduling the burst ended {} ms after its due second: it was not a burst (calibrated at {:.0} msg/s)",
            -margin,
            m.get("calibration_msgs_per_s").copied().unwrap_or(0.0)
        );
        m.insert("due_after_schedule_s".to_string(), margin as f64 / 1000.0);
    }

    let last_due = plan.due_ms(n.saturating_sub(1), n).context("the plan fixes every due time")?;
    let until_last = Duration::from_millis((last_due - now_ms()).max(0) as u64);
    let deadline = Instant::now() + until_last + GRACE;
    let tally = Arc::new(Mutex::new(Tally::new(n, workload.partitions)?));
    let per_request = workload.batch_messages as u64;
    let mut expected = vec![0u64; workload.partitions as usize];
    for r in 0..n.div_ceil(per_request) {
        let size = ((r + 1) * per_request).min(n) - r * per_request;
        if let Some(count) = expected.get_mut(partition_of(r * per_request, per_request, workload.partitions) as usize)
        {
            *count += size;
        }
    }
    let mut readers = Vec::new();
    for (partition, &count) in expected.iter().enumerate() {
        let reader = Reader {
            client: rig.client.clone(),
            topic: topic.clone(),
            partition: partition as u32,
            expected: count,
            n,
            plan,
            tally: tally.clone(),
            deadline,
        };
        readers.push(tokio::spawn(reader.run()));
    }
    let mut reading = Ok(());
    for reader in readers {
        reading = reading.and(reader.await.context("a reader's task").and_then(|r| r));
    }
    let took = phase.stop();
    let rss_end = (measure::rss_mb(), measure::rss_anon_mb());
    rig.broker.shutdown().await.context("stopping janusd")?;
    reading?;

    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow!("a reader still holds the consumer's tally"))?
        .into_inner()
        .map_err(|_| anyhow!("the consumer's tally is poisoned"))?;
    let lost = n - tally.delivered.min(n);
    let q = |quantile: f64| tally.lateness.value_at_quantile(quantile) as f64;
    if lost > 0 || tally.early > 0 {
        let early = tally
            .first_early
            .map(|(id, ts, due)| format!("; message {id} was stamped {ts}, due {due}"))
            .unwrap_or_default();
        bail!(
            "{lost} of {n} messages never arrived (waited until {GRACE:?} after the last due time) and {} were \
             delivered before their due time{early}; lateness of those delivered: p50 {} ms, p99 {} ms, max {} ms",
            tally.early,
            q(0.5),
            q(0.99),
            tally.max_lateness_ms
        );
    }
    m.insert("lateness_p50_ms".into(), q(0.5));
    m.insert("lateness_p99_ms".into(), q(0.99));
    m.insert("lateness_p999_ms".into(), q(0.999));
    m.insert("lateness_max_ms".into(), tally.max_lateness_ms as f64);
    m.insert("early".into(), tally.early as f64);
    m.insert("delivered".into(), tally.delivered as f64);
    m.insert("lost".into(), lost as f64);
    m.insert("duplicates".into(), tally.duplicates as f64);
    m.insert("immediate".into(), (n - scheduled.held.min(n)) as f64);
    m.insert("due_header_mismatch".into(), tally.due_header_mismatch as f64);
    m.insert("messages".into(), n as f64);
    m.insert("schedule_s".into(), scheduled.took.as_secs_f64());
    m.insert("schedule_msgs_per_s".into(), n as f64 / scheduled.took.as_secs_f64().max(1e-9));
    if let Some(all) = tally.complete_at_ms.iter().copied().collect::<Option<Vec<i64>>>() {
        let last = all.into_iter().max().unwrap_or(last_due);
        m.insert("all_fetched_after_due_s".into(), (last - last_due) as f64 / 1000.0);
    }
    if pattern == TimerPattern::Burst {
        m.insert("burst_all_delivered_s".into(), tally.max_lateness_ms as f64 / 1000.0);
    }
    m.insert("pending_at_peak".into(), pending_at_peak as f64);
    m.insert("cpu_s".into(), took.cpu.as_secs_f64());
    for (key, value) in [
        ("rss_mb_start", rss_start.0),
        ("rss_mb_peak_pending", rss_peak.0),
        ("rss_mb", rss_end.0),
        ("rss_anon_mb_start", rss_start.1),
        ("rss_anon_mb_peak_pending", rss_peak.1),
        ("rss_anon_mb", rss_end.1),
    ] {
        if let Some(v) = value {
            m.insert(key.into(), v);
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_due_times_are_even_and_pending_counts_follow_them() {
        let plan = Plan::Spread { first_ms: 1000, span_ms: 600 };
        let dues: Vec<i64> = (0..6).map(|i| plan.due_ms(i, 6).unwrap()).collect();
        assert_eq!(dues, [1000, 1100, 1200, 1300, 1400, 1500]);
        assert_eq!(plan.pending_at(6, 999), 6);
        assert_eq!(plan.pending_at(6, 1250), 3);
        assert_eq!(plan.pending_at(6, 1500), 0);
        assert_eq!(Plan::At(5000).pending_at(7, 4999), 7);
        assert_eq!(Plan::At(5000).pending_at(7, 5000), 0);
        assert_eq!(Plan::After(Duration::from_millis(1)).due_ms(3, 7), None);
    }

    #[test]
    fn requests_go_round_robin_over_partitions() {
        let parts: Vec<u32> = [0, 999, 1000, 2500, 3000].iter().map(|&id| partition_of(id, 1000, 3)).collect();
        assert_eq!(parts, [0, 0, 1, 2, 0]);
        assert_eq!(partition_of(5, 0, 0), 0);
    }

    #[test]
    fn the_tally_counts_lateness_early_duplicates_and_mismatches() {
        let mut t = Tally::new(130, 1).unwrap();
        assert!(t.add(0, 1000, 1000, Some(1000)));
        assert!(t.add(129, 1000, 1250, Some(1000)));
        assert!(!t.add(129, 1000, 1300, Some(1000)));
        assert!(t.add(64, 1000, 990, None));
        assert!(!t.add(500, 1000, 1000, None), "ids beyond the case are not counted");
        assert_eq!((t.delivered, t.duplicates, t.early, t.due_header_mismatch), (3, 1, 1, 1));
        assert_eq!(t.first_early, Some((64, 990, 1000)));
        assert_eq!(t.max_lateness_ms, 250);
        assert_eq!(t.lateness.len(), 3);
        assert_eq!(t.lateness.value_at_quantile(0.0), 0);
        assert_eq!(t.lateness.max(), 250);
    }
}
