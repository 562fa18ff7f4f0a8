//! Prints the raw baselines the end-to-end `janus bench` figures are judged against, measured now on this
//! machine: sequential `write(2)` of 1 MiB chunks to a new file in a directory (the disk side), and
//! loopback TCP carrying 1 MiB `write(2)`s from memory and `sendfile(2)` of a cached file (the network
//! side). One line per baseline, in MB/s (10^6 bytes per second), medians of three runs.
//!
//! Usage: `cargo run --release -p janus-bench-support --example baselines -- [DIR] [BYTES]`
//! (DIR default: the temp dir; BYTES default: 1,000,000,000).

use std::path::PathBuf;
use std::time::Duration;

use janus_bench_support::{LoopbackDrain, cached_file, mb_per_s, raw_append};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn runs(mut one: impl FnMut() -> std::io::Result<Duration>, bytes: u64) -> std::io::Result<(f64, Vec<f64>)> {
    let mut all = Vec::new();
    for _ in 0..3 {
        all.push(mb_per_s(bytes, one()?));
    }
    Ok((median(all.clone()), all))
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let bytes: u64 = args.next().and_then(|b| b.parse().ok()).unwrap_or(1_000_000_000);
    let chunk = vec![b'x'; 1 << 20];
    let (disk, all) = runs(|| raw_append(&dir, &chunk, bytes), bytes)?;
    println!("raw write(2) of 1 MiB chunks to a new file in {}: {disk:.0} MB/s (runs {all:.0?})", dir.display());
    let drain = LoopbackDrain::new()?;
    let (tcp, all) = runs(|| drain.raw_write(&chunk, bytes), bytes)?;
    println!("loopback TCP, write(2) of 1 MiB from memory: {tcp:.0} MB/s (runs {all:.0?})");
    let cached_len = bytes.min(256 << 20);
    let file = cached_file(&dir, cached_len)?;
    let (sendfile, all) = runs(|| drain.raw_sendfile(&file, cached_len), cached_len)?;
    println!(
        "loopback TCP, sendfile(2) of a cached {} MiB file: {sendfile:.0} MB/s (runs {all:.0?})",
        cached_len >> 20
    );
    Ok(())
}
