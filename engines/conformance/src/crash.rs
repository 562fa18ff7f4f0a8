//! Crashes (the engine dropped without `shutdown()`), with and without damage done to its files on disk.
//!
//! The damage is done where [`Harness::last_record`] says the newest batch (segment engine) or message
//! (commitlog engine) is, with the engine dropped. Each scenario uses one topic of one partition, so the
//! newest thing in the commitlog engine's shared files belongs to it.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use janus_api::Engine;

use crate::support::Ctx;
use crate::{Harness, RecordLocation};

/// What a damage should cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// The damaged newest batch/message is gone, everything before it intact.
    Newest,
    /// Nothing at all.
    Nothing,
}

/// Fills a partition across a file roll, appends a last batch of `last_batch` records, crashes, damages
/// the files with `damage`, reopens, and checks that exactly what `loss` says was lost: offsets, every
/// surviving record, timestamp lookups; then that a new append gets the log end, and that a clean restart
/// keeps it all.
fn scenario<H: Harness>(
    h: &H,
    case: &'static str,
    last_batch: usize,
    loss: Loss,
    damage: impl FnOnce(&H, &Ctx<'_, H>, &RecordLocation) -> io::Result<()>,
) {
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("crash", 1, &[]);
    let tp = &tps[0];
    c.fill(&tps, h.file_bytes() * 3 / 2);
    let records = c.records(last_batch, 100..=400);
    let (base, last) = c.append(tp, &records);
    c.crash();

    let location = h.last_record(c.dir(), tp).unwrap_or_else(|e| panic!("{case}: Harness::last_record({tp}): {e}"));
    check_location(case, &location);
    damage(h, &c, &location).unwrap_or_else(|e| panic!("{case}: damaging {}: {e}", location.path.display()));

    c.reopen();
    let o = c.e().offsets(tp).unwrap_or_else(|e| panic!("{case}: offsets after recovery: {e}"));
    match loss {
        Loss::Nothing => {
            assert_eq!(o, c.log(tp).offsets(), "{case}: nothing may be lost, so the offsets must be unchanged");
        }
        Loss::Newest if last_batch == 1 => {
            assert_eq!(
                o.log_end, base,
                "{case}: the damaged newest record (offset {base}) must be gone and everything before it kept"
            );
        }
        Loss::Newest => {
            // The segment engine loses the whole damaged batch, the commitlog engine only its damaged last
            // message: either way the last record is gone and nothing before the batch is.
            assert!(
                base <= o.log_end && o.log_end <= last,
                "{case}: after damaging the newest batch ({base}..={last}) the log must end in {base}..={last}, \
                 not at {}",
                o.log_end
            );
        }
    }
    c.log_mut(tp).truncate(o.log_end);
    c.check(tp);
    c.check_timestamps(tp);

    let records = c.records(2, 10..=100);
    c.append(tp, &records);
    c.check(tp);
    c.clean_restart();
    c.check(tp);
    c.check_timestamps(tp);
}

/// Checks that a location the harness gave is plausible before damaging it.
fn check_location(case: &str, l: &RecordLocation) {
    let len = fs::metadata(&l.path)
        .unwrap_or_else(|e| panic!("{case}: Harness::last_record names {}: {e}", l.path.display()))
        .len();
    assert!(
        l.range.start < l.range.end && l.range.end <= len && l.range.contains(&l.checked_byte),
        "{case}: Harness::last_record gave {l:?} for a file of {len} bytes"
    );
}

/// A crash with no damage loses nothing acknowledged (the page cache survives the process), in any
/// partition or topic; and a second crash right after recovery loses nothing either.
pub fn crash_without_damage_loses_nothing<H: Harness>(h: &H) {
    let mut c = Ctx::new(h, "crash_without_damage_loses_nothing");
    let mut tps = c.create_topic("crash-a", 2, &[]);
    tps.extend(c.create_topic("crash-b", 1, &[]));
    c.fill(&tps, h.file_bytes());
    c.crash_restart();
    c.check_all();
    c.check_all_timestamps();
    c.crash_restart();
    c.check_all();
    for tp in &tps {
        let records = c.records(2, 10..=100);
        c.append(tp, &records);
    }
    c.crash_restart();
    c.check_all();
}

/// Case 8a: the newest batch (message) cut in half by a crash is dropped by recovery, everything before it
/// is intact, and the next append gets its offset. Run with a last batch of one record (exact for both
/// engines) and of five.
pub fn crash_truncated_last_record<H: Harness>(h: &H) {
    for last_batch in [1, 5] {
        scenario(h, "crash_truncated_last_record", last_batch, Loss::Newest, |_, _, l| {
            let file = OpenOptions::new().write(true).open(&l.path)?;
            file.set_len(l.range.start + (l.range.end - l.range.start) / 2)?;
            Ok(())
        });
    }
}

/// Case 8b: a byte of the newest batch (message) flipped where its checksum covers it: recovery drops it,
/// keeps everything before it, and the next append gets its offset.
pub fn crash_flipped_byte_in_last_record<H: Harness>(h: &H) {
    for last_batch in [1, 5] {
        scenario(h, "crash_flipped_byte_in_last_record", last_batch, Loss::Newest, |_, _, l| {
            let file = OpenOptions::new().read(true).write(true).open(&l.path)?;
            let mut byte = [0u8; 1];
            file.read_exact_at(&mut byte, l.checked_byte)?;
            byte[0] ^= 0xff;
            file.write_all_at(&byte, l.checked_byte)?;
            Ok(())
        });
    }
}

/// Case 8c: 64 KiB of zeros after the newest batch (message), as a crash after the file grew but before
/// its data was written leaves it: nothing is lost, timestamp lookups are right, and the next append
/// follows the newest record (the zeros are not taken for data).
pub fn crash_zero_filled_tail<H: Harness>(h: &H) {
    scenario(h, "crash_zero_filled_tail", 3, Loss::Nothing, |_, _, l| {
        let file = OpenOptions::new().write(true).open(&l.path)?;
        file.write_all_at(&vec![0u8; 64 * 1024], l.range.end)?;
        Ok(())
    });
}

/// Deletes every index file of the (only) tracked partition.
fn delete_index_files<H: Harness>(h: &H, c: &Ctx<'_, H>) -> io::Result<()> {
    let tp = c.logs.keys().next().expect("one partition").clone();
    let files = h.index_files(c.dir(), &tp)?;
    assert!(!files.is_empty(), "{}: Harness::index_files listed no index file for {tp}", c.case);
    for f in files {
        match fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Case 8d: every index file deleted after a crash (offset and time indexes, or ConsumeQueue and IndexFile
/// files): the engine rebuilds them from its data files and nothing is lost, timestamp lookups included.
pub fn crash_missing_index_files<H: Harness>(h: &H) {
    scenario(h, "crash_missing_index_files", 3, Loss::Nothing, |h, c, _| delete_index_files(h, c));
}

/// Every index file deleted after a clean shutdown: the clean-shutdown marker must not make the engine
/// trust indexes that are gone; it rebuilds them and nothing is lost, timestamp lookups included.
pub fn missing_index_files_after_clean_shutdown<H: Harness>(h: &H) {
    let case = "missing_index_files_after_clean_shutdown";
    let mut c = Ctx::new(h, case);
    let tps = c.create_topic("indexes", 1, &[]);
    c.fill(&tps, h.file_bytes() * 3 / 2);
    c.e().shutdown().unwrap_or_else(|e| panic!("{case}: shutdown: {e}"));
    c.crash();
    delete_index_files(h, &c).unwrap_or_else(|e| panic!("{case}: deleting the index files: {e}"));
    c.reopen();
    c.check_all();
    c.check_all_timestamps();
    let records = c.records(2, 10..=100);
    c.append(&tps[0], &records);
    c.crash_restart();
    c.check_all();
}
