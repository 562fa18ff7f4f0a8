//! Flush policies: when `Appended::durable` completes, observed without timing anything.

use std::time::Duration;

use bytes::Bytes;
use janus_api::{Engine, NewRecord};

use crate::Harness;
use crate::support::{Ctx, Log, build, wait_bounded};

/// The longest the suite waits for a `durable` that must complete. Not a performance bound: only a
/// guard against waiting forever.
const DURABLE_LIMIT: Duration = Duration::from_secs(10);

/// Case 10: under `flush.policy=sync`, threads appending concurrently to two partitions all see their
/// `durable` complete successfully, every append gets its own dense range, and everything is there after
/// a crash.
pub fn flush_sync_concurrent_appends<H: Harness>(h: &H) {
    const THREADS: usize = 4;
    const APPENDS: usize = 12;
    let case = "flush_sync_concurrent_appends";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("sync", 2, &[("flush.policy", "sync")]);
    let plans: Vec<Vec<Vec<NewRecord>>> = (0..THREADS)
        .map(|t| {
            (0..APPENDS)
                .map(|i| {
                    let n = c.rng.range(1, 3);
                    let mut records = c.records(n, 20..=200);
                    records[0].key = Some(Bytes::from(format!("t{t}-a{i}")));
                    records
                })
                .collect()
        })
        .collect();
    let e = c.e();
    let bases: Vec<Vec<i64>> = std::thread::scope(|s| {
        let threads: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(t, plan)| {
                let tp = &tps[t % 2];
                s.spawn(move || {
                    plan.iter()
                        .map(|records| {
                            let a = e.append(tp, build(records)).unwrap_or_else(|err| panic!("{case}: append: {err}"));
                            a.durable.wait().unwrap_or_else(|err| panic!("{case}: durable.wait(): {err}"));
                            a.base_offset
                        })
                        .collect()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("appending thread panicked")).collect()
    });
    let mut logs = [Vec::new(), Vec::new()];
    for (t, thread_bases) in bases.iter().enumerate() {
        for (i, &base) in thread_bases.iter().enumerate() {
            logs[t % 2].push((base, &plans[t][i]));
        }
    }
    for (p, tp) in tps.iter().enumerate() {
        logs[p].sort_by_key(|&(base, _)| base);
        let mut log = Log::default();
        for &(base, records) in &logs[p] {
            assert_eq!(base, log.log_end(), "{case}: {tp}: appends must get dense, non-overlapping ranges");
            log.push(records);
        }
        *c.log_mut(tp) = log;
    }
    c.check_all();
    c.crash_restart();
    c.check_all();
}

/// Case 10: under `flush.policy=interval` with a short interval, `durable` completes by itself (within a
/// generous bound, not a performance assertion), and `flush()` works.
pub fn flush_interval_completes<H: Harness>(h: &H) {
    let case = "flush_interval_completes";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("interval", 1, &[("flush.policy", "interval"), ("flush.interval.ms", "20")]);
    let tp = &tps[0];
    let mut pending = Vec::new();
    for _ in 0..5 {
        let records = c.records(2, 20..=200);
        pending.push(c.append_batch(tp, build(&records), &records).durable);
    }
    for durable in pending {
        wait_bounded(case, durable, DURABLE_LIMIT);
    }
    let records = c.records(1, 20..=200);
    let a = c.append_batch(tp, build(&records), &records);
    c.e().flush().unwrap_or_else(|e| panic!("{case}: flush: {e}"));
    wait_bounded(case, a.durable, DURABLE_LIMIT);
    c.crash_restart();
    c.check_all();
}

/// Case 10: under `flush.policy=os`, `durable` is complete at once.
pub fn flush_os_is_ready_at_once<H: Harness>(h: &H) {
    let case = "flush_os_is_ready_at_once";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("os", 1, &[("flush.policy", "os")]);
    for _ in 0..3 {
        let records = c.records(2, 20..=200);
        let a = c.append_batch(&tps[0], build(&records), &records);
        assert!(a.durable.is_done(), "{case}: under flush.policy=os the append is acknowledged at once");
        a.durable.wait().unwrap_or_else(|e| panic!("{case}: durable.wait(): {e}"));
    }
    c.e().flush().unwrap_or_else(|e| panic!("{case}: flush: {e}"));
    c.check_all();
}
