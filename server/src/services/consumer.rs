//! `janus.v1.Consumer`: Fetch (long-polling), Subscribe (flow-controlled streaming) and consumer-group
//! offsets.
//!
//! Waiting for data uses the topic's per-partition watch, which the producer fires after every append: no
//! polling loop. A subscription reads ahead at most `limits.subscribe_buffer` responses (a bounded channel
//! between its reader task and the gRPC stream), so a slow consumer holds the broker's memory to that, plus
//! what HTTP/2 flow control lets through.
//!
//! Tag filters: commitlog topics filter in the engine (ConsumeQueue tag hashes); segment topics are filtered
//! by the broker after decoding (a message passes when its `TAGS` header is one of the tags), so both engines
//! accept the same requests. A response may then hold no messages while `next_offset` moves on.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use janus_api::commitlog_record::PROPERTY_TAGS;
use janus_api::{EngineKind, ReadFilter, Record, TopicPartition, now_ms};
use janus_proto::v1;
use janus_proto::v1::consumer_server::Consumer;
use janus_proto::v1::position::At;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::Context;
use crate::meta::validate_group_name;
use crate::metrics::{self, RpcTimer};
use crate::registry::{Registry, RegistryError, Topic};
use crate::status;

/// The Consumer service.
pub struct ConsumerService {
    ctx: Context,
}

/// What one read returned.
struct ReadResult {
    messages: Vec<v1::ConsumedMessage>,
    next_offset: i64,
    log_start: i64,
    log_end: i64,
}

fn has_tag(record: &Record, tags: &[String]) -> bool {
    record
        .headers
        .iter()
        .find(|h| h.key == PROPERTY_TAGS)
        .and_then(|h| h.value.as_ref())
        .is_some_and(|v| tags.iter().any(|t| t.as_bytes() == &v[..]))
}

fn to_message(r: Record) -> v1::ConsumedMessage {
    v1::ConsumedMessage {
        offset: r.offset,
        key: r.key,
        value: r.value,
        headers: r.headers.into_iter().map(|h| v1::Header { key: h.key, value: h.value }).collect(),
        timestamp_ms: r.timestamp_ms,
    }
}

/// Reads one partition from `offset` (blocking).
fn read_partition(
    r: &Registry,
    topic: &Topic,
    partition: u32,
    offset: i64,
    max_bytes: usize,
    tags: &[String],
) -> Result<ReadResult, RegistryError> {
    let tp = TopicPartition::new(topic.name.clone(), partition);
    let engine = r.engine(topic.engine);
    let engine_filters = topic.engine == EngineKind::Commitlog && !tags.is_empty();
    let filter = if engine_filters { ReadFilter::tags(tags.iter().cloned()) } else { ReadFilter::all() };
    let slice = engine.read(&tp, offset, max_bytes, &filter)?;
    let mut records = slice.records(offset)?;
    if !tags.is_empty() && !engine_filters {
        records.retain(|rec| has_tag(rec, tags));
    }
    let o = engine.offsets(&tp)?;
    let bytes = slice.byte_len() as u64;
    metrics::record_out(&topic.name, records.len() as u64, bytes);
    Ok(ReadResult {
        messages: records.into_iter().map(to_message).collect(),
        next_offset: slice.next_offset().max(offset),
        log_start: o.log_start,
        log_end: o.log_end,
    })
}

fn response(topic: &Topic, partition: u32, read: ReadResult) -> v1::FetchResponse {
    v1::FetchResponse {
        topic: topic.name.clone(),
        partition,
        messages: read.messages,
        next_offset: read.next_offset,
        log_start_offset: read.log_start,
        log_end_offset: read.log_end,
    }
}

/// The offset a position names in one partition (blocking).
fn resolve(r: &Registry, topic: &Topic, partition: u32, at: At) -> Result<i64, RegistryError> {
    let tp = TopicPartition::new(topic.name.clone(), partition);
    let engine = r.engine(topic.engine);
    let o = engine.offsets(&tp)?;
    Ok(match at {
        At::Earliest(_) => o.log_start,
        At::Latest(_) => o.log_end,
        At::Offset(offset) => {
            if offset < o.log_start || offset > o.log_end {
                return Err(RegistryError::OutOfRange(format!(
                    "offset {offset} is out of range for {tp}: valid offsets are {}..{} (the end is the next offset \
                     to be written)",
                    o.log_start, o.log_end
                )));
            }
            offset
        }
        At::TimestampMs(ts) => engine.offset_for_timestamp(&tp, ts)?.unwrap_or(o.log_end),
    })
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

impl ConsumerService {
    /// A service over `ctx`.
    pub fn new(ctx: Context) -> Self {
        ConsumerService { ctx }
    }

    fn max_bytes(&self, asked: u32) -> usize {
        let l = &self.ctx.limits;
        (if asked == 0 { l.default_fetch_bytes } else { asked.min(l.max_fetch_bytes) }) as usize
    }

    async fn fetch_inner(
        &self,
        connection: Option<std::net::SocketAddr>,
        req: v1::FetchRequest,
    ) -> Result<v1::FetchResponse, Status> {
        let topic = self.ctx.topic(&req.topic)?;
        topic.check_partition(req.partition).map_err(status::from_registry)?;
        let max_bytes = self.max_bytes(req.max_bytes);
        let wait = Duration::from_millis(u64::from(req.max_wait_ms.min(self.ctx.limits.max_fetch_wait_ms)));
        let deadline = Instant::now() + wait;
        let partition = req.partition;
        let mut watch = topic.watch(partition).ok_or_else(|| Status::not_found("no such partition"))?;
        let mut shutdown = self.ctx.shutdown.clone();
        let tags = Arc::new(req.tags);
        let mut offset = req.offset;
        loop {
            watch.borrow_and_update();
            let permit = self.ctx.limiter.acquire(connection, max_bytes).await.map_err(status::from_limiter)?;
            let (t, tg) = (Arc::clone(&topic), Arc::clone(&tags));
            let read = self.ctx.blocking(move |r| read_partition(r, &t, partition, offset, max_bytes, &tg)).await?;
            let expired = Instant::now() >= deadline;
            if !read.messages.is_empty() || expired || self.ctx.shutting_down() || topic.is_deleted() {
                let resp = response(&topic, partition, read);
                drop(permit);
                return Ok(resp);
            }
            drop(permit);
            if read.next_offset > offset && read.next_offset < read.log_end {
                // A tag filter skipped everything read: go on scanning.
                offset = read.next_offset;
                continue;
            }
            offset = read.next_offset;
            tokio::select! {
                changed = watch.changed() => {
                    if changed.is_err() {
                        return Ok(response(&topic, partition, ReadResult { messages: vec![], next_offset: offset,
                            log_start: read.log_start, log_end: read.log_end }));
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = shutdown.wait_for(|s| *s) => {}
            }
        }
    }

    async fn subscribe_inner(&self, req: v1::SubscribeRequest) -> Result<SubscriptionStream, Status> {
        let topic = self.ctx.topic(&req.topic)?;
        topic.check_partition(req.partition).map_err(status::from_registry)?;
        let partition = req.partition;
        let at = req.start.and_then(|p| p.at).unwrap_or(At::Latest(true));
        let t = Arc::clone(&topic);
        let start = self.ctx.blocking(move |r| resolve(r, &t, partition, at)).await?;
        let max_bytes = self.max_bytes(req.max_bytes);
        let (tx, rx) = mpsc::channel(self.ctx.limits.subscribe_buffer.max(1));
        let ctx = self.ctx.clone();
        let tags = Arc::new(req.tags);
        tokio::spawn(run_subscription(ctx, topic, partition, start, max_bytes, tags, tx));
        Ok(SubscriptionStream { rx, buffered: Arc::clone(&self.ctx.subscribe_buffered) })
    }

    async fn commit(&self, req: v1::CommitOffsetsRequest) -> Result<v1::CommitOffsetsResponse, Status> {
        validate_group_name(&req.group).map_err(Status::invalid_argument)?;
        let topic = self.ctx.topic(&req.topic)?;
        let mut pairs = Vec::with_capacity(req.offsets.len());
        for po in &req.offsets {
            topic.check_partition(po.partition).map_err(status::from_registry)?;
            if po.offset < 0 {
                return Err(Status::invalid_argument(format!(
                    "offset {} for partition {} is negative: commit the next offset to read (0 or more)",
                    po.offset, po.partition
                )));
            }
            pairs.push((po.partition, po.offset));
        }
        if pairs.is_empty() {
            return Ok(v1::CommitOffsetsResponse {});
        }
        let group = req.group;
        self.ctx
            .blocking(move |r| {
                r.meta().commit_offsets(&group, &topic.name, &pairs, now_ms())?;
                update_lag(r, &group, &topic, &pairs);
                Ok::<_, RegistryError>(())
            })
            .await?;
        Ok(v1::CommitOffsetsResponse {})
    }

    async fn fetch_offsets_inner(&self, req: v1::FetchOffsetsRequest) -> Result<v1::FetchOffsetsResponse, Status> {
        validate_group_name(&req.group).map_err(Status::invalid_argument)?;
        let topic = self.ctx.topic(&req.topic)?;
        let offsets = self
            .ctx
            .blocking(move |r| r.meta().group_offsets(&req.group, Some(&req.topic)).map_err(RegistryError::from))
            .await?
            .into_iter()
            .filter(|o| o.partition < topic.partitions)
            .map(|o| v1::PartitionOffset { partition: o.partition, offset: o.offset })
            .collect();
        Ok(v1::FetchOffsetsResponse { offsets })
    }

    async fn reset(&self, req: v1::ResetOffsetsRequest) -> Result<v1::ResetOffsetsResponse, Status> {
        validate_group_name(&req.group).map_err(Status::invalid_argument)?;
        let topic = self.ctx.topic(&req.topic)?;
        let at = req
            .to
            .and_then(|p| p.at)
            .ok_or_else(|| Status::invalid_argument("'to' is required: earliest, latest, an offset or a timestamp"))?;
        let partitions: Vec<u32> = match req.partition {
            Some(p) => {
                topic.check_partition(p).map_err(status::from_registry)?;
                vec![p]
            }
            None => (0..topic.partitions).collect(),
        };
        let group = req.group;
        let pairs = self
            .ctx
            .blocking(move |r| {
                let pairs = partitions
                    .iter()
                    .map(|p| Ok((*p, resolve(r, &topic, *p, at)?)))
                    .collect::<Result<Vec<_>, RegistryError>>()?;
                r.meta().commit_offsets(&group, &topic.name, &pairs, now_ms())?;
                update_lag(r, &group, &topic, &pairs);
                Ok::<_, RegistryError>(pairs)
            })
            .await?;
        Ok(v1::ResetOffsetsResponse {
            offsets: pairs.into_iter().map(|(partition, offset)| v1::PartitionOffset { partition, offset }).collect(),
        })
    }

    async fn describe(&self, req: v1::DescribeGroupRequest) -> Result<v1::DescribeGroupResponse, Status> {
        validate_group_name(&req.group).map_err(Status::invalid_argument)?;
        let group = req.group.clone();
        let partitions = self
            .ctx
            .blocking(move |r| {
                if r.meta().group_state(&group)?.is_none() {
                    return Err(RegistryError::NotFound(format!(
                        "consumer group '{group}' does not exist (it has never committed offsets)"
                    )));
                }
                let mut out = Vec::new();
                for o in r.meta().group_offsets(&group, None)? {
                    let Ok(topic) = r.topic(&o.topic) else { continue };
                    let Ok(offsets) =
                        r.engine(topic.engine).offsets(&TopicPartition::new(o.topic.clone(), o.partition))
                    else {
                        continue;
                    };
                    let lag = (offsets.log_end - o.offset).max(0);
                    metrics::set_lag(&group, &o.topic, o.partition, lag);
                    out.push(v1::GroupPartition {
                        topic: o.topic,
                        partition: o.partition,
                        committed_offset: o.offset,
                        log_end_offset: offsets.log_end,
                        lag,
                    });
                }
                Ok(out)
            })
            .await?;
        Ok(v1::DescribeGroupResponse { group: req.group, partitions })
    }
}

/// Sets the lag gauges of freshly committed offsets.
fn update_lag(r: &Registry, group: &str, topic: &Topic, pairs: &[(u32, i64)]) {
    for (partition, offset) in pairs {
        if let Ok(o) = r.engine(topic.engine).offsets(&TopicPartition::new(topic.name.clone(), *partition)) {
            metrics::set_lag(group, &topic.name, *partition, (o.log_end - offset).max(0));
        }
    }
}

/// The reader task of a subscription: reads ahead into the bounded channel, waits on the partition's watch
/// at the log end, ends when the client goes away, the topic is deleted or the broker shuts down.
async fn run_subscription(
    ctx: Context,
    topic: Arc<Topic>,
    partition: u32,
    mut offset: i64,
    max_bytes: usize,
    tags: Arc<Vec<String>>,
    tx: mpsc::Sender<(Result<v1::FetchResponse, Status>, u64)>,
) {
    let Some(mut watch) = topic.watch(partition) else { return };
    let mut shutdown = ctx.shutdown.clone();
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
        watch.borrow_and_update();
        if ctx.shutting_down() {
            slot.send((Err(Status::unavailable("the broker is shutting down; subscribe again later")), 0));
            return;
        }
        if topic.is_deleted() {
            slot.send((Err(Status::not_found(format!("topic '{}' was deleted", topic.name))), 0));
            return;
        }
        let (t, tg) = (Arc::clone(&topic), Arc::clone(&tags));
        match ctx.blocking(move |r| read_partition(r, &t, partition, offset, max_bytes, &tg)).await {
            Err(status) => {
                slot.send((Err(status), 0));
                return;
            }
            Ok(read) if !read.messages.is_empty() => {
                offset = read.next_offset;
                let resp = response(&topic, partition, read);
                let bytes = resp.encoded_len() as u64;
                ctx.subscribe_buffered.fetch_add(bytes, Ordering::AcqRel);
                metrics::add_subscribe_buffered(bytes as f64);
                slot.send((Ok(resp), bytes));
                continue;
            }
            Ok(read) => {
                drop(slot);
                if read.next_offset > offset {
                    // A tag filter skipped what was read: go on scanning.
                    offset = read.next_offset;
                    continue;
                }
            }
        }
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => {}
            _ = tx.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl Consumer for ConsumerService {
    async fn fetch(&self, request: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        let timer = RpcTimer::start("Fetch");
        let connection = request.remote_addr();
        timer.finish(self.fetch_inner(connection, request.into_inner()).await).map(Response::new)
    }

    type SubscribeStream = SubscriptionStream;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let timer = RpcTimer::start("Subscribe");
        timer.finish(self.subscribe_inner(request.into_inner()).await).map(Response::new)
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
        timer.finish(self.fetch_offsets_inner(request.into_inner()).await).map(Response::new)
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
        let result = self
            .ctx
            .blocking(|r| r.meta().groups().map_err(RegistryError::from))
            .await
            .map(|groups| v1::ListGroupsResponse { groups });
        timer.finish(result).map(Response::new)
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let timer = RpcTimer::start("DescribeGroup");
        timer.finish(self.describe(request.into_inner()).await).map(Response::new)
    }
}
