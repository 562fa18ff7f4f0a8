//! When a message is due: RocketMQ's 18 delay levels, a relative delay or an absolute delivery time, read
//! from a request or from a message's properties (`DELAY`, `TIMER_DELIVER_MS`, `TIMER_DELAY_MS`,
//! `TIMER_DELAY_SEC`), and the retry back-off that reuses levels 3 to 18.

use janus_api::{Header, headers};

use crate::error::{BrokerError, ErrorCode};

/// RocketMQ's default `messageDelayLevel`: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".
pub const DELAY_LEVELS_MS: [i64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 480_000, 540_000,
    600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];

/// How a producer asked for a message to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One of the 18 delay levels (1-based).
    Level(u32),
    /// This many milliseconds after the broker received it.
    DelayMs(i64),
    /// At this time, milliseconds since the Unix epoch.
    At(i64),
}

impl Schedule {
    /// The delivery time of a message received at `now_ms`, checked against `max_delay_ms`: a level out of
    /// 1..=18, a negative delay or a time further than `max_delay_ms` ahead is refused. A time in the past
    /// is due at once (RocketMQ does the same).
    pub fn due_ms(self, now_ms: i64, levels: &[i64], max_delay_ms: i64) -> Result<i64, BrokerError> {
        let due = match self {
            Schedule::Level(level) => {
                let i = level.checked_sub(1).filter(|i| (*i as usize) < levels.len()).ok_or_else(|| {
                    BrokerError::new(
                        ErrorCode::InvalidDelivery,
                        format!("delay level {level} does not exist: levels are 1 to 18 (1s .. 2h)"),
                    )
                })?;
                now_ms + levels[i as usize]
            }
            Schedule::DelayMs(ms) if ms < 0 => {
                return Err(BrokerError::new(ErrorCode::InvalidDelivery, format!("the delay {ms} ms is negative")));
            }
            Schedule::DelayMs(ms) => now_ms.saturating_add(ms),
            Schedule::At(at) => at,
        };
        if due - now_ms > max_delay_ms {
            return Err(BrokerError::new(
                ErrorCode::InvalidDelivery,
                format!(
                    "the delivery time is {} ms ahead, more than timer.max.delay.ms = {max_delay_ms} allows",
                    due - now_ms
                ),
            ));
        }
        Ok(due)
    }

    /// The schedule a message's properties ask for, if any (`TIMER_DELIVER_MS` over `TIMER_DELAY_MS` over
    /// `TIMER_DELAY_SEC` over `DELAY`, RocketMQ's order); a property that is not a number is refused.
    pub fn from_headers(message_headers: &[Header]) -> Result<Option<Schedule>, BrokerError> {
        let find = |name: &str| -> Result<Option<i64>, BrokerError> {
            let Some(h) = message_headers.iter().find(|h| h.key == name) else { return Ok(None) };
            let text = h.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
            text.trim().parse::<i64>().map(Some).map_err(|_| {
                BrokerError::new(ErrorCode::InvalidDelivery, format!("the {name} property '{text}' is not an integer"))
            })
        };
        if let Some(at) = find(headers::TIMER_DELIVER_MS)? {
            return Ok(Some(Schedule::At(at)));
        }
        if let Some(ms) = find(headers::TIMER_DELAY_MS)? {
            return Ok(Some(Schedule::DelayMs(ms)));
        }
        if let Some(s) = find(headers::TIMER_DELAY_SEC)? {
            return Ok(Some(Schedule::DelayMs(s.saturating_mul(1000))));
        }
        match find(headers::DELAY)? {
            // RocketMQ treats level 0 as "no delay".
            Some(0) | None => Ok(None),
            Some(level) => Ok(Some(Schedule::Level(u32::try_from(level).unwrap_or(u32::MAX)))),
        }
    }
}

/// The wait before a message whose `attempt`-th delivery failed comes back: delay level `attempt + 2`,
/// so 10 s after the first failure, 30 s after the second, ... and 2 h from the 16th on (RocketMQ's
/// back-off for consumers that reconsume through the broker).
pub fn retry_backoff_ms(levels: &[i64], attempt: u32) -> i64 {
    let level = (attempt as usize + 2).clamp(3, levels.len().max(3));
    levels.get(level - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const L: &[i64] = &DELAY_LEVELS_MS;

    #[test]
    fn levels_map_to_rocketmq_delays() {
        assert_eq!(Schedule::Level(1).due_ms(1000, L, DAY).unwrap(), 2000);
        assert_eq!(Schedule::Level(3).due_ms(0, L, DAY).unwrap(), 10_000);
        assert_eq!(Schedule::Level(18).due_ms(0, L, DAY).unwrap(), 7_200_000);
        for bad in [0, 19, u32::MAX] {
            assert_eq!(Schedule::Level(bad).due_ms(0, L, DAY).unwrap_err().code(), ErrorCode::InvalidDelivery);
        }
    }

    #[test]
    fn delays_beyond_the_maximum_are_refused_and_past_times_are_due_now() {
        let err = Schedule::DelayMs(3 * DAY + 1).due_ms(0, L, 3 * DAY).unwrap_err();
        assert!(err.message().contains("timer.max.delay.ms"), "{}", err.message());
        assert_eq!(Schedule::DelayMs(3 * DAY).due_ms(0, L, 3 * DAY).unwrap(), 3 * DAY);
        assert_eq!(Schedule::At(5).due_ms(100, L, DAY).unwrap(), 5);
        assert!(Schedule::DelayMs(-1).due_ms(0, L, DAY).is_err());
    }

    #[test]
    fn properties_follow_rocketmq_precedence() {
        let h = |k: &str, v: &str| Header::new(k, v.as_bytes().to_vec());
        assert_eq!(Schedule::from_headers(&[]).unwrap(), None);
        assert_eq!(Schedule::from_headers(&[h("DELAY", "0")]).unwrap(), None);
        assert_eq!(Schedule::from_headers(&[h("DELAY", "3")]).unwrap(), Some(Schedule::Level(3)));
        assert_eq!(
            Schedule::from_headers(&[h("DELAY", "3"), h("TIMER_DELIVER_MS", "99")]).unwrap(),
            Some(Schedule::At(99))
        );
        assert_eq!(Schedule::from_headers(&[h("TIMER_DELAY_SEC", "2")]).unwrap(), Some(Schedule::DelayMs(2000)));
        assert!(Schedule::from_headers(&[h("TIMER_DELAY_MS", "soon")]).is_err());
    }

    #[test]
    fn backoff_walks_levels_3_to_18() {
        assert_eq!(retry_backoff_ms(L, 1), 10_000);
        assert_eq!(retry_backoff_ms(L, 2), 30_000);
        assert_eq!(retry_backoff_ms(L, 3), 60_000);
        assert_eq!(retry_backoff_ms(L, 16), 7_200_000);
        assert_eq!(retry_backoff_ms(L, 40), 7_200_000);
        assert_eq!(retry_backoff_ms(L, 0), 10_000);
    }
}
