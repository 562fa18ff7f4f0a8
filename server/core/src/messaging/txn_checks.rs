//! Checking undecided transactions with their producers: a producer keeps a stream open for its group
//! ([`Core::register_checker`]); a transaction still pending `transaction.timeout.ms` after it was
//! prepared (or its immunity time) is sent, as a [`TxnCheck`], to one live producer of its group, then
//! again every `transaction.check.interval.ms`. As in RocketMQ, every check counts, whether or not a
//! producer was there to get it, so a group that is gone for good does not pin its half messages forever:
//! when the next check would exceed `transaction.check.max`, the messages go to
//! `TRANS_CHECK_MAX_TIME_TOPIC` instead. Check counts are stored, so checking resumes after a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use janus_api::{NewRecord, now_ms, sync};
use tokio::sync::mpsc;

use super::metrics as m;
use super::transactions::Transactions;
use crate::Core;
use crate::error::BrokerError;
use crate::groups::validate_group_name;

/// Checks queued per producer stream; a stream whose queue is full is passed over (the check counts as
/// not sent), so a producer that stops reading holds at most this many.
const CHECK_QUEUE: usize = 64;
/// Live check streams per producer group.
pub const MAX_CHECKERS_PER_GROUP: usize = 64;
/// Transactions checked per pass.
const CHECKS_PER_PASS: usize = 10_000;
/// The longest the check task sleeps.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long a decided transaction's record is kept, so deciding it again gets a clear answer.
pub const DECIDED_RETENTION_MS: i64 = 10 * 60 * 1000;

/// One check of an undecided transaction, sent to a producer of its group.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnCheck {
    /// The transaction.
    pub transaction_id: String,
    /// Its producer group.
    pub producer_group: String,
    /// Its topic.
    pub topic: String,
    /// Its half messages (with their `UNIQ_KEY` ids), for the producer to look its transaction up by.
    pub messages: Vec<NewRecord>,
    /// Which check this is (1 for the first).
    pub check: u32,
    /// When it was prepared, ms since the Unix epoch.
    pub prepared_ms: i64,
}

/// One live producer stream: its registration number and where its checks go.
type Stream = (u64, mpsc::Sender<TxnCheck>);

/// The live producer streams of each group.
#[derive(Debug, Default)]
pub(crate) struct Checkers {
    groups: std::sync::Mutex<HashMap<String, Vec<Stream>>>,
    next_id: AtomicU64,
}

impl Checkers {
    /// Sends `check` to one live producer of its group (rotating); false if none took it.
    fn send(&self, check: TxnCheck) -> bool {
        let mut groups = sync::lock(&self.groups);
        let Some(streams) = groups.get_mut(&check.producer_group) else { return false };
        streams.retain(|(_, tx)| !tx.is_closed());
        if streams.is_empty() {
            return false;
        }
        streams.rotate_left(1);
        streams.iter().any(|(_, tx)| tx.try_send(check.clone()).is_ok())
    }

    fn remove(&self, group: &str, id: u64) {
        let mut groups = sync::lock(&self.groups);
        if let Some(streams) = groups.get_mut(group) {
            streams.retain(|(i, _)| *i != id);
            if streams.is_empty() {
                groups.remove(group);
            }
        }
    }
}

/// A producer's registration for checks of its group; dropping it ends the registration.
#[derive(Debug)]
pub struct CheckerRegistration {
    transactions: Arc<Transactions>,
    group: String,
    id: u64,
}

impl Drop for CheckerRegistration {
    fn drop(&mut self) {
        self.transactions.checkers.remove(&self.group, self.id);
    }
}

impl Core {
    /// Registers a live producer of `producer_group` for checks: they arrive on the receiver until the
    /// registration is dropped.
    pub fn register_checker(
        &self,
        producer_group: &str,
    ) -> Result<(CheckerRegistration, mpsc::Receiver<TxnCheck>), BrokerError> {
        validate_group_name(producer_group).map_err(|e| BrokerError::invalid(format!("producer group: {e}")))?;
        let txns = &self.messaging.transactions;
        let (tx, rx) = mpsc::channel(CHECK_QUEUE);
        let id = txns.checkers.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut groups = sync::lock(&txns.checkers.groups);
            let streams = groups.entry(producer_group.to_string()).or_default();
            streams.retain(|(_, tx)| !tx.is_closed());
            if streams.len() >= MAX_CHECKERS_PER_GROUP {
                return Err(BrokerError::new(
                    crate::error::ErrorCode::LimitExceeded,
                    format!(
                        "producer group '{producer_group}' has {MAX_CHECKERS_PER_GROUP} check streams open already"
                    ),
                ));
            }
            streams.push((id, tx));
        }
        Ok((CheckerRegistration { transactions: Arc::clone(txns), group: producer_group.to_string(), id }, rx))
    }

    /// Checks undecided transactions, and finishes those a crash interrupted while completing, until the
    /// broker shuts down (the runtime spawns this once; the core loaded the stored transactions at start).
    pub async fn run_transaction_checks(&self) {
        let mut shutdown = self.shutdown_signal();
        let mut next_purge = now_ms();
        loop {
            if let Err(e) = self.check_round().await {
                tracing::warn!(error = %e, "transaction check round failed; trying again");
            }
            let now = now_ms();
            if now >= next_purge {
                next_purge = now + 60_000;
                match self.blocking(move |r| Ok(r.meta().purge_transactions(now - DECIDED_RETENTION_MS)?)).await {
                    Ok(n) if n > 0 => tracing::debug!(removed = n, "old decided transactions purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not purge old decided transactions"),
                }
            }
            let sleep = self.messaging.transactions.next_due().map_or(MAX_SLEEP, |due| {
                Duration::from_millis(due.saturating_sub(now_ms()).clamp(1, MAX_SLEEP.as_millis() as i64) as u64)
            });
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass: sends due checks and discards transactions past their last check.
    async fn check_round(&self) -> Result<(), BrokerError> {
        let config = &self.messaging.config;
        let txns = &self.messaging.transactions;
        let (checks, discards) = {
            let _round = txns.round.lock().await;
            let (checks, discards) =
                txns.due(now_ms(), config.transaction_check_interval_ms, config.transaction_check_max, CHECKS_PER_PASS);
            if !checks.is_empty() {
                let stored = checks.clone();
                self.blocking(move |r| {
                    for record in &stored {
                        r.meta().update_transaction(record, false)?;
                    }
                    Ok(())
                })
                .await?;
            }
            (checks, discards)
        };
        for record in txns.take_stalled() {
            let id = record.id.clone();
            if let Err(e) = self.resume_completing(record.clone()).await {
                tracing::warn!(transaction = %id, error = %e, "could not finish a transaction; trying again");
                txns.stall(record);
            }
        }
        for record in discards {
            let id = record.id.clone();
            tracing::info!(transaction = %id, checks = record.checks, "undecided after its last check: discarded");
            if let Err(e) = self.complete_transaction(record, false).await {
                tracing::warn!(transaction = %id, error = %e, "could not discard a transaction; trying again");
            }
        }
        for record in checks {
            let id = record.id.clone();
            let messages = self
                .blocking(move |r| Ok(r.meta().transaction_messages(&id)?))
                .await?
                .into_iter()
                .map(|(_, m)| m)
                .collect();
            let check = TxnCheck {
                transaction_id: record.id.clone(),
                producer_group: record.producer_group.clone(),
                topic: record.topic.clone(),
                messages,
                check: record.checks,
                prepared_ms: record.created_ms,
            };
            m::transaction_check(txns.checkers.send(check));
        }
        Ok(())
    }
}
