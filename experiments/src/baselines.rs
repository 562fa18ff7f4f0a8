//! The baselines measured beside every case, in the same round and on the same filesystem: raw sequential
//! append of the engine's write size, and raw `sendfile(2)` of a cached file to a loopback socket (plus of an
//! evicted file, for cold-cache scenarios).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use janus_bench_support::{self as baseline, LoopbackDrain};

use crate::scenario::{Cache, Workload};

/// Most bytes one append baseline writes (it needs to be long enough to time, not as long as the case).
const APPEND_BYTES: u64 = 256 << 20;
/// Most `write + fdatasync` pairs of the `flush=sync` append baseline.
const SYNC_WRITES: u64 = 200;
/// Size of the file the sendfile baseline sends.
const SENDFILE_BYTES: u64 = 128 << 20;

/// Bytes the engine writes per append for this workload (a batch of record framing and values).
pub fn write_size(workload: &Workload) -> usize {
    // About 20 bytes of record framing per message plus the 61-byte batch header (RecordBatch v2).
    (workload.messages_per_batch() as f64 * (workload.mean_message_bytes() + 20.0)) as usize + 61
}

/// Measures the baselines for `workload` in `dir` (a directory on the engines' filesystem).
pub fn measure(dir: &Path, workload: &Workload, total_bytes: u64) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let chunk = vec![0x5au8; write_size(workload).max(1)];
    let append = if workload.flush == "sync" {
        let bytes = chunk.len() as u64 * SYNC_WRITES.min(total_bytes.div_ceil(chunk.len() as u64)).max(1);
        let t = baseline::raw_append_sync_timed(dir, &chunk, bytes).context("raw append + fdatasync baseline")?;
        baseline::mb_per_s(bytes, t.wall)
    } else {
        let bytes = total_bytes.clamp(chunk.len() as u64, APPEND_BYTES);
        let t = baseline::raw_append_timed(dir, &chunk, bytes).context("raw append baseline")?;
        baseline::mb_per_s(bytes, t.wall)
    };
    out.insert("append_mb_per_s".into(), append);
    let drain = LoopbackDrain::new().context("loopback pair for the sendfile baseline")?;
    let file = baseline::cached_file(dir, SENDFILE_BYTES).context("cached file for the sendfile baseline")?;
    let t = drain.raw_sendfile_timed(&file, SENDFILE_BYTES).context("raw sendfile baseline")?;
    out.insert("sendfile_mb_per_s".into(), baseline::mb_per_s(SENDFILE_BYTES, t.wall));
    if workload.cache == Cache::Cold {
        crate::evict::evict(&file).context("evicting the sendfile baseline's file")?;
        let t = drain.raw_sendfile_timed(&file, SENDFILE_BYTES).context("raw sendfile baseline, evicted file")?;
        out.insert("sendfile_cold_mb_per_s".into(), baseline::mb_per_s(SENDFILE_BYTES, t.wall));
    }
    drop(file);
    remove_baseline_files(dir)?;
    Ok(out)
}

/// Removes what the baselines left in `dir`.
fn remove_baseline_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("baseline-")) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}
