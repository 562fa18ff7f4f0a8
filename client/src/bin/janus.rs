//! The `janus` command-line tool: a thin wrapper around [`janus_client::cli::run`].

use std::io::{self, Write};
use std::process::ExitCode;

/// Tells glibc's allocator to keep freed memory for reuse instead of returning it to the kernel at once.
///
/// A consumer receives one multi-MiB gRPC message after another; with glibc's defaults each one is a fresh
/// allocation whose pages the kernel must fault in and clear (7% of `janus bench consume` in the profile of
/// issue 12). Against one broker, alternating runs of `janus bench consume` (4 MiB responses) gave 944 and
/// 874 MB/s with the defaults and 1,026 and 1,010 MB/s with these thresholds set through glibc's environment
/// variables. Memory stays bounded by what the process uses at its peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters (both values are in their allowed ranges: the mmap
    // threshold at most 32 MiB on 64-bit glibc); it is called first thing in main, before any other thread
    // exists or any allocation depends on the old values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("janus: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        let mut stdin = io::BufReader::with_capacity(256 * 1024, io::stdin());
        let mut stdout = io::BufWriter::new(io::stdout());
        let mut stderr = io::stderr();
        let result = janus_client::cli::run(std::env::args_os(), &mut stdin, &mut stdout, &mut stderr).await;
        let _ = stdout.flush();
        match result {
            Ok(()) => Ok(()),
            Err(e @ janus_client::cli::CliError::Usage(_)) => {
                eprintln!("{e}");
                std::process::exit(e.exit_code());
            }
            Err(e) => Err(e.into()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("janus: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
