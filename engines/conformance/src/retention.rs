//! Retention: by time, by size, and below a log start offset set with `delete_records_before`.
//!
//! Each case uses one topic of one partition: the commitlog engine's files hold every topic, so sizes and
//! file deletions are only predictable with a single topic.

use janus_api::{Engine, Offsets, RetentionReport, StorageError, TopicPartition};

use crate::Harness;
use crate::support::{Ctx, check_out_of_range, check_read_at_end, expect_err};

/// Runs a retention pass at `now`, panicking on an error.
fn enforce<H: Harness>(c: &Ctx<'_, H>, now: i64) -> RetentionReport {
    c.e().enforce_retention(now).unwrap_or_else(|e| panic!("{}: enforce_retention({now}): {e}", c.case))
}

fn offsets<H: Harness>(c: &Ctx<'_, H>, tp: &TopicPartition) -> Offsets {
    c.e().offsets(tp).unwrap_or_else(|e| panic!("{}: offsets of {tp}: {e}", c.case))
}

/// After a pass that deleted something: the log end is unchanged, the log start advanced but not past the
/// newest append (its file is the active one), everything from the log start still reads back exactly,
/// and reads below it are out of range. Makes the new log start the expected one.
fn check_after_deletion<H: Harness>(c: &mut Ctx<'_, H>, tp: &TopicPartition, before: Offsets) -> Offsets {
    let case = c.case;
    let after = offsets(c, tp);
    let (newest_base, _) = c.log(tp).last_batch();
    assert_eq!(after.log_end, before.log_end, "{case}: retention must not change the log end of {tp}");
    assert!(
        after.log_start > before.log_start,
        "{case}: retention deleted files but the log start of {tp} stayed {}",
        before.log_start
    );
    assert!(
        after.log_start <= newest_base,
        "{case}: retention moved the log start of {tp} to {}, past the newest append at {newest_base}: the file being \
         written must never be deleted",
        after.log_start
    );
    c.log_mut(tp).log_start = after.log_start;
    c.check(tp);
    check_out_of_range(case, c.e(), tp, after.log_start - 1, after);
    check_out_of_range(case, c.e(), tp, 0, after);
    after
}

/// Case 6a: with a small `retention.ms`, a pass at the time of writing deletes nothing, and a pass at
/// "now + 2 × retention" deletes every file but the one being written: the log start advances, the
/// newest records stay readable, reads below the log start are out of range, reads at it work, and
/// appends continue at the log end.
pub fn retention_by_time<H: Harness>(h: &H) {
    const RETENTION_MS: i64 = 60_000;
    let mut c = Ctx::new(h, "retention_by_time");
    let tps = c.create_topic("retention-time", 1, &[("retention.ms", "60000"), ("retention.bytes", "-1")]);
    let tp = &tps[0];
    let written_at = c.clock;
    c.fill(&tps, 4 * h.file_bytes());
    let before = offsets(&c, tp);

    let report = enforce(&c, written_at);
    assert_eq!(report.files_deleted, 0, "retention_by_time: nothing is older than retention.ms yet: {report:?}");
    assert_eq!(offsets(&c, tp), before, "retention_by_time: a pass that deletes nothing must not move the offsets");

    let later = c.clock + 2 * RETENTION_MS;
    let report = enforce(&c, later);
    assert!(report.files_deleted >= 1, "retention_by_time: every closed file has expired: {report:?}");
    assert!(report.bytes_deleted > 0, "retention_by_time: {report:?}");
    check_after_deletion(&mut c, tp, before);
    c.check_timestamps(tp);

    // Appends continue at the log end; another pass still keeps the file being written.
    let records = c.records(3, 10..=100);
    c.append(tp, &records);
    enforce(&c, later);
    let o = offsets(&c, tp);
    assert!(o.log_start <= c.log(tp).log_end() - 3, "retention_by_time: the newest append must stay readable");
    c.log_mut(tp).log_start = o.log_start;
    c.check(tp);
}

/// Case 6b: `retention.bytes` far above the data deletes nothing; lowered (with `alter_topic`) to one
/// file's worth it deletes the oldest files, and a second pass deletes nothing more; lowered to 1 byte it
/// keeps only the file being written, whose records stay readable.
pub fn retention_by_size<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "retention_by_size");
    let big = (64 * h.file_bytes()).to_string();
    let tps = c.create_topic("retention-size", 1, &[("retention.ms", "-1"), ("retention.bytes", &big)]);
    let tp = &tps[0];
    c.fill(&tps, 4 * h.file_bytes());
    let before = offsets(&c, tp);
    let now = c.clock;

    let report = enforce(&c, now);
    assert_eq!(report.files_deleted, 0, "retention_by_size: the data is far below retention.bytes: {report:?}");
    assert_eq!(offsets(&c, tp), before, "retention_by_size: a pass that deletes nothing must not move the offsets");

    let alter = |c: &mut Ctx<'_, H>, bytes: String| {
        let mut spec = c.specs["retention-size"].clone();
        spec.config.set("retention.bytes", &bytes).expect("valid retention.bytes");
        c.e().alter_topic(&spec.name, &spec.config).unwrap_or_else(|e| panic!("retention_by_size: alter_topic: {e}"));
        c.specs.insert(spec.name.clone(), spec);
    };
    alter(&mut c, h.file_bytes().to_string());
    let report = enforce(&c, now);
    assert!(report.files_deleted >= 1, "retention_by_size: 4 files' worth against a limit of 1: {report:?}");
    assert!(report.bytes_deleted > 0, "retention_by_size: {report:?}");
    let middle = check_after_deletion(&mut c, tp, before);

    let report = enforce(&c, now);
    assert_eq!(report.files_deleted, 0, "retention_by_size: a second pass at the same limit must delete nothing");
    assert_eq!(offsets(&c, tp), middle, "retention_by_size: a second pass at the same limit");

    alter(&mut c, "1".to_string());
    enforce(&c, now);
    let o = offsets(&c, tp);
    assert!(o.log_start >= middle.log_start, "retention_by_size: the log start went back");
    let (newest_base, _) = c.log(tp).last_batch();
    assert!(o.log_start <= newest_base, "retention_by_size: the file being written must never be deleted");
    assert_eq!(o.log_end, before.log_end, "retention_by_size: the log end must not change");
    c.log_mut(tp).log_start = o.log_start;
    c.check(tp);

    let records = c.records(2, 10..=100);
    c.append(tp, &records);
    c.check(tp);
}

/// Case 6c: `delete_records_before(x)` returns `x` and makes it the log start exactly (also inside a
/// batch), reads below it are out of range while reads at it return records from `x`, it never moves the
/// log start back, it refuses offsets past the log end, the next retention pass deletes the files wholly
/// below it and keeps the log start at `x`, timestamp lookups answer at or after it, and deleting up to
/// the log end leaves an empty log that appends continue.
pub fn delete_records_before<H: Harness>(h: &H) {
    let case = "delete_records_before";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("delete-records", 1, &[("retention.ms", "-1"), ("retention.bytes", "-1")]);
    let tp = &tps[0];
    c.fill(&tps, 3 * h.file_bytes());
    let end = c.log(tp).log_end();
    // An offset inside a multi-record batch, about two thirds of the way.
    let x = c
        .log(tp)
        .batches
        .iter()
        .find(|&&(base, last)| last > base && base >= end * 2 / 3)
        .map(|&(base, _)| base + 1)
        .expect("test bug: no multi-record batch in the last third");

    let got = c.e().delete_records_before(tp, x).unwrap_or_else(|e| panic!("{case}: delete_records_before({x}): {e}"));
    assert_eq!(got, x, "{case}: delete_records_before returns the new log start");
    let o = offsets(&c, tp);
    assert_eq!(o, Offsets { log_start: x, log_end: end }, "{case}: offsets after delete_records_before({x})");
    c.log_mut(tp).log_start = x;
    c.check(tp);
    check_out_of_range(case, c.e(), tp, x - 1, o);
    check_out_of_range(case, c.e(), tp, 0, o);

    // It never moves back, and refuses offsets past the log end.
    let got = c
        .e()
        .delete_records_before(tp, x - 10)
        .unwrap_or_else(|e| panic!("{case}: delete_records_before below the log start: {e}"));
    assert_eq!(got, x, "{case}: delete_records_before below the log start must leave it where it is");
    assert!(
        c.e().delete_records_before(tp, end + 1).is_err(),
        "{case}: delete_records_before past the log end must fail"
    );
    assert_eq!(offsets(&c, tp), o, "{case}: offsets after refused delete_records_before calls");

    let report = enforce(&c, c.clock);
    assert!(report.files_deleted >= 1, "{case}: the first file lies wholly below the log start {x}: {report:?}");
    assert_eq!(offsets(&c, tp), o, "{case}: a retention pass must keep the log start set by delete_records_before");
    c.check(tp);
    c.check_timestamps(tp);

    // Everything deleted: the log is empty at its end, and appends continue there.
    let got =
        c.e().delete_records_before(tp, end).unwrap_or_else(|e| panic!("{case}: delete_records_before(log end): {e}"));
    assert_eq!(got, end);
    let o = offsets(&c, tp);
    assert_eq!(o, Offsets { log_start: end, log_end: end }, "{case}: offsets after deleting everything");
    c.log_mut(tp).log_start = end;
    check_read_at_end(case, c.e(), tp, end);
    check_out_of_range(case, c.e(), tp, end - 1, o);
    assert_eq!(c.e().offset_for_timestamp(tp, 0).ok(), Some(None), "{case}: timestamp lookup in an empty log");
    enforce(&c, c.clock);
    let records = c.records(2, 10..=100);
    c.append(tp, &records);
    assert_eq!(
        offsets(&c, tp),
        Offsets { log_start: end, log_end: end + 2 },
        "{case}: offsets after appending to an emptied log"
    );
    c.check(tp);
    c.check_timestamps(tp);
    expect_err!(
        c.e().delete_records_before(&TopicPartition::new("delete-records", 1), 0),
        StorageError::UnknownPartition { .. },
        "{case}: delete_records_before on a missing partition"
    );
}
