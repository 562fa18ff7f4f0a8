//! `janus.v1.Messaging`: receive/ack, invisible durations, nack, timers and message lookup, each decoded
//! into one [`Core`] call.

use std::time::Duration;

use janus_core::messaging::{Lookup, MessageQuery, ReceiveRequest, ReceivedMessage};
use janus_core::{BrokerError, Core};
use janus_proto::v1;
use janus_proto::v1::messaging_server::Messaging;
use tonic::{Request, Response, Status};

use super::convert::consumed;
use super::status::to_status;
use super::timer::RpcTimer;

/// The Messaging service.
pub struct MessagingService {
    core: Core,
}

impl MessagingService {
    /// A service over `core`.
    pub fn new(core: Core) -> Self {
        MessagingService { core }
    }
}

fn received(m: ReceivedMessage) -> v1::ReceivedMessage {
    v1::ReceivedMessage {
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        message_id: m.message_id,
        attempt: m.attempt,
        receipt_handle: m.receipt_handle,
        invisible_until_ms: m.invisible_until_ms,
        message: Some(consumed(m.record)),
    }
}

fn invisible(ms: u64) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms))
}

#[tonic::async_trait]
impl Messaging for MessagingService {
    async fn receive(&self, request: Request<v1::ReceiveRequest>) -> Result<Response<v1::ReceiveResponse>, Status> {
        let timer = RpcTimer::start("Receive");
        let r = request.into_inner();
        let req = ReceiveRequest {
            group: r.group,
            topic: r.topic,
            max_messages: r.max_messages,
            invisible: invisible(r.invisible_ms),
            tags: r.tags,
            wait: Duration::from_millis(u64::from(r.wait_ms)),
        };
        let result = self.core.receive(req).await.map_err(to_status);
        timer
            .finish(result.map(|ms| v1::ReceiveResponse { messages: ms.into_iter().map(received).collect() }))
            .map(Response::new)
    }

    async fn ack(&self, request: Request<v1::AckRequest>) -> Result<Response<v1::AckResponse>, Status> {
        let timer = RpcTimer::start("Ack");
        let r = request.into_inner();
        let result = if r.receipt_handles.is_empty() {
            Err(to_status(BrokerError::invalid("the ack names no receipt handle")))
        } else {
            let results = r
                .receipt_handles
                .into_iter()
                .map(|handle| match self.core.ack(&r.group, &handle) {
                    Ok(()) => v1::AckResult { receipt_handle: handle, error_code: 0, error: String::new() },
                    Err(e) => v1::AckResult {
                        receipt_handle: handle,
                        error_code: u32::from(e.code().number()),
                        error: e.message().to_string(),
                    },
                })
                .collect();
            Ok(v1::AckResponse { results })
        };
        timer.finish(result).map(Response::new)
    }

    async fn change_invisible_duration(
        &self,
        request: Request<v1::ChangeInvisibleDurationRequest>,
    ) -> Result<Response<v1::ChangeInvisibleDurationResponse>, Status> {
        let timer = RpcTimer::start("ChangeInvisibleDuration");
        let r = request.into_inner();
        let result = self
            .core
            .change_invisible(&r.group, &r.receipt_handle, Duration::from_millis(r.invisible_ms))
            .await
            .map(|changed| {
                let (receipt_handle, invisible_until_ms) = changed.unwrap_or_default();
                v1::ChangeInvisibleDurationResponse { receipt_handle, invisible_until_ms }
            })
            .map_err(to_status);
        timer.finish(result).map(Response::new)
    }

    async fn nack(&self, request: Request<v1::NackRequest>) -> Result<Response<v1::NackResponse>, Status> {
        let timer = RpcTimer::start("Nack");
        let r = request.into_inner();
        let result = self.core.nack(&r.group, &r.receipt_handle).await.map(|()| v1::NackResponse {}).map_err(to_status);
        timer.finish(result).map(Response::new)
    }

    async fn cancel_timer(
        &self,
        request: Request<v1::CancelTimerRequest>,
    ) -> Result<Response<v1::CancelTimerResponse>, Status> {
        let timer = RpcTimer::start("CancelTimer");
        let id = request.into_inner().message_id;
        let result = if id.is_empty() {
            Err(to_status(BrokerError::invalid("the message id is empty")))
        } else {
            self.core
                .cancel_timer(id)
                .await
                .map(|e| v1::CancelTimerResponse { topic: e.topic, partition: e.partition, deliver_at_ms: e.due_ms })
                .map_err(to_status)
        };
        timer.finish(result).map(Response::new)
    }

    async fn lookup_message(
        &self,
        request: Request<v1::LookupMessageRequest>,
    ) -> Result<Response<v1::LookupMessageResponse>, Status> {
        use v1::lookup_message_request::Query;
        let timer = RpcTimer::start("LookupMessage");
        let r = request.into_inner();
        let result = async {
            let query = match r.query {
                Some(Query::MessageId(id)) => MessageQuery::Id(id),
                Some(Query::Key(key)) => MessageQuery::Key(key),
                None => return Err(BrokerError::invalid("give a message_id or a key to look up")),
            };
            Ok(match self.core.lookup_message(&r.topic, query).await? {
                Lookup::Pending(p) => v1::LookupMessageResponse {
                    messages: vec![],
                    pending: Some(v1::ScheduledMessage {
                        message_id: p.id,
                        partition: p.partition,
                        deliver_at_ms: p.due_ms,
                    }),
                    pending_topic: p.topic,
                },
                Lookup::Found(found) => v1::LookupMessageResponse {
                    messages: found
                        .into_iter()
                        .map(|f| v1::FoundMessage { partition: f.partition, message: Some(consumed(f.record)) })
                        .collect(),
                    pending: None,
                    pending_topic: String::new(),
                },
            })
        }
        .await
        .map_err(to_status);
        timer.finish(result).map(Response::new)
    }

    async fn set_max_reconsume_times(
        &self,
        request: Request<v1::SetMaxReconsumeTimesRequest>,
    ) -> Result<Response<v1::SetMaxReconsumeTimesResponse>, Status> {
        let timer = RpcTimer::start("SetMaxReconsumeTimes");
        let r = request.into_inner();
        let result = self
            .core
            .set_max_reconsume_times(&r.group, r.max_reconsume_times)
            .await
            .map(|()| v1::SetMaxReconsumeTimesResponse {})
            .map_err(to_status);
        timer.finish(result).map(Response::new)
    }
}
