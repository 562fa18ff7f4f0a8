//! `janus.v1.Producer`: Produce (unary) and ProduceStream (client streaming), each request handed to
//! [`Core::produce`] with the memory admission [`super::admission`] got for it before it was decoded.

use janus_core::{BrokerError, Core, ProduceBatchesRequest, ProduceRequest};
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
        let appends = if req.batches.is_empty() {
            let req = ProduceRequest {
                topic: req.topic,
                partition: req.partition,
                messages: req.messages.into_iter().map(new_record).collect(),
                wait_durable: req.wait_durable,
            };
            self.core.produce(admission, req).await
        } else {
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
            self.core.produce_batches(admission, req).await
        }
        .map_err(to_status)?;
        Ok(v1::ProduceResponse { appends: appends.into_iter().map(partition_append).collect() })
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
            let mut appends = Vec::new();
            // One request at a time: the next is read from the stream only when this one is done, so HTTP/2
            // flow control holds back a client that sends faster than the disk takes it.
            while let Some(req) = stream.message().await? {
                appends.extend(self.produce_one(connection, admitted.as_ref(), req).await?.appends);
            }
            Ok(v1::ProduceResponse { appends })
        }
        .await;
        timer.finish(result).map(Response::new)
    }
}
