//! `janus group list|describe|reset`.

use super::args::GroupCommand;
use super::output::{render, table};
use super::{CliError, Io};
use crate::client::Client;

pub(crate) async fn run(client: &Client, cmd: GroupCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let out = &mut *io.stdout;
    let w = CliError::io("writing output");
    match cmd {
        GroupCommand::List => {
            let mut text = String::new();
            for g in client.list_groups().await? {
                text.push_str(&g);
                text.push('\n');
            }
            write!(out, "{text}").map_err(w)?;
        }
        GroupCommand::Describe { group } => {
            let partitions = client.describe_group(&group).await?;
            let mut t = table(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"], &[1, 2, 3, 4]);
            for p in &partitions {
                t.add_row(vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.committed_offset.to_string(),
                    p.log_end_offset.to_string(),
                    p.lag.to_string(),
                ]);
            }
            let total: i64 = partitions.iter().map(|p| p.lag.max(0)).sum();
            write!(out, "group {group}\n{}total lag {total}\n", render(&t)).map_err(w)?;
        }
        GroupCommand::Reset { group, topic, to, partition } => {
            let offsets = client.reset_offsets(&group, &topic, to, partition).await?;
            let mut text = format!("reset group {group} on {topic} to {to}\n");
            for (p, o) in offsets {
                text.push_str(&format!("  partition {p}: offset {o}\n"));
            }
            write!(out, "{text}").map_err(w)?;
        }
    }
    Ok(())
}
