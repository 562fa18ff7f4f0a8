//! `janus.v1.Producer`: Produce (unary) and ProduceStream (client streaming), each request handed to
//! [`Core::produce`] with the memory admission [`super::admission`] got for it before it was decoded; and
//! InitProducerId for the idempotent producer.

use janus_core::messaging::Schedule;
use janus_core::{BrokerError, Core, ProduceBatchesRequest, ProduceOutcome, ProduceRequest};
use janus_proto::v1;
use janus_proto::v1::producer_server::Producer;
use prost::Message as _;
use tonic::{Request, Response, Status, Streaming};

use super::admission::Admitted;
use super::convert::{new_record, partition_append, partition_batches};
use super::status::to_status;
use super::timer::RpcTimer;

/// The Producer service.
pub struct ProducerService {
    core: Core,
}

impl ProducerService {
    /// A service over `core`.
    pub fn new(core: Core) -> Self {
        ProducerService { core }
    }

    async fn produce_one(
        &self,
        connection: Option<std::net::SocketAddr>,
        admitted: Option<&Admitted>,
        req: v1::ProduceRequest,
    ) -> Result<v1::ProduceResponse, Status> {
        let admission = match admitted.and_then(Admitted::take) {
            Some(permit) => permit,
            // Served without the admission layer: admit what is already decoded.
            None => self.core.admit(connection, req.encoded_len()).await.map_err(to_status)?,
        };
        let return_ids = req.return_message_ids;
        let schedule = match (req.delay_level, req.delay_ms, req.deliver_at_ms) {
            (None, None, None) => None,
            (Some(level), None, None) => Some(Schedule::Level(level)),
            (None, Some(ms), None) => Some(Schedule::DelayMs(ms)),
            (None, None, Some(at)) => Some(Schedule::At(at)),
            _ => {
                return Err(to_status(BrokerError::invalid(
                    "give at most one of delay_level, delay_ms and deliver_at_ms",
                )));
            }
        };
        let outcome = if req.batches.is_empty() {
            let req = ProduceRequest {
                topic: req.topic,
                partition: req.partition,
                messages: req.messages.into_iter().map(new_record).collect(),
                wait_durable: req.wait_durable,
                schedule,
            };
            self.core.produce(admission, req).await
        } else {
            if schedule.is_some() {
                return Err(to_status(BrokerError::invalid(
                    "delay_level, delay_ms and deliver_at_ms apply to messages, not to client-built batches",
                )));
            }
            if !req.messages.is_empty() || req.partition.is_some() {
                return Err(to_status(BrokerError::invalid(
                    "a produce request carries either messages (with an optional partition) or batches, not both",
                )));
            }
            let req = ProduceBatchesRequest {
                topic: req.topic,
                batches: req.batches.into_iter().map(partition_batches).collect(),
                wait_durable: req.wait_durable,
            };
            self.core
                .produce_batches(admission, req)
                .await
                .map(|appends| ProduceOutcome { appends, ..Default::default() })
        }
        .map_err(to_status)?;
        let scheduled_count = outcome.scheduled.len() as u64;
        if !return_ids {
            return Ok(v1::ProduceResponse {
                appends: outcome.appends.into_iter().map(partition_append).collect(),
                scheduled_count,
                ..Default::default()
            });
        }
        Ok(v1::ProduceResponse {
            appends: outcome.appends.into_iter().map(partition_append).collect(),
            message_ids: outcome.message_ids,
            scheduled_count,
            scheduled: outcome
                .scheduled
                .into_iter()
                .map(|s| v1::ScheduledMessage {
                    message_id: s.message_id,
                    partition: s.partition,
                    deliver_at_ms: s.deliver_at_ms,
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl Producer for ProducerService {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        let timer = RpcTimer::start("Produce");
        let connection = request.remote_addr();
        let admitted = request.extensions().get::<Admitted>().cloned();
        timer.finish(self.produce_one(connection, admitted.as_ref(), request.into_inner()).await).map(Response::new)
    }

    async fn produce_stream(
        &self,
        request: Request<Streaming<v1::ProduceRequest>>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let timer = RpcTimer::start("ProduceStream");
        let connection = request.remote_addr();
        let admitted = request.extensions().get::<Admitted>().cloned();
        let mut stream = request.into_inner();
        let result = async {
            let mut all = v1::ProduceResponse::default();
            // One request at a time: the next is read from the stream only when this one is done, so HTTP/2
            // flow control holds back a client that sends faster than the disk takes it.
            while let Some(req) = stream.message().await? {
                let one = self.produce_one(connection, admitted.as_ref(), req).await?;
                all.appends.extend(one.appends);
                all.message_ids.extend(one.message_ids);
                all.scheduled.extend(one.scheduled);
                all.scheduled_count += one.scheduled_count;
            }
            Ok(all)
        }
        .await;
        timer.finish(result).map(Response::new)
    }

    async fn init_producer_id(
        &self,
        request: Request<v1::InitProducerIdRequest>,
    ) -> Result<Response<v1::InitProducerIdResponse>, Status> {
        let timer = RpcTimer::start("InitProducerId");
        let r = request.into_inner();
        let result = async {
            let existing = match (r.producer_id, r.producer_epoch) {
                (None, None) => None,
                (Some(id), Some(epoch)) => Some((
                    id,
                    i16::try_from(epoch)
                        .map_err(|_| BrokerError::invalid(format!("producer epoch {epoch} is not a 16-bit number")))?,
                )),
                _ => return Err(BrokerError::invalid("give both producer_id and producer_epoch, or neither")),
            };
            let issued = self.core.init_producer_id(existing).await?;
            Ok(v1::InitProducerIdResponse { producer_id: issued.producer_id, producer_epoch: i32::from(issued.epoch) })
        }
        .await
        .map_err(to_status);
        timer.finish(result).map(Response::new)
    }
}
