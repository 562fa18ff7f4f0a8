//! `janus.v1.Transactions`: RocketMQ's transactional messages, each call decoded into one [`Core`] call;
//! CheckStream registers the producer with the core and relays checks out and answers in.

use std::pin::Pin;

use janus_core::messaging::{Decided, Decision, PendingTransaction, PrepareRequest, TxnCheck};
use janus_core::{BrokerError, Core};
use janus_proto::v1;
use janus_proto::v1::transactions_server::Transactions;
use prost::Message as _;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::admission::Admitted;
use super::convert::{new_record, partition_append};
use super::status::to_status;
use super::timer::RpcTimer;

/// The Transactions service.
pub struct TransactionsService {
    core: Core,
}

impl TransactionsService {
    /// A service over `core`.
    pub fn new(core: Core) -> Self {
        TransactionsService { core }
    }
}

fn decision(value: i32) -> Result<Decision, BrokerError> {
    match v1::TransactionDecision::try_from(value) {
        Ok(v1::TransactionDecision::Commit) => Ok(Decision::Commit),
        Ok(v1::TransactionDecision::Rollback) => Ok(Decision::Rollback),
        Ok(v1::TransactionDecision::Unknown) => Ok(Decision::Unknown),
        _ => Err(BrokerError::invalid(format!("decision {value}: give COMMIT, ROLLBACK or UNKNOWN"))),
    }
}

fn check(c: TxnCheck) -> v1::TransactionCheck {
    v1::TransactionCheck {
        transaction_id: c.transaction_id,
        producer_group: c.producer_group,
        topic: c.topic,
        messages: c.messages.into_iter().map(super::convert::message).collect(),
        check: c.check,
        prepared_ms: c.prepared_ms,
    }
}

fn pending(t: PendingTransaction) -> v1::PendingTransaction {
    v1::PendingTransaction {
        transaction_id: t.transaction_id,
        producer_group: t.producer_group,
        topic: t.topic,
        prepared_ms: t.created_ms,
        checks: t.checks,
        next_check_ms: t.next_check_ms,
        messages: t.messages,
    }
}

type CheckStream = Pin<Box<dyn Stream<Item = Result<v1::TransactionCheck, Status>> + Send>>;

#[tonic::async_trait]
impl Transactions for TransactionsService {
    async fn prepare(
        &self,
        request: Request<v1::PrepareTransactionRequest>,
    ) -> Result<Response<v1::PrepareTransactionResponse>, Status> {
        let timer = RpcTimer::start("Prepare");
        let connection = request.remote_addr();
        let admitted = request.extensions().get::<Admitted>().cloned();
        let r = request.into_inner();
        let result = async {
            let admission = match admitted.as_ref().and_then(Admitted::take) {
                Some(permit) => permit,
                None => self.core.admit(connection, r.encoded_len()).await?,
            };
            let req = PrepareRequest {
                topic: r.topic,
                partition: r.partition,
                messages: r.messages.into_iter().map(new_record).collect(),
                producer_group: r.producer_group,
                check_immunity_ms: r.check_immunity_ms,
                wait_durable: r.wait_durable,
            };
            let prepared = self.core.prepare_transaction(admission, req).await?;
            Ok(v1::PrepareTransactionResponse {
                transaction_id: prepared.transaction_id,
                message_ids: prepared.message_ids,
            })
        }
        .await
        .map_err(to_status);
        timer.finish(result).map(Response::new)
    }

    async fn end_transaction(
        &self,
        request: Request<v1::EndTransactionRequest>,
    ) -> Result<Response<v1::EndTransactionResponse>, Status> {
        let timer = RpcTimer::start("EndTransaction");
        let r = request.into_inner();
        let result = async {
            let group = (!r.producer_group.is_empty()).then_some(r.producer_group.as_str());
            let appends = match self.core.end_transaction(&r.transaction_id, group, decision(r.decision)?).await? {
                Decided::Committed(appends) => appends.into_iter().map(partition_append).collect(),
                Decided::RolledBack | Decided::Unchanged => Vec::new(),
            };
            Ok(v1::EndTransactionResponse { appends })
        }
        .await
        .map_err(to_status);
        timer.finish(result).map(Response::new)
    }

    type CheckStreamStream = CheckStream;

    async fn check_stream(
        &self,
        request: Request<Streaming<v1::CheckStreamMessage>>,
    ) -> Result<Response<Self::CheckStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let group = match inbound.message().await? {
            Some(v1::CheckStreamMessage { kind: Some(v1::check_stream_message::Kind::ProducerGroup(g)) }) => g,
            _ => {
                return Err(to_status(BrokerError::invalid(
                    "the first message of a check stream must name the producer group",
                )));
            }
        };
        let (registration, checks) = self.core.register_checker(&group).map_err(to_status)?;
        let core = self.core.clone();
        let answers_group = group.clone();
        // Answers come in on their own task; the registration lives as long as the outbound stream.
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let Some(v1::check_stream_message::Kind::Answer(a)) = msg.kind else { continue };
                let result = match decision(a.decision) {
                    Ok(d) => core.end_transaction(&a.transaction_id, Some(&answers_group), d).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::debug!(group = %answers_group, transaction = %a.transaction_id, error = %e,
                        "a check answer changed nothing");
                }
            }
        });
        let outbound = tokio_stream::wrappers::ReceiverStream::new(checks).map(move |c| {
            let _alive = &registration;
            Ok(check(c))
        });
        Ok(Response::new(Box::pin(outbound)))
    }

    async fn list_transactions(
        &self,
        request: Request<v1::ListTransactionsRequest>,
    ) -> Result<Response<v1::ListTransactionsResponse>, Status> {
        let r = request.into_inner();
        let group = (!r.producer_group.is_empty()).then_some(r.producer_group.as_str());
        let transactions = self.core.list_transactions(group).into_iter().map(pending).collect();
        Ok(Response::new(v1::ListTransactionsResponse { transactions }))
    }
}
