//! Describing and listing groups: the coordinator's view (state, generation, members, owners) joined with
//! the committed offsets and each partition's end and lag.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::assigned::by_topic;
use super::group::{Group, Protocol};
use super::offsets::{BROADCAST_SEPARATOR, protocol_name, record_lag, validate_group_name};
use super::protocol::{GroupDescription, GroupListing, GroupMode, GroupState, MemberDescription, PartitionDescription};
use crate::Core;
use crate::error::{BrokerError, ErrorCode};

/// What describe takes from the coordinator, copied out of its lock.
struct Snapshot {
    state: GroupState,
    generation: i32,
    protocol: String,
    protocol_type: String,
    assignor: String,
    mode: GroupMode,
    members: Vec<MemberDescription>,
    /// (topic, partition) -> owner, and every subscribed partition.
    owners: BTreeMap<(String, u32), Option<String>>,
}

/// A group's protocol type: its classic members', `janus` when broker-assigned, empty without members.
fn protocol_type(g: &Group) -> String {
    match &g.protocol {
        Some(Protocol::Classic { protocol_type, .. }) => protocol_type.clone(),
        Some(Protocol::Assigned { .. }) => "janus".to_string(),
        None => String::new(),
    }
}

fn snapshot(g: &Group) -> Snapshot {
    let (assignor, protocol_choice) = match &g.protocol {
        Some(Protocol::Assigned { assignor, .. }) => (assignor.name().to_string(), None),
        Some(Protocol::Classic { protocol_name, .. }) => {
            (protocol_name.clone().unwrap_or_default(), protocol_name.clone())
        }
        None => (String::new(), None),
    };
    let mut owners = BTreeMap::new();
    let broadcasting = g.mode() == GroupMode::Broadcasting;
    for m in g.members.values() {
        for tp in m.target.iter().chain(&m.owned) {
            owners.entry(tp.clone()).or_insert(None);
        }
        if !broadcasting {
            for tp in &m.owned {
                owners.insert(tp.clone(), Some(m.id.clone()));
            }
        }
    }
    let members = g
        .members
        .values()
        .map(|m| MemberDescription {
            member_id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.host.clone(),
            assignment: by_topic(&m.owned),
            metadata: protocol_choice
                .as_ref()
                .and_then(|c| m.protocols.iter().find(|(n, _)| n == c))
                .map(|(_, meta)| Bytes::from(meta.clone()))
                .unwrap_or_default(),
            assignment_bytes: Bytes::from(m.assignment.clone()),
        })
        .collect();
    Snapshot {
        state: g.state,
        generation: g.generation,
        protocol: protocol_name(g.protocol.as_ref()).to_string(),
        protocol_type: protocol_type(g),
        assignor,
        mode: g.mode(),
        members,
        owners,
    }
}

impl Core {
    /// A group's state, generation, protocol, members and, for every partition it reads or committed on,
    /// the committed offset, end, lag and owner. `UnknownGroup` when the broker knows nothing of it.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, BrokerError> {
        validate_group_name(group)?;
        let snap = self.coordinator.read(group, snapshot);
        let name = group.to_string();
        let (snap, partitions) = self
            .blocking(move |r| {
                let prefix = format!("{name}{BROADCAST_SEPARATOR}");
                let mut offsets: Vec<(Option<String>, String, u32, i64)> = r
                    .meta()
                    .group_offsets(&name, None)?
                    .into_iter()
                    .map(|o| (None, o.topic, o.partition, o.offset))
                    .collect();
                for o in r.meta().offsets_of_groups_starting_with(&prefix)? {
                    if let Some(owner) = o.group.strip_prefix(&prefix) {
                        offsets.push((Some(owner.to_string()), o.topic, o.partition, o.offset));
                    }
                }
                if snap.is_none() && offsets.is_empty() {
                    return Err(BrokerError::new(
                        ErrorCode::UnknownGroup,
                        format!("consumer group '{name}' does not exist (no members, no committed offsets)"),
                    ));
                }
                let owners = snap.as_ref().map(|s| s.owners.clone()).unwrap_or_default();
                let mut seen = BTreeSet::new();
                let mut out = Vec::new();
                for (offsets_of, topic, partition, committed) in offsets {
                    let Some((log_end_offset, lag)) = record_lag(r, &name, &topic, partition, committed) else {
                        continue;
                    };
                    let owner = owners.get(&(topic.clone(), partition)).cloned().flatten();
                    if offsets_of.is_none() {
                        seen.insert((topic.clone(), partition));
                    }
                    out.push(PartitionDescription {
                        topic,
                        partition,
                        committed_offset: committed,
                        log_end_offset,
                        lag,
                        owner: if offsets_of.is_none() { owner } else { None },
                        offsets_of,
                    });
                }
                for ((topic, partition), owner) in owners {
                    if seen.contains(&(topic.clone(), partition)) {
                        continue;
                    }
                    let Ok(t) = r.topic(&topic) else { continue };
                    let Ok(o) = r.engine(t.engine).offsets(&janus_api::TopicPartition::new(&topic, partition)) else {
                        continue;
                    };
                    out.push(PartitionDescription {
                        topic,
                        partition,
                        committed_offset: -1,
                        log_end_offset: o.log_end,
                        lag: (o.log_end - o.log_start).max(0),
                        owner,
                        offsets_of: None,
                    });
                }
                out.sort_by(|a, b| (&a.topic, a.partition, &a.offsets_of).cmp(&(&b.topic, b.partition, &b.offsets_of)));
                Ok((snap, out))
            })
            .await?;
        let snap = snap.unwrap_or(Snapshot {
            state: GroupState::Empty,
            generation: 0,
            protocol: String::new(),
            protocol_type: String::new(),
            assignor: String::new(),
            mode: GroupMode::Clustering,
            members: Vec::new(),
            owners: BTreeMap::new(),
        });
        Ok(GroupDescription {
            group: group.to_string(),
            state: snap.state,
            generation: snap.generation,
            protocol: snap.protocol,
            protocol_type: snap.protocol_type,
            assignor: snap.assignor,
            mode: snap.mode,
            members: snap.members,
            partitions,
        })
    }

    /// Every group the broker knows (with members, or with committed offsets), by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, BrokerError> {
        let mut listings: BTreeMap<String, GroupListing> = self
            .coordinator
            .read_all(|g| GroupListing {
                group: g.name.clone(),
                state: g.state,
                members: g.members.len(),
                protocol: protocol_name(g.protocol.as_ref()).to_string(),
                protocol_type: protocol_type(g),
            })
            .into_iter()
            .map(|l| (l.group.clone(), l))
            .collect();
        let names = self.blocking(|r| Ok(r.meta().groups()?)).await?;
        for namespace in names {
            let base = namespace.split(BROADCAST_SEPARATOR).next().unwrap_or_default().to_string();
            listings.entry(base.clone()).or_insert(GroupListing {
                group: base,
                state: GroupState::Empty,
                members: 0,
                protocol: String::new(),
                protocol_type: String::new(),
            });
        }
        Ok(listings.into_values().collect())
    }
}
