//! `janus group list|describe|reset`.

use super::args::GroupCommand;
use super::output::{render, table};
use super::{CliError, Io};
use crate::client::Client;
use crate::types::{GroupDescription, GroupListing, TopicPartitions};

pub(crate) async fn run(client: &Client, cmd: GroupCommand, io: &mut Io<'_>) -> Result<(), CliError> {
    let out = &mut *io.stdout;
    let w = CliError::io("writing output");
    match cmd {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            write!(out, "{}", list_text(&groups)).map_err(w)?;
        }
        GroupCommand::Describe { group } => {
            let description = client.describe_group(&group).await?;
            write!(out, "{}", describe_text(&description)).map_err(w)?;
        }
        GroupCommand::Reset { group, topic, to, partition } => {
            let offsets = client.reset_offsets(&group, &topic, to, partition).await?;
            let mut text = format!("reset group {group} on {topic} to {to}\n");
            for (p, o) in offsets {
                text.push_str(&format!("  partition {p}: offset {o}\n"));
            }
            write!(out, "{text}").map_err(w)?;
        }
    }
    Ok(())
}

/// `-` for an empty or absent value.
fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "-".to_string(),
    }
}

/// Partitions by topic as `topic:0,1 other:3` (`-` when none).
fn assignment_text(assignment: &TopicPartitions) -> String {
    let parts: Vec<String> = assignment
        .iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(topic, partitions)| {
            let list: Vec<String> = partitions.iter().map(u32::to_string).collect();
            format!("{topic}:{}", list.join(","))
        })
        .collect();
    if parts.is_empty() { "-".to_string() } else { parts.join(" ") }
}

/// The GROUP, STATE, MEMBERS table.
fn list_text(groups: &[GroupListing]) -> String {
    let mut t = table(&["GROUP", "STATE", "MEMBERS"], &[2]);
    for g in groups {
        t.add_row(vec![g.group.clone(), or_dash(Some(&g.state)), g.members.to_string()]);
    }
    render(&t)
}

/// The group's header lines, its members table and its partition table with the total lag.
fn describe_text(d: &GroupDescription) -> String {
    let mode = d.mode.map_or("-", |m| m.as_str());
    let mut text = format!(
        "group {}\nstate {}\ngeneration {}\nprotocol {}\nassignor {}\nmode {mode}\n\n",
        d.group,
        or_dash(Some(&d.state)),
        d.generation,
        or_dash(Some(&d.protocol)),
        or_dash(Some(&d.assignor)),
    );
    if d.members.is_empty() {
        text.push_str("no members\n");
    } else {
        let mut members = table(&["MEMBER", "INSTANCE", "CLIENT", "HOST", "ASSIGNMENT"], &[]);
        for m in &d.members {
            members.add_row(vec![
                m.member_id.clone(),
                or_dash(m.instance_id.as_deref()),
                or_dash(Some(&m.client_id)),
                or_dash(Some(&m.host)),
                assignment_text(&m.assignment),
            ]);
        }
        text.push_str(&render(&members));
    }
    text.push('\n');
    let broadcasting = d.partitions.iter().any(|p| p.offsets_of.is_some());
    let (header, numeric): (&[&str], &[usize]) = if broadcasting {
        (&["TOPIC", "PARTITION", "OFFSETS OF", "COMMITTED", "END", "LAG"], &[1, 3, 4, 5])
    } else {
        (&["TOPIC", "PARTITION", "OWNER", "COMMITTED", "END", "LAG"], &[1, 3, 4, 5])
    };
    let mut partitions = table(header, numeric);
    for p in &d.partitions {
        let who = if broadcasting { &p.offsets_of } else { &p.owner };
        let committed = if p.committed_offset < 0 { "-".to_string() } else { p.committed_offset.to_string() };
        partitions.add_row(vec![
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(who.as_deref()),
            committed,
            p.log_end_offset.to_string(),
            p.lag.to_string(),
        ]);
    }
    text.push_str(&render(&partitions));
    text.push_str(&format!("total lag {}\n", d.total_lag()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{GroupMember, GroupMode, GroupPartition};

    fn partition(p: u32, committed: i64, owner: Option<&str>) -> GroupPartition {
        GroupPartition {
            topic: "orders".into(),
            partition: p,
            committed_offset: committed,
            log_end_offset: 10,
            lag: 10 - committed.max(0),
            owner: owner.map(str::to_string),
            offsets_of: None,
        }
    }

    #[test]
    fn describe_shows_the_group_its_members_and_partitions() {
        let d = GroupDescription {
            group: "billing".into(),
            state: "Stable".into(),
            generation: 4,
            protocol: "janus".into(),
            assignor: "range".into(),
            mode: Some(GroupMode::Clustering),
            members: vec![GroupMember {
                member_id: "m-1".into(),
                instance_id: None,
                client_id: "janus-cli".into(),
                host: "127.0.0.1".into(),
                assignment: [("orders".to_string(), vec![0, 1])].into(),
            }],
            partitions: vec![partition(0, 7, Some("m-1")), partition(1, -1, None)],
        };
        let text = describe_text(&d);
        for line in ["group billing", "state Stable", "generation 4", "protocol janus", "assignor range"] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
        assert!(text.contains("mode clustering"), "{text}");
        let member = text.lines().find(|l| l.starts_with("m-1")).unwrap();
        assert_eq!(member.split_whitespace().collect::<Vec<_>>(), ["m-1", "-", "janus-cli", "127.0.0.1", "orders:0,1"]);
        let rows: Vec<Vec<&str>> =
            text.lines().filter(|l| l.starts_with("orders")).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows, [vec!["orders", "0", "m-1", "7", "10", "3"], vec!["orders", "1", "-", "-", "10", "10"]]);
        assert!(text.ends_with("total lag 13\n"), "{text}");
        assert!(text.lines().all(|l| !l.ends_with(' ')), "{text:?}");
    }

    #[test]
    fn list_has_state_and_member_count() {
        let groups = [
            GroupListing { group: "a".into(), state: "Stable".into(), members: 2, protocol: "janus".into() },
            GroupListing { group: "b".into(), state: String::new(), members: 0, protocol: String::new() },
        ];
        let rows: Vec<Vec<String>> =
            list_text(&groups).lines().map(|l| l.split_whitespace().map(str::to_string).collect()).collect();
        assert_eq!(rows, [vec!["GROUP", "STATE", "MEMBERS"], vec!["a", "Stable", "2"], vec!["b", "-", "0"]]);
    }
}
