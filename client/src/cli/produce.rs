//! `janus produce`: one message per input line, then a summary per partition.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};

use bytes::Bytes;
use janus_proto::v1 as pb;

use super::args::ProduceArgs;
use super::{CliError, Io};
use crate::client::Client;
use crate::producer::ProducerConfig;
use crate::record::ProducerRecord;
use crate::types::Append;

pub(crate) async fn run(client: &Client, args: ProduceArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let template = template(&args);
    let mut file_reader;
    let input: &mut dyn BufRead = match &args.file {
        Some(path) => {
            let file = File::open(path).map_err(CliError::io(format!("opening {}", path.display())))?;
            file_reader = BufReader::new(file);
            &mut file_reader
        }
        None => &mut *io.stdin,
    };
    if args.transactional {
        let message = template_message(&template);
        let target = super::txn::TransactionalTarget {
            topic: &args.topic,
            partition: args.partition,
            group: &args.producer_group,
            rollback: args.rollback,
            durable: args.durable,
        };
        return super::txn::produce_transactional(client, target, &message, input, &mut *io.stdout).await;
    }
    if let Some(when) = super::messaging::delivery(&args.schedule) {
        let message = template_message(&template);
        let (topic, partition) = (args.topic.clone(), args.partition);
        return super::messaging::produce_scheduled(
            client,
            &topic,
            partition,
            &message,
            input,
            when,
            args.durable,
            &mut *io.stdout,
        )
        .await;
    }
    let config =
        ProducerConfig { wait_durable: args.durable, compression: Some(args.compression), ..ProducerConfig::default() };
    let producer = client.producer(config);
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(CliError::io("reading messages"))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let mut record = template.clone();
        record.value = Some(Bytes::copy_from_slice(&line));
        // The delivery future is not awaited: flush reports the outcome of every batch.
        drop(producer.send(record).await?);
        sent += 1;
    }
    let appends = producer.close().await?;
    write!(io.stdout, "{}", summary(&args.topic, sent, &appends, args.durable))
        .map_err(CliError::io("writing output"))?;
    Ok(())
}

/// The template as a message of the API (for scheduled and transactional produce).
fn template_message(template: &ProducerRecord) -> pb::Message {
    pb::Message {
        key: template.key.clone(),
        value: None,
        headers: template.headers.iter().map(|(k, v)| pb::Header { key: k.clone(), value: v.clone() }).collect(),
        timestamp_ms: 0,
    }
}

/// The record every line is sent as (the value is filled in per line).
fn template(args: &ProduceArgs) -> ProducerRecord {
    let mut record = ProducerRecord::new(args.topic.clone(), Bytes::new());
    record.partition = args.partition;
    record.key = args.key.clone().map(Bytes::from);
    for (k, v) in &args.headers {
        record = record.header(k.clone(), Bytes::from(v.clone()));
    }
    if let Some(tag) = &args.tag {
        record = record.tag(Bytes::from(tag.clone()));
    }
    record
}

/// `produced N messages to T` and one line per partition with its count and offset ranges.
pub(crate) fn summary(topic: &str, sent: u64, appends: &[Append], durable: bool) -> String {
    let mut by_partition: BTreeMap<u32, Vec<&Append>> = BTreeMap::new();
    for a in appends {
        by_partition.entry(a.partition).or_default().push(a);
    }
    let suffix = if durable { " (durable)" } else { "" };
    let mut out = format!("produced {sent} messages to {topic}{suffix}\n");
    for (partition, runs) in by_partition {
        let count: u64 = runs.iter().map(|a| a.count()).sum();
        let ranges: Vec<String> = runs.iter().map(|a| format!("{}..={}", a.base_offset, a.last_offset)).collect();
        out.push_str(&format!("  partition {partition}: {count} messages, offsets {}\n", ranges.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_partitions_in_order() {
        let a = |p, b, l| Append { topic: "t".into(), partition: p, base_offset: b, last_offset: l };
        let s = summary("t", 7, &[a(1, 0, 2), a(0, 10, 11), a(1, 5, 6)], false);
        assert_eq!(
            s,
            "produced 7 messages to t\n  partition 0: 2 messages, offsets 10..=11\n  partition 1: 5 messages, offsets \
             0..=2, 5..=6\n"
        );
    }
}
