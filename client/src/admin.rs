//! Topic administration: create, list, describe, alter, delete.

use std::collections::BTreeMap;
use std::time::Duration;

use janus_proto::v1 as pb;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::types::{NewTopic, PartitionInfo, TopicDescription, TopicInfo};

impl Client {
    /// Creates a topic; returns it with its effective configs.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<TopicInfo> {
        let request = pb::CreateTopicRequest {
            name: topic.name.clone(),
            engine: topic.engine.to_proto() as i32,
            partitions: topic.partitions,
            configs: topic.configs.clone().into_iter().collect(),
        };
        let response = self.admin_rpc().create_topic(self.request(request, Duration::ZERO)).await?.into_inner();
        response.topic.map(TopicInfo::from).ok_or_else(|| missing("CreateTopic", "topic"))
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = pb::DeleteTopicRequest { name: name.to_string() };
        self.admin_rpc().delete_topic(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }

    /// Every topic, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>> {
        let request = self.request(pb::ListTopicsRequest {}, Duration::ZERO);
        let response = self.admin_rpc().list_topics(request).await?.into_inner();
        let mut topics: Vec<TopicInfo> = response.topics.into_iter().map(TopicInfo::from).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// A topic and the start/end offsets of each partition.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let request = pb::DescribeTopicRequest { name: name.to_string() };
        let response = self.admin_rpc().describe_topic(self.request(request, Duration::ZERO)).await?.into_inner();
        let topic = response.topic.map(TopicInfo::from).ok_or_else(|| missing("DescribeTopic", "topic"))?;
        let mut partitions: Vec<PartitionInfo> = response
            .partitions
            .into_iter()
            .map(|p| PartitionInfo {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                log_end_offset: p.log_end_offset,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(TopicDescription { topic, partitions })
    }

    /// Sets config keys of a topic (the others keep their values); returns the topic.
    pub async fn alter_topic_config(&self, name: &str, configs: BTreeMap<String, String>) -> Result<TopicInfo> {
        let request = pb::AlterTopicConfigRequest { name: name.to_string(), configs: configs.into_iter().collect() };
        let response = self.admin_rpc().alter_topic_config(self.request(request, Duration::ZERO)).await?.into_inner();
        response.topic.map(TopicInfo::from).ok_or_else(|| missing("AlterTopicConfig", "topic"))
    }
}

/// The error for a response that lacks a field it must have.
fn missing(rpc: &str, field: &str) -> ClientError {
    ClientError::Protocol(format!("{rpc} response has no {field}"))
}
