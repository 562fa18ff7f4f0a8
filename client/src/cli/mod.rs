//! The `janus` command-line tool as a library: [`run`] parses arguments and executes one command,
//! reading stdin and writing stdout/stderr through the handles it is given, so tests can drive it
//! in-process. `src/bin/janus.rs` is a thin wrapper around it.

pub mod args;
mod bench;
mod broker_cpu;
mod consume;
mod group;
mod messaging;
pub mod messaging_args;
mod output;
mod produce;
mod topic;
mod txn;

use std::ffi::OsString;
use std::io::{self, BufRead, Write};

use clap::Parser;

pub use args::{Cli, Command, DEFAULT_BROKER};

use crate::client::Client;
use crate::error::ClientError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments; the text is clap's message with usage.
    #[error("{0}")]
    Usage(String),
    /// The broker or the connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading input or writing output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The command could not do what was asked (e.g. a benchmark got fewer messages than requested).
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }
}

/// The handles a command reads and writes.
pub struct Io<'a> {
    /// Input (messages for `produce`).
    pub stdin: &'a mut (dyn BufRead + Send),
    /// Results.
    pub stdout: &'a mut (dyn Write + Send),
    /// Progress and summaries that are not results.
    pub stderr: &'a mut (dyn Write + Send),
}

/// Parses `args` (the first item is the program name) and runs the command.
/// `--help` and `--version` print to `stdout` and succeed.
pub async fn run<I, T>(
    args: I,
    stdin: &mut (dyn BufRead + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    write!(stdout, "{}", e.render()).map_err(CliError::io("writing help"))
                }
                _ => Err(CliError::Usage(e.render().to_string().trim_end().to_string())),
            };
        }
    };
    let mut io = Io { stdin, stdout, stderr };
    let result = execute(cli, &mut io).await;
    io.stdout.flush().map_err(CliError::io("writing output"))?;
    result
}

async fn execute(cli: Cli, io: &mut Io<'_>) -> Result<(), CliError> {
    let client = Client::connect(&cli.broker).await?;
    match cli.command {
        Command::Topic(cmd) => topic::run(&client, cmd, io).await,
        Command::Produce(args) => produce::run(&client, args, io).await,
        Command::Consume(args) => consume::run(&client, args, io).await,
        Command::Group(cmd) => group::run(&client, cmd, io).await,
        Command::Bench(cmd) => bench::run(&client, cmd, io).await,
        Command::Receive(args) => messaging::receive(&client, args, io).await,
        Command::Dlq(cmd) => messaging::dlq(&client, cmd, io).await,
        Command::Message(cmd) => messaging::message(&client, cmd, io).await,
        Command::Timer(cmd) => messaging::timer(&client, cmd, io).await,
        Command::Txn(cmd) => txn::run(&client, cmd, io).await,
    }
}
