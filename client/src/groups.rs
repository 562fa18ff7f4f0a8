//! Consumer groups: membership (heartbeat, leave), offsets (commit, fetch, reset), list and describe.

use std::collections::BTreeMap;
use std::time::Duration;

use janus_proto::v1 as pb;

use crate::client::Client;
use crate::error::Result;
use crate::types::{GroupAssignment, GroupDescription, GroupHeartbeat, GroupListing, MemberIdentity, Position};

/// The wire list of `(partition, offset)` pairs.
fn partition_offsets(offsets: &BTreeMap<u32, i64>) -> Vec<pb::PartitionOffset> {
    offsets.iter().map(|(&partition, &offset)| pb::PartitionOffset { partition, offset }).collect()
}

impl Client {
    /// Commits `offsets` (partition, next offset to consume) of `topic` for `group`, as no member: the
    /// broker allows it only while the group has no members (tools, resets). Members commit with
    /// [`Client::commit_offsets_as`].
    pub async fn commit_offsets(&self, group: &str, topic: &str, offsets: &BTreeMap<u32, i64>) -> Result<()> {
        self.commit_offsets_with(group, topic, offsets, None).await
    }

    /// Commits `offsets` of `topic` for `group` as `member`: refused (with an error for which
    /// [`crate::ClientError::must_rejoin`] is true) unless the member owns every partition in its generation.
    pub async fn commit_offsets_as(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<u32, i64>,
        member: &MemberIdentity,
    ) -> Result<()> {
        self.commit_offsets_with(group, topic, offsets, Some(member)).await
    }

    async fn commit_offsets_with(
        &self,
        group: &str,
        topic: &str,
        offsets: &BTreeMap<u32, i64>,
        member: Option<&MemberIdentity>,
    ) -> Result<()> {
        let request = pb::CommitOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            offsets: partition_offsets(offsets),
            member_id: member.map(|m| m.member_id.clone()).unwrap_or_default(),
            generation: member.map_or(0, |m| m.generation),
            instance_id: member.and_then(|m| m.instance_id.clone()),
        };
        self.consumer_rpc().commit_offsets(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }

    /// The committed offsets of `group` on `topic`; partitions without one are absent.
    pub async fn fetch_offsets(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, i64>> {
        self.fetch_offsets_of(group, topic, None).await
    }

    /// The committed offsets of `group` on `topic`; with a member of a broadcasting group, that member's own.
    pub async fn fetch_offsets_of(
        &self,
        group: &str,
        topic: &str,
        member_id: Option<&str>,
    ) -> Result<BTreeMap<u32, i64>> {
        let request = pb::FetchOffsetsRequest {
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: member_id.unwrap_or_default().to_string(),
        };
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

    /// One heartbeat of a broker-assigned group member: joins when `heartbeat.member_id` is empty. Most
    /// programs let the group consumer ([`Client::consumer`] with a group) do this.
    pub async fn group_heartbeat(&self, heartbeat: &GroupHeartbeat) -> Result<GroupAssignment> {
        let request = self.request(heartbeat.to_proto(), Duration::ZERO);
        Ok(self.consumer_rpc().group_heartbeat(request).await?.into_inner().into())
    }

    /// Leaves `group`: the member's partitions go to the other members at once.
    pub async fn leave_group(&self, group: &str, member_id: &str, instance_id: Option<&str>) -> Result<()> {
        let request = pb::LeaveGroupRequest {
            group: group.to_string(),
            member_id: member_id.to_string(),
            instance_id: instance_id.map(str::to_string),
        };
        self.consumer_rpc().leave_group(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }

    /// Every consumer group with its state and member count, sorted by name. An older broker that sends
    /// only names gives listings with an empty state.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let request = self.request(pb::ListGroupsRequest {}, Duration::ZERO);
        let response = self.consumer_rpc().list_groups(request).await?.into_inner();
        let mut listings: Vec<GroupListing> = if response.listings.is_empty() {
            response
                .groups
                .into_iter()
                .map(|group| GroupListing { group, state: String::new(), members: 0, protocol: String::new() })
                .collect()
        } else {
            response.listings.into_iter().map(GroupListing::from).collect()
        };
        listings.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(listings)
    }

    /// A group's state, generation, members and, per partition, committed offset, end offset, lag and owner.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let request = pb::DescribeGroupRequest { group: group.to_string() };
        let response = self.consumer_rpc().describe_group(self.request(request, Duration::ZERO)).await?.into_inner();
        Ok(response.into())
    }
}
