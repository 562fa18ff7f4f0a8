//! The messaging layer's settings (broker config section `[messaging]`). Defaults are RocketMQ 5's.

use std::time::Duration;

use crate::messaging::schedule::DELAY_LEVELS_MS;

/// The clock timers and invisible deadlines read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The system's wall clock (delivery times are wall-clock times).
    #[default]
    Wall,
    /// The wall clock when it was made, moved on by tokio's clock: under tokio's paused time (tests) it
    /// advances only as the runtime does.
    Tokio {
        /// The wall clock, in ms since the Unix epoch, at `since`.
        wall_ms: i64,
        /// When it was made.
        since: tokio::time::Instant,
    },
}

impl Clock {
    /// A [`Clock::Tokio`] starting now.
    pub fn tokio() -> Clock {
        Clock::Tokio { wall_ms: janus_api::now_ms(), since: tokio::time::Instant::now() }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Wall => janus_api::now_ms(),
            Clock::Tokio { wall_ms, since } => wall_ms + since.elapsed().as_millis() as i64,
        }
    }
}

/// Timers, receive/ack and retry settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingConfig {
    /// The delays of levels 1 to 18 in milliseconds (`messageDelayLevel`, "1s 5s 10s ... 2h").
    pub delay_levels_ms: Vec<i64>,
    /// The furthest ahead a message may be scheduled (`timer.max.delay.ms`, 3 days).
    pub timer_max_delay_ms: i64,
    /// The longest the timer task sleeps between looks at the store (`timer.precision.ms`, 1 s): the
    /// bound on lateness if a wake-up were missed (it normally wakes at the due time itself).
    pub timer_precision: Duration,
    /// Messages delivered per round of the timer task (also the most that can be delivered twice after
    /// a kill -9 in the middle of a round).
    pub timer_delivery_batch: usize,
    /// The invisible duration of a receive that asks for none (60 s).
    pub default_invisible: Duration,
    /// The shortest invisible duration a receive may ask for (10 s).
    pub min_invisible: Duration,
    /// The longest (12 h).
    pub max_invisible: Duration,
    /// Redeliveries before a message goes to the dead-letter topic, for groups that set none
    /// (`max.reconsume.times`, 16).
    pub max_reconsume_times: u32,
    /// The most messages leased (received, not yet acknowledged) across the broker; a receive beyond it
    /// gets what fits, or `LimitExceeded` if nothing does.
    pub max_inflight_leases: usize,
    /// The most messages one receive may ask for.
    pub max_receive_batch: u32,
    /// The longest long-poll wait of a receive (30 s).
    pub max_receive_wait: Duration,
    /// How often moved committed offsets of receiving groups are written (1 s).
    pub commit_interval: Duration,
    /// How long a producer may stay idle before a partition forgets its sequence state
    /// (`producer.id.expiration.ms`, 7 days).
    pub producer_id_expiration_ms: i64,
    /// How often changed producer state is snapshotted to the metadata store (30 s): the most of the log
    /// a restart replays to rebuild it.
    pub producer_snapshot_interval: Duration,
    /// How long a half message waits for its producer's decision before the first check
    /// (`transaction.timeout.ms`, 6 s); a message's `CHECK_IMMUNITY_TIME_IN_SECONDS` property overrides it.
    pub transaction_timeout_ms: i64,
    /// Time between checks of one undecided half message (`transaction.check.interval.ms`, 30 s).
    pub transaction_check_interval_ms: i64,
    /// Checks before an undecided half message goes to `TRANS_CHECK_MAX_TIME_TOPIC`
    /// (`transaction.check.max`, 15).
    pub transaction_check_max: u32,
    /// The most undecided transactions the broker holds; a transactional produce beyond it gets
    /// `LimitExceeded`.
    pub max_pending_transactions: usize,
    /// The clock (the wall clock; tests use tokio's).
    pub clock: Clock,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        MessagingConfig {
            delay_levels_ms: DELAY_LEVELS_MS.to_vec(),
            timer_max_delay_ms: 3 * 24 * 3600 * 1000,
            timer_precision: Duration::from_secs(1),
            timer_delivery_batch: 10_000,
            default_invisible: Duration::from_secs(60),
            min_invisible: Duration::from_secs(10),
            max_invisible: Duration::from_secs(12 * 3600),
            max_reconsume_times: 16,
            max_inflight_leases: 500_000,
            max_receive_batch: 1024,
            max_receive_wait: Duration::from_secs(30),
            commit_interval: Duration::from_secs(1),
            producer_id_expiration_ms: 7 * 24 * 3600 * 1000,
            producer_snapshot_interval: Duration::from_secs(30),
            transaction_timeout_ms: 6_000,
            transaction_check_interval_ms: 30_000,
            transaction_check_max: 15,
            max_pending_transactions: 100_000,
            clock: Clock::Wall,
        }
    }
}

/// Parses RocketMQ's `messageDelayLevel` syntax: 18 durations like `1s 5s 10s 1m 2h` (also `ms` and `d`).
pub fn parse_delay_levels(text: &str) -> Result<Vec<i64>, String> {
    let levels: Vec<i64> = text.split_whitespace().map(parse_duration_ms).collect::<Result<_, _>>()?;
    if levels.len() != DELAY_LEVELS_MS.len() {
        return Err(format!("expected {} delay levels, got {}", DELAY_LEVELS_MS.len(), levels.len()));
    }
    Ok(levels)
}

/// Parses `250ms`, `30s`, `5m`, `2h` or `1d` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| format!("'{text}' is not a duration like 30s, 5m or 250ms"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("'{text}' has no unit: use ms, s, m, h or d")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("'{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocketmq_level_syntax_parses() {
        let text = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
        assert_eq!(parse_delay_levels(text).unwrap(), DELAY_LEVELS_MS.to_vec());
        assert!(parse_delay_levels("1s 2s").is_err());
        assert_eq!(parse_duration_ms("250ms").unwrap(), 250);
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("x1s").is_err());
    }
}
