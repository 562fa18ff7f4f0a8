//! Committed offsets of consumer groups: commit, read, reset to a position, and describe with lag. A
//! group exists once it has committed; deleting a topic drops its offsets.

use janus_api::{TopicPartition, now_ms};

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::fetch::{Position, resolve};
use crate::metrics;
use crate::topics::{Registry, Topic};

/// One partition of a group's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The group's committed offset (the next offset it will read).
    pub committed_offset: i64,
    /// The partition's log end offset.
    pub log_end_offset: i64,
    /// `log_end_offset - committed_offset`, at least 0.
    pub lag: i64,
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
    pub async fn commit_offsets(&self, group: &str, topic: &str, offsets: &[(u32, i64)]) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        let topic = self.topic(topic)?;
        for &(partition, offset) in offsets {
            topic.check_partition(partition)?;
            if offset < 0 {
                return Err(BrokerError::invalid(format!(
                    "offset {offset} for partition {partition} is negative: commit the next offset to read (0 or more)"
                )));
            }
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let (group, pairs) = (group.to_string(), offsets.to_vec());
        self.blocking(move |r| {
            r.meta().commit_offsets(&group, &topic.name, &pairs, now_ms())?;
            update_lag(r, &group, &topic, &pairs);
            Ok(())
        })
        .await
    }

    /// The offsets `group` committed for `topic`, by partition.
    pub async fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(u32, i64)>, BrokerError> {
        validate_group_name(group)?;
        let topic = self.topic(topic)?;
        let (group, name) = (group.to_string(), topic.name.clone());
        let offsets = self.blocking(move |r| Ok(r.meta().group_offsets(&group, Some(&name))?)).await?;
        Ok(offsets.into_iter().filter(|o| o.partition < topic.partitions).map(|o| (o.partition, o.offset)).collect())
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

    /// Every partition `group` committed for, with its log end and lag.
    pub async fn describe_group(&self, group: &str) -> Result<Vec<GroupPartition>, BrokerError> {
        validate_group_name(group)?;
        let group = group.to_string();
        self.blocking(move |r| {
            if r.meta().group_state(&group)?.is_none() {
                return Err(BrokerError::new(
                    ErrorCode::UnknownGroup,
                    format!("consumer group '{group}' does not exist (it has never committed offsets)"),
                ));
            }
            let mut out = Vec::new();
            for o in r.meta().group_offsets(&group, None)? {
                let Some((log_end_offset, lag)) = record_lag(r, &group, &o.topic, o.partition, o.offset) else {
                    continue;
                };
                out.push(GroupPartition {
                    topic: o.topic,
                    partition: o.partition,
                    committed_offset: o.offset,
                    log_end_offset,
                    lag,
                });
            }
            Ok(out)
        })
        .await
    }

    /// The names of every group that has committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<String>, BrokerError> {
        self.blocking(|r| Ok(r.meta().groups()?)).await
    }
}
