//! The `[messaging]` section: RocketMQ delivery (timers, receive/ack, retries) with RocketMQ's key names.

use std::time::Duration;

use janus_core::messaging::MessagingConfig;
use janus_core::messaging::config::parse_delay_levels;
use serde::Deserialize;

use super::{ConfigError, check_range};

/// Timers, receive/ack and retries (`[messaging]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingSection {
    /// RocketMQ's `messageDelayLevel`: the 18 delay levels ("1s 5s 10s 30s 1m ... 1h 2h"); retries back off
    /// by levels 3 to 18.
    pub delay_levels: String,
    /// `timer.max.delay.ms`: the furthest ahead a message may be scheduled (3 days).
    pub timer_max_delay_ms: u64,
    /// `timer.precision.ms`: the longest the timer task sleeps between looks at the store (1 s).
    pub timer_precision_ms: u64,
    /// Messages the timer task delivers per round (10,000): also the most duplicates a crash mid-round causes.
    pub timer_delivery_batch: u64,
    /// The invisible duration of a receive that asks for none (60 s).
    pub default_invisible_ms: u64,
    /// The shortest invisible duration allowed (10 s).
    pub min_invisible_ms: u64,
    /// The longest invisible duration allowed (12 h).
    pub max_invisible_ms: u64,
    /// `max.reconsume.times` of groups that set none (16).
    pub max_reconsume_times: u64,
    /// The most received and unacknowledged messages across the broker (500,000; about 100 bytes each).
    pub max_inflight_leases: u64,
    /// `producer.id.expiration.ms`: how long an idle idempotent producer's sequence state is kept (7 days).
    pub producer_id_expiration_ms: u64,
    /// How often changed idempotent-producer state is snapshotted (30 s): what a restart replays at most.
    pub producer_snapshot_interval_ms: u64,
    /// `transaction.timeout.ms`: how long a half message waits for its decision before the first check (6 s).
    pub transaction_timeout_ms: u64,
    /// `transaction.check.interval.ms`: time between checks of an undecided transaction (30 s).
    pub transaction_check_interval_ms: u64,
    /// `transaction.check.max`: checks before an undecided transaction goes to TRANS_CHECK_MAX_TIME_TOPIC (15).
    pub transaction_check_max: u64,
    /// The most undecided transactions held (100,000; about 200 bytes of memory each).
    pub max_pending_transactions: u64,
}

impl Default for MessagingSection {
    fn default() -> Self {
        let d = MessagingConfig::default();
        MessagingSection {
            delay_levels: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".into(),
            timer_max_delay_ms: d.timer_max_delay_ms as u64,
            timer_precision_ms: d.timer_precision.as_millis() as u64,
            timer_delivery_batch: d.timer_delivery_batch as u64,
            default_invisible_ms: d.default_invisible.as_millis() as u64,
            min_invisible_ms: d.min_invisible.as_millis() as u64,
            max_invisible_ms: d.max_invisible.as_millis() as u64,
            max_reconsume_times: u64::from(d.max_reconsume_times),
            max_inflight_leases: d.max_inflight_leases as u64,
            producer_id_expiration_ms: d.producer_id_expiration_ms as u64,
            producer_snapshot_interval_ms: d.producer_snapshot_interval.as_millis() as u64,
            transaction_timeout_ms: d.transaction_timeout_ms as u64,
            transaction_check_interval_ms: d.transaction_check_interval_ms as u64,
            transaction_check_max: u64::from(d.transaction_check_max),
            max_pending_transactions: d.max_pending_transactions as u64,
        }
    }
}

impl MessagingSection {
    /// Refuses values the messaging layer cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const DAY_MS: u64 = 86_400_000;
        parse_delay_levels(&self.delay_levels)
            .map_err(|e| ConfigError::invalid("messaging.delay_levels", &self.delay_levels, e))?;
        check_range("messaging.timer_max_delay_ms", self.timer_max_delay_ms, 1, 365 * DAY_MS)?;
        check_range("messaging.timer_precision_ms", self.timer_precision_ms, 10, 60_000)?;
        check_range("messaging.timer_delivery_batch", self.timer_delivery_batch, 1, 1_000_000)?;
        check_range("messaging.min_invisible_ms", self.min_invisible_ms, 1, DAY_MS)?;
        check_range("messaging.max_invisible_ms", self.max_invisible_ms, self.min_invisible_ms, 7 * DAY_MS)?;
        check_range(
            "messaging.default_invisible_ms",
            self.default_invisible_ms,
            self.min_invisible_ms,
            self.max_invisible_ms,
        )?;
        check_range("messaging.max_reconsume_times", self.max_reconsume_times, 0, 1000)?;
        check_range("messaging.max_inflight_leases", self.max_inflight_leases, 1, 100_000_000)?;
        check_range("messaging.producer_id_expiration_ms", self.producer_id_expiration_ms, 1000, 365 * DAY_MS)?;
        check_range("messaging.producer_snapshot_interval_ms", self.producer_snapshot_interval_ms, 100, DAY_MS)?;
        check_range("messaging.transaction_timeout_ms", self.transaction_timeout_ms, 1, DAY_MS)?;
        check_range("messaging.transaction_check_interval_ms", self.transaction_check_interval_ms, 1, DAY_MS)?;
        check_range("messaging.transaction_check_max", self.transaction_check_max, 1, 1000)?;
        check_range("messaging.max_pending_transactions", self.max_pending_transactions, 1, 10_000_000)?;
        Ok(())
    }

    /// The messaging layer's settings (call after [`MessagingSection::validate`]).
    pub fn messaging_config(&self) -> MessagingConfig {
        let ms = Duration::from_millis;
        MessagingConfig {
            delay_levels_ms: parse_delay_levels(&self.delay_levels).unwrap_or_default(),
            timer_max_delay_ms: self.timer_max_delay_ms as i64,
            timer_precision: ms(self.timer_precision_ms),
            timer_delivery_batch: self.timer_delivery_batch as usize,
            default_invisible: ms(self.default_invisible_ms),
            min_invisible: ms(self.min_invisible_ms),
            max_invisible: ms(self.max_invisible_ms),
            max_reconsume_times: self.max_reconsume_times as u32,
            max_inflight_leases: self.max_inflight_leases as usize,
            producer_id_expiration_ms: self.producer_id_expiration_ms as i64,
            producer_snapshot_interval: ms(self.producer_snapshot_interval_ms),
            transaction_timeout_ms: self.transaction_timeout_ms as i64,
            transaction_check_interval_ms: self.transaction_check_interval_ms as i64,
            transaction_check_max: self.transaction_check_max as u32,
            max_pending_transactions: self.max_pending_transactions as usize,
            ..MessagingConfig::default()
        }
    }
}
