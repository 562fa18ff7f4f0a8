//! `janus.v1.Admin`: create, list, describe, alter and delete topics.

use janus_core::Core;
use janus_proto::v1;
use janus_proto::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::convert::{engine_from_proto, partition_info, topic_info};
use super::status::to_status;
use super::timer::RpcTimer;

/// The Admin service.
pub struct AdminService {
    core: Core,
}

impl AdminService {
    /// A service over `core`.
    pub fn new(core: Core) -> Self {
        AdminService { core }
    }

    async fn create(&self, req: v1::CreateTopicRequest) -> Result<v1::CreateTopicResponse, Status> {
        let engine = engine_from_proto(req.engine).map_err(to_status)?;
        let configs = req.configs.into_iter().collect();
        let topic = self.core.create_topic(req.name, engine, req.partitions, configs).await.map_err(to_status)?;
        Ok(v1::CreateTopicResponse { topic: Some(topic_info(&topic)) })
    }

    async fn describe(&self, req: v1::DescribeTopicRequest) -> Result<v1::DescribeTopicResponse, Status> {
        let (topic, partitions) = self.core.describe_topic(&req.name).await.map_err(to_status)?;
        Ok(v1::DescribeTopicResponse {
            topic: Some(topic_info(&topic)),
            partitions: partitions.into_iter().map(partition_info).collect(),
        })
    }

    async fn alter(&self, req: v1::AlterTopicConfigRequest) -> Result<v1::AlterTopicConfigResponse, Status> {
        let changes = req.configs.into_iter().collect();
        let topic = self.core.alter_topic(req.name, changes).await.map_err(to_status)?;
        Ok(v1::AlterTopicConfigResponse { topic: Some(topic_info(&topic)) })
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_topic(
        &self,
        request: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        let timer = RpcTimer::start("CreateTopic");
        timer.finish(self.create(request.into_inner()).await).map(Response::new)
    }

    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let timer = RpcTimer::start("DeleteTopic");
        let result = self.core.delete_topic(request.into_inner().name).await;
        timer.finish(result.map(|()| v1::DeleteTopicResponse {}).map_err(to_status)).map(Response::new)
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let timer = RpcTimer::start("ListTopics");
        let topics = self.core.topics().iter().map(|t| topic_info(t)).collect();
        timer.finish(Ok(v1::ListTopicsResponse { topics })).map(Response::new)
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let timer = RpcTimer::start("DescribeTopic");
        timer.finish(self.describe(request.into_inner()).await).map(Response::new)
    }

    async fn alter_topic_config(
        &self,
        request: Request<v1::AlterTopicConfigRequest>,
    ) -> Result<Response<v1::AlterTopicConfigResponse>, Status> {
        let timer = RpcTimer::start("AlterTopicConfig");
        timer.finish(self.alter(request.into_inner()).await).map(Response::new)
    }
}
