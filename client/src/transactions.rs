//! RocketMQ's transactional messages through the broker's Transactions service: prepare half messages,
//! commit or roll them back, list pending ones, and [`TransactionProducer`], which keeps its group's check
//! stream open and answers the broker's checks with a callback.

use std::sync::Arc;
use std::time::Duration;

use janus_proto::v1 as pb;
use janus_proto::v1::transactions_client::TransactionsClient;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::{ClientError, Result};

/// A producer's decision about a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionDecision {
    /// Deliver the messages.
    Commit,
    /// Drop them.
    Rollback,
    /// Not known yet: the broker asks again at the next check.
    Unknown,
}

impl TransactionDecision {
    fn to_proto(self) -> pb::TransactionDecision {
        match self {
            TransactionDecision::Commit => pb::TransactionDecision::Commit,
            TransactionDecision::Rollback => pb::TransactionDecision::Rollback,
            TransactionDecision::Unknown => pb::TransactionDecision::Unknown,
        }
    }
}

/// A transaction's half messages, to prepare.
#[derive(Clone, Debug, Default)]
pub struct HalfMessages {
    /// The topic they go to on commit.
    pub topic: String,
    /// All to this partition; `None` = routed by key like a produce.
    pub partition: Option<u32>,
    /// The messages.
    pub messages: Vec<pb::Message>,
    /// Wait this long before the first check instead of the broker's `transaction.timeout.ms`.
    pub check_immunity: Option<Duration>,
    /// Answer only once they are on disk.
    pub wait_durable: bool,
}

impl Client {
    /// A generated Transactions client on this connection.
    pub fn transactions_rpc(&self) -> TransactionsClient<Channel> {
        TransactionsClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Stores `half` as one transaction of `producer_group`: durable, invisible until committed.
    pub async fn prepare_transaction(
        &self,
        producer_group: &str,
        half: HalfMessages,
    ) -> Result<pb::PrepareTransactionResponse> {
        let request = pb::PrepareTransactionRequest {
            topic: half.topic,
            partition: half.partition,
            messages: half.messages,
            producer_group: producer_group.to_string(),
            check_immunity_ms: half.check_immunity.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            wait_durable: half.wait_durable,
        };
        Ok(self.transactions_rpc().prepare(self.request(request, Duration::ZERO)).await?.into_inner())
    }

    /// Commits or rolls back a pending transaction; on commit, where its messages went.
    pub async fn end_transaction(
        &self,
        transaction_id: &str,
        producer_group: &str,
        decision: TransactionDecision,
    ) -> Result<Vec<pb::PartitionAppend>> {
        let request = pb::EndTransactionRequest {
            transaction_id: transaction_id.to_string(),
            producer_group: producer_group.to_string(),
            decision: decision.to_proto() as i32,
        };
        let rpc = self.transactions_rpc();
        Ok(rpc.clone().end_transaction(self.request(request, Duration::ZERO)).await?.into_inner().appends)
    }

    /// Pending transactions (of one producer group, or all), oldest first.
    pub async fn list_transactions(&self, producer_group: Option<&str>) -> Result<Vec<pb::PendingTransaction>> {
        let request = pb::ListTransactionsRequest { producer_group: producer_group.unwrap_or_default().to_string() };
        let rpc = self.transactions_rpc();
        Ok(rpc.clone().list_transactions(self.request(request, Duration::ZERO)).await?.into_inner().transactions)
    }
}

/// The callback a [`TransactionProducer`] answers the broker's checks with.
pub type CheckCallback = Arc<dyn Fn(&pb::TransactionCheck) -> TransactionDecision + Send + Sync>;

/// What a transaction sent by [`TransactionProducer::send`] ended as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionOutcome {
    /// The transaction's id.
    pub transaction_id: String,
    /// The id of each message.
    pub message_ids: Vec<String>,
    /// What the local transaction decided.
    pub decision: TransactionDecision,
    /// On commit, where the messages went.
    pub appends: Vec<pb::PartitionAppend>,
}

/// A transactional producer of one producer group: sends half messages, runs the local transaction,
/// ends the transaction with its decision, and answers the broker's checks of the group's undecided
/// transactions with a callback, on a stream it keeps open (reopened after a failure) until dropped.
pub struct TransactionProducer {
    client: Client,
    group: String,
    checks: JoinHandle<()>,
}

impl Drop for TransactionProducer {
    fn drop(&mut self) {
        self.checks.abort();
    }
}

impl TransactionProducer {
    /// Opens the check stream of `producer_group`; `check` answers each check.
    pub async fn start(
        client: Client,
        producer_group: &str,
        check: impl Fn(&pb::TransactionCheck) -> TransactionDecision + Send + Sync + 'static,
    ) -> Result<TransactionProducer> {
        if producer_group.is_empty() {
            return Err(ClientError::invalid("the producer group is empty"));
        }
        let check: CheckCallback = Arc::new(check);
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        let checks = tokio::spawn(run_checks(client.clone(), producer_group.to_string(), check, opened_tx));
        // Wait until the first stream is open, so checks that are due now reach this producer.
        opened_rx.await.map_err(|_| ClientError::Closed("transaction check stream"))??;
        Ok(TransactionProducer { client, group: producer_group.to_string(), checks })
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Prepares `half`, runs `local` with the transaction's id, and ends the transaction as it decides
    /// (`Unknown` leaves it to the broker's checks).
    pub async fn send(
        &self,
        half: HalfMessages,
        local: impl FnOnce(&str) -> TransactionDecision,
    ) -> Result<TransactionOutcome> {
        let prepared = self.client.prepare_transaction(&self.group, half).await?;
        let decision = local(&prepared.transaction_id);
        let appends = match decision {
            TransactionDecision::Unknown => Vec::new(),
            d => self.client.end_transaction(&prepared.transaction_id, &self.group, d).await?,
        };
        Ok(TransactionOutcome {
            transaction_id: prepared.transaction_id,
            message_ids: prepared.message_ids,
            decision,
            appends,
        })
    }
}

/// Keeps the check stream open, answering checks, until aborted; reports the first opening on `opened`.
async fn run_checks(
    client: Client,
    group: String,
    check: CheckCallback,
    opened: tokio::sync::oneshot::Sender<Result<()>>,
) {
    let mut opened = Some(opened);
    loop {
        let (tx, rx) = mpsc::channel::<pb::CheckStreamMessage>(64);
        let hello = pb::CheckStreamMessage { kind: Some(pb::check_stream_message::Kind::ProducerGroup(group.clone())) };
        let _ = tx.send(hello).await;
        let stream = client.transactions_rpc().check_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
        let mut inbound = match stream {
            Ok(s) => {
                if let Some(o) = opened.take() {
                    let _ = o.send(Ok(()));
                }
                s.into_inner()
            }
            Err(e) => {
                if let Some(o) = opened.take() {
                    let _ = o.send(Err(e.into()));
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Ok(Some(c)) = inbound.message().await {
            let decision = check(&c);
            let answer = pb::CheckAnswer { transaction_id: c.transaction_id, decision: decision.to_proto() as i32 };
            if tx
                .send(pb::CheckStreamMessage { kind: Some(pb::check_stream_message::Kind::Answer(answer)) })
                .await
                .is_err()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
