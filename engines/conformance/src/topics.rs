//! Deleting topics, and listing the topics on disk.

use janus_api::{Engine, Offsets, StorageError, TopicPartition};

use crate::Harness;
use crate::support::{Ctx, build, check_out_of_range, check_read_at_end, expect_err};

fn on_disk<H: Harness>(c: &Ctx<'_, H>) -> Vec<String> {
    let mut topics = c.e().topics_on_disk().unwrap_or_else(|e| panic!("{}: topics_on_disk: {e}", c.case));
    topics.sort();
    topics
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Case 11: a deleted topic is gone (every call on it is `UnknownTopic`, `topics_on_disk` no longer lists
/// it), other topics keep their data, a topic of the same name can be created again and starts empty at
/// offset 0, and after a clean restart both are listed and hold exactly their data.
///
/// (`topics_on_disk` is compared exactly here: every topic listed has data.)
pub fn delete_topic_removes_data<H: Harness>(h: &H) {
    let case = "delete_topic_removes_data";
    let mut c = Ctx::new(h, case);
    let doomed = c.create_topic("doomed", 2, &[]);
    let kept = c.create_topic("kept", 1, &[]);
    let all: Vec<TopicPartition> = doomed.iter().chain(&kept).cloned().collect();
    c.fill(&all, h.file_bytes());
    assert_eq!(on_disk(&c), names(&["doomed", "kept"]), "{case}: topics_on_disk before the delete");

    c.e().delete_topic("doomed").unwrap_or_else(|e| panic!("{case}: delete_topic: {e}"));
    let records = c.log(&kept[0]).records[..1].to_vec();
    for tp in &doomed {
        let gone = |err: &StorageError| matches!(err, StorageError::UnknownTopic(t) if t == "doomed");
        expect_err!(c.e().offsets(tp), ref err if gone(err), "{case}: offsets of deleted {tp}");
        expect_err!(c.e().read(tp, 0, 1024), ref err if gone(err), "{case}: read of deleted {tp}");
        expect_err!(c.e().append(tp, build(&records)), ref err if gone(err), "{case}: append to deleted {tp}");
    }
    expect_err!(c.e().delete_topic("doomed"), StorageError::UnknownTopic(_), "{case}: deleting it twice");
    c.forget("doomed");
    assert_eq!(on_disk(&c), names(&["kept"]), "{case}: topics_on_disk after the delete");
    c.check_all();

    let again = c.create_topic("doomed", 2, &[]);
    for tp in &again {
        check_read_at_end(case, c.e(), tp, 0);
        check_out_of_range(case, c.e(), tp, 1, Offsets { log_start: 0, log_end: 0 });
        assert_eq!(c.e().offset_for_timestamp(tp, 0).ok(), Some(None), "{case}: timestamps of a recreated topic");
    }
    let records = c.records(3, 10..=100);
    assert_eq!(c.append(&again[0], &records), (0, 2), "{case}: a recreated topic starts at offset 0");
    c.check_all();
    c.clean_restart();
    assert_eq!(on_disk(&c), names(&["doomed", "kept"]), "{case}: topics_on_disk after a clean restart");
    c.check_all();
    c.check_all_timestamps();
}

/// Checks that `topics_on_disk` lists every name in `with_data` and nothing outside `with_data` and
/// `maybe` (topics without data: an engine may keep no files for them).
fn check_on_disk<H: Harness>(c: &Ctx<'_, H>, with_data: &[&str], maybe: &[&str], when: &str) {
    let listed = on_disk(c);
    for name in with_data {
        assert!(listed.iter().any(|t| t == name), "{}: topics_on_disk {when} must list {name:?}: {listed:?}", c.case);
    }
    for name in &listed {
        assert!(
            with_data.contains(&name.as_str()) || maybe.contains(&name.as_str()),
            "{}: topics_on_disk {when} lists {name:?}, which is no topic: {listed:?}",
            c.case
        );
    }
}

/// Case 11: `topics_on_disk` lists every topic with data, open or not: with the topics open, and after a
/// crash and after a clean shutdown before the topics are opened again (a topic without data may be
/// listed or not). `open_topic` of a topic without files creates it empty; opening an open topic fails.
pub fn topics_on_disk_after_reopen<H: Harness>(h: &H) {
    let case = "topics_on_disk_after_reopen";
    let mut c = Ctx::new(h, case);
    let alpha = c.create_topic("alpha", 1, &[]);
    let beta = c.create_topic("beta", 3, &[]);
    c.create_topic("gamma", 2, &[]);
    let filled: Vec<TopicPartition> = alpha.iter().chain(&beta).cloned().collect();
    c.fill(&filled, 16 * 1024);
    let (with_data, maybe) = (["alpha", "beta"], ["gamma"]);
    check_on_disk(&c, &with_data, &maybe, "with the topics open");

    c.crash();
    c.open_engine();
    check_on_disk(&c, &with_data, &maybe, "after a crash, before opening the topics");
    c.crash();
    c.reopen();
    c.check_all();
    c.e().shutdown().unwrap_or_else(|e| panic!("{case}: shutdown: {e}"));
    c.crash();
    c.open_engine();
    check_on_disk(&c, &with_data, &maybe, "after a clean shutdown, before opening the topics");
    c.crash();
    c.reopen();
    c.check_all();

    let delta = c.spec("delta", 2, &[]);
    c.e().open_topic(&delta).unwrap_or_else(|e| panic!("{case}: open_topic of a topic without files: {e}"));
    let delta_tps = c.track(delta.clone());
    assert!(c.e().open_topic(&delta).is_err(), "{case}: opening an open topic must fail");
    let records = c.records(2, 10..=100);
    c.append(&delta_tps[1], &records);
    c.clean_restart();
    check_on_disk(&c, &["alpha", "beta", "delta"], &maybe, "at the end");
    c.check_all();
}

/// A topic deleted and created again under the same name keeps only its new data through a crash and
/// recovery (nothing of the old topic comes back, e.g. from a shared log), and a deleted topic stays
/// deleted through a crash.
pub fn recreated_topic_survives_crash<H: Harness>(h: &H) {
    let case = "recreated_topic_survives_crash";
    let mut c = Ctx::new(h, case);
    let phoenix = c.create_topic("phoenix", 1, &[]);
    let gone = c.create_topic("gone", 1, &[]);
    let other = c.create_topic("other", 1, &[]);
    let all: Vec<TopicPartition> = phoenix.iter().chain(&gone).chain(&other).cloned().collect();
    c.fill(&all, 32 * 1024);

    c.e().delete_topic("phoenix").unwrap_or_else(|e| panic!("{case}: delete_topic phoenix: {e}"));
    c.e().delete_topic("gone").unwrap_or_else(|e| panic!("{case}: delete_topic gone: {e}"));
    c.forget("phoenix");
    c.forget("gone");
    let phoenix = c.create_topic("phoenix", 1, &[]);
    let records = c.records(3, 10..=100);
    c.append(&phoenix[0], &records);
    let records = c.records(2, 10..=100);
    c.append(&other[0], &records);

    c.crash_restart();
    assert_eq!(on_disk(&c), names(&["other", "phoenix"]), "{case}: topics_on_disk after a crash");
    c.check_all();
    c.check_all_timestamps();
    let records = c.records(2, 10..=100);
    c.append(&phoenix[0], &records);
    c.crash_restart();
    c.check_all();
}

/// `purge_topic` of an open topic removes it like `delete_topic` (every call on it is `UnknownTopic`,
/// `topics_on_disk` no longer lists it, other topics keep their data), a second purge finds nothing and
/// succeeds, and a topic of the same name then starts empty at offset 0, also after a crash.
pub fn purge_open_topic<H: Harness>(h: &H) {
    let case = "purge_open_topic";
    let mut c = Ctx::new(h, case);
    let doomed = c.create_topic("doomed", 2, &[]);
    let kept = c.create_topic("kept", 1, &[]);
    let all: Vec<TopicPartition> = doomed.iter().chain(&kept).cloned().collect();
    c.fill(&all, h.file_bytes());
    c.e().purge_topic("doomed").unwrap_or_else(|e| panic!("{case}: purge_topic of an open topic: {e}"));
    c.forget("doomed");
    for tp in &doomed {
        expect_err!(c.e().offsets(tp), StorageError::UnknownTopic(_), "{case}: offsets of purged {tp}");
    }
    c.e().purge_topic("doomed").unwrap_or_else(|e| panic!("{case}: purging it again: {e}"));
    assert_eq!(on_disk(&c), names(&["kept"]), "{case}: topics_on_disk after the purge");
    let again = c.create_topic("doomed", 2, &[]);
    let records = c.records(2, 10..=100);
    assert_eq!(c.append(&again[1], &records), (0, 1), "{case}: a topic created after a purge starts at 0");
    c.crash_restart();
    c.check_all();
}

/// `purge_topic` of a topic whose files are on disk but that was never opened in this run (a crash or
/// an earlier broker left it) removes those files: `topics_on_disk` no longer lists it, `create_topic`
/// of the name succeeds and starts empty, and nothing of the old data comes back after a crash.
pub fn purge_unopened_topic<H: Harness>(h: &H) {
    let case = "purge_unopened_topic";
    let mut c = Ctx::new(h, case);
    let orphan = c.create_topic("orphan", 3, &[]);
    let kept = c.create_topic("kept", 1, &[]);
    let all: Vec<TopicPartition> = orphan.iter().chain(&kept).cloned().collect();
    c.fill(&all, h.file_bytes());
    c.forget("orphan");
    c.clean_restart();
    assert_eq!(on_disk(&c), names(&["kept", "orphan"]), "{case}: the unopened topic's files are on disk");
    c.e().purge_topic("orphan").unwrap_or_else(|e| panic!("{case}: purge_topic of an unopened topic: {e}"));
    assert_eq!(on_disk(&c), names(&["kept"]), "{case}: topics_on_disk after purging the unopened topic");
    c.check_all();

    let fresh = c.create_topic("orphan", 3, &[]);
    let records = c.records(2, 10..=100);
    assert_eq!(c.append(&fresh[2], &records), (0, 1), "{case}: the name starts again at offset 0");
    c.crash_restart();
    c.check_all();
    c.clean_restart();
    c.check_all();
}

/// `purge_topic` of a name the engine holds no file for succeeds and changes nothing; an invalid name is
/// refused as such.
pub fn purge_topic_without_files<H: Harness>(h: &H) {
    let case = "purge_topic_without_files";
    let mut c = Ctx::new(h, case);
    let kept = c.create_topic("kept", 1, &[]);
    let records = c.records(3, 10..=100);
    c.append(&kept[0], &records);
    c.e().purge_topic("never-created").unwrap_or_else(|e| panic!("{case}: purge_topic of an unknown name: {e}"));
    assert_eq!(on_disk(&c), names(&["kept"]), "{case}: topics_on_disk after purging nothing");
    expect_err!(c.e().purge_topic("no/such"), StorageError::InvalidTopicName { .. }, "{case}: purge of 'no/such'");
    c.check_all();
    c.clean_restart();
    c.check_all();
}
