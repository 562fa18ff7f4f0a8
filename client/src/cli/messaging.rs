//! `janus receive`, `janus dlq`, `janus message show`, `janus timer cancel`, and `janus produce` with a
//! schedule.

use std::io::BufRead;

use bytes::Bytes;
use janus_codec::headers;
use janus_proto::v1 as pb;

use super::messaging_args::{DlqCommand, MessageCommand, ReceiveArgs, ScheduleArgs, Settle, TimerCommand};
use super::{CliError, Io};
use crate::client::Client;
use crate::messaging::{Delivery, Lookup, ReceiveOptions};
use crate::record::ConsumerRecord;

/// Headers a dead letter carries that its resent copy drops.
const DEAD_LETTER_HEADERS: [&str; 7] = [
    headers::RETRY_TOPIC,
    headers::RECONSUME_TIME,
    headers::ORIGIN_MESSAGE_ID,
    headers::ORIGIN_PARTITION,
    headers::ORIGIN_OFFSET,
    headers::DLQ_ATTEMPTS,
    headers::TIMER_DUE_MS,
];
/// Messages per produce request of a scheduled `janus produce`.
const SCHEDULED_REQUEST_MESSAGES: usize = 1000;

fn out(io: &mut Io<'_>, text: &str) -> Result<(), CliError> {
    io.stdout.write_all(text.as_bytes()).map_err(CliError::io("writing output"))
}

fn header<'a>(r: &'a ConsumerRecord, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref()).and_then(|v| std::str::from_utf8(v).ok())
}

fn value_text(r: &ConsumerRecord) -> String {
    r.value.as_deref().map_or_else(|| "<null>".into(), |v| String::from_utf8_lossy(v).into_owned())
}

/// The delivery `args` ask for, if any.
pub(crate) fn delivery(args: &ScheduleArgs) -> Option<Delivery> {
    args.delay.map(Delivery::After).or(args.delay_level.map(Delivery::Level)).or(args.deliver_at.map(Delivery::At))
}

/// Produces the lines of `input` as scheduled messages (per-message requests: the broker keeps them in
/// its timer store) and prints each message's id and delivery time.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn produce_scheduled(
    client: &Client,
    topic: &str,
    partition: Option<u32>,
    template: &pb::Message,
    input: &mut dyn BufRead,
    when: Delivery,
    durable: bool,
    stdout: &mut (dyn std::io::Write + Send),
) -> Result<(), CliError> {
    let mut say = |text: String| stdout.write_all(text.as_bytes()).map_err(CliError::io("writing output"));
    let mut pending: Vec<pb::Message> = Vec::new();
    let mut line = Vec::new();
    let mut total = 0usize;
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line).map_err(CliError::io("reading messages"))?;
        if n > 0 {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            let mut m = template.clone();
            m.value = Some(Bytes::copy_from_slice(&line));
            pending.push(m);
        }
        if pending.len() >= SCHEDULED_REQUEST_MESSAGES || (n == 0 && !pending.is_empty()) {
            let batch = std::mem::take(&mut pending);
            let response = client.produce_messages(topic, partition, batch, Some(when), durable).await?;
            for s in &response.scheduled {
                say(format!("scheduled {} partition {} at {}\n", s.message_id, s.partition, s.deliver_at_ms))?;
            }
            total += response.message_ids.len();
        }
        if n == 0 {
            break;
        }
    }
    say(format!("produced {total} messages to {topic} (scheduled)\n"))
}

/// `janus receive`.
pub(crate) async fn receive(client: &Client, args: ReceiveArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let settle = args.settle();
    let options = ReceiveOptions {
        group: args.group.clone(),
        topic: args.topic.clone(),
        max_messages: args.max,
        invisible: args.invisible,
        tags: args.tags.clone(),
        wait: args.wait,
    };
    let messages = client.receive(&options).await?;
    for m in &messages {
        out(
            io,
            &format!(
                "{}/{}@{} attempt={} id={}: {}\n",
                m.topic,
                m.partition,
                m.offset,
                m.attempt,
                m.message_id,
                value_text(&m.record)
            ),
        )?;
        match settle {
            Settle::Ack => client.ack_one(&args.group, &m.receipt_handle).await?,
            Settle::Nack => client.nack(&args.group, &m.receipt_handle).await?,
            Settle::Leave => {}
        }
    }
    let what = match settle {
        Settle::Ack => "acknowledged",
        Settle::Nack => "given back",
        Settle::Leave => "left in flight",
    };
    writeln!(io.stderr, "received {} messages ({what})", messages.len()).map_err(CliError::io("writing output"))?;
    Ok(())
}

/// Every record of partition 0 of `topic` from the start (dead-letter topics have one partition).
async fn read_all(client: &Client, topic: &str) -> Result<Vec<ConsumerRecord>, CliError> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let request = pb::FetchRequest { topic: topic.to_string(), partition: 0, offset, ..Default::default() };
        let response = client.fetch(request).await?;
        if response.messages.is_empty() {
            if offset < response.log_start_offset {
                offset = response.log_start_offset;
                continue;
            }
            return Ok(records);
        }
        offset = response.next_offset;
        records.extend(response.messages.into_iter().map(|m| ConsumerRecord::from_proto(0, m)));
    }
}

/// The dead letters of `group`: none when its dead-letter topic does not exist yet.
async fn dead_letters(client: &Client, group: &str) -> Result<Vec<ConsumerRecord>, CliError> {
    match read_all(client, &format!("%DLQ%{group}")).await {
        Err(CliError::Client(e)) if e.code() == Some(crate::Code::NotFound) => Ok(Vec::new()),
        other => other,
    }
}

/// `janus dlq`.
pub(crate) async fn dlq(client: &Client, cmd: DlqCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let topic = |group: &str| format!("%DLQ%{group}");
    match cmd {
        DlqCommand::List { group } => {
            let records = dead_letters(client, &group).await?;
            let mut table = super::output::table(
                &["OFFSET", "TOPIC", "PARTITION", "ORIGIN OFFSET", "MESSAGE ID", "ATTEMPTS", "VALUE"],
                &[0, 2, 3, 5],
            );
            for r in &records {
                table.add_row(vec![
                    r.offset.to_string(),
                    header(r, headers::RETRY_TOPIC).unwrap_or("").to_string(),
                    header(r, headers::ORIGIN_PARTITION).unwrap_or("").to_string(),
                    header(r, headers::ORIGIN_OFFSET).unwrap_or("").to_string(),
                    header(r, headers::ORIGIN_MESSAGE_ID).unwrap_or("").to_string(),
                    header(r, headers::DLQ_ATTEMPTS).unwrap_or("").to_string(),
                    value_text(r).chars().take(40).collect(),
                ]);
            }
            out(io, &super::output::render(&table))?;
            out(io, &format!("{} dead letters in {}\n", records.len(), topic(&group)))
        }
        DlqCommand::Show { group, offset } => {
            let records = dead_letters(client, &group).await?;
            let r = records
                .iter()
                .find(|r| r.offset == offset)
                .ok_or_else(|| CliError::Failed(format!("{} has no dead letter at offset {offset}", topic(&group))))?;
            out(io, &format!("{}\n", super::output::record_json(r)))
        }
        DlqCommand::Resend { group, offset, all } => {
            let records = dead_letters(client, &group).await?;
            let chosen: Vec<&ConsumerRecord> = records.iter().filter(|r| all || Some(r.offset) == offset).collect();
            if chosen.is_empty() {
                let which =
                    offset.map_or_else(|| "no dead letters".to_string(), |o| format!("no dead letter at offset {o}"));
                return Err(CliError::Failed(format!("group '{group}' has {which} ({})", topic(&group))));
            }
            for r in chosen {
                let origin = header(r, headers::RETRY_TOPIC)
                    .ok_or_else(|| CliError::Failed(format!("dead letter {} names no original topic", r.offset)))?;
                let partition = header(r, headers::ORIGIN_PARTITION).and_then(|p| p.parse().ok());
                let message = pb::Message {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r
                        .headers
                        .iter()
                        .filter(|(k, _)| !DEAD_LETTER_HEADERS.contains(&k.as_str()))
                        .map(|(k, v)| pb::Header { key: k.clone(), value: v.clone() })
                        .collect(),
                    timestamp_ms: 0,
                };
                let response = client.produce_messages(origin, partition, vec![message], None, true).await?;
                let at = response.appends.first().map_or(-1, |a| a.base_offset);
                out(
                    io,
                    &format!(
                        "resent dead letter {} to {origin} partition {} offset {at}\n",
                        r.offset,
                        partition.unwrap_or(0)
                    ),
                )?;
            }
            Ok(())
        }
    }
}

/// `janus message show`.
pub(crate) async fn message(client: &Client, cmd: MessageCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let MessageCommand::Show { topic, id, key } = cmd;
    let lookup = match (id, key) {
        (Some(id), _) => Lookup::Id(id),
        (None, Some(key)) => Lookup::Key(key),
        (None, None) => return Err(CliError::Usage("give --id or --key".into())),
    };
    let response = client.lookup_message(&topic, &lookup).await?;
    if let Some(p) = response.pending {
        return out(
            io,
            &format!(
                "{} is scheduled: partition {} of {} at {} (not delivered yet)\n",
                p.message_id, p.partition, response.pending_topic, p.deliver_at_ms
            ),
        );
    }
    for f in response.messages {
        let r = ConsumerRecord::from_proto(f.partition, f.message.unwrap_or_default());
        out(io, &format!("{}\n", super::output::record_json(&r)))?;
    }
    Ok(())
}

/// `janus timer cancel`.
pub(crate) async fn timer(client: &Client, cmd: TimerCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let TimerCommand::Cancel { id } = cmd;
    let r = client.cancel_timer(&id).await?;
    out(io, &format!("cancelled {id}: it was due at {} for {} partition {}\n", r.deliver_at_ms, r.topic, r.partition))
}
