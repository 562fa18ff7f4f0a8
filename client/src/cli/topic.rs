//! `janus topic create|list|describe|alter|delete`.

use std::collections::BTreeMap;

use super::args::TopicCommand;
use super::output::{render, table};
use super::{CliError, Io};
use crate::client::Client;
use crate::types::{NewTopic, TopicInfo};

pub(crate) async fn run(client: &Client, cmd: TopicCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let out = &mut *io.stdout;
    let w = CliError::io("writing output");
    match cmd {
        TopicCommand::Create { name, engine, partitions, configs } => {
            let spec =
                NewTopic { name, engine, partitions: partitions.unwrap_or(0), configs: configs.into_iter().collect() };
            let topic = client.create_topic(&spec).await?;
            writeln!(out, "created topic {} ({}, {} partitions)", topic.name, engine_name(&topic), topic.partitions)
                .map_err(w)?;
        }
        TopicCommand::List => {
            let mut t = table(&["TOPIC", "ENGINE", "PARTITIONS"], &[2]);
            for topic in client.list_topics().await? {
                t.add_row(vec![topic.name.clone(), engine_name(&topic).to_string(), topic.partitions.to_string()]);
            }
            write!(out, "{}", render(&t)).map_err(w)?;
        }
        TopicCommand::Describe { name } => {
            let d = client.describe_topic(&name).await?;
            let mut text = format!(
                "topic {}\nengine {}\npartitions {}\n",
                d.topic.name,
                engine_name(&d.topic),
                d.topic.partitions
            );
            text.push_str("configs\n");
            for (k, v) in &d.topic.configs {
                text.push_str(&format!("  {k}={v}\n"));
            }
            let mut t = table(&["PARTITION", "START", "END", "MESSAGES"], &[0, 1, 2, 3]);
            for p in &d.partitions {
                t.add_row(vec![
                    p.partition.to_string(),
                    p.log_start_offset.to_string(),
                    p.log_end_offset.to_string(),
                    (p.log_end_offset - p.log_start_offset).max(0).to_string(),
                ]);
            }
            write!(out, "{text}{}", render(&t)).map_err(w)?;
        }
        TopicCommand::Alter { name, configs } => {
            let keys: Vec<String> = configs.iter().map(|(k, _)| k.clone()).collect();
            let configs: BTreeMap<String, String> = configs.into_iter().collect();
            let topic = client.alter_topic_config(&name, configs).await?;
            writeln!(out, "altered topic {}", topic.name).map_err(CliError::io("writing output"))?;
            for k in keys {
                let v = topic.configs.get(&k).map_or("(not reported)", String::as_str);
                writeln!(out, "  {k}={v}").map_err(CliError::io("writing output"))?;
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            writeln!(out, "deleted topic {name}").map_err(w)?;
        }
    }
    Ok(())
}

fn engine_name(t: &TopicInfo) -> &'static str {
    t.engine.map_or("unknown", |e| e.as_str())
}
