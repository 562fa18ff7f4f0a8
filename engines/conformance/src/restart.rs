//! Clean restarts, and what an engine does after `shutdown()`.

use janus_api::{Engine, StorageError, TopicConfig, TopicPartition};

use crate::Harness;
use crate::support::{Ctx, build, expect_err};

/// Case 7: after `shutdown()` and a reopen, every partition holds exactly what it held (offsets, records,
/// timestamp lookups), appends continue at the old log end, and the same holds over a second clean restart
/// and a crash after it.
pub fn clean_restart_keeps_everything<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "clean_restart_keeps_everything");
    let mut tps = c.create_topic("restart-a", 2, &[]);
    tps.extend(c.create_topic("restart-b", 1, &[]));
    c.fill(&tps, h.file_bytes() * 3 / 2);
    c.check_all();
    c.check_all_timestamps();
    let before: Vec<_> = tps.iter().map(|tp| c.e().offsets(tp).expect("offsets")).collect();

    c.clean_restart();
    let after: Vec<_> = tps.iter().map(|tp| c.e().offsets(tp).expect("offsets")).collect();
    assert_eq!(after, before, "clean_restart_keeps_everything: offsets after a clean restart");
    c.check_all();
    c.check_all_timestamps();

    for tp in &tps {
        let records = c.records(3, 10..=500);
        c.append(tp, &records);
    }
    c.check_all();
    c.clean_restart();
    c.check_all();
    c.check_all_timestamps();
    c.crash_restart();
    c.check_all();
    c.check_all_timestamps();
}

/// Case 7: after `shutdown()` every call fails with `StorageError::Closed` and changes nothing; the data
/// is all there after a reopen.
pub fn calls_after_shutdown_fail_closed<H: Harness>(h: &H) {
    let case = "calls_after_shutdown_fail_closed";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("closed", 1, &[]);
    let tp = &tps[0];
    let records = c.records(5, 10..=200);
    c.append(tp, &records);
    c.e().shutdown().unwrap_or_else(|e| panic!("{case}: shutdown: {e}"));

    let e = c.e();
    let more = c.log(tp).records[..2].to_vec();
    expect_err!(e.append(tp, build(&more)), StorageError::Closed(_), "{case}: append after shutdown");
    expect_err!(e.read(tp, 0, 1 << 20), StorageError::Closed(_), "{case}: read after shutdown");
    expect_err!(e.offsets(tp), StorageError::Closed(_), "{case}: offsets after shutdown");
    expect_err!(e.offset_for_timestamp(tp, 0), StorageError::Closed(_), "{case}: offset_for_timestamp after shutdown");
    expect_err!(
        e.delete_records_before(tp, 1),
        StorageError::Closed(_),
        "{case}: delete_records_before after shutdown"
    );
    expect_err!(e.enforce_retention(i64::MAX / 2), StorageError::Closed(_), "{case}: enforce_retention after shutdown");
    expect_err!(e.flush(), StorageError::Closed(_), "{case}: flush after shutdown");
    let spec = c.spec("closed-new", 1, &[]);
    expect_err!(e.create_topic(&spec), StorageError::Closed(_), "{case}: create_topic after shutdown");
    expect_err!(e.open_topic(&spec), StorageError::Closed(_), "{case}: open_topic after shutdown");
    expect_err!(
        e.alter_topic("closed", &TopicConfig::default()),
        StorageError::Closed(_),
        "{case}: alter_topic after shutdown"
    );
    expect_err!(e.delete_topic("closed"), StorageError::Closed(_), "{case}: delete_topic after shutdown");
    expect_err!(e.topics_on_disk(), StorageError::Closed(_), "{case}: topics_on_disk after shutdown");
    expect_err!(
        e.append(&TopicPartition::new("closed", 7), build(&more)),
        StorageError::Closed(_),
        "{case}: append to a missing partition after shutdown"
    );
    // A second shutdown may succeed or say Closed, but must not panic or reopen anything.
    if let Err(err) = e.shutdown() {
        assert!(matches!(err, StorageError::Closed(_)), "{case}: a second shutdown failed with {err}");
    }

    c.crash();
    c.reopen();
    c.check(tp);
    let disk = c.e().topics_on_disk().unwrap_or_else(|e| panic!("{case}: topics_on_disk: {e}"));
    assert!(!disk.iter().any(|t| t == "closed-new"), "{case}: create_topic after shutdown left a topic on disk");
}
