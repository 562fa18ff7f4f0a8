//! Arguments of the RocketMQ-delivery commands: `receive`, `dlq`, `message`, `timer`, and the schedule
//! flags of `produce`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::args::parse_duration;

/// When `janus produce` delivers (at most one).
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct ScheduleArgs {
    /// Deliver each message this long after the broker gets it (e.g. 30s, 5m; at most the broker's
    /// timer.max.delay.ms, 3 days).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Deliver after RocketMQ delay level 1-18 (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h).
    #[arg(long, value_name = "LEVEL")]
    pub delay_level: Option<u32>,
    /// Deliver at this time: RFC 3339 (2026-12-01T18:00:00Z) or milliseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time_ms)]
    pub deliver_at: Option<i64>,
}

/// What `janus receive` does with what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Settle {
    /// Acknowledge each message after printing it.
    #[default]
    Ack,
    /// Give each back: it comes again after the retry back-off.
    Nack,
    /// Leave them: they come again when the invisible duration ends.
    Leave,
}

/// `janus receive ...`
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Topic.
    pub topic: String,
    /// The receiving group.
    #[arg(long)]
    pub group: String,
    /// At most this many messages.
    #[arg(long, default_value_t = 32)]
    pub max: u32,
    /// How long received messages stay invisible to the group's other receivers (10s to 12h; default: the
    /// broker's, 60s).
    #[arg(long, value_parser = parse_duration)]
    pub invisible: Option<Duration>,
    /// Only messages with this tag (repeatable: any of them).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// How long to wait when nothing is there.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub wait: Duration,
    /// Acknowledge each message after printing it (the default).
    #[arg(long, group = "settle")]
    pub ack: bool,
    /// Give each message back (it comes again after the retry back-off: 10s, 30s, 1m, ...).
    #[arg(long, group = "settle")]
    pub nack: bool,
    /// Neither: messages come back when their invisible duration ends.
    #[arg(long, group = "settle")]
    pub no_ack: bool,
}

impl ReceiveArgs {
    /// What to do with the received messages.
    pub fn settle(&self) -> Settle {
        if self.nack {
            Settle::Nack
        } else if self.no_ack {
            Settle::Leave
        } else {
            Settle::Ack
        }
    }
}

/// `janus dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a group's dead letters: offset, original topic, partition and offset, id, attempts.
    List {
        /// The group.
        group: String,
    },
    /// Show one dead letter with every header.
    Show {
        /// The group.
        group: String,
        /// Its offset in the dead-letter topic.
        offset: i64,
    },
    /// Put dead letters back into their original topic and partition.
    Resend {
        /// The group.
        group: String,
        /// This dead letter (its offset in the dead-letter topic).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        offset: Option<i64>,
        /// Every dead letter of the group.
        #[arg(long)]
        all: bool,
    },
}

/// `janus message ...`
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Find messages of a topic by id or key.
    Show {
        /// Topic.
        topic: String,
        /// The message id (UNIQ_KEY).
        #[arg(long, required_unless_present = "key", conflicts_with = "key")]
        id: Option<String>,
        /// A key (a word of the KEYS header, or the record key).
        #[arg(long)]
        key: Option<String>,
    },
}

/// `janus timer ...`
#[derive(Debug, Subcommand)]
pub enum TimerCommand {
    /// Cancel a scheduled message before it is due.
    Cancel {
        /// Its message id.
        id: String,
    },
}

/// Parses RFC 3339 (`2026-12-01T18:00:00Z`, `...+01:00`, fractions of a second allowed) or a whole number
/// of milliseconds since the Unix epoch.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is too large"));
    }
    let bad = || format!("expected RFC 3339 like 2026-12-01T18:00:00Z or milliseconds since the epoch; got {s:?}");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        if digits == 0 {
            return Err(bad());
        }
        let ms: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse::<i64>().map_err(|_| bad())?;
        rest = &f[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let oh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let om: i64 = o[4..6].parse().map_err(|_| bad())?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_epoch_millis() {
        assert_eq!(parse_time_ms("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time_ms("2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time_ms("2023-11-14T23:13:20.250+01:00").unwrap(), 1_700_000_000_250);
        assert_eq!(parse_time_ms("2000-03-01T00:00:00Z").unwrap(), 951_868_800_000);
        for bad in ["", "tomorrow", "2023-13-01T00:00:00Z", "2023-11-14T22:13:20", "2023-11-14T22:13:20+0100"] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
