//! `janus consume`: print messages one per line. With a group it is a member of the group (the broker
//! assigns its partitions; several processes share a topic), resuming from and committing the group's
//! offsets; Ctrl-C commits and leaves. With `--partition` it reads that partition as no member.

use std::io::Write;
use std::time::Duration;

use super::args::{ConsumeArgs, Format};
use super::output::record_json;
use super::{CliError, Io};
use crate::client::Client;
use crate::consumer::ConsumerConfig;
use crate::record::ConsumerRecord;
use crate::types::GroupMode;

/// How often a group's offsets are committed while consuming (and once more at the end).
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn run(client: &Client, args: ConsumeArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let config = ConsumerConfig {
        group: args.group.clone(),
        partitions: args.partition.map(|p| vec![p]),
        start: args.from,
        tags: args.tag.iter().cloned().collect(),
        auto_commit: Some(COMMIT_INTERVAL),
        assignor: args.assignor.clone(),
        group_mode: if args.broadcast { GroupMode::Broadcasting } else { GroupMode::Clustering },
        instance_id: args.instance_id.clone(),
        session_timeout: args.session_timeout,
        client_id: args.client_id.clone(),
        ..ConsumerConfig::default()
    };
    let commits = config.group.is_some();
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
        // A group member's position is committed (every second, and when a partition is taken away)
        // inside `poll`; output still in the buffer when the process is killed would be lost although
        // committed, so a member writes each line through before asking for the next.
        let written = print(io.stdout, &record, args.format)
            .and_then(|()| if commits { io.stdout.flush().map_err(CliError::io("writing output")) } else { Ok(()) });
        if let Err(e) = written {
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
