//! Receive and acknowledge through `janusd` (E10): RocketMQ 5's SimpleConsumer, with a fraction of the
//! messages nacked and redelivered.
//!
//! One case: a broker started in this process (as the gRPC driver does) whose `messaging.delay_levels` are
//! all `1s`, so a nacked message comes back about a second later (the retry back-off of a first failure is
//! delay level 3) through the timer store and the group's retry topic; one topic of `partitions` partitions
//! on the engine. `messages` messages are produced first, untimed (as the gRPC produce driver does: client
//! batches of `batch_messages`, `producers` requests in flight, round-robin over the partitions). Then
//! `consumers` receivers, each a task with its own connection, receive up to [`RECEIVE_MAX`] messages at a
//! time (the broker's default invisible duration, 60 s; long-polling up to [`RECEIVE_WAIT`]) and acknowledge
//! them in one ack call, except that a first delivery whose partition and offset hash under
//! `nack_fraction` is nacked, one call each (the same positions on both engines and in every round);
//! redeliveries are acknowledged. The receivers stop once every message was acknowledged, or `duration_s`
//! after they started. Metrics:
//!
//! - `acked_msgs_per_s` and `mb_per_s` (values of the acknowledged messages), from the first receive to the
//!   ack that completed the set, so the last redeliveries' back-off counts; `cpu_s_per_gb`;
//! - `receive_rpc_p50_ms`, `receive_rpc_p99_ms`, `receive_rpc_p999_ms`: receive calls that returned messages
//!   (a long poll that waited for a redelivery counts its wait); `receives`, and `empty_receives` (long polls
//!   that ended empty-handed, not in the percentiles);
//! - `nacked`, `redelivered` (deliveries with attempt > 1), `duplicates` (messages acknowledged more than
//!   once: should be 0), `ack_errors` (handles the broker refused);
//! - `produce_msgs_per_s`: the untimed produce phase, for reference.
//!
//! A case in which any stored message was never acknowledged fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use hdrhistogram::Histogram;
use janus_client::{Client, ReceiveOptions};

use super::grpc;
use super::rebalance::splitmix;
use crate::measure::{self, Phase, Took};
use crate::scenario::Workload;

/// Messages asked for per receive (RocketMQ 5's SimpleConsumer default batch).
const RECEIVE_MAX: u32 = 32;
/// Longest wait of one receive when nothing is visible; receivers check whether they are done between calls.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// The receiving group of every case (each case has its own broker).
const GROUP: &str = "e10";
/// The delay levels of the case's broker: retries come back after a second.
const ONE_SECOND_LEVELS: &str = "1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s";

/// Whether the first delivery of the message at `partition`/`offset` is nacked: a hash of its position,
/// uniform in `0..1`, under `fraction`.
fn nacked_first(partition: u32, offset: i64, fraction: f64) -> bool {
    let bits = splitmix(splitmix(u64::from(partition)) ^ offset as u64);
    ((bits >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Acknowledgements so far, shared by the receivers.
struct Acks {
    /// Per partition, the log start and, per offset from it, how often it was acknowledged.
    counts: Vec<(i64, Vec<u8>)>,
    /// Messages to acknowledge in all.
    total: u64,
    /// Messages acknowledged at least once.
    distinct: u64,
    /// Value bytes of those.
    bytes: u64,
    /// Acknowledgements of a message already acknowledged.
    duplicates: u64,
    /// When the last missing message was acknowledged.
    done_at: Option<Instant>,
}

impl Acks {
    /// Expects `end - start` messages of each partition `(start, end)`.
    fn new(ranges: &[(i64, i64)]) -> Acks {
        let counts: Vec<(i64, Vec<u8>)> =
            ranges.iter().map(|&(start, end)| (start, vec![0; (end - start).max(0) as usize])).collect();
        let total = counts.iter().map(|(_, c)| c.len() as u64).sum();
        Acks { counts, total, distinct: 0, bytes: 0, duplicates: 0, done_at: None }
    }

    /// Counts an acknowledgement of `partition`/`offset` carrying `bytes` of value; false if the position is
    /// not one of the case's messages.
    fn ack(&mut self, partition: u32, offset: i64, bytes: u64) -> bool {
        let Some((start, counts)) = self.counts.get_mut(partition as usize) else { return false };
        let Some(count) = usize::try_from(offset - *start).ok().and_then(|i| counts.get_mut(i)) else { return false };
        *count = count.saturating_add(1);
        if *count > 1 {
            self.duplicates += 1;
        } else {
            self.distinct += 1;
            self.bytes += bytes;
            if self.distinct == self.total {
                self.done_at = Some(Instant::now());
            }
        }
        true
    }

    /// Whether every message was acknowledged.
    fn done(&self) -> bool {
        self.distinct >= self.total
    }

    /// The first position of each partition never acknowledged, with how many there are.
    fn missing(&self) -> Vec<(u32, u64, i64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(p, (start, counts))| {
                let missing = counts.iter().filter(|c| **c == 0).count() as u64;
                let first = counts.iter().position(|c| *c == 0)?;
                Some((p as u32, missing, start + first as i64))
            })
            .collect()
    }
}

/// What one receiver did.
struct Receiver {
    /// Latency of receive calls that returned messages, µs.
    latency: Histogram<u64>,
    /// Receive calls that returned messages.
    receives: u64,
    /// Receive calls that ended empty-handed.
    empty_receives: u64,
    /// Nack calls made.
    nacked: u64,
    /// Messages received with attempt > 1.
    redelivered: u64,
    /// Acknowledgements the broker refused, or of positions outside the case.
    ack_errors: u64,
}

/// The acknowledgement tally, locked.
fn lock(acks: &Mutex<Acks>) -> Result<MutexGuard<'_, Acks>> {
    acks.lock().map_err(|_| anyhow!("the acknowledgement tally is poisoned"))
}

/// One receiver: receives, nacks the chosen first deliveries and acknowledges the rest, until every message
/// was acknowledged or `deadline`.
async fn receiver(
    url: String,
    topic: String,
    fraction: f64,
    acks: Arc<Mutex<Acks>>,
    deadline: Instant,
) -> Result<Receiver> {
    let client = Client::connect(&url).await.context("connecting a receiver")?;
    let options =
        ReceiveOptions { max_messages: RECEIVE_MAX, wait: RECEIVE_WAIT, ..ReceiveOptions::new(GROUP, &topic) };
    let mut me = Receiver {
        latency: measure::histogram(),
        receives: 0,
        empty_receives: 0,
        nacked: 0,
        redelivered: 0,
        ack_errors: 0,
    };
    while !lock(&acks)?.done() && Instant::now() < deadline {
        let sent = Instant::now();
        let got = client.receive(&options).await.context("receiving")?;
        if got.is_empty() {
            me.empty_receives += 1;
            continue;
        }
        measure::record(&mut me.latency, sent.elapsed());
        me.receives += 1;
        let (mut handles, mut positions) = (Vec::with_capacity(got.len()), Vec::with_capacity(got.len()));
        for message in got {
            if message.attempt > 1 {
                me.redelivered += 1;
            }
            if message.attempt == 1 && nacked_first(message.partition, message.offset, fraction) {
                client.nack(GROUP, &message.receipt_handle).await.context("nacking")?;
                me.nacked += 1;
            } else {
                let bytes = message.record.value.as_ref().map_or(0, |v| v.len() as u64);
                positions.push((message.partition, message.offset, bytes));
                handles.push(message.receipt_handle);
            }
        }
        if handles.is_empty() {
            continue;
        }
        let results = client.ack(GROUP, &handles).await.context("acknowledging")?;
        me.ack_errors += handles.len().saturating_sub(results.len()) as u64;
        let mut acks = lock(&acks)?;
        for (result, (partition, offset, bytes)) in results.into_iter().zip(positions) {
            if result.is_err() || !acks.ack(partition, offset, bytes) {
                me.ack_errors += 1;
            }
        }
    }
    Ok(me)
}

/// One receive case on `engine_name` with its files in `dir`; see the module docs.
pub fn receive(engine_name: &str, dir: &Path, workload: &Workload) -> Result<BTreeMap<String, f64>> {
    ensure!(workload.topics == 1, "a receive case reads one topic (`topics = 1`)");
    let mut config = grpc::broker_config(dir, workload)?;
    config.messaging.delay_levels = ONE_SECOND_LEVELS.to_string();
    grpc::block_on(async {
        let rig = grpc::rig_with(config, engine_name, workload).await?;
        let topic = rig.topics.first().context("the case's topic")?.clone();
        let url = format!("http://{}", rig.broker.grpc_addr());
        let duration = Duration::from_secs_f64(workload.duration_s);
        let produced = grpc::produce_phase(&rig, workload, workload.messages, duration, None).await?;
        let description = rig.client.describe_topic(&topic).await.context("describing the topic")?;
        let mut ranges = vec![(0, 0); workload.partitions as usize];
        for p in &description.partitions {
            if let Some(range) = ranges.get_mut(p.partition as usize) {
                *range = (p.log_start_offset, p.log_end_offset);
            }
        }
        let acks = Arc::new(Mutex::new(Acks::new(&ranges)));
        let stored = lock(&acks)?.total;
        ensure!(
            stored == produced.messages,
            "the broker stored {stored} messages, {} were acknowledged",
            produced.messages
        );

        let (phase, started) = (Phase::start(), Instant::now());
        let deadline = started + duration;
        let receivers: Vec<_> = (0..workload.consumers)
            .map(|_| tokio::spawn(receiver(url.clone(), topic.clone(), workload.nack_fraction, acks.clone(), deadline)))
            .collect();
        let mut outcomes = Vec::new();
        for r in receivers {
            outcomes.push(r.await.context("a receiver's task").and_then(|r| r));
        }
        let took = phase.stop();
        rig.broker.shutdown().await.context("stopping janusd")?;
        let receivers = outcomes.into_iter().collect::<Result<Vec<Receiver>>>()?;

        let acks = Arc::try_unwrap(acks)
            .map_err(|_| anyhow!("a receiver still holds the acknowledgement tally"))?
            .into_inner()
            .map_err(|_| anyhow!("the acknowledgement tally is poisoned"))?;
        let missing = acks.missing();
        if !missing.is_empty() {
            let total: u64 = missing.iter().map(|m| m.1).sum();
            let detail: Vec<String> =
                missing.iter().map(|(p, n, first)| format!("partition {p}: {n}, first at offset {first}")).collect();
            anyhow::bail!(
                "{total} of {} messages were never acknowledged within {duration:?} ({})",
                acks.total,
                detail.join(", ")
            );
        }
        let mut latency = measure::histogram();
        for r in &receivers {
            latency.add(&r.latency).context("merging receive latencies")?;
        }
        let sum = |f: fn(&Receiver) -> u64| receivers.iter().map(f).sum::<u64>() as f64;
        let wall = acks.done_at.map_or(took.wall, |done| done.saturating_duration_since(started));
        let mut m = measure::throughput(acks.distinct, acks.bytes, Took { wall, cpu: took.cpu });
        if let Some(rate) = m.remove("msgs_per_s") {
            m.insert("acked_msgs_per_s".into(), rate);
        }
        for (name, value) in measure::latency_metrics(&latency) {
            if let Some(stem) = name.strip_suffix("_ms") {
                m.insert(format!("receive_rpc_{stem}_ms"), value);
            }
        }
        m.insert("receives".into(), sum(|r| r.receives));
        m.insert("empty_receives".into(), sum(|r| r.empty_receives));
        m.insert("nacked".into(), sum(|r| r.nacked));
        m.insert("redelivered".into(), sum(|r| r.redelivered));
        m.insert("ack_errors".into(), sum(|r| r.ack_errors));
        m.insert("duplicates".into(), acks.duplicates as f64);
        m.insert("produce_msgs_per_s".into(), produced.messages as f64 / produced.took.wall.as_secs_f64().max(1e-9));
        Ok(m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nacked_fraction_is_about_what_was_asked_and_the_same_every_time() {
        for fraction in [0.0, 0.01, 0.1] {
            let chosen = (0..4u32).flat_map(|p| (0..25_000i64).map(move |o| (p, o)));
            let n = chosen.filter(|&(p, o)| nacked_first(p, o, fraction)).count() as f64;
            assert!((n / 100_000.0 - fraction).abs() < 0.002, "{fraction}: {n}");
        }
        assert_eq!(nacked_first(3, 1234, 0.5), nacked_first(3, 1234, 0.5));
    }

    #[test]
    fn acks_count_distinct_duplicates_and_missing_positions() {
        let mut acks = Acks::new(&[(0, 3), (10, 12)]);
        assert_eq!(acks.total, 5);
        assert!(acks.ack(0, 0, 100) && acks.ack(0, 2, 100) && acks.ack(0, 2, 100));
        assert!(acks.ack(1, 11, 7));
        assert!(!acks.ack(1, 9, 7) && !acks.ack(2, 0, 7), "positions outside the case are refused");
        assert_eq!((acks.distinct, acks.duplicates, acks.bytes), (3, 1, 207));
        assert_eq!(acks.missing(), vec![(0, 1, 1), (1, 1, 10)]);
        assert!(!acks.done() && acks.done_at.is_none());
        assert!(acks.ack(0, 1, 1) && acks.ack(1, 10, 1));
        assert!(acks.done() && acks.done_at.is_some() && acks.missing().is_empty());
    }
}
