//! The pure decisions of a group member: which partitions to give up and which to start reading, which
//! positions a commit carries, and what a heartbeat reports.

use std::collections::{BTreeMap, BTreeSet};

/// What the consumer must do to move from the partitions it owns to the broker's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Owned but no longer assigned: commit, stop reading, give up (sorted).
    pub revoked: Vec<u32>,
    /// Assigned but not yet owned: fetch the committed offsets, start reading (sorted).
    pub assigned: Vec<u32>,
}

impl Changes {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty() && self.assigned.is_empty()
    }
}

/// The changes from `owned` to `target`. Giving up comes first (a partition moves to its new owner only
/// after the old one released it), so a member applies `revoked` before `assigned`.
pub(crate) fn diff(owned: &BTreeSet<u32>, target: &BTreeSet<u32>) -> Changes {
    Changes {
        revoked: owned.difference(target).copied().collect(),
        assigned: target.difference(owned).copied().collect(),
    }
}

/// The positions to commit: those of `partitions` (every partition when `None`) that differ from what
/// was last committed.
pub(crate) fn moved(
    positions: &BTreeMap<u32, i64>,
    committed: &BTreeMap<u32, i64>,
    partitions: Option<&[u32]>,
) -> BTreeMap<u32, i64> {
    positions
        .iter()
        .filter(|(p, _)| partitions.is_none_or(|only| only.contains(p)))
        .filter(|(p, o)| committed.get(p) != Some(o))
        .map(|(&p, &o)| (p, o))
        .collect()
}

/// The partitions of `topic` in a broker assignment (none when the topic is absent).
pub(crate) fn partitions_of(assignment: &BTreeMap<String, Vec<u32>>, topic: &str) -> BTreeSet<u32> {
    assignment.get(topic).map(|list| list.iter().copied().collect()).unwrap_or_default()
}

/// What a heartbeat reports as owned: `topic` with its partitions, or nothing when it owns none.
pub(crate) fn owned_report(topic: &str, owned: &BTreeSet<u32>) -> BTreeMap<String, Vec<u32>> {
    if owned.is_empty() {
        BTreeMap::new()
    } else {
        BTreeMap::from([(topic.to_string(), owned.iter().copied().collect())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> BTreeSet<u32> {
        items.iter().copied().collect()
    }

    #[test]
    fn diff_splits_into_revoked_and_assigned() {
        let c = diff(&set(&[0, 1, 2, 3]), &set(&[2, 3, 4]));
        assert_eq!(c, Changes { revoked: vec![0, 1], assigned: vec![4] });
        assert!(!c.is_empty());
        assert!(diff(&set(&[1, 2]), &set(&[2, 1])).is_empty());
        assert_eq!(diff(&set(&[]), &set(&[3, 1])).assigned, vec![1, 3]);
        assert_eq!(diff(&set(&[5]), &set(&[])).revoked, vec![5]);
    }

    #[test]
    fn moved_keeps_only_changed_positions_of_the_chosen_partitions() {
        let positions = BTreeMap::from([(0, 10), (1, 5), (2, 7)]);
        let committed = BTreeMap::from([(0, 10), (1, 3)]);
        assert_eq!(moved(&positions, &committed, None), BTreeMap::from([(1, 5), (2, 7)]));
        assert_eq!(moved(&positions, &committed, Some(&[0, 2])), BTreeMap::from([(2, 7)]));
        assert!(moved(&positions, &positions, None).is_empty());
    }

    #[test]
    fn assignments_and_reports_are_per_topic() {
        let a = BTreeMap::from([("t".to_string(), vec![2, 0]), ("u".to_string(), vec![9])]);
        assert_eq!(partitions_of(&a, "t"), set(&[0, 2]));
        assert!(partitions_of(&a, "v").is_empty());
        assert!(owned_report("t", &set(&[])).is_empty());
        assert_eq!(owned_report("t", &set(&[3, 1])), BTreeMap::from([("t".to_string(), vec![1, 3])]));
    }
}
