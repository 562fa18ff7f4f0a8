//! Consumer-group offsets: commit, fetch, reset, list, describe.

use std::collections::BTreeMap;
use std::time::Duration;

use janus_proto::v1 as pb;

use crate::client::Client;
use crate::error::Result;
use crate::types::{GroupPartition, Position};

impl Client {
    /// Commits `offsets` (partition, next offset to consume) of `topic` for `group`.
    pub async fn commit_offsets(&self, group: &str, topic: &str, offsets: &BTreeMap<u32, i64>) -> Result<()> {
        let request = pb::CommitOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            offsets: offsets.iter().map(|(&partition, &offset)| pb::PartitionOffset { partition, offset }).collect(),
        };
        self.consumer_rpc().commit_offsets(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }

    /// The committed offsets of `group` on `topic`; partitions without one are absent.
    pub async fn fetch_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, i64>> {
        let request = pb::FetchOffsetsRequest { group: group.to_string(), topic: topic.to_string() };
        let response = self.consumer_rpc().fetch_offsets(self.request(request, Duration::ZERO)).await?.into_inner();
        Ok(response.offsets.into_iter().map(|p| (p.partition, p.offset)).collect())
    }

    /// Moves the committed offsets of `group` on `topic` (one partition, or all) to `to`;
    /// returns the new offsets.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: Position,
        partition: Option<u32>,
    ) -> Result<BTreeMap<u32, i64>> {
        let request = pb::ResetOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            to: Some(to.to_proto()),
            partition,
        };
        let response = self.consumer_rpc().reset_offsets(self.request(request, Duration::ZERO)).await?.into_inner();
        Ok(response.offsets.into_iter().map(|p| (p.partition, p.offset)).collect())
    }

    /// Every consumer group with committed offsets, sorted.
    pub async fn list_groups(&self) -> Result<Vec<String>> {
        let request = self.request(pb::ListGroupsRequest {}, Duration::ZERO);
        let mut groups = self.consumer_rpc().list_groups(request).await?.into_inner().groups;
        groups.sort();
        Ok(groups)
    }

    /// Committed offset, end offset and lag of every partition the group has committed on.
    pub async fn describe_group(&self, group: &str) -> Result<Vec<GroupPartition>> {
        let request = pb::DescribeGroupRequest { group: group.to_string() };
        let response = self.consumer_rpc().describe_group(self.request(request, Duration::ZERO)).await?.into_inner();
        let mut partitions: Vec<GroupPartition> = response.partitions.into_iter().map(GroupPartition::from).collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(partitions)
    }
}
