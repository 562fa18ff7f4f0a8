//! Committed offsets of consumer groups: commit (fenced by membership), read, reset to a position, and
//! expiry after `offsets.retention.ms` without members. Deleting a topic drops its offsets.
//!
//! Fencing: a member commits with its id and generation, only for partitions it holds (broker-assigned
//! clustering groups) or in the group's current generation (classic groups); commits without a member
//! (tools, `janus group reset`) are accepted only while the group has no members. The check runs just
//! before the write, so a commit racing the very rebalance that moves its partition may still land; the
//! new owner reads from the committed offset, so at worst it re-reads what the old owner committed.
//!
//! Broadcasting groups keep one set of offsets per member, stored under `<group>\u{1}<instance or
//! client id>` (a name no group can have, since group names cannot contain control characters).

use std::collections::BTreeMap;

use janus_api::{TopicPartition, now_ms};

use super::group::{Protocol, unknown_member};
use super::protocol::{CommitAs, GroupMode, GroupState};
use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::fetch::{Position, resolve};
use crate::metrics;
use crate::topics::{Registry, Topic};

/// The most bytes of metadata kept with one committed offset (Kafka's `offset.metadata.max.bytes` default).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// One partition's committed offset with the metadata committed with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The partition.
    pub partition: u32,
    /// The next offset to read.
    pub offset: i64,
    /// What the committer stored with it (empty when nothing).
    pub metadata: String,
}

/// Checks a group name: 1 to 255 bytes (the metadata store's rule).
pub fn validate_group_name(group: &str) -> Result<(), BrokerError> {
    crate::meta::validate_group_name(group).map_err(BrokerError::invalid)
}

/// The log end of a partition and `group`'s lag behind it at `committed` (at least 0), also set as the
/// `janus_consumer_lag` gauge; `None` when the topic or partition is gone.
pub(crate) fn record_lag(r: &Registry, group: &str, topic: &str, partition: u32, committed: i64) -> Option<(i64, i64)> {
    let t = r.topic(topic).ok()?;
    let log_end = r.engine(t.engine).offsets(&TopicPartition::new(topic, partition)).ok()?.log_end;
    let lag = (log_end - committed).max(0);
    metrics::set_lag(group, topic, partition, lag);
    Some((log_end, lag))
}

/// Sets the lag gauges of freshly committed offsets.
fn update_lag(r: &Registry, group: &str, topic: &Topic, pairs: &[(u32, i64)]) {
    for &(partition, offset) in pairs {
        record_lag(r, group, &topic.name, partition, offset);
    }
}

impl Core {
    /// Commits `(partition, offset)` pairs of `topic` for `group` (the offset is the next one to read).
    pub async fn commit_offsets(
        &self,
        group: &str,
        topic: &str,
        offsets: &[(u32, i64)],
        member: Option<&CommitAs>,
    ) -> Result<(), BrokerError> {
        let entries: Vec<OffsetCommit> = offsets
            .iter()
            .map(|&(partition, offset)| OffsetCommit { partition, offset, metadata: String::new() })
            .collect();
        self.commit_offsets_with_metadata(group, topic, &entries, member).await
    }

    /// Commits offsets of `topic` for `group`, each with its metadata (at most [`MAX_OFFSET_METADATA_BYTES`];
    /// Kafka's OffsetCommit carries it and OffsetFetch gives it back).
    pub async fn commit_offsets_with_metadata(
        &self,
        group: &str,
        topic: &str,
        offsets: &[OffsetCommit],
        member: Option<&CommitAs>,
    ) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        let topic = self.topic(topic)?;
        let partitions: Vec<u32> = offsets.iter().map(|o| o.partition).collect();
        let namespace = self.commit_namespace(group, &topic.name, &partitions, member)?;
        for o in offsets {
            topic.check_partition(o.partition)?;
            if o.offset < 0 {
                return Err(BrokerError::invalid(format!(
                    "offset {} for partition {} is negative: commit the next offset to read (0 or more)",
                    o.offset, o.partition
                )));
            }
            if o.metadata.len() > MAX_OFFSET_METADATA_BYTES {
                return Err(BrokerError::new(
                    ErrorCode::OffsetMetadataTooLarge,
                    format!(
                        "the metadata committed with partition {}'s offset is {} bytes; at most {MAX_OFFSET_METADATA_BYTES} \
                         are kept",
                        o.partition,
                        o.metadata.len()
                    ),
                ));
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let (group, entries) = (namespace, offsets.to_vec());
        self.blocking(move |r| {
            let stored: Vec<(u32, i64, &str)> =
                entries.iter().map(|o| (o.partition, o.offset, o.metadata.as_str())).collect();
            r.meta().commit_offsets_with_metadata(&group, &topic.name, &stored, now_ms())?;
            let pairs: Vec<(u32, i64)> = entries.iter().map(|o| (o.partition, o.offset)).collect();
            update_lag(r, &group, &topic, &pairs);
            Ok(())
        })
        .await
    }

    /// The offsets `group` committed for `topic`, by partition.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
        member_id: Option<&str>,
    ) -> Result<Vec<(u32, i64)>, BrokerError> {
        let offsets = self.committed_offsets_with_metadata(group, topic, member_id).await?;
        Ok(offsets.into_iter().map(|o| (o.partition, o.offset)).collect())
    }

    /// The offsets `group` committed for `topic`, by partition, each with the metadata committed with it.
    pub async fn committed_offsets_with_metadata(
        &self,
        group: &str,
        topic: &str,
        member_id: Option<&str>,
    ) -> Result<Vec<OffsetCommit>, BrokerError> {
        validate_group_name(group)?;
        let topic = self.topic(topic)?;
        let namespace = member_id
            .and_then(|id| {
                self.coordinator.read(group, |g| {
                    let m = g.members.get(id)?;
                    (g.mode() == GroupMode::Broadcasting).then(|| broadcast_namespace(group, m.offsets_owner()))
                })
            })
            .flatten();
        let (group, name) = (namespace.unwrap_or_else(|| group.to_string()), topic.name.clone());
        let offsets = self.blocking(move |r| Ok(r.meta().group_offsets(&group, Some(&name))?)).await?;
        Ok(offsets
            .into_iter()
            .filter(|o| o.partition < topic.partitions)
            .map(|o| OffsetCommit { partition: o.partition, offset: o.offset, metadata: o.metadata })
            .collect())
    }

    /// Every offset `group` committed (on live topics), by topic then partition, with its metadata: Kafka's
    /// OffsetFetch for all topics.
    pub async fn all_committed_offsets(&self, group: &str) -> Result<Vec<(String, OffsetCommit)>, BrokerError> {
        validate_group_name(group)?;
        let name = group.to_string();
        let offsets = self.blocking(move |r| Ok(r.meta().group_offsets(&name, None)?)).await?;
        Ok(offsets
            .into_iter()
            .filter(|o| self.topic(&o.topic).is_ok_and(|t| o.partition < t.partitions))
            .map(|o| (o.topic, OffsetCommit { partition: o.partition, offset: o.offset, metadata: o.metadata }))
            .collect())
    }

    /// Commits `to` (required: `None` is refused once the group and topic are known good) for `group` on
    /// one partition of `topic` (or all of them); returns what was committed.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: Option<Position>,
    ) -> Result<Vec<(u32, i64)>, BrokerError> {
        validate_group_name(group)?;
        let topic = self.topic(topic)?;
        self.commit_namespace(group, &topic.name, &[], None)?;
        let to =
            to.ok_or_else(|| BrokerError::invalid("'to' is required: earliest, latest, an offset or a timestamp"))?;
        let partitions: Vec<u32> = match partition {
            Some(p) => {
                topic.check_partition(p)?;
                vec![p]
            }
            None => (0..topic.partitions).collect(),
        };
        let group = group.to_string();
        self.blocking(move |r| {
            let pairs = partitions
                .iter()
                .map(|p| Ok((*p, resolve(r, &topic, *p, to)?)))
                .collect::<Result<Vec<_>, BrokerError>>()?;
            r.meta().commit_offsets(&group, &topic.name, &pairs, now_ms())?;
            update_lag(r, &group, &topic, &pairs);
            Ok(pairs)
        })
        .await
    }
}

/// Where a broadcasting member's offsets are stored (see the module docs).
pub(crate) fn broadcast_namespace(group: &str, owner: &str) -> String {
    format!("{group}{BROADCAST_SEPARATOR}{owner}")
}

/// Separates a group name from a broadcasting member's name in an offsets namespace.
pub(crate) const BROADCAST_SEPARATOR: char = '\u{1}';

impl Core {
    /// Checks that `member` (or no member) may commit `partitions` of `topic` for `group`; returns the
    /// offsets namespace to write to.
    fn commit_namespace(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
        member: Option<&CommitAs>,
    ) -> Result<String, BrokerError> {
        let Some(member) = member.filter(|m| !m.member_id.is_empty()) else {
            let members = self.coordinator.read(group, |g| g.members.len()).unwrap_or(0);
            if members > 0 {
                return Err(BrokerError::new(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "group '{group}' has {members} active member(s): only a member may commit its offsets; \
                         stop the consumers before committing or resetting without a member"
                    ),
                ));
            }
            return Ok(group.to_string());
        };
        self.coordinator.with_group(
            group,
            false,
            "",
            || unknown_member(group, &member.member_id),
            |g, _env| {
                let (generation, state, classic, mode) = (g.generation, g.state, g.is_classic(), g.mode());
                let name = g.name.clone();
                let m = g.member_mut(&member.member_id, member.instance_id.as_deref())?;
                if classic {
                    if member.generation != generation {
                        return Err(super::group::illegal_generation(&name, member.generation, generation));
                    }
                    if state == GroupState::CompletingRebalance {
                        return Err(BrokerError::new(
                            ErrorCode::RebalanceInProgress,
                            format!("group '{name}' is rebalancing: commit after SyncGroup"),
                        ));
                    }
                    return Ok((name, false));
                }
                if !m.knows(member.generation) {
                    return Err(super::group::illegal_generation(&name, member.generation, m.generation));
                }
                if mode == GroupMode::Broadcasting {
                    return Ok((broadcast_namespace(&name, m.offsets_owner()), false));
                }
                if let Some(p) = partitions.iter().find(|p| !m.owned.contains(&(topic.to_string(), **p))) {
                    return Err(BrokerError::new(
                        ErrorCode::PartitionNotAssigned,
                        format!(
                            "member '{}' of group '{name}' does not own partition {p} of '{topic}' in generation \
                             {generation}: it moved to another member, so this commit is refused",
                            member.member_id
                        ),
                    ));
                }
                Ok((name, false))
            },
        )
    }

    /// Deletes the offsets of every group that has had no members for `offsets.retention.ms` (counted
    /// from when it emptied, or from its last commit if later); returns the groups removed.
    pub async fn expire_offsets(&self) -> Result<Vec<String>, BrokerError> {
        let retention = self.coordinator.config().offsets_retention.as_millis() as i64;
        let coordinator = std::sync::Arc::clone(&self.coordinator);
        self.blocking(move |r| {
            let now = now_ms();
            let mut removed = Vec::new();
            // Per group: its offsets namespaces (its own and its broadcasting members') and when it was
            // last active, from one read of the stored groups.
            let mut groups: BTreeMap<String, (Vec<String>, i64)> = BTreeMap::new();
            for namespace in r.meta().groups()? {
                let base = namespace.split(BROADCAST_SEPARATOR).next().unwrap_or_default().to_string();
                let updated = r.meta().group_state(&namespace)?.map_or(0, |s| s.updated_ms);
                let (namespaces, last) = groups.entry(base).or_default();
                namespaces.push(namespace);
                *last = (*last).max(updated);
            }
            for (name, emptied) in coordinator.read_all(|g| (g.name.clone(), g.emptied_ms)) {
                let (_, last) = groups.entry(name).or_default();
                *last = (*last).max(emptied.unwrap_or(0));
            }
            for (group, (namespaces, last)) in groups {
                if now - last < retention || !coordinator.forget_if_empty(&group)? {
                    continue;
                }
                for namespace in namespaces {
                    r.meta().delete_group_offsets(&namespace)?;
                }
                tracing::info!(group = %group, "offsets expired: the group had no members for offsets.retention.ms");
                removed.push(group);
            }
            Ok(removed)
        })
        .await
    }
}

/// The protocol name a group shows: `janus`, `classic`, or empty.
pub(crate) fn protocol_name(p: Option<&Protocol>) -> &'static str {
    match p {
        Some(Protocol::Assigned { .. }) => "janus",
        Some(Protocol::Classic { .. }) => "classic",
        None => "",
    }
}
