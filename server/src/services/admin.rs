//! `janus.v1.Admin`: create, list, describe, alter and delete topics.

use std::collections::BTreeMap;

use janus_api::TopicPartition;
use janus_proto::v1;
use janus_proto::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::{Context, engine_from_proto, topic_info};
use crate::metrics::RpcTimer;
use crate::registry::RegistryError;

/// The Admin service.
pub struct AdminService {
    ctx: Context,
}

impl AdminService {
    /// A service over `ctx`.
    pub fn new(ctx: Context) -> Self {
        AdminService { ctx }
    }

    async fn create(&self, req: v1::CreateTopicRequest) -> Result<v1::CreateTopicResponse, Status> {
        let engine = engine_from_proto(req.engine)?;
        let overrides: BTreeMap<String, String> = req.configs.into_iter().collect();
        let topic = self.ctx.blocking(move |r| r.create_topic(&req.name, engine, req.partitions, overrides)).await?;
        Ok(v1::CreateTopicResponse { topic: Some(topic_info(&topic)) })
    }

    async fn describe(&self, req: v1::DescribeTopicRequest) -> Result<v1::DescribeTopicResponse, Status> {
        let topic = self.ctx.topic(&req.name)?;
        let t = std::sync::Arc::clone(&topic);
        let partitions = self
            .ctx
            .blocking(move |r| {
                let engine = r.engine(t.engine);
                (0..t.partitions)
                    .map(|p| {
                        let o = engine.offsets(&TopicPartition::new(t.name.clone(), p))?;
                        Ok(v1::PartitionInfo { partition: p, log_start_offset: o.log_start, log_end_offset: o.log_end })
                    })
                    .collect::<Result<Vec<_>, RegistryError>>()
            })
            .await?;
        Ok(v1::DescribeTopicResponse { topic: Some(topic_info(&topic)), partitions })
    }

    async fn alter(&self, req: v1::AlterTopicConfigRequest) -> Result<v1::AlterTopicConfigResponse, Status> {
        let changes: BTreeMap<String, String> = req.configs.into_iter().collect();
        let topic = self.ctx.blocking(move |r| r.alter_topic(&req.name, &changes)).await?;
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
        let name = request.into_inner().name;
        let result = self.ctx.blocking(move |r| r.delete_topic(&name)).await.map(|()| v1::DeleteTopicResponse {});
        timer.finish(result).map(Response::new)
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let timer = RpcTimer::start("ListTopics");
        let topics = self.ctx.registry.topics().iter().map(|t| topic_info(t)).collect();
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
