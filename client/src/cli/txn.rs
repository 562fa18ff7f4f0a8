//! `janus produce --transactional` (every input line in one transaction, committed or rolled back at the
//! end of input) and `janus txn list|commit|rollback`.

use std::io::BufRead;

use bytes::Bytes;
use janus_proto::v1 as pb;

use super::args::TxnCommand;
use super::output::{render, table};
use super::{CliError, Io};
use crate::client::Client;
use crate::transactions::{HalfMessages, TransactionDecision};

/// Where a transactional produce sends its lines.
pub(crate) struct TransactionalTarget<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Every message to this partition, if set.
    pub partition: Option<u32>,
    /// The producer group.
    pub group: &'a str,
    /// Roll back at the end of input instead of committing.
    pub rollback: bool,
    /// Wait until the half messages are on disk.
    pub durable: bool,
}

/// Reads every line as one message of one transaction, then commits it (or rolls it back).
pub(crate) async fn produce_transactional(
    client: &Client,
    target: TransactionalTarget<'_>,
    template: &pb::Message,
    input: &mut dyn BufRead,
    stdout: &mut (dyn std::io::Write + Send),
) -> Result<(), CliError> {
    let mut messages = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(CliError::io("reading messages"))? == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        let mut m = template.clone();
        m.value = Some(Bytes::copy_from_slice(&line));
        messages.push(m);
    }
    if messages.is_empty() {
        return Err(CliError::from(crate::error::ClientError::invalid("no input: a transaction needs a message")));
    }
    let count = messages.len();
    let half = HalfMessages {
        topic: target.topic.to_string(),
        partition: target.partition,
        messages,
        check_immunity: None,
        wait_durable: target.durable,
    };
    let prepared = client.prepare_transaction(target.group, half).await?;
    let id = prepared.transaction_id;
    let decision = if target.rollback { TransactionDecision::Rollback } else { TransactionDecision::Commit };
    let appends = client.end_transaction(&id, target.group, decision).await?;
    let text = match decision {
        TransactionDecision::Rollback => format!("transaction {id}: {count} messages rolled back\n"),
        _ => {
            let places: Vec<String> = appends
                .iter()
                .map(|a| format!("partition {} offsets {}..={}", a.partition, a.base_offset, a.last_offset))
                .collect();
            format!("transaction {id}: {count} messages committed to {} ({})\n", target.topic, places.join(", "))
        }
    };
    stdout.write_all(text.as_bytes()).map_err(CliError::io("writing output"))
}

/// `janus txn ...`.
pub(crate) async fn run(client: &Client, cmd: TxnCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let text = match cmd {
        TxnCommand::List { group } => {
            let pending = client.list_transactions(group.as_deref()).await?;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let mut t = table(&["TRANSACTION", "PRODUCER GROUP", "TOPIC", "AGE", "CHECKS", "MESSAGES"], &[3, 4, 5]);
            for p in &pending {
                let age = format!("{:.1}s", (now - p.prepared_ms).max(0) as f64 / 1000.0);
                t.add_row(vec![
                    p.transaction_id.clone(),
                    p.producer_group.clone(),
                    p.topic.clone(),
                    age,
                    p.checks.to_string(),
                    p.messages.to_string(),
                ]);
            }
            format!("{}{} pending\n", render(&t), pending.len())
        }
        TxnCommand::Commit { id } => {
            let appends = client.end_transaction(&id, "", TransactionDecision::Commit).await?;
            let n: i64 = appends.iter().map(|a| a.last_offset - a.base_offset + 1).sum();
            format!("transaction {id} committed: {n} messages\n")
        }
        TxnCommand::Rollback { id } => {
            client.end_transaction(&id, "", TransactionDecision::Rollback).await?;
            format!("transaction {id} rolled back\n")
        }
    };
    io.stdout.write_all(text.as_bytes()).map_err(CliError::io("writing output"))
}
