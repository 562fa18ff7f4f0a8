//! Case 12: random sequences of operations checked against a simple in-memory model.
//!
//! The model is one [`Log`] per partition: every record ever appended (offset = index) and the log start
//! offset. It is exact where the semantics are exact: offsets after appends, `delete_records_before`, and
//! reads and timestamp lookups at and above the log start. After a restart the engine may report a lower
//! log start than the model (engines need not persist it, and retention removes whole files only), but
//! never a higher one, and every record from the engine's log start on must be the model's; the model then
//! takes the engine's log start.

use janus_api::{Engine, Offsets, StorageError, TopicPartition};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};

use crate::Harness;
use crate::support::{
    Ctx, Rng, check_out_of_range, check_read_at_end, check_read_step, check_records, plain_record, slice_records,
};

const PARTITIONS: u32 = 3;
const CASE: &str = "random_operations_match_model";

/// One step of a random sequence. `pick` chooses an offset or timestamp relative to the state at the time.
#[derive(Clone, Debug)]
enum Op {
    /// Append `count` records generated from `seed`.
    Append { partition: u32, count: usize, seed: u64 },
    /// Read at an offset in or slightly outside the log.
    Read { partition: u32, pick: u32, max_bytes: usize },
    /// Look up a timestamp around the records' timestamps.
    TimeLookup { partition: u32, pick: u32 },
    /// `delete_records_before` an offset from just below the log start to the log end, then a retention pass.
    DeleteBefore { partition: u32, pick: u32 },
    /// `shutdown()`, drop, reopen.
    CleanRestart,
    /// Drop, reopen.
    CrashRestart,
}

fn op() -> impl Strategy<Value = Op> {
    let partition = 0..PARTITIONS;
    prop_oneof![
        8 => (partition.clone(), 1..=20usize, any::<u64>())
            .prop_map(|(partition, count, seed)| Op::Append { partition, count, seed }),
        5 => (partition.clone(), any::<u32>(), prop_oneof![Just(1usize), 1..600usize, Just(1usize << 20)])
            .prop_map(|(partition, pick, max_bytes)| Op::Read { partition, pick, max_bytes }),
        2 => (partition.clone(), any::<u32>()).prop_map(|(partition, pick)| Op::TimeLookup { partition, pick }),
        2 => (partition, any::<u32>()).prop_map(|(partition, pick)| Op::DeleteBefore { partition, pick }),
        1 => Just(Op::CleanRestart),
        1 => Just(Op::CrashRestart),
    ]
}

/// Case 12: 24 random sequences of up to 40 operations (appends of 1 to 20 small records to one of three
/// partitions, reads at offsets in and just outside the log with random `max_bytes`, timestamp lookups,
/// clean and crash restarts, and `delete_records_before` followed by a retention pass), each checked
/// against the model after every step. Deterministic: the same sequences on every run.
pub fn random_operations_match_model<H: Harness>(h: &H) {
    // Bounded shrinking too: every shrink step reopens engines, and a failure should be reported in minutes.
    let config = Config {
        cases: 24,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&vec(op(), 1..=40), |ops| {
        run_ops(h, &ops);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{CASE}: {e}");
    }
}

fn run_ops<H: Harness>(h: &H, ops: &[Op]) {
    let mut c = Ctx::new(h, CASE);
    let tps = c.create_topic("model", PARTITIONS, &[("retention.ms", "-1"), ("retention.bytes", "-1")]);
    for (step, op) in ops.iter().enumerate() {
        let what = format!("{CASE}: step {step} {op:?}");
        match *op {
            Op::Append { partition, count, seed } => {
                let mut rng = Rng::new(seed);
                let records: Vec<_> = (0..count)
                    .map(|_| {
                        let mut ts = c.next_ts();
                        if rng.one_in(8) {
                            ts -= rng.range(1, 30) as i64;
                        }
                        let len = rng.range(1, 64);
                        plain_record(&mut rng, ts, len)
                    })
                    .collect();
                c.append(&tps[partition as usize], &records);
            }
            Op::Read { partition, pick, max_bytes } => check_read(&c, &tps[partition as usize], pick, max_bytes, &what),
            Op::TimeLookup { partition, pick } => {
                let tp = &tps[partition as usize];
                let log = c.log(tp);
                let live = &log.records[log.log_start as usize..];
                let target = if live.is_empty() {
                    c.clock - i64::from(pick % 100)
                } else {
                    let r = &live[pick as usize % live.len()];
                    r.timestamp_ms + i64::from(pick % 3) - 1
                };
                let expected = log.offset_for_timestamp(log.log_start, target);
                let got = c.e().offset_for_timestamp(tp, target).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(got, expected, "{what}: offset_for_timestamp({target})");
            }
            Op::DeleteBefore { partition, pick } => {
                let tp = &tps[partition as usize];
                let o = c.log(tp).offsets();
                let lo = (o.log_start - 1).max(0);
                let x = lo + i64::from(pick) % (o.log_end - lo + 1);
                let got = c
                    .e()
                    .delete_records_before(tp, x)
                    .unwrap_or_else(|e| panic!("{what}: delete_records_before({x}): {e}"));
                let expected = x.max(o.log_start);
                assert_eq!(got, expected, "{what}: delete_records_before({x}) with offsets {o:?}");
                c.log_mut(tp).log_start = expected;
                c.e().enforce_retention(c.clock).unwrap_or_else(|e| panic!("{what}: enforce_retention: {e}"));
            }
            Op::CleanRestart => {
                c.clean_restart();
                c.check_all();
            }
            Op::CrashRestart => {
                c.crash_restart();
                c.check_all();
            }
        }
        for tp in &tps {
            let got = c.e().offsets(tp).unwrap_or_else(|e| panic!("{what}: offsets of {tp}: {e}"));
            assert_eq!(got, c.log(tp).offsets(), "{what}: offsets of {tp}");
        }
    }
    c.check_all();
    c.check_all_timestamps();
}

/// One read at an offset from two below the log start to two past the log end, checked against the model.
fn check_read<H: Harness>(c: &Ctx<'_, H>, tp: &TopicPartition, pick: u32, max_bytes: usize, what: &str) {
    let log = c.log(tp);
    let o: Offsets = log.offsets();
    let lo = o.log_start - 2;
    let offset = lo + i64::from(pick) % (o.log_end + 2 - lo + 1);
    if offset < o.log_start || offset > o.log_end {
        check_out_of_range(what, c.e(), tp, offset, o);
        return;
    }
    if offset == o.log_end {
        check_read_at_end(what, c.e(), tp, offset);
        return;
    }
    let slice = match c.e().read(tp, offset, max_bytes) {
        Ok(slice) => slice,
        Err(StorageError::OffsetOutOfRange { .. }) => panic!("{what}: read at {offset} in {o:?} is out of range"),
        Err(e) => panic!("{what}: read at {offset}: {e}"),
    };
    let records = slice_records(what, c.e(), tp, &slice, offset);
    check_read_step(what, tp, offset, &slice, &records);
    let upto = offset as usize + records.len();
    assert!(upto <= log.records.len(), "{what}: read at {offset} returned records past the log end");
    check_records(what, tp, &records, offset, &log.records[offset as usize..upto]);
    if slice.byte_len() > max_bytes {
        let first = log.batch_of(offset);
        assert!(
            records.iter().all(|r| log.batch_of(r.offset) == first),
            "{what}: a read of {} bytes exceeds max_bytes {max_bytes}, so it must hold a single batch (message)",
            slice.byte_len()
        );
    }
}
