//! The `janus` command-line tool: a thin wrapper around [`janus_client::cli::run`].

use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
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
