//! `janus.v1.Consumer`: Fetch (long-polling), Subscribe (flow-controlled streaming), consumer-group
//! membership (GroupHeartbeat, LeaveGroup) and offsets, each a call of the core.
//!
//! A subscription reads ahead into a bounded channel between its reader task, which drives the core's
//! [`Subscription`], and the gRPC stream: at most `limits.subscribe_buffer` responses and
//! `limits.subscribe_buffer_bytes` bytes, every one of them also held in the broker's memory budget (of
//! which subscriptions together may take half, so stuck subscribers cannot starve requests). The
//! response last handed to gRPC stays counted until the stream is asked for the next one (HTTP/2 keeps a
//! response a client does not read in its send buffer), so a slow or stopped reader pauses its
//! subscription, and all subscriptions together stay within the budget.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use janus_core::groups::CommitAs;
use janus_core::limits::InflightPermit;
use janus_core::{Core, FetchRequest, Position, SubscribeRequest, Subscription, metrics};
use janus_proto::v1;
use janus_proto::v1::consumer_server::Consumer;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::Stream;
use tonic::codec::SingleMessageCompressionOverride;
use tonic::{Request, Response, Status};

use super::convert::{
    fetch_response, group_description, heartbeat_response, list_groups_response, member_heartbeat, partition_offsets,
    position, record_format,
};
use super::status::to_status;
use super::timer::RpcTimer;

/// How much a subscription may read ahead of its reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAhead {
    /// Responses.
    pub responses: usize,
    /// Bytes (a single larger response is still read, alone).
    pub bytes: u64,
}

/// The Consumer service.
pub struct ConsumerService {
    core: Core,
    read_ahead: ReadAhead,
    compress_min_bytes: Option<u32>,
}

/// The memory one buffered response holds: in the subscription's own bound and in the broker's budget.
struct Held {
    bytes: u64,
    buffered: Arc<AtomicU64>,
    _own: OwnedSemaphorePermit,
    _budget: InflightPermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.buffered.fetch_sub(self.bytes, Ordering::AcqRel);
        metrics::add_subscribe_buffered(-(self.bytes as f64));
    }
}

type Buffered = (Result<v1::FetchResponse, Status>, Option<Held>);

/// The gRPC stream of a subscription: takes responses from the reader task's bounded channel, keeping
/// the last one's memory counted until the next is asked for.
pub struct SubscriptionStream {
    rx: mpsc::Receiver<Buffered>,
    last: Option<Held>,
}

impl Stream for SubscriptionStream {
    type Item = Result<v1::FetchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        // Asked for more: the previous response has left for the connection.
        self.last = None;
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((item, held))) => {
                self.last = held;
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for SubscriptionStream {
    fn drop(&mut self) {
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
    }
}

/// The memory a response holds: its encoded size plus its decoded message structs.
fn response_bytes(resp: &v1::FetchResponse) -> u64 {
    (resp.encoded_len() + resp.messages.len() * size_of::<v1::ConsumedMessage>()) as u64
}

/// The reader task of a subscription: waits for a free slot in the bounded channel, then for the core's
/// next read, then for room in the subscription's byte bound and the broker's budget; ends when the
/// client goes away, the broker shuts down, or the subscription ends with an error.
async fn run_subscription(
    mut subscription: Subscription,
    core: Core,
    read_ahead: ReadAhead,
    tx: mpsc::Sender<Buffered>,
) {
    let own = Arc::new(Semaphore::new(read_ahead.bytes.min(u32::MAX as u64) as usize));
    let buffered = Arc::clone(core.subscribe_buffered());
    let mut shutdown = core.shutdown_signal();
    loop {
        // A free slot first: while the reader is slow, nothing more is read (the read-ahead is the channel).
        let slot = tokio::select! {
            biased;
            slot = tx.reserve() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let next = tokio::select! {
            next = subscription.next() => next,
            _ = tx.closed() => return,
        };
        let read = match next {
            Ok(read) => read,
            Err(e) => {
                slot.send((Err(to_status(e)), None));
                return;
            }
        };
        let resp = match fetch_response(read) {
            Ok(resp) => resp,
            Err(e) => {
                slot.send((Err(to_status(e)), None));
                return;
            }
        };
        let bytes = response_bytes(&resp);
        let own_permits = bytes.clamp(1, read_ahead.bytes.min(u32::MAX as u64)) as u32;
        let held = tokio::select! {
            held = async {
                let own = Arc::clone(&own).acquire_many_owned(own_permits).await.ok()?;
                let budget = core.limiter().acquire_read_ahead(bytes as usize).await.ok()?;
                Some(Held { bytes, buffered: Arc::clone(&buffered), _own: own, _budget: budget })
            } => match held {
                Some(held) => held,
                None => return,
            },
            _ = tx.closed() => return,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        buffered.fetch_add(bytes, Ordering::AcqRel);
        metrics::add_subscribe_buffered(bytes as f64);
        slot.send((Ok(resp), Some(held)));
    }
}

impl ConsumerService {
    /// A service over `core` whose subscriptions read at most `read_ahead` ahead of their readers; with
    /// response compression on (`compress_min_bytes` set), Fetch responses below that size go uncompressed.
    pub fn new(core: Core, read_ahead: ReadAhead, compress_min_bytes: Option<u32>) -> Self {
        let read_ahead = ReadAhead { responses: read_ahead.responses.max(1), bytes: read_ahead.bytes.max(1) };
        ConsumerService { core, read_ahead, compress_min_bytes }
    }

    async fn fetch_one(
        &self,
        connection: Option<std::net::SocketAddr>,
        req: v1::FetchRequest,
    ) -> Result<v1::FetchResponse, Status> {
        let req = FetchRequest {
            topic: req.topic,
            partition: req.partition,
            offset: req.offset,
            max_bytes: req.max_bytes,
            max_wait_ms: req.max_wait_ms,
            tags: req.tags,
            format: record_format(req.format).map_err(to_status)?,
        };
        self.core.fetch(connection, req).await.and_then(fetch_response).map_err(to_status)
    }

    async fn subscribe_one(&self, req: v1::SubscribeRequest) -> Result<SubscriptionStream, Status> {
        let start = req.start.and_then(|p| p.at).map_or(Position::Latest, position);
        let req = SubscribeRequest {
            topic: req.topic,
            partition: req.partition,
            start,
            max_bytes: req.max_bytes,
            tags: req.tags,
            format: record_format(req.format).map_err(to_status)?,
        };
        let subscription = self.core.subscribe(req).await.map_err(to_status)?;
        let (tx, rx) = mpsc::channel(self.read_ahead.responses);
        tokio::spawn(run_subscription(subscription, self.core.clone(), self.read_ahead, tx));
        Ok(SubscriptionStream { rx, last: None })
    }

    async fn commit(&self, req: v1::CommitOffsetsRequest) -> Result<v1::CommitOffsetsResponse, Status> {
        let pairs: Vec<(u32, i64)> = req.offsets.iter().map(|o| (o.partition, o.offset)).collect();
        let member = (!req.member_id.is_empty()).then_some(CommitAs {
            member_id: req.member_id,
            generation: req.generation,
            instance_id: req.instance_id,
        });
        self.core.commit_offsets(&req.group, &req.topic, &pairs, member.as_ref()).await.map_err(to_status)?;
        Ok(v1::CommitOffsetsResponse {})
    }

    async fn fetch_offsets_one(&self, req: v1::FetchOffsetsRequest) -> Result<v1::FetchOffsetsResponse, Status> {
        let member = (!req.member_id.is_empty()).then_some(req.member_id.as_str());
        let offsets = self.core.committed_offsets(&req.group, &req.topic, member).await.map_err(to_status)?;
        Ok(v1::FetchOffsetsResponse { offsets: partition_offsets(offsets) })
    }

    async fn heartbeat(
        &self,
        connection: Option<std::net::SocketAddr>,
        req: v1::GroupHeartbeatRequest,
    ) -> Result<v1::GroupHeartbeatResponse, Status> {
        let host = connection.map(|a| a.ip().to_string()).unwrap_or_default();
        let heartbeat = member_heartbeat(req, host).map_err(to_status)?;
        self.core.heartbeat_group(heartbeat).await.map(heartbeat_response).map_err(to_status)
    }

    async fn leave(&self, req: v1::LeaveGroupRequest) -> Result<v1::LeaveGroupResponse, Status> {
        self.core.leave_group(&req.group, &req.member_id, req.instance_id.as_deref()).await.map_err(to_status)?;
        Ok(v1::LeaveGroupResponse {})
    }

    async fn reset(&self, req: v1::ResetOffsetsRequest) -> Result<v1::ResetOffsetsResponse, Status> {
        let to = req.to.and_then(|p| p.at).map(position);
        let pairs = self.core.reset_offsets(&req.group, &req.topic, req.partition, to).await.map_err(to_status)?;
        Ok(v1::ResetOffsetsResponse { offsets: partition_offsets(pairs) })
    }

    async fn describe(&self, req: v1::DescribeGroupRequest) -> Result<v1::DescribeGroupResponse, Status> {
        self.core.describe_group(&req.group).await.map(group_description).map_err(to_status)
    }
}

#[tonic::async_trait]
impl Consumer for ConsumerService {
    async fn fetch(&self, request: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        let timer = RpcTimer::start("Fetch");
        let connection = request.remote_addr();
        let fetched = timer.finish(self.fetch_one(connection, request.into_inner()).await)?;
        let small = self.compress_min_bytes.is_some_and(|min| fetched.encoded_len() < min as usize);
        let mut response = Response::new(fetched);
        if small {
            // Compressing a small response costs more CPU than it saves on the wire.
            response.extensions_mut().insert(SingleMessageCompressionOverride::Disable);
        }
        Ok(response)
    }

    type SubscribeStream = SubscriptionStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let timer = RpcTimer::start("Subscribe");
        timer.finish(self.subscribe_one(request.into_inner()).await).map(Response::new)
    }

    async fn commit_offsets(
        &self,
        request: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let timer = RpcTimer::start("CommitOffsets");
        timer.finish(self.commit(request.into_inner()).await).map(Response::new)
    }

    async fn fetch_offsets(
        &self,
        request: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let timer = RpcTimer::start("FetchOffsets");
        timer.finish(self.fetch_offsets_one(request.into_inner()).await).map(Response::new)
    }

    async fn reset_offsets(
        &self,
        request: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        let timer = RpcTimer::start("ResetOffsets");
        timer.finish(self.reset(request.into_inner()).await).map(Response::new)
    }

    async fn list_groups(
        &self,
        _request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        let timer = RpcTimer::start("ListGroups");
        let result = self.core.list_groups().await.map(list_groups_response);
        timer.finish(result.map_err(to_status)).map(Response::new)
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let timer = RpcTimer::start("DescribeGroup");
        timer.finish(self.describe(request.into_inner()).await).map(Response::new)
    }

    async fn group_heartbeat(
        &self,
        request: Request<v1::GroupHeartbeatRequest>,
    ) -> Result<Response<v1::GroupHeartbeatResponse>, Status> {
        let timer = RpcTimer::start("GroupHeartbeat");
        let connection = request.remote_addr();
        timer.finish(self.heartbeat(connection, request.into_inner()).await).map(Response::new)
    }

    async fn leave_group(
        &self,
        request: Request<v1::LeaveGroupRequest>,
    ) -> Result<Response<v1::LeaveGroupResponse>, Status> {
        let timer = RpcTimer::start("LeaveGroup");
        timer.finish(self.leave(request.into_inner()).await).map(Response::new)
    }
}
