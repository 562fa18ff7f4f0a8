//! Broker-side partition assignors for consumer groups: given every member's subscription (and, for
//! `sticky`, the partitions it owns now) and the partition count of every topic, decide which member
//! reads which partition.
//!
//! Three strategies, named as Kafka names them:
//! - [`Assignor::Range`]: per topic, the subscribers (static members first by instance id, then the rest by
//!   member id) get contiguous ranges of partitions; the first `count % subscribers` get one extra.
//! - [`Assignor::RoundRobin`]: every (topic, partition) in order is dealt to the next member in that same
//!   sorted order, skipping members not subscribed to the topic.
//! - [`Assignor::Sticky`]: a balanced assignment that leaves as many currently owned partitions where they
//!   are as balance allows. With identical subscriptions member counts differ by at most one and the number
//!   of partitions that change owner is the least possible; otherwise a greedy keeps owned partitions up
//!   to a fair share, gives the rest to the least-loaded subscriber and then moves partitions from a member
//!   to a co-subscriber holding at least two fewer until no such move is left.
//!
//! In all three, every partition of every existing topic somebody subscribes to goes to exactly one of
//! its subscribers, and nothing else is assigned. The functions are pure and deterministic (the same
//! input gives the same output) and never panic. They compute only the target: moving a partition
//! cooperatively (the old owner releases it first) is the coordinator's business.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// One member's view for an assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    /// Topics the member subscribes to.
    pub topics: BTreeSet<String>,
    /// Partitions it owns now (topic, partition): sticky keeps as many as it can.
    pub owned: BTreeSet<(String, u32)>,
    /// Its static instance id, if any (Kafka's range/roundrobin sort static members by instance id, others
    /// by member id).
    pub instance_id: Option<String>,
}

/// What the assignor works on.
pub struct AssignmentInput<'a> {
    /// Member id -> subscription.
    pub members: &'a BTreeMap<String, MemberSubscription>,
    /// Topic -> partition count, for every topic any member subscribes to that exists (others are ignored).
    pub partitions: &'a BTreeMap<String, u32>,
}

/// Member id -> the partitions it is assigned. Every member of the input appears (possibly with an empty
/// set).
pub type Assignment = BTreeMap<String, BTreeSet<(String, u32)>>;

/// A partition assignment strategy; see the module documentation for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignor {
    /// Contiguous ranges of each topic's partitions (Kafka's `range`, its default).
    #[default]
    Range,
    /// All partitions dealt one by one to the members in turn (Kafka's `roundrobin`).
    RoundRobin,
    /// Balanced, keeping owned partitions in place as far as balance allows (Kafka's `cooperative-sticky`
    /// and KIP-848's `uniform`).
    Sticky,
}

/// The names [`Assignor::parse`] accepts, for its error message.
const VALID_NAMES: &str = "range, roundrobin (or round-robin), sticky (or cooperative-sticky)";

impl Assignor {
    /// Parses an assignor name, ignoring case: `range`, `roundrobin` or `round-robin`, `sticky` or
    /// `cooperative-sticky`. The error names the valid choices.
    pub fn parse(name: &str) -> Result<Assignor, String> {
        match name.to_ascii_lowercase().as_str() {
            "range" => Ok(Assignor::Range),
            "roundrobin" | "round-robin" => Ok(Assignor::RoundRobin),
            "sticky" | "cooperative-sticky" => Ok(Assignor::Sticky),
            _ => Err(format!("unknown partition assignor {name:?}: expected one of {VALID_NAMES}")),
        }
    }

    /// The canonical name: `range`, `roundrobin` or `sticky` ([`Assignor::parse`] accepts it back).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        }
    }

    /// Computes the target assignment for `input` (pure: reads nothing else, same input -> same output).
    pub fn assign(self, input: &AssignmentInput<'_>) -> Assignment {
        match self {
            Assignor::Range => range(input),
            Assignor::RoundRobin => round_robin(input),
            Assignor::Sticky => sticky(input),
        }
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Assignor {
    type Err = String;

    fn from_str(name: &str) -> Result<Assignor, String> {
        Assignor::parse(name)
    }
}

/// Every member of the input with an empty set.
fn empty_assignment(members: &BTreeMap<String, MemberSubscription>) -> Assignment {
    members.keys().map(|id| (id.clone(), BTreeSet::new())).collect()
}

/// Member ids in Kafka's order for range and roundrobin: static members first, by instance id, then the
/// others by member id (member id also breaks ties between equal instance ids, so the order is total).
fn kafka_order(members: &BTreeMap<String, MemberSubscription>) -> Vec<&str> {
    let mut order: Vec<(&str, &MemberSubscription)> = members.iter().map(|(id, m)| (id.as_str(), m)).collect();
    order.sort_by(|(a_id, a), (b_id, b)| {
        let key_a = (a.instance_id.is_none(), a.instance_id.as_deref(), *a_id);
        let key_b = (b.instance_id.is_none(), b.instance_id.as_deref(), *b_id);
        key_a.cmp(&key_b)
    });
    order.into_iter().map(|(id, _)| id).collect()
}

fn range(input: &AssignmentInput<'_>) -> Assignment {
    let mut out = empty_assignment(input.members);
    let order = kafka_order(input.members);
    for (topic, &count) in input.partitions {
        let subscribers: Vec<&str> = order
            .iter()
            .copied()
            .filter(|id| input.members.get(*id).is_some_and(|m| m.topics.contains(topic)))
            .collect();
        if subscribers.is_empty() || count == 0 {
            continue;
        }
        // u64 arithmetic: no overflow for any partition count or member count.
        let n = subscribers.len() as u64;
        let count = u64::from(count);
        let (per_member, with_extra) = (count / n, count % n);
        for (i, id) in subscribers.into_iter().enumerate() {
            let i = i as u64;
            let start = per_member * i + i.min(with_extra);
            let len = per_member + u64::from(i < with_extra);
            if let Some(set) = out.get_mut(id) {
                // start + len <= count <= u32::MAX, so the conversion is exact.
                set.extend((start..start + len).map(|p| (topic.clone(), p as u32)));
            }
        }
    }
    out
}

fn round_robin(input: &AssignmentInput<'_>) -> Assignment {
    let mut out = empty_assignment(input.members);
    let order = kafka_order(input.members);
    let subscribed = |id: &str, topic: &str| input.members.get(id).is_some_and(|m| m.topics.contains(topic));
    let n = order.len();
    let mut next = 0usize;
    // The partitions map is sorted by topic, so this walks (topic, partition) pairs in sorted order.
    for (topic, &count) in input.partitions {
        for partition in 0..count {
            // The next member in turn that subscribes; none means nobody subscribes to the topic.
            let Some(k) = (0..n).map(|step| (next + step) % n).find(|&k| subscribed(order[k], topic)) else {
                break;
            };
            if let Some(set) = out.get_mut(order[k]) {
                set.insert((topic.clone(), partition));
            }
            next = (k + 1) % n;
        }
    }
    out
}

/// The member among `candidates` holding the fewest partitions (ties: the smallest member id).
fn least_loaded<'a>(candidates: &[&'a str], held: &BTreeMap<&'a str, BTreeSet<(&'a str, u32)>>) -> Option<&'a str> {
    candidates.iter().copied().min_by_key(|id| (held.get(id).map_or(0, BTreeSet::len), *id))
}

fn sticky(input: &AssignmentInput<'_>) -> Assignment {
    let members = input.members;
    let count_of = |topic: &str| input.partitions.get(topic).copied().unwrap_or(0);

    // Effective subscriptions: only topics that exist and have partitions matter.
    let subs: BTreeMap<&str, BTreeSet<&str>> = members
        .iter()
        .map(|(id, m)| (id.as_str(), m.topics.iter().map(String::as_str).filter(|t| count_of(t) > 0).collect()))
        .collect();
    // Topic -> its subscribers, by member id.
    let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, topics) in &subs {
        for topic in topics {
            subscribers.entry(topic).or_default().push(id);
        }
    }
    let participants: Vec<&str> = subs.iter().filter(|(_, topics)| !topics.is_empty()).map(|(id, _)| *id).collect();
    let mut out = empty_assignment(members);
    if participants.is_empty() {
        return out;
    }
    // A claim is valid if the claimant still subscribes to the topic and the partition exists.
    let valid = |id: &str, topic: &str, partition: u32| {
        subs.get(id).is_some_and(|topics| topics.contains(topic)) && partition < count_of(topic)
    };
    let owned = |id: &str| members.get(id).map(|m| &m.owned).into_iter().flatten();

    // How many owned partitions each member may keep.
    let mut quota: BTreeMap<&str, u64> = BTreeMap::new();
    let homogeneous = participants.windows(2).all(|w| subs.get(w[0]) == subs.get(w[1]));
    if homogeneous {
        // Everyone can take anything: min = total / n each, and total % n members one more. The extra
        // slots go to members that own more than min (in member id order), which keeps the most in place.
        let total: u64 = subscribers.keys().map(|t| u64::from(count_of(t))).sum();
        let n = participants.len() as u64;
        let (min, mut extra) = (total / n, total % n);
        for &id in &participants {
            let claims = owned(id).filter(|(t, p)| valid(id, t, *p)).count() as u64;
            let q = if extra > 0 && claims > min {
                extra -= 1;
                min + 1
            } else {
                min
            };
            quota.insert(id, q);
        }
    } else {
        // A fair share: per subscribed topic, its partitions over its subscribers, rounded up. Generous on
        // purpose; the balancing pass below takes back what is too much.
        for &id in &participants {
            let share = subs.get(id).into_iter().flatten().map(|t| {
                let n = subscribers.get(t).map_or(1, Vec::len).max(1) as u64;
                u64::from(count_of(t)).div_ceil(n)
            });
            quota.insert(id, share.sum());
        }
    }

    // Keep owned partitions up to the quota. A partition claimed by two members stays with the first (by
    // member id) that has room for it.
    let mut held: BTreeMap<&str, BTreeSet<(&str, u32)>> =
        participants.iter().map(|id| (*id, BTreeSet::new())).collect();
    let mut taken: BTreeSet<(&str, u32)> = BTreeSet::new();
    let mut prior: BTreeSet<(&str, &str, u32)> = BTreeSet::new();
    for &id in &participants {
        let q = quota.get(id).copied().unwrap_or(0);
        let Some(mine) = held.get_mut(id) else { continue };
        for (topic, partition) in owned(id) {
            if !valid(id, topic, *partition) {
                continue;
            }
            let topic = topic.as_str();
            prior.insert((id, topic, *partition));
            if mine.len() as u64 >= q || taken.contains(&(topic, *partition)) {
                continue;
            }
            taken.insert((topic, *partition));
            mine.insert((topic, *partition));
        }
    }

    // Hand out the rest, topics with the fewest subscribers first (they have the fewest choices), each
    // partition to its least-loaded subscriber.
    let mut unassigned: Vec<(usize, &str, u32)> = Vec::new();
    for (topic, subs_of_topic) in &subscribers {
        for partition in 0..count_of(topic) {
            if !taken.contains(&(*topic, partition)) {
                unassigned.push((subs_of_topic.len(), topic, partition));
            }
        }
    }
    unassigned.sort_unstable();
    for (_, topic, partition) in unassigned {
        let best = subscribers.get(topic).and_then(|candidates| least_loaded(candidates, &held));
        if let Some(set) = best.and_then(|best| held.get_mut(best)) {
            set.insert((topic, partition));
        }
    }

    // Balance: while some member holds a partition that a co-subscriber holding at least two fewer could
    // take, move it, preferring partitions the member did not own before. Each move lowers the sum of
    // squared loads, so this ends; with identical subscriptions the quotas above leave nothing to move.
    let load = |held: &BTreeMap<&str, BTreeSet<(&str, u32)>>, id: &str| held.get(id).map_or(0, BTreeSet::len);
    loop {
        let floor = participants.iter().map(|id| load(&held, id)).min().unwrap_or(0);
        let mut order = participants.clone();
        order.sort_by_key(|id| (Reverse(load(&held, id)), *id));
        let mut found = None;
        'search: for from in order {
            let from_load = load(&held, from);
            if from_load < floor + 2 {
                break;
            }
            let (fresh, kept): (Vec<_>, Vec<_>) =
                held.get(from).into_iter().flatten().copied().partition(|(t, p)| !prior.contains(&(from, *t, *p)));
            for (topic, partition) in fresh.into_iter().chain(kept) {
                let to = subscribers.get(topic).and_then(|candidates| least_loaded(candidates, &held));
                if let Some(to) = to
                    && load(&held, to) + 2 <= from_load
                {
                    found = Some((from, to, topic, partition));
                    break 'search;
                }
            }
        }
        let Some((from, to, topic, partition)) = found else { break };
        if let Some(set) = held.get_mut(from) {
            set.remove(&(topic, partition));
        }
        if let Some(set) = held.get_mut(to) {
            set.insert((topic, partition));
        }
    }

    for (id, set) in held {
        if let Some(slot) = out.get_mut(id) {
            *slot = set.into_iter().map(|(t, p)| (t.to_string(), p)).collect();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky];

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn member(subscribed: &[&str], owned: &[(&str, u32)]) -> MemberSubscription {
        MemberSubscription {
            topics: topics(subscribed),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            instance_id: None,
        }
    }

    fn counts(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
        entries.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn run(
        assignor: Assignor,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<String, u32>,
    ) -> Assignment {
        assignor.assign(&AssignmentInput { members, partitions })
    }

    fn sizes(assignment: &Assignment) -> Vec<usize> {
        assignment.values().map(BTreeSet::len).collect()
    }

    /// How many partitions now sit with a member that did not hold them before.
    fn moved(before: &Assignment, after: &Assignment) -> usize {
        let owner_before: BTreeMap<&(String, u32), &String> =
            before.iter().flat_map(|(id, set)| set.iter().map(move |tp| (tp, id))).collect();
        after
            .iter()
            .flat_map(|(id, set)| set.iter().map(move |tp| (tp, id)))
            .filter(|(tp, id)| owner_before.get(tp) != Some(id))
            .count()
    }

    /// Members whose `owned` is what `assignment` gave them, subscribed to `subscribed`.
    fn owning(assignment: &Assignment, subscribed: &[&str]) -> BTreeMap<String, MemberSubscription> {
        assignment
            .iter()
            .map(|(id, set)| {
                (id.clone(), MemberSubscription { topics: topics(subscribed), owned: set.clone(), instance_id: None })
            })
            .collect()
    }

    #[test]
    fn three_members_six_partitions_two_each() {
        let members: BTreeMap<String, MemberSubscription> =
            ["a", "b", "c"].iter().map(|id| (id.to_string(), member(&["t"], &[]))).collect();
        let partitions = counts(&[("t", 6)]);
        for assignor in ALL {
            let out = run(assignor, &members, &partitions);
            assert_eq!(sizes(&out), vec![2, 2, 2], "{assignor}");
            let all: BTreeSet<_> = out.values().flatten().cloned().collect();
            assert_eq!(all.len(), 6, "{assignor}: every partition assigned once");
        }
        let range = run(Assignor::Range, &members, &partitions);
        let expect = |ps: &[u32]| ps.iter().map(|p| ("t".to_string(), *p)).collect::<BTreeSet<_>>();
        assert_eq!(range["a"], expect(&[0, 1]));
        assert_eq!(range["b"], expect(&[2, 3]));
        assert_eq!(range["c"], expect(&[4, 5]));
        let rr = run(Assignor::RoundRobin, &members, &partitions);
        assert_eq!(rr["a"], expect(&[0, 3]));
        assert_eq!(rr["b"], expect(&[1, 4]));
        assert_eq!(rr["c"], expect(&[2, 5]));
    }

    #[test]
    fn range_extra_partitions_go_first_and_static_members_sort_by_instance_id() {
        let mut members: BTreeMap<String, MemberSubscription> =
            ["a", "b", "c"].iter().map(|id| (id.to_string(), member(&["t"], &[]))).collect();
        let partitions = counts(&[("t", 7)]);
        let out = run(Assignor::Range, &members, &partitions);
        assert_eq!(sizes(&out), vec![3, 2, 2]);
        // Static members come first, ordered by instance id: c ("i1"), then b ("i2"), then a (dynamic).
        members.get_mut("c").unwrap().instance_id = Some("i1".into());
        members.get_mut("b").unwrap().instance_id = Some("i2".into());
        let out = run(Assignor::Range, &members, &partitions);
        let expect = |ps: &[u32]| ps.iter().map(|p| ("t".to_string(), *p)).collect::<BTreeSet<_>>();
        assert_eq!(out["c"], expect(&[0, 1, 2]));
        assert_eq!(out["b"], expect(&[3, 4]));
        assert_eq!(out["a"], expect(&[5, 6]));
    }

    #[test]
    fn sticky_member_joins_moves_the_minimum() {
        let members: BTreeMap<String, MemberSubscription> =
            ["a", "b", "c"].iter().map(|id| (id.to_string(), member(&["t"], &[]))).collect();
        let partitions = counts(&[("t", 6)]);
        let before = run(Assignor::Sticky, &members, &partitions);
        assert_eq!(sizes(&before), vec![2, 2, 2]);

        let mut joined = owning(&before, &["t"]);
        joined.insert("d".into(), member(&["t"], &[]));
        let after = run(Assignor::Sticky, &joined, &partitions);
        let mut counts_after = sizes(&after);
        counts_after.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!(counts_after, vec![2, 2, 1, 1]);
        // d must end with one partition and the three others together give up exactly that one: the
        // least possible movement is a single partition, and nothing else moves.
        assert_eq!(after["d"].len(), 1);
        assert_eq!(moved(&before, &after), 1);
        for id in ["a", "b", "c"] {
            assert!(after[id].is_subset(&before[id]), "{id} only gives up partitions");
        }
    }

    #[test]
    fn sticky_member_leaves_moves_only_its_partitions() {
        let members: BTreeMap<String, MemberSubscription> =
            ["a", "b", "c"].iter().map(|id| (id.to_string(), member(&["t"], &[]))).collect();
        let partitions = counts(&[("t", 6)]);
        let before = run(Assignor::Sticky, &members, &partitions);
        let mut left = owning(&before, &["t"]);
        left.remove("b");
        let after = run(Assignor::Sticky, &left, &partitions);
        assert_eq!(sizes(&after), vec![3, 3]);
        for id in ["a", "c"] {
            assert!(before[id].is_subset(&after[id]), "{id} keeps everything it had");
        }
        assert_eq!(moved(&before, &after), before["b"].len());
    }

    #[test]
    fn sticky_drops_stale_claims_and_splits_double_claims() {
        // a claims a partition of a topic it left and one that does not exist; a and b both claim t-0.
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), member(&["t"], &[("t", 0), ("t", 9), ("u", 0)]));
        members.insert("b".to_string(), member(&["t", "gone"], &[("t", 0), ("t", 1)]));
        let partitions = counts(&[("t", 4), ("u", 2)]);
        let out = run(Assignor::Sticky, &members, &partitions);
        assert_eq!(sizes(&out), vec![2, 2]);
        let holders = out.values().filter(|set| set.contains(&("t".to_string(), 0))).count();
        assert_eq!(holders, 1);
        assert!(out["b"].contains(&("t".to_string(), 1)));
        assert!(out.values().flatten().all(|(t, _)| t == "t"), "nobody subscribes to u");
        assert_eq!(out, run(Assignor::Sticky, &members, &partitions), "deterministic");
    }

    #[test]
    fn different_subscriptions_respect_topics() {
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), member(&["x"], &[]));
        members.insert("b".to_string(), member(&["x", "y"], &[]));
        let partitions = counts(&[("x", 4), ("y", 3)]);
        for assignor in ALL {
            let out = run(assignor, &members, &partitions);
            assert!(out["a"].iter().all(|(t, _)| t == "x"), "{assignor}: a only reads x");
            let all: Vec<_> = out.values().flatten().cloned().collect();
            let distinct: BTreeSet<_> = all.iter().cloned().collect();
            assert_eq!(all.len(), 7, "{assignor}");
            assert_eq!(distinct.len(), 7, "{assignor}: every partition exactly once");
        }
        // Sticky balances across the subscriptions: b takes y, so a should take most of x.
        let sticky = run(Assignor::Sticky, &members, &partitions);
        assert!(sizes(&sticky).iter().all(|n| (3..=4).contains(n)), "{sticky:?}");
    }

    #[test]
    fn empty_and_degenerate_inputs() {
        let none = BTreeMap::new();
        let partitions = counts(&[("t", 3), ("zero", 0)]);
        let mut members = BTreeMap::new();
        members.insert("a".to_string(), member(&["missing", "zero"], &[("missing", 0)]));
        members.insert("b".to_string(), member(&[], &[("t", 1)]));
        for assignor in ALL {
            assert!(run(assignor, &none, &partitions).is_empty());
            let out = run(assignor, &members, &partitions);
            assert_eq!(out.len(), 2, "{assignor}: every member listed");
            assert!(out.values().all(BTreeSet::is_empty), "{assignor}: nothing assignable");
            assert!(run(assignor, &members, &BTreeMap::new()).values().all(BTreeSet::is_empty));
        }
    }

    #[test]
    fn parse_and_name_round_trip() {
        for assignor in ALL {
            assert_eq!(Assignor::parse(assignor.name()), Ok(assignor));
            assert_eq!(assignor.to_string().parse::<Assignor>(), Ok(assignor));
        }
        assert_eq!(Assignor::parse("Round-Robin"), Ok(Assignor::RoundRobin));
        assert_eq!(Assignor::parse("COOPERATIVE-STICKY"), Ok(Assignor::Sticky));
        assert_eq!(Assignor::parse("RANGE"), Ok(Assignor::Range));
        assert_eq!(Assignor::default(), Assignor::Range);
        let err = Assignor::parse("uniform").unwrap_err();
        assert!(err.contains("uniform"), "{err}");
        for name in ["range", "roundrobin", "sticky"] {
            assert!(err.contains(name), "{err} lists {name}");
        }
    }

    /// A tiny deterministic generator (Knuth's MMIX LCG), so the property test needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if n == 0 { 0 } else { (self.0 >> 33) % n }
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// The partitions sticky must keep at best when owned claims are disjoint and subscriptions identical.
    fn most_keepable(members: &BTreeMap<String, MemberSubscription>, partitions: &BTreeMap<String, u32>) -> usize {
        let total: usize = partitions.values().map(|n| *n as usize).sum();
        let n = members.len();
        let (min, extra) = (total / n, total % n);
        let mut claims: Vec<usize> = members
            .values()
            .map(|m| m.owned.iter().filter(|(t, p)| partitions.get(t).is_some_and(|n| p < n)).count())
            .collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims.iter().enumerate().map(|(i, c)| (*c).min(if i < extra { min + 1 } else { min })).sum()
    }

    #[test]
    fn invariants_hold_on_pseudo_random_inputs() {
        let mut rng = Lcg(0x5eed);
        let names = ["a", "b", "c", "d", "e"];
        // How often the conditional checks ran, so the test cannot pass by never reaching them.
        let (mut balance_checks, mut keep_checks) = (0, 0);
        for case in 0..600 {
            // Topics: some exist (possibly with 0 partitions), "ghost" never does.
            let mut partitions = BTreeMap::new();
            for topic in names {
                if rng.chance(80) {
                    partitions.insert(topic.to_string(), rng.below(9) as u32);
                }
            }
            let identical = case % 2 == 0;
            let shared: Vec<&str> = names.iter().chain(["ghost"].iter()).copied().filter(|_| rng.chance(50)).collect();
            let mut members = BTreeMap::new();
            let mut claimed = BTreeSet::new();
            let disjoint_claims = rng.chance(50);
            for m in 0..rng.below(7) {
                let subscribed: Vec<&str> = if identical {
                    shared.clone()
                } else {
                    names.iter().chain(["ghost"].iter()).copied().filter(|_| rng.chance(40)).collect()
                };
                let mut sub = member(&subscribed, &[]);
                for _ in 0..rng.below(6) {
                    // Claims on anything, including unsubscribed, missing and out-of-range partitions.
                    let tp = (names[rng.below(5) as usize].to_string(), rng.below(10) as u32);
                    if !disjoint_claims || claimed.insert(tp.clone()) {
                        sub.owned.insert(tp);
                    }
                }
                if rng.chance(30) {
                    sub.instance_id = Some(format!("i{}", rng.below(4)));
                }
                members.insert(format!("m{m}"), sub);
            }

            // Every partition of an existing topic with a subscriber.
            let mut expected = BTreeMap::new();
            for (topic, n) in &partitions {
                let subscribers: BTreeSet<&String> =
                    members.iter().filter(|(_, m)| m.topics.contains(topic)).map(|(id, _)| id).collect();
                if !subscribers.is_empty() {
                    for p in 0..*n {
                        expected.insert((topic.clone(), p), subscribers.clone());
                    }
                }
            }

            for assignor in ALL {
                let ctx = format!("case {case}, {assignor}, members {members:?}, partitions {partitions:?}");
                let out = run(assignor, &members, &partitions);
                assert_eq!(out, run(assignor, &members, &partitions), "deterministic: {ctx}");
                assert!(out.keys().eq(members.keys()), "every member present: {ctx}");
                let mut seen = BTreeSet::new();
                for (id, set) in &out {
                    for tp in set {
                        let subscribers = expected.get(tp);
                        assert!(subscribers.is_some(), "{tp:?} is not assignable: {ctx}");
                        assert!(subscribers.is_some_and(|s| s.contains(id)), "{id} not subscribed to {tp:?}: {ctx}");
                        assert!(seen.insert(tp.clone()), "{tp:?} assigned twice: {ctx}");
                    }
                }
                assert_eq!(seen.len(), expected.len(), "every partition assigned: {ctx}");

                if assignor == Assignor::Sticky {
                    // No partition could move to a co-subscriber holding two fewer.
                    for (id, set) in &out {
                        for tp in set {
                            for other in &expected[tp] {
                                assert!(out[*other].len() + 2 > set.len(), "{id} -> {other} would balance: {ctx}");
                            }
                        }
                    }
                }
                let participants: Vec<usize> = out
                    .iter()
                    .filter(|(id, _)| members[*id].topics.iter().any(|t| partitions.get(t).is_some_and(|n| *n > 0)))
                    .map(|(_, set)| set.len())
                    .collect();
                if identical && assignor != Assignor::Range && !participants.is_empty() {
                    let (lo, hi) = (participants.iter().min(), participants.iter().max());
                    assert!(hi.unwrap() - lo.unwrap() <= 1, "balanced: {out:?}: {ctx}");
                    balance_checks += 1;
                    if assignor == Assignor::Sticky && disjoint_claims {
                        let relevant: BTreeMap<String, u32> = partitions
                            .iter()
                            .filter(|(t, _)| shared.contains(&t.as_str()))
                            .map(|(t, n)| (t.clone(), *n))
                            .collect();
                        let stayed =
                            out.iter().map(|(id, set)| set.intersection(&members[id].owned).count()).sum::<usize>();
                        let subscribed_claims: BTreeMap<String, MemberSubscription> = members
                            .iter()
                            .map(|(id, m)| {
                                let owned = m.owned.iter().filter(|(t, _)| m.topics.contains(t)).cloned().collect();
                                (id.clone(), MemberSubscription { owned, ..m.clone() })
                            })
                            .collect();
                        assert_eq!(
                            stayed,
                            most_keepable(&subscribed_claims, &relevant),
                            "sticky keeps the most: {ctx}"
                        );
                        keep_checks += 1;
                    }
                }
            }
        }
        assert!(balance_checks >= 200 && keep_checks >= 50, "too few checks: {balance_checks}, {keep_checks}");
    }
}
