//! `timer_store`: the measurement behind the choice of Janus's timer store (see the docs of
//! `server/core/src/messaging/timers.rs`). Two stores take the same workloads, each in a fresh child
//! process so that one's memory does not hide the other's:
//!
//! - `rocksdb`: Janus's store, called exactly as the broker calls it (`MetaStore::put_timers`,
//!   `due_timers`, `remove_timers`): column families keyed by due time, the whole message in the value.
//! - `wheel`: a model of RocketMQ 5's default store: an append-only timer log whose records each point
//!   back to the previous record of their slot, and a wheel of two weeks of 1 s slots (first and last
//!   position and a count per slot, 24 bytes, allocated up front). Scheduling appends to the log through
//!   the page cache (RocketMQ writes through a mapping) and updates the slot; a due slot is read by walking
//!   its chain backwards. It has no index by id, so it cannot cancel a message by id without another one.
//!
//! Workloads: `spread`, 1,000,000 timers due evenly over 600 s (scheduled in requests of 1,000); `burst`,
//! 500,000 timers due in the same second, then that second drained. Each message is 100 bytes of value
//! for a topic `orders`. Measured: schedule rate, resident memory grown while the timers are pending
//! (VmRSS after minus before), and for `burst` the time to read and remove the due second.
//!
//! Run: `cargo run --release -p janus-experiments --bin timer_store [-- --out FILE]`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use janus_api::NewRecord;
use janus_server::meta::MetaStore;
use janus_server::meta::timers::TimerEntry;

const SPREAD_TIMERS: usize = 1_000_000;
const SPREAD_S: i64 = 600;
const BURST_TIMERS: usize = 500_000;
const REQUEST: usize = 1000;
const VALUE_BYTES: usize = 100;
/// Two weeks of 1 s slots, as RocketMQ's wheel (`timerWheelSlots` = 2 x 7 days).
const WHEEL_SLOTS: usize = 2 * 7 * 86_400;
const BASE_MS: i64 = 1_800_000_000_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The due time of timer `i` of `case`.
fn due_of(case: &str, i: usize) -> i64 {
    match case {
        "spread" => BASE_MS + 5_000 + (i as i64) * SPREAD_S * 1000 / SPREAD_TIMERS as i64,
        _ => BASE_MS + 5_000 + (i as i64 % 1000),
    }
}

fn count_of(case: &str) -> usize {
    if case == "spread" { SPREAD_TIMERS } else { BURST_TIMERS }
}

/// One measured run: `(schedule_per_s, rss_growth_mb, drain_s, drained)`.
type Measured = (f64, f64, f64, usize);

fn run_rocksdb(dir: &Path, case: &str) -> Result<Measured> {
    let meta = MetaStore::open(&dir.join("meta")).context("open RocksDB")?;
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let before = rss_bytes();
    let started = Instant::now();
    let n = count_of(case);
    for chunk in (0..n).collect::<Vec<_>>().chunks(REQUEST) {
        let entries: Vec<TimerEntry> = chunk
            .iter()
            .map(|&i| TimerEntry {
                due_ms: due_of(case, i),
                id: format!("{i:032X}"),
                topic: "orders".into(),
                partition: (i % 8) as u32,
                record: NewRecord { key: None, value: Some(value.clone()), headers: vec![], timestamp_ms: BASE_MS },
            })
            .collect();
        meta.put_timers(&entries, false)?;
    }
    let schedule_s = started.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let (mut drain_s, mut drained) = (0.0, 0);
    if case == "burst" {
        let started = Instant::now();
        // As the broker's delivery task does: rounds of 10,000, each starting after the last one's end.
        let to = due_of(case, 0) + 999;
        let mut after: (i64, Option<String>) = (due_of(case, 0), None);
        loop {
            let due = meta.due_timers(after.0, after.1.as_deref(), to, 10_000)?;
            let Some(last) = due.last() else { break };
            after = (last.due_ms, Some(last.id.clone()));
            drained += due.len();
            meta.remove_timers(due.iter().map(|e| (e.due_ms, e.id.as_str())))?;
        }
        drain_s = started.elapsed().as_secs_f64();
    }
    Ok((n as f64 / schedule_s, grown as f64 / 1e6, drain_s, drained))
}

#[derive(Clone, Copy, Default)]
struct Slot {
    first: i64,
    last: i64,
    count: u64,
}

/// RocketMQ's store in miniature (see the module docs).
struct Wheel {
    log: BufWriter<File>,
    reader: File,
    len: u64,
    slots: Vec<Slot>,
}

impl Wheel {
    fn open(dir: &Path) -> Result<Wheel> {
        let path = dir.join("timerlog");
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let reader = File::open(&path)?;
        Ok(Wheel {
            log: BufWriter::with_capacity(1 << 20, file),
            reader,
            len: 0,
            slots: vec![Slot::default(); WHEEL_SLOTS],
        })
    }

    fn schedule(&mut self, due_ms: i64, payload: &[u8]) -> Result<()> {
        let slot = &mut self.slots[(due_ms / 1000) as usize % WHEEL_SLOTS];
        let prev = if slot.count == 0 { -1 } else { slot.last };
        let pos = self.len as i64;
        self.log.write_all(&((payload.len() + 16) as u32).to_be_bytes())?;
        self.log.write_all(&prev.to_be_bytes())?;
        self.log.write_all(&due_ms.to_be_bytes())?;
        self.log.write_all(payload)?;
        self.len += payload.len() as u64 + 20;
        if slot.count == 0 {
            slot.first = pos;
        }
        slot.last = pos;
        slot.count += 1;
        Ok(())
    }

    /// Reads and clears the slot of `second`; returns how many of its records were due in it.
    fn drain(&mut self, second: i64) -> Result<usize> {
        self.log.flush()?;
        let i = second as usize % WHEEL_SLOTS;
        let mut pos = if self.slots[i].count == 0 { -1 } else { self.slots[i].last };
        let mut due = 0;
        let mut header = [0u8; 20];
        let mut payload = Vec::new();
        while pos >= 0 {
            self.reader.read_exact_at(&mut header, pos as u64)?;
            let size = u32::from_be_bytes(header[..4].try_into()?) as usize - 16;
            let prev = i64::from_be_bytes(header[4..12].try_into()?);
            let due_ms = i64::from_be_bytes(header[12..20].try_into()?);
            payload.resize(size, 0);
            self.reader.read_exact_at(&mut payload, pos as u64 + 20)?;
            due += usize::from(due_ms / 1000 == second);
            pos = prev;
        }
        self.slots[i] = Slot::default();
        Ok(due)
    }
}

fn run_wheel(dir: &Path, case: &str) -> Result<Measured> {
    // Topic, partition, id and the value: what the RocksDB store holds per message too.
    let mut payload = b"orders\0\0\0\x01".to_vec();
    payload.extend_from_slice(&[b'I'; 32]);
    payload.extend_from_slice(&[b'v'; VALUE_BYTES]);
    let before = rss_bytes();
    let mut wheel = Wheel::open(dir)?;
    let started = Instant::now();
    let n = count_of(case);
    for i in 0..n {
        wheel.schedule(due_of(case, i), &payload)?;
    }
    wheel.log.flush()?;
    let schedule_s = started.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let (mut drain_s, mut drained) = (0.0, 0);
    if case == "burst" {
        let started = Instant::now();
        drained = wheel.drain(due_of(case, 0) / 1000)?;
        drain_s = started.elapsed().as_secs_f64();
    }
    Ok((n as f64 / schedule_s, grown as f64 / 1e6, drain_s, drained))
}

fn child(store: &str, case: &str) -> Result<()> {
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let (rate, mb, drain_s, drained) = match store {
        "rocksdb" => run_rocksdb(dir.path(), case)?,
        "wheel" => run_wheel(dir.path(), case)?,
        other => bail!("unknown store {other}"),
    };
    println!("{rate:.0} {mb:.1} {drain_s:.3} {drained}");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, store, case] = args.as_slice()
        && flag == "--child"
    {
        return child(store, case);
    }
    let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).cloned();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut report = format!(
        "Timer store comparison (release build, this machine, load average {})\n\n| store | workload | timers | schedule /s | RSS grown while pending | drain of the due second | drained |\n|---|---|---|---|---|---|---|\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    for case in ["spread", "burst"] {
        for store in ["rocksdb", "wheel"] {
            let output = Command::new(std::env::current_exe()?).args(["--child", store, case]).output()?;
            if !output.status.success() {
                bail!("{store} {case}: {}", String::from_utf8_lossy(&output.stderr));
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let f: Vec<&str> = text.split_whitespace().collect();
            let [rate, mb, drain, drained] = f.as_slice() else { bail!("{store} {case}: unexpected output {text}") };
            let drain = if case == "burst" { format!("{drain} s") } else { "-".into() };
            report.push_str(&format!(
                "| {store} | {case} | {} | {rate} | {mb} MB | {drain} | {drained} |\n",
                count_of(case)
            ));
        }
    }
    print!("{report}");
    if let Some(path) = out {
        std::fs::write(&path, &report).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
