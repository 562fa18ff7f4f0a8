//! `janus consume`: print messages one per line; with a group, resume from and commit its offsets.

use std::io::Write;
use std::time::Duration;

use super::args::{ConsumeArgs, Format};
use super::output::record_json;
use super::{CliError, Io};
use crate::client::Client;
use crate::consumer::ConsumerConfig;
use crate::record::ConsumerRecord;

/// How often a group's offsets are committed while consuming (and once more at the end).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn run(client: &Client, args: ConsumeArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let config = ConsumerConfig {
        group: args.group.clone(),
        partitions: args.partition.map(|p| vec![p]),
        start: args.from,
        tags: args.tag.iter().cloned().collect(),
        auto_commit: Some(COMMIT_INTERVAL),
        ..ConsumerConfig::default()
    };
    let mut consumer = client.consumer(&args.topic, config).await?;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let max = args.max.unwrap_or(u64::MAX);
    let mut count = 0u64;
    let mut interrupted = false;
    let mut result = Ok(());
    while count < max {
        let polled = tokio::select! {
            polled = consumer.poll(timeout) => polled,
            _ = tokio::signal::ctrl_c() => { interrupted = true; break; }
        };
        let record = match polled {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                result = Err(CliError::from(e));
                break;
            }
        };
        if let Err(e) = print(io.stdout, &record, args.format) {
            result = Err(e);
            break;
        }
        count += 1;
    }
    let closed = consumer.close().await;
    let how = if interrupted { " (interrupted)" } else { "" };
    let _ = writeln!(io.stderr, "consumed {count} messages from {}{how}", args.topic);
    result?;
    closed?;
    Ok(())
}

fn print(out: &mut (dyn Write + Send), record: &ConsumerRecord, format: Format) -> Result<(), CliError> {
    let w = CliError::io("writing output");
    match format {
        Format::Value => {
            let value = record.value.as_deref().unwrap_or_default();
            out.write_all(value).and_then(|_| out.write_all(b"\n")).map_err(w)
        }
        Format::Json => writeln!(out, "{}", record_json(record)).map_err(w),
    }
}
