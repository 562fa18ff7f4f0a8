//! `janus.v1.Consumer`: Fetch (long-polling), Subscribe (flow-controlled streaming) and consumer-group
//! offsets, each a call of the core.
//!
//! A subscription reads ahead at most `limits.subscribe_buffer` responses (a bounded channel between its
//! reader task, which drives the core's [`Subscription`], and the gRPC stream), so a slow consumer holds
//! the broker's memory to that, plus what HTTP/2 flow control lets through.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use janus_core::{Core, FetchRequest, Position, Subscription, metrics};
use janus_proto::v1;
use janus_proto::v1::consumer_server::Consumer;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::codec::SingleMessageCompressionOverride;
use tonic::{Request, Response, Status};

use super::convert::{fetch_response, group_partition, partition_offsets, position};
use super::status::to_status;
use super::timer::RpcTimer;

/// The Consumer service.
pub struct ConsumerService {
    core: Core,
    subscribe_buffer: usize,
    compress_min_bytes: Option<u32>,
}

/// The gRPC stream of a subscription: takes responses from the reader task's bounded channel and keeps
/// the buffered-bytes accounting.
pub struct SubscriptionStream {
    rx: mpsc::Receiver<(Result<v1::FetchResponse, Status>, u64)>,
    buffered: Arc<AtomicU64>,
}

impl SubscriptionStream {
    fn release(&self, bytes: u64) {
        if bytes > 0 {
            self.buffered.fetch_sub(bytes, Ordering::AcqRel);
            metrics::add_subscribe_buffered(-(bytes as f64));
        }
    }
}

impl Stream for SubscriptionStream {
    type Item = Result<v1::FetchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some((item, bytes))) => {
                self.release(bytes);
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
        while let Ok((_, bytes)) = self.rx.try_recv() {
            self.release(bytes);
        }
    }
}

/// The reader task of a subscription: waits for a free slot in the bounded channel (the read-ahead), then
/// for the core's next read; ends when the client goes away, the broker shuts down, or the subscription
/// ends with an error.
async fn run_subscription(
    mut subscription: Subscription,
    buffered: Arc<AtomicU64>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::Sender<(Result<v1::FetchResponse, Status>, u64)>,
) {
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
        match next {
            Ok(read) => {
                let resp = fetch_response(read);
                let bytes = resp.encoded_len() as u64;
                buffered.fetch_add(bytes, Ordering::AcqRel);
                metrics::add_subscribe_buffered(bytes as f64);
                slot.send((Ok(resp), bytes));
            }
            Err(e) => {
                slot.send((Err(to_status(e)), 0));
                return;
            }
        }
    }
}

impl ConsumerService {
    /// A service over `core` whose subscriptions read ahead at most `subscribe_buffer` responses; with
    /// response compression on (`compress_min_bytes` set), Fetch responses below that size go uncompressed.
    pub fn new(core: Core, subscribe_buffer: usize, compress_min_bytes: Option<u32>) -> Self {
        ConsumerService { core, subscribe_buffer: subscribe_buffer.max(1), compress_min_bytes }
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
        };
        self.core.fetch(connection, req).await.map(fetch_response).map_err(to_status)
    }

    async fn subscribe_one(&self, req: v1::SubscribeRequest) -> Result<SubscriptionStream, Status> {
        let start = req.start.and_then(|p| p.at).map_or(Position::Latest, position);
        let subscription =
            self.core.subscribe(&req.topic, req.partition, start, req.max_bytes, req.tags).await.map_err(to_status)?;
        let (tx, rx) = mpsc::channel(self.subscribe_buffer);
        let buffered = Arc::clone(self.core.subscribe_buffered());
        tokio::spawn(run_subscription(subscription, Arc::clone(&buffered), self.core.shutdown_signal(), tx));
        Ok(SubscriptionStream { rx, buffered })
    }

    async fn commit(&self, req: v1::CommitOffsetsRequest) -> Result<v1::CommitOffsetsResponse, Status> {
        let pairs: Vec<(u32, i64)> = req.offsets.iter().map(|o| (o.partition, o.offset)).collect();
        self.core.commit_offsets(&req.group, &req.topic, &pairs).await.map_err(to_status)?;
        Ok(v1::CommitOffsetsResponse {})
    }

    async fn fetch_offsets_one(&self, req: v1::FetchOffsetsRequest) -> Result<v1::FetchOffsetsResponse, Status> {
        let offsets = self.core.committed_offsets(&req.group, &req.topic).await.map_err(to_status)?;
        Ok(v1::FetchOffsetsResponse { offsets: partition_offsets(offsets) })
    }

    async fn reset(&self, req: v1::ResetOffsetsRequest) -> Result<v1::ResetOffsetsResponse, Status> {
        let to = req.to.and_then(|p| p.at).map(position);
        let pairs = self.core.reset_offsets(&req.group, &req.topic, req.partition, to).await.map_err(to_status)?;
        Ok(v1::ResetOffsetsResponse { offsets: partition_offsets(pairs) })
    }

    async fn describe(&self, req: v1::DescribeGroupRequest) -> Result<v1::DescribeGroupResponse, Status> {
        let partitions = self.core.describe_group(&req.group).await.map_err(to_status)?;
        Ok(v1::DescribeGroupResponse {
            group: req.group,
            partitions: partitions.into_iter().map(group_partition).collect(),
        })
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
        let result = self.core.list_groups().await.map(|groups| v1::ListGroupsResponse { groups });
        timer.finish(result.map_err(to_status)).map(Response::new)
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let timer = RpcTimer::start("DescribeGroup");
        timer.finish(self.describe(request.into_inner()).await).map(Response::new)
    }
}
