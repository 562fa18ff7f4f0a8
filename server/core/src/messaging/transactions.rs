//! RocketMQ's transactional messages: a producer stores half messages (durable, invisible to every
//! reader), runs its local transaction, then commits (the messages are appended to their topic, getting
//! offsets there) or rolls back (they never appear). A transaction left undecided is checked with a live
//! producer of its group ([`super::txn_checks`]); after `transaction.check.max` checks its messages go to
//! [`TRANS_CHECK_MAX_TIME_TOPIC`] instead.
//!
//! Half messages and each transaction's state live in RocksDB ([`crate::meta::transactions`]); pending
//! transactions are also in memory (about 200 bytes each, at most `max_pending_transactions`). A decision
//! is taken once: whoever removes a transaction from the pending table (an EndTransaction, an answer to a
//! check, or the discard after the last check) decides it. Committing first records each partition's log
//! end (synced when the topic's flush policy is `sync`, like the appends), then appends; after a crash
//! between the two, the partitions are searched from there for the transaction's message ids and only
//! what is missing is appended: exactly one outcome.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use janus_api::{EngineKind, Header, NewRecord, TopicPartition, headers, now_ms, sync};
use janus_codec::message_id::new_message_id;

use super::header_value;
use super::lookup::{FoundMessage, scan};
use super::metrics as m;
use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::groups::validate_group_name;
use crate::limits::InflightPermit;
use crate::meta::transactions::{TxnRecord, TxnState};
use crate::produce::{PartitionAppend, ProduceRequest, build_batches, ensure_message_id, route};
use crate::topics::Topic;

/// The longest a transaction may wait before its first check (longer asks are cut to it): 7 days.
pub const MAX_CHECK_IMMUNITY_MS: i64 = 7 * 24 * 3600 * 1000;

/// Where half messages go after their last check (RocketMQ's name).
pub const TRANS_CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";

/// A transaction to prepare: messages for one topic, stored as half messages.
#[derive(Clone, Debug)]
pub struct PrepareRequest {
    /// The topic the messages go to on commit.
    pub topic: String,
    /// Every message to this partition when set; else routed as a produce routes them.
    pub partition: Option<u32>,
    /// The messages.
    pub messages: Vec<NewRecord>,
    /// The producer group asked about the transaction if it stays undecided.
    pub producer_group: String,
    /// Wait this long before the first check instead of `transaction.timeout.ms` (else a message's
    /// `CHECK_IMMUNITY_TIME_IN_SECONDS` property decides).
    pub check_immunity_ms: Option<i64>,
    /// Answer only once the half messages are on disk (also when the topic's flush policy is `sync`).
    pub wait_durable: bool,
}

/// A prepared transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Its id (for EndTransaction and in checks).
    pub transaction_id: String,
    /// The id (`UNIQ_KEY`) of each message, in request order.
    pub message_ids: Vec<String>,
}

/// A producer's decision about a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Append the messages to their topic.
    Commit,
    /// Drop them.
    Rollback,
    /// Not known yet (an answer to a check): ask again later.
    Unknown,
}

/// What a decision did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// Committed: where the messages went.
    Committed(Vec<PartitionAppend>),
    /// Rolled back.
    RolledBack,
    /// Nothing (an `Unknown` answer).
    Unchanged,
}

/// A pending transaction, as `janus txn list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTransaction {
    /// Its id.
    pub transaction_id: String,
    /// Its producer group.
    pub producer_group: String,
    /// Its topic.
    pub topic: String,
    /// When it was prepared, ms since the Unix epoch.
    pub created_ms: i64,
    /// Checks sent so far.
    pub checks: u32,
    /// When it is next checked.
    pub next_check_ms: i64,
    /// How many messages it holds.
    pub messages: u32,
}

impl From<&TxnRecord> for PendingTransaction {
    fn from(r: &TxnRecord) -> Self {
        PendingTransaction {
            transaction_id: r.id.clone(),
            producer_group: r.producer_group.clone(),
            topic: r.topic.clone(),
            created_ms: r.created_ms,
            checks: r.checks,
            next_check_ms: r.next_check_ms,
            messages: r.messages,
        }
    }
}

impl Core {
    /// Stores `req`'s messages as one transaction's half messages: durable, seen by no consumer, fetch,
    /// receive or lag until committed.
    pub async fn prepare_transaction(
        &self,
        admission: InflightPermit,
        req: PrepareRequest,
    ) -> Result<Prepared, BrokerError> {
        let _admission = admission;
        validate_group_name(&req.producer_group).map_err(|e| BrokerError::invalid(format!("producer group: {e}")))?;
        if req.topic.starts_with('%') || req.topic == TRANS_CHECK_MAX_TIME_TOPIC {
            return Err(BrokerError::invalid(format!("topic '{}' cannot take transactional messages", req.topic)));
        }
        let topic = self.topic(&req.topic)?;
        self.disk.check(topic.engine)?;
        let txns = &self.messaging.transactions;
        if txns.pending_count() >= self.messaging.config.max_pending_transactions {
            return Err(BrokerError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{} transactions are pending, the broker's max_pending_transactions: commit or roll back some",
                    self.messaging.config.max_pending_transactions
                ),
            ));
        }
        let mut messages = req.messages;
        let message_ids: Vec<String> = messages.iter_mut().map(ensure_message_id).collect();
        let immunity_ms = match req.check_immunity_ms {
            Some(ms) if ms >= 0 => Some(ms),
            Some(ms) => return Err(BrokerError::invalid(format!("check immunity of {ms} ms: must be 0 or more"))),
            None => messages
                .first()
                .and_then(|m| header_value(&m.headers, headers::CHECK_IMMUNITY_TIME_IN_SECONDS))
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|s| *s >= 0)
                .map(|s| s.saturating_mul(1000)),
        };
        for m in &mut messages {
            if header_value(&m.headers, headers::PRODUCER_GROUP).is_none() {
                m.headers.push(Header::new(headers::PRODUCER_GROUP, req.producer_group.clone().into_bytes()));
            }
        }
        let routed = route(
            &topic,
            ProduceRequest {
                topic: req.topic.clone(),
                partition: req.partition,
                messages,
                wait_durable: false,
                schedule: None,
            },
        )?;
        let max = topic.config().max_message_bytes as usize;
        let mut ordered: Vec<(usize, (u32, NewRecord))> = Vec::new();
        for (partition, records) in routed {
            for (i, record) in records {
                // Checked now, so a transaction that could never be committed is refused at once.
                build_batches(&topic.name, std::slice::from_ref(&record), max)?;
                ordered.push((i, (partition, record)));
            }
        }
        ordered.sort_unstable_by_key(|(i, _)| *i);
        let messages: Vec<(u32, NewRecord)> = ordered.into_iter().map(|(_, m)| m).collect();
        let now = now_ms();
        let record = TxnRecord {
            id: new_message_id(),
            producer_group: req.producer_group,
            topic: topic.name.clone(),
            created_ms: now,
            next_check_ms: now.saturating_add(
                immunity_ms.unwrap_or(self.messaging.config.transaction_timeout_ms).min(MAX_CHECK_IMMUNITY_MS),
            ),
            checks: 0,
            messages: messages.len() as u32,
            state: TxnState::Pending,
            decided_ms: 0,
        };
        let sync = req.wait_durable || synced(&topic);
        let stored = record.clone();
        let name = topic.name.clone();
        self.blocking(move |r| Ok(r.meta().put_transaction(&stored, &name, &messages, sync)?)).await?;
        let transaction_id = record.id.clone();
        txns.insert(record);
        Ok(Prepared { transaction_id, message_ids })
    }

    /// Commits or rolls back a pending transaction (`Unknown` changes nothing). `producer_group`, when
    /// given, must be the one that prepared it. A transaction already decided is `InvalidTransactionState`;
    /// an id never prepared (or decided long ago) is `UnknownTransaction`. Neither changes anything.
    pub async fn end_transaction(
        &self,
        transaction_id: &str,
        producer_group: Option<&str>,
        decision: Decision,
    ) -> Result<Decided, BrokerError> {
        let txns = &self.messaging.transactions;
        let record = {
            let _round = txns.round.lock().await;
            txns.claim(transaction_id, producer_group, decision != Decision::Unknown)
        };
        let record = match record {
            Claim::Claimed(r) => r,
            Claim::Peeked => return Ok(Decided::Unchanged),
            Claim::WrongGroup(group) => {
                return Err(BrokerError::invalid(format!(
                    "transaction {transaction_id} belongs to producer group '{group}'"
                )));
            }
            Claim::Absent => return Err(self.not_pending(transaction_id).await),
        };
        // Claimed: the decision runs to its end on its own task even if the caller goes away (a client
        // that times out), so a claimed transaction is never left half decided.
        let core = self.clone();
        let decide = tokio::spawn(async move { core.decide(record, decision).await });
        decide.await.map_err(|e| BrokerError::new(ErrorCode::Internal, format!("deciding a transaction: {e}")))?
    }

    /// Applies `decision` to a claimed transaction.
    async fn decide(&self, record: TxnRecord, decision: Decision) -> Result<Decided, BrokerError> {
        match decision {
            Decision::Unknown => {
                self.messaging.transactions.insert(record);
                Ok(Decided::Unchanged)
            }
            Decision::Rollback => {
                let sync = self.topic(&record.topic).is_ok_and(|t| synced(&t));
                let original = record.clone();
                let decided = TxnRecord { state: TxnState::RolledBack, decided_ms: now_ms(), ..record };
                if let Err(e) = self.blocking(move |r| Ok(r.meta().update_transaction(&decided, sync)?)).await {
                    // Nothing changed in the store: pending again.
                    self.messaging.transactions.insert(original);
                    return Err(e);
                }
                m::transaction_rolled_back();
                Ok(Decided::RolledBack)
            }
            Decision::Commit => self.complete_transaction(record, true).await.map(Decided::Committed),
        }
    }

    /// The error for an id that is not pending: decided before, or unknown.
    async fn not_pending(&self, transaction_id: &str) -> BrokerError {
        let id = transaction_id.to_string();
        match self.blocking(move |r| Ok(r.meta().transaction(&id)?)).await {
            Ok(Some(r)) => {
                let what = match r.state {
                    TxnState::Pending => "being decided".to_string(),
                    TxnState::Completing { commit: true, .. } => "being committed".to_string(),
                    TxnState::Completing { commit: false, .. } => {
                        format!("being moved to {TRANS_CHECK_MAX_TIME_TOPIC}")
                    }
                    TxnState::Committed => format!("already committed (at {} ms)", r.decided_ms),
                    TxnState::RolledBack => format!("already rolled back (at {} ms)", r.decided_ms),
                    TxnState::Discarded => format!(
                        "already discarded to {TRANS_CHECK_MAX_TIME_TOPIC} after {} checks (at {} ms)",
                        r.checks, r.decided_ms
                    ),
                };
                BrokerError::new(ErrorCode::InvalidTransactionState, format!("transaction {transaction_id} is {what}"))
            }
            Ok(None) => BrokerError::new(
                ErrorCode::UnknownTransaction,
                format!("no pending transaction has id {transaction_id} (never prepared, or decided long ago)"),
            ),
            Err(e) => e,
        }
    }

    /// Pending transactions (of one producer group, or all), oldest first.
    pub fn list_transactions(&self, producer_group: Option<&str>) -> Vec<PendingTransaction> {
        let mut out = self.messaging.transactions.pending(producer_group);
        out.sort_by(|a, b| (a.created_ms, &a.transaction_id).cmp(&(b.created_ms, &b.transaction_id)));
        out
    }

    /// Appends a claimed transaction's messages to its topic (`commit`) or to
    /// [`TRANS_CHECK_MAX_TIME_TOPIC`], recording each partition's log end first (see the module docs).
    pub(crate) async fn complete_transaction(
        &self,
        record: TxnRecord,
        commit: bool,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let original = record.clone();
        let completing = self.start_completing(record, commit).await;
        let (completing, messages) = match completing {
            Ok(c) => c,
            Err(e) => {
                // Nothing changed in the store: the transaction is pending again, to be decided later.
                if e.code() != ErrorCode::UnknownTopic {
                    self.messaging.transactions.insert(original);
                }
                return Err(e);
            }
        };
        let result = self.finish_completing(completing.clone(), messages, HashMap::new()).await;
        if result.is_err() {
            // Recorded as completing: the check task finishes it (searching for what was appended).
            self.messaging.transactions.stall(completing);
        }
        result
    }

    /// Records that a claimed transaction is being completed (its target's log ends); returns the record
    /// and the messages.
    async fn start_completing(
        &self,
        record: TxnRecord,
        commit: bool,
    ) -> Result<(TxnRecord, Vec<(u32, NewRecord)>), BrokerError> {
        let target = if commit {
            match self.topic(&record.topic) {
                Ok(t) => t,
                Err(e) => {
                    // Its topic is gone: nothing can ever be delivered, so it ends rolled back.
                    let decided = TxnRecord { state: TxnState::RolledBack, decided_ms: now_ms(), ..record };
                    self.blocking(move |r| Ok(r.meta().update_transaction(&decided, true)?)).await?;
                    return Err(e);
                }
            }
        } else {
            let engine = self.topic(&record.topic).map_or(EngineKind::Segment, |t| t.engine);
            self.internal_topic(TRANS_CHECK_MAX_TIME_TOPIC, engine).await?
        };
        // Synced only where the appends will be (flush policy `sync`): a kill -9 loses neither the unsynced
        // record nor the appends (both are in the page cache), a power loss may lose both.
        let sync = synced(&target);
        let t = Arc::clone(&target);
        // One trip to the blocking pool: read the messages and the log ends, record them.
        self.blocking(move |r| {
            let messages = r.meta().transaction_messages(&record.id)?;
            let engine = r.engine(t.engine);
            let mut from = Vec::new();
            for p in target_partitions(&messages, commit) {
                from.push((p, engine.offsets(&TopicPartition::new(t.name.clone(), p))?.log_end));
            }
            let completing =
                TxnRecord { state: TxnState::Completing { target: t.name.clone(), from, commit }, ..record };
            r.meta().update_transaction(&completing, sync)?;
            Ok((completing, messages))
        })
        .await
    }

    /// Appends a completing transaction's messages but the first `already[p]` of each partition `p` (those
    /// a crash interrupted after appending; appends of one partition go in order), then records the
    /// decision.
    pub(crate) async fn finish_completing(
        &self,
        record: TxnRecord,
        messages: Vec<(u32, NewRecord)>,
        already: HashMap<u32, usize>,
    ) -> Result<Vec<PartitionAppend>, BrokerError> {
        let TxnState::Completing { target, commit, .. } = &record.state else {
            return Err(BrokerError::new(ErrorCode::Internal, "transaction is not completing"));
        };
        let (target, commit) = (self.topic(target)?, *commit);
        let max = target.config().max_message_bytes as usize;
        let mut by_partition: BTreeMap<u32, Vec<NewRecord>> = BTreeMap::new();
        for (partition, mut m) in messages {
            m.headers.push(Header::new(headers::TRANSACTION_ID, record.id.clone().into_bytes()));
            let to = if commit {
                partition
            } else {
                m.headers.push(Header::new(headers::REAL_TOPIC, record.topic.clone().into_bytes()));
                m.headers.push(Header::new(headers::REAL_QUEUE_ID, partition.to_string().into_bytes()));
                m.headers.push(Header::new(headers::TRANSACTION_CHECK_TIMES, record.checks.to_string().into_bytes()));
                0
            };
            m.timestamp_ms = now_ms();
            by_partition.entry(to).or_default().push(m);
        }
        for (partition, records) in &mut by_partition {
            let skip = already.get(partition).copied().unwrap_or(0).min(records.len());
            records.drain(..skip);
        }
        by_partition.retain(|_, records| !records.is_empty());
        let mut batches = Vec::new();
        for (partition, records) in by_partition {
            batches.extend(build_batches(&target.name, &records, max)?.into_iter().map(|b| (partition, b)));
        }
        let appends = if batches.is_empty() {
            Vec::new()
        } else {
            self.disk.check(target.engine)?;
            let durable = target.config().flush_policy == janus_api::FlushPolicy::Sync;
            self.append_and_wait(Arc::clone(&target), batches, durable).await?
        };
        let state = if commit { TxnState::Committed } else { TxnState::Discarded };
        let decided = TxnRecord { state, decided_ms: now_ms(), ..record };
        self.blocking(move |r| Ok(r.meta().update_transaction(&decided, false)?)).await?;
        if commit {
            m::transaction_committed();
        } else {
            m::transaction_discarded();
        }
        Ok(appends)
    }

    /// Ends a transaction the broker found completing at startup (it crashed between recording the log
    /// ends and recording the decision): the messages of the transaction already in the target partitions
    /// (found by their `JANUS_TRANSACTION_ID`, from the recorded log ends) are not appended
    /// again.
    pub(crate) async fn resume_completing(&self, record: TxnRecord) -> Result<(), BrokerError> {
        let TxnState::Completing { target, from, .. } = record.state.clone() else { return Ok(()) };
        let Ok(topic) = self.topic(&target) else {
            tracing::warn!(transaction = %record.id, topic = %target, "the topic of a committing transaction is gone");
            let decided = TxnRecord { state: TxnState::RolledBack, decided_ms: now_ms(), ..record };
            return self.blocking(move |r| Ok(r.meta().update_transaction(&decided, true)?)).await;
        };
        let id = record.id.clone();
        let (messages, already) = self
            .blocking(move |r| {
                let messages = r.meta().transaction_messages(&id)?;
                let engine = r.engine(topic.engine);
                let mut already: HashMap<u32, usize> = HashMap::new();
                for (partition, start) in from {
                    let tp = TopicPartition::new(topic.name.clone(), partition);
                    let ours = |rec: &janus_api::Record| {
                        header_value(&rec.headers, headers::TRANSACTION_ID) == Some(id.as_str())
                    };
                    let mut found: Vec<FoundMessage> = Vec::new();
                    scan(engine, &tp, start, &ours, messages.len(), &mut found)?;
                    already.insert(partition, found.len());
                }
                Ok((messages, already))
            })
            .await?;
        tracing::info!(transaction = %record.id, appended_before = already.values().sum::<usize>(), total = messages.len(),
            "finishing a transaction interrupted by a restart");
        self.finish_completing(record, messages, already).await.map(|_| ())
    }
}

/// Whether `topic`'s writes wait for the disk (flush policy `sync`), and so its transactions' records too.
fn synced(topic: &Topic) -> bool {
    topic.config().flush_policy == janus_api::FlushPolicy::Sync
}

/// The partitions a completing transaction appends to.
fn target_partitions(messages: &[(u32, NewRecord)], commit: bool) -> Vec<u32> {
    if !commit {
        return vec![0];
    }
    let mut ps: Vec<u32> = messages.iter().map(|(p, _)| *p).collect();
    ps.sort_unstable();
    ps.dedup();
    ps
}

/// What taking a transaction out of the pending table found.
pub(crate) enum Claim {
    /// Taken: the caller decides it.
    Claimed(TxnRecord),
    /// Pending and left there (the caller only looked).
    Peeked,
    /// Pending, but another producer group's.
    WrongGroup(String),
    /// Not pending.
    Absent,
}

/// The pending transactions in memory, and the producers that can be asked about them.
#[derive(Debug, Default)]
pub struct Transactions {
    pending: std::sync::Mutex<HashMap<String, TxnRecord>>,
    /// Held by whoever selects transactions to check and stores their new check counts, and by whoever
    /// claims one, so a check count is never stored over a decision.
    pub(crate) round: tokio::sync::Mutex<()>,
    pub(crate) checkers: super::txn_checks::Checkers,
    /// Transactions recorded as completing whose appends failed (a full disk): finished by the check task.
    stalled: std::sync::Mutex<Vec<TxnRecord>>,
}

impl Transactions {
    /// How many transactions are pending.
    pub fn pending_count(&self) -> usize {
        sync::lock(&self.pending).len()
    }

    pub(crate) fn insert(&self, record: TxnRecord) {
        let mut pending = sync::lock(&self.pending);
        pending.insert(record.id.clone(), record);
        m::set_transactions_pending(pending.len());
    }

    /// Puts back what the store holds at startup: pending transactions into the table, completing ones
    /// (a crash came between their record and their decision) to be finished by the check task.
    pub fn load(&self, open: Vec<TxnRecord>) {
        let (mut pending, mut completing) = (0, 0);
        for record in open {
            if record.state == TxnState::Pending {
                self.insert(record);
                pending += 1;
            } else {
                self.stall(record);
                completing += 1;
            }
        }
        if pending + completing > 0 {
            tracing::info!(pending, completing, "transactions loaded");
        }
    }

    pub(crate) fn stall(&self, record: TxnRecord) {
        sync::lock(&self.stalled).push(record);
    }

    pub(crate) fn take_stalled(&self) -> Vec<TxnRecord> {
        std::mem::take(&mut *sync::lock(&self.stalled))
    }

    pub(crate) fn claim(&self, id: &str, group: Option<&str>, take: bool) -> Claim {
        let mut pending = sync::lock(&self.pending);
        match pending.get(id) {
            None => Claim::Absent,
            Some(r) if group.is_some_and(|g| !g.is_empty() && g != r.producer_group) => {
                Claim::WrongGroup(r.producer_group.clone())
            }
            Some(_) if !take => Claim::Peeked,
            Some(_) => {
                let claimed = pending.remove(id).map_or(Claim::Absent, Claim::Claimed);
                m::set_transactions_pending(pending.len());
                claimed
            }
        }
    }

    fn pending(&self, group: Option<&str>) -> Vec<PendingTransaction> {
        sync::lock(&self.pending)
            .values()
            .filter(|r| group.is_none_or(|g| g == r.producer_group))
            .map(PendingTransaction::from)
            .collect()
    }

    /// Transactions due for a check at `now`: each gets its check count raised and its next check set
    /// (`Ok`), or, past `max_checks`, is taken out to be discarded (`Err`).
    pub(crate) fn due(
        &self,
        now: i64,
        interval_ms: i64,
        max_checks: u32,
        limit: usize,
    ) -> (Vec<TxnRecord>, Vec<TxnRecord>) {
        let mut pending = sync::lock(&self.pending);
        let mut checks = Vec::new();
        let mut discards = Vec::new();
        let due: Vec<String> =
            pending.values().filter(|r| r.next_check_ms <= now).take(limit).map(|r| r.id.clone()).collect();
        for id in due {
            let Some(r) = pending.get_mut(&id) else { continue };
            if r.checks >= max_checks {
                if let Some(r) = pending.remove(&id) {
                    discards.push(r);
                }
            } else {
                r.checks += 1;
                r.next_check_ms = now + interval_ms;
                checks.push(r.clone());
            }
        }
        m::set_transactions_pending(pending.len());
        (checks, discards)
    }

    /// The earliest next check of a pending transaction.
    pub(crate) fn next_due(&self) -> Option<i64> {
        sync::lock(&self.pending).values().map(|r| r.next_check_ms).min()
    }
}
