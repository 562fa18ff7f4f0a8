//! The group coordinator through the core's public calls, on a real registry (RocksDB and both engines in
//! a temporary directory), under tokio's paused clock: every timeout is exact and the tests take no
//! wall-clock time waiting.
//!
//! A simulated broker-assigned member behaves as the client library does: it keeps what an answer grants,
//! gives up what an answer leaves out, and reports what it holds in its next heartbeat. After every
//! heartbeat the tests check that no partition is held by two members.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use janus_core::groups::{
    Assignor, CommitAs, GroupConfig, GroupMode, GroupState, JoinGroupRequest, JoinOutcome, MemberAssignment,
    MemberHeartbeat, SyncGroupRequest, TopicPartitions,
};
use janus_core::{Core, ErrorCode};
use tokio::sync::watch;
use tokio::time::sleep;

/// A core with its coordinator timer running; dropping it stops the timer.
struct TestCore {
    core: Core,
    _shutdown: watch::Sender<bool>,
    timers: tokio::task::JoinHandle<()>,
}

impl TestCore {
    /// Stops the timer and closes the store, as a broker shutdown does, so the directory can be reopened.
    async fn close(self) {
        let _ = self._shutdown.send(true);
        self.timers.await.unwrap();
        self.core.registry().shutdown().unwrap();
    }
}

fn test_config() -> GroupConfig {
    GroupConfig { initial_rebalance_delay: Duration::ZERO, ..GroupConfig::default() }
}

fn open(dir: &Path, config: GroupConfig) -> TestCore {
    let (core, tx) = crate::common::open_core(dir, config, janus_core::messaging::MessagingConfig::default());
    let rx = tx.subscribe();
    let timers = tokio::spawn(Arc::clone(core.coordinator()).run_timers(rx));
    TestCore { core, _shutdown: tx, timers }
}

async fn topic(core: &Core, name: &str, partitions: u32) {
    core.create_topic(name.to_string(), None, partitions, BTreeMap::new()).await.unwrap();
}

/// A broker-assigned member as the client library runs one.
#[derive(Clone, Debug)]
struct Member {
    group: String,
    id: String,
    generation: i32,
    instance: Option<String>,
    topics: Vec<String>,
    owned: TopicPartitions,
    assignor: Option<Assignor>,
    mode: GroupMode,
}

impl Member {
    fn new(group: &str, topics: &[&str]) -> Member {
        Member {
            group: group.into(),
            id: String::new(),
            generation: 0,
            instance: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: TopicPartitions::new(),
            assignor: None,
            mode: GroupMode::Clustering,
        }
    }

    fn request(&self) -> MemberHeartbeat {
        MemberHeartbeat {
            group: self.group.clone(),
            member_id: self.id.clone(),
            generation: self.generation,
            instance_id: self.instance.clone(),
            client_id: "test".into(),
            client_host: "127.0.0.1".into(),
            topics: self.topics.clone(),
            owned: self.owned.clone(),
            session_timeout: None,
            rebalance_timeout: None,
            assignor: self.assignor,
            mode: self.mode,
        }
    }

    async fn heartbeat(&mut self, core: &Core) -> MemberAssignment {
        let answer = core.heartbeat_group(self.request()).await.unwrap();
        self.id.clone_from(&answer.member_id);
        self.generation = answer.generation;
        self.owned = answer.assignment.clone();
        answer
    }

    fn count(&self) -> usize {
        self.owned.values().map(Vec::len).sum()
    }

    fn pairs(&self) -> BTreeSet<(String, u32)> {
        self.owned.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p))).collect()
    }

    fn commit_as(&self) -> CommitAs {
        CommitAs { member_id: self.id.clone(), generation: self.generation, instance_id: self.instance.clone() }
    }
}

/// No partition is held by two members.
fn assert_exclusive(members: &[&Member]) {
    let mut seen = BTreeSet::new();
    for m in members {
        for tp in m.pairs() {
            assert!(seen.insert(tp.clone()), "{tp:?} is held by two members: {members:#?}");
        }
    }
}

/// Heartbeats every member in turn, `rounds` times, checking exclusivity after each heartbeat.
async fn rounds(core: &Core, members: &mut [&mut Member], rounds: usize) {
    for _ in 0..rounds {
        for i in 0..members.len() {
            members[i].heartbeat(core).await;
            let all: Vec<&Member> = members.iter().map(|m| &**m).collect();
            assert_exclusive(&all);
        }
    }
}

/// Two members of group `g` on `orders`, joined and settled (each holding its share).
async fn settled_pair(core: &Core) -> (Member, Member) {
    let (mut a, mut b) = (Member::new("g", &["orders"]), Member::new("g", &["orders"]));
    a.heartbeat(core).await;
    b.heartbeat(core).await;
    rounds(core, &mut [&mut a, &mut b], 2).await;
    (a, b)
}

/// `times` heartbeats of `m`, one every 3 s (as a live member while another has died), checking after each
/// that `others` and `m` hold no partition twice.
async fn keep_alive(core: &Core, m: &mut Member, others: &[&Member], times: usize) {
    for _ in 0..times {
        sleep(Duration::from_secs(3)).await;
        m.heartbeat(core).await;
        let mut all: Vec<&Member> = others.to_vec();
        all.push(m);
        assert_exclusive(&all);
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, janus_core::BrokerError>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

#[tokio::test(start_paused = true)]
async fn three_members_share_six_partitions_two_each() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 6).await;
    let (mut a, mut b, mut c) =
        (Member::new("g", &["orders"]), Member::new("g", &["orders"]), Member::new("g", &["orders"]));
    a.heartbeat(&t.core).await;
    assert_eq!(a.count(), 6, "a lone member reads everything");
    b.heartbeat(&t.core).await;
    c.heartbeat(&t.core).await;
    rounds(&t.core, &mut [&mut a, &mut b, &mut c], 3).await;
    assert_eq!([a.count(), b.count(), c.count()], [2, 2, 2]);
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members.len(), 3);
    assert_eq!(d.generation, 3, "one rebalance per join");
    assert_eq!(d.protocol, "janus");
    assert_eq!(d.assignor, "range");
    assert!(d.partitions.iter().all(|p| p.owner.is_some()), "{:?}", d.partitions);
}

#[tokio::test(start_paused = true)]
async fn a_fourth_member_moves_the_fewest_partitions_with_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 6).await;
    let mut ms: Vec<Member> = (0..3)
        .map(|_| {
            let mut m = Member::new("g", &["orders"]);
            m.assignor = Some(Assignor::Sticky);
            m
        })
        .collect();
    for m in ms.iter_mut() {
        m.heartbeat(&t.core).await;
    }
    {
        let mut refs: Vec<&mut Member> = ms.iter_mut().collect();
        rounds(&t.core, &mut refs, 3).await;
    }
    let before: Vec<BTreeSet<(String, u32)>> = ms.iter().map(Member::pairs).collect();
    assert!(before.iter().all(|s| s.len() == 2));
    let mut d = Member::new("g", &["orders"]);
    d.assignor = Some(Assignor::Sticky);
    d.heartbeat(&t.core).await;
    ms.push(d);
    {
        let mut refs: Vec<&mut Member> = ms.iter_mut().collect();
        rounds(&t.core, &mut refs, 3).await;
    }
    let mut counts: Vec<usize> = ms.iter().map(Member::count).collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 1, 2, 2]);
    let kept: usize = before.iter().zip(&ms).map(|(b, m)| b.intersection(&m.pairs()).count()).sum();
    assert_eq!(6 - kept, 1, "exactly one partition moved (to the new member): the fewest possible");
    assert_eq!(ms[3].count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_clean_leave_hands_partitions_to_the_others_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 4).await;
    let (a, mut b) = settled_pair(&t.core).await;
    assert_eq!([a.count(), b.count()], [2, 2]);
    let generation = b.generation;
    t.core.leave_group("g", &a.id, None).await.unwrap();
    b.heartbeat(&t.core).await;
    assert_eq!(b.count(), 4);
    assert_eq!(b.generation, generation + 1);
    assert_eq!(code(t.core.heartbeat_group(a.request()).await), ErrorCode::UnknownMemberId);
    t.core.leave_group("g", &b.id, None).await.unwrap();
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.state, GroupState::Empty);
    assert!(d.members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_killed_member_is_expelled_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 4).await;
    let (a, mut b) = settled_pair(&t.core).await;
    // `a` dies without leaving; `b` heartbeats every 3 s.
    keep_alive(&t.core, &mut b, &[&a], 13).await;
    assert_eq!(b.count(), 2, "39 s in, a's partitions are still a's (session timeout 45 s)");
    keep_alive(&t.core, &mut b, &[], 3).await;
    assert_eq!(b.count(), 4, "48 s in, a was expelled and b reads everything");
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.state, GroupState::Stable);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_gives_up_partitions_is_expelled_after_the_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 4).await;
    let mut a = Member::new("g", &["orders"]);
    a.heartbeat(&t.core).await;
    let held = a.owned.clone();
    let mut b = Member::new("g", &["orders"]);
    b.heartbeat(&t.core).await;
    // `a` heartbeats but keeps reporting every partition (it is stuck processing).
    for _ in 0..19 {
        a.owned = held.clone();
        let _ = t.core.heartbeat_group(a.request()).await.unwrap();
        b.heartbeat(&t.core).await;
        assert_eq!(b.count(), 0, "b gets nothing while a holds everything");
        sleep(Duration::from_secs(3)).await;
    }
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.state, GroupState::CompletingRebalance);
    sleep(Duration::from_secs(4)).await;
    b.heartbeat(&t.core).await;
    assert_eq!(b.count(), 4, "after 60 s (the rebalance timeout) a is expelled");
    a.owned = held;
    assert_eq!(code(t.core.heartbeat_group(a.request()).await), ErrorCode::UnknownMemberId);
    assert_eq!(t.core.describe_group("g").await.unwrap().state, GroupState::Stable);
}

#[tokio::test(start_paused = true)]
async fn a_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 4).await;
    let mut s = Member::new("g", &["orders"]);
    s.instance = Some("billing-1".into());
    let mut d = Member::new("g", &["orders"]);
    s.heartbeat(&t.core).await;
    d.heartbeat(&t.core).await;
    rounds(&t.core, &mut [&mut s, &mut d], 2).await;
    let (generation, mine) = (s.generation, s.owned.clone());
    // The process dies and a new one starts 10 s later with the same instance id and nothing owned.
    sleep(Duration::from_secs(10)).await;
    d.heartbeat(&t.core).await;
    let mut restarted = Member::new("g", &["orders"]);
    restarted.instance = Some("billing-1".into());
    let answer = restarted.heartbeat(&t.core).await;
    assert_eq!(answer.generation, generation, "no rebalance");
    assert_eq!(answer.assignment, mine, "the same partitions");
    assert_ne!(restarted.id, s.id);
    d.heartbeat(&t.core).await;
    assert_eq!(d.generation, generation);
    assert_exclusive(&[&restarted, &d]);
    // The old process, if it were still alive, is fenced.
    assert_eq!(code(t.core.heartbeat_group(s.request()).await), ErrorCode::FencedInstanceId);
}

#[tokio::test(start_paused = true)]
async fn a_zombie_cannot_commit_after_its_partitions_moved() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 2).await;
    let (a, mut b) = settled_pair(&t.core).await;
    let a_partition = a.owned["orders"][0];
    let b_partition = b.owned["orders"][0];
    t.core.commit_offsets("g", "orders", &[(a_partition, 5)], Some(&a.commit_as())).await.unwrap();
    let refused = t.core.commit_offsets("g", "orders", &[(b_partition, 5)], Some(&a.commit_as())).await;
    assert_eq!(code(refused), ErrorCode::PartitionNotAssigned);
    let tool = t.core.commit_offsets("g", "orders", &[(a_partition, 0)], None).await;
    assert_eq!(code(tool), ErrorCode::UnknownMemberId, "no commits without a member while the group has members");
    assert_eq!(
        code(t.core.reset_offsets("g", "orders", None, Some(janus_core::Position::Earliest)).await),
        ErrorCode::UnknownMemberId
    );
    // `a` stalls; after its session timeout `b` owns both partitions.
    keep_alive(&t.core, &mut b, &[], 16).await;
    assert_eq!(b.count(), 2);
    let zombie = t.core.commit_offsets("g", "orders", &[(a_partition, 9)], Some(&a.commit_as())).await;
    assert_eq!(code(zombie), ErrorCode::UnknownMemberId);
    t.core.commit_offsets("g", "orders", &[(a_partition, 7)], Some(&b.commit_as())).await.unwrap();
    let stale = CommitAs { generation: b.generation - 5, ..b.commit_as() };
    assert_eq!(
        code(t.core.commit_offsets("g", "orders", &[(a_partition, 8)], Some(&stale)).await),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(t.core.committed_offsets("g", "orders", None).await.unwrap(), vec![(a_partition, 7)]);
    t.core.leave_group("g", &b.id, None).await.unwrap();
    t.core.commit_offsets("g", "orders", &[(a_partition, 1)], None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_groups_on_one_topic_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 3).await;
    let (mut a, mut b) = (Member::new("billing", &["orders"]), Member::new("audit", &["orders"]));
    a.heartbeat(&t.core).await;
    b.heartbeat(&t.core).await;
    assert_eq!([a.count(), b.count()], [3, 3]);
    t.core.commit_offsets("billing", "orders", &[(0, 4)], Some(&a.commit_as())).await.unwrap();
    assert!(t.core.committed_offsets("audit", "orders", None).await.unwrap().is_empty());
    let listed: Vec<(String, usize)> =
        t.core.list_groups().await.unwrap().into_iter().map(|l| (l.group, l.members)).collect();
    assert_eq!(listed, vec![("audit".to_string(), 1), ("billing".to_string(), 1)]);
}

#[tokio::test(start_paused = true)]
async fn broadcasting_members_each_read_every_partition_with_their_own_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "prices", 3).await;
    let mut a = Member::new("g", &["prices"]);
    a.mode = GroupMode::Broadcasting;
    a.instance = Some("host-a".into());
    let mut b = a.clone();
    b.instance = Some("host-b".into());
    a.heartbeat(&t.core).await;
    b.heartbeat(&t.core).await;
    a.heartbeat(&t.core).await;
    assert_eq!([a.count(), b.count()], [3, 3]);
    t.core.commit_offsets("g", "prices", &[(0, 10)], Some(&a.commit_as())).await.unwrap();
    t.core.commit_offsets("g", "prices", &[(0, 20)], Some(&b.commit_as())).await.unwrap();
    assert_eq!(t.core.committed_offsets("g", "prices", Some(&a.id)).await.unwrap(), vec![(0, 10)]);
    assert_eq!(t.core.committed_offsets("g", "prices", Some(&b.id)).await.unwrap(), vec![(0, 20)]);
    let mut clustering = Member::new("g", &["prices"]);
    assert_eq!(code(t.core.heartbeat_group(clustering.request()).await), ErrorCode::InconsistentGroupProtocol);
    // Two dynamic broadcasting members with one client id would share offsets: the second is refused.
    let mut first = Member::new("g", &["prices"]);
    first.mode = GroupMode::Broadcasting;
    first.heartbeat(&t.core).await;
    let twin = Member { id: String::new(), generation: 0, ..first.clone() };
    assert_eq!(code(t.core.heartbeat_group(twin.request()).await), ErrorCode::InvalidArgument);
    t.core.leave_group("g", &first.id, None).await.unwrap();
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.mode, GroupMode::Broadcasting);
    let owners: BTreeSet<Option<String>> = d.partitions.iter().map(|p| p.offsets_of.clone()).collect();
    assert!(owners.contains(&Some("host-a".into())) && owners.contains(&Some("host-b".into())), "{d:?}");
    clustering.mode = GroupMode::Broadcasting;
    clustering.heartbeat(&t.core).await;
    assert_eq!(clustering.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_initial_rebalance_delay_gathers_members_before_the_first_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let config = GroupConfig { initial_rebalance_delay: Duration::from_secs(3), ..GroupConfig::default() };
    let t = open(dir.path(), config);
    topic(&t.core, "orders", 4).await;
    let (mut a, mut b) = (Member::new("g", &["orders"]), Member::new("g", &["orders"]));
    let first = a.heartbeat(&t.core).await;
    assert_eq!(first.state, GroupState::PreparingRebalance);
    assert_eq!(a.count(), 0);
    sleep(Duration::from_secs(1)).await;
    b.heartbeat(&t.core).await;
    assert_eq!(b.count(), 0);
    sleep(Duration::from_secs(3)).await;
    rounds(&t.core, &mut [&mut a, &mut b], 1).await;
    assert_eq!([a.count(), b.count()], [2, 2], "the first assignment already shares the partitions");
    assert_eq!(a.generation, 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_broker_restart_members_carry_on_and_the_generation_keeps_rising() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b);
    {
        let t = open(dir.path(), test_config());
        topic(&t.core, "orders", 4).await;
        a = Member::new("g", &["orders"]);
        b = Member::new("g", &["orders"]);
        a.heartbeat(&t.core).await;
        b.heartbeat(&t.core).await;
        rounds(&t.core, &mut [&mut a, &mut b], 2).await;
        t.core.commit_offsets("g", "orders", &[(a.owned["orders"][0], 3)], Some(&a.commit_as())).await.unwrap();
        // A member joins and leaves again: the generation moves on twice, and `a` and `b` are told so in
        // answers that change nothing else; the restarted broker must still accept their generation.
        let mut passing = Member::new("g", &["orders"]);
        passing.heartbeat(&t.core).await;
        rounds(&t.core, &mut [&mut a, &mut b, &mut passing], 3).await;
        t.core.leave_group("g", &passing.id, None).await.unwrap();
        rounds(&t.core, &mut [&mut a, &mut b], 3).await;
        t.close().await;
    }
    let t = open(dir.path(), test_config());
    let d = t.core.describe_group("g").await.unwrap();
    assert_eq!(d.generation, a.generation);
    assert_eq!(d.members.len(), 2);
    let (held_a, held_b) = (a.owned.clone(), b.owned.clone());
    a.heartbeat(&t.core).await;
    b.heartbeat(&t.core).await;
    assert_eq!((a.owned.clone(), b.owned.clone()), (held_a, held_b), "same members, same partitions");
    let mut c = Member::new("g", &["orders"]);
    c.heartbeat(&t.core).await;
    assert_eq!(c.generation, a.generation + 1);
    rounds(&t.core, &mut [&mut a, &mut b, &mut c], 3).await;
    assert_eq!(a.count() + b.count() + c.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn bad_membership_input_gets_clear_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 2).await;
    let mut a = Member::new("g", &["orders"]);
    a.heartbeat(&t.core).await;
    let before = t.core.describe_group("g").await.unwrap();
    let cases: Vec<(MemberHeartbeat, ErrorCode)> = vec![
        (MemberHeartbeat { member_id: "forged".into(), ..a.request() }, ErrorCode::UnknownMemberId),
        (MemberHeartbeat { generation: a.generation + 7, ..a.request() }, ErrorCode::IllegalGeneration),
        (
            MemberHeartbeat { session_timeout: Some(Duration::from_secs(1)), ..a.request() },
            ErrorCode::InvalidSessionTimeout,
        ),
        (
            MemberHeartbeat { session_timeout: Some(Duration::from_secs(3600)), ..a.request() },
            ErrorCode::InvalidSessionTimeout,
        ),
        (MemberHeartbeat { group: String::new(), ..a.request() }, ErrorCode::InvalidArgument),
        (MemberHeartbeat { group: "g".repeat(256), ..a.request() }, ErrorCode::InvalidArgument),
        (MemberHeartbeat { member_id: "m".repeat(256), ..a.request() }, ErrorCode::InvalidArgument),
        (MemberHeartbeat { topics: vec![], ..a.request() }, ErrorCode::InvalidArgument),
        (
            MemberHeartbeat { member_id: String::new(), topics: vec!["nope".into()], ..a.request() },
            ErrorCode::UnknownTopic,
        ),
        (MemberHeartbeat { instance_id: Some(String::new()), ..a.request() }, ErrorCode::InvalidArgument),
        (MemberHeartbeat { assignor: Some(Assignor::Sticky), ..a.request() }, ErrorCode::InconsistentGroupProtocol),
    ];
    for (request, expected) in cases {
        let error = t.core.heartbeat_group(request.clone()).await.expect_err("refused");
        assert_eq!(error.code(), expected, "{request:?}: {error}");
        assert!(!error.message().is_empty());
    }
    assert_eq!(code(t.core.leave_group("g", "forged", None).await), ErrorCode::UnknownMemberId);
    assert_eq!(code(t.core.leave_group("nope", "x", None).await), ErrorCode::UnknownMemberId);
    let mut stranger = Member::new("other", &["orders"]);
    stranger.id = "made-up".into();
    assert_eq!(code(t.core.heartbeat_group(stranger.request()).await), ErrorCode::UnknownMemberId);
    assert_eq!(code(t.core.describe_group("other").await), ErrorCode::UnknownGroup, "a refused join leaves no group");
    let after = t.core.describe_group("g").await.unwrap();
    assert_eq!((after.generation, after.members.len()), (before.generation, before.members.len()));
}

#[tokio::test(start_paused = true)]
async fn offsets_of_a_group_without_members_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = GroupConfig { offsets_retention: Duration::from_millis(50), ..test_config() };
    let t = open(dir.path(), config);
    topic(&t.core, "orders", 2).await;
    t.core.commit_offsets("idle", "orders", &[(0, 1)], None).await.unwrap();
    let mut a = Member::new("busy", &["orders"]);
    a.heartbeat(&t.core).await;
    t.core.commit_offsets("busy", "orders", &[(0, 1)], Some(&a.commit_as())).await.unwrap();
    // Retention counts wall-clock time (it must survive restarts).
    std::thread::sleep(std::time::Duration::from_millis(120));
    let removed = t.core.expire_offsets().await.unwrap();
    assert_eq!(removed, vec!["idle".to_string()]);
    assert_eq!(code(t.core.describe_group("idle").await), ErrorCode::UnknownGroup);
    assert_eq!(t.core.committed_offsets("busy", "orders", None).await.unwrap(), vec![(0, 1)]);
}

// ---- the classic protocol (for the Kafka face) ----

fn join(group: &str, member_id: &str, protocols: &[(&str, &[u8])]) -> JoinGroupRequest {
    JoinGroupRequest {
        group: group.into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "kafka-client".into(),
        client_host: "127.0.0.1".into(),
        protocol_type: "consumer".into(),
        protocols: protocols.iter().map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m))).collect(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        require_known_member_id: true,
    }
}

fn sync(group: &str, member_id: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncGroupRequest {
    SyncGroupRequest {
        group: group.into(),
        member_id: member_id.into(),
        instance_id: None,
        generation,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a))).collect(),
    }
}

fn joined(outcome: JoinOutcome) -> janus_core::groups::JoinGroupResponse {
    match outcome {
        JoinOutcome::Joined(j) => j,
        other => panic!("expected a completed join, got {other:?}"),
    }
}

/// Joins a new member the v4+ way: MEMBER_ID_REQUIRED, then join again with the id.
async fn first_join(core: &Core, group: &str, protocols: &[(&str, &[u8])]) -> String {
    match core.join_group(join(group, "", protocols)).await.unwrap() {
        JoinOutcome::MemberIdRequired { member_id } => member_id,
        other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn classic_join_sync_heartbeat_and_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    let core = &t.core;
    let a = first_join(core, "k", &[("range", b"ma"), ("roundrobin", b"xa")]).await;
    let ja = joined(core.join_group(join("k", &a, &[("range", b"ma"), ("roundrobin", b"xa")])).await.unwrap());
    assert_eq!((ja.generation, ja.leader.as_str(), ja.protocol_name.as_str()), (1, a.as_str(), "range"));
    assert_eq!(ja.members.len(), 1);
    let sa = core.sync_group(sync("k", &a, 1, &[(&a, b"A1")])).await.unwrap();
    assert_eq!(&sa.assignment[..], b"A1");
    core.classic_heartbeat("k", &a, None, 1).await.unwrap();

    // A second member: `a` learns of the rebalance from its heartbeat and rejoins.
    let b = first_join(core, "k", &[("roundrobin", b"xb"), ("range", b"mb")]).await;
    let join_b = tokio::spawn({
        let core = core.clone();
        let b = b.clone();
        async move { core.join_group(join("k", &b, &[("roundrobin", b"xb"), ("range", b"mb")])).await }
    });
    tokio::task::yield_now().await;
    sleep(Duration::from_millis(10)).await;
    assert_eq!(code(core.classic_heartbeat("k", &a, None, 1).await), ErrorCode::RebalanceInProgress);
    let ja = joined(core.join_group(join("k", &a, &[("range", b"ma"), ("roundrobin", b"xa")])).await.unwrap());
    let jb = joined(join_b.await.unwrap().unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(ja.leader, a, "the leader stays the leader");
    assert_eq!(ja.protocol_name, jb.protocol_name);
    let metadata: BTreeMap<String, Vec<u8>> =
        ja.members.iter().map(|m| (m.member_id.clone(), m.metadata.to_vec())).collect();
    let expected_b: &[u8] = if ja.protocol_name == "range" { b"mb" } else { b"xb" };
    assert_eq!(metadata[&b], expected_b, "the leader gets each member's metadata untouched");
    assert!(jb.members.is_empty(), "followers get no member list");
    // The follower waits for the leader; the leader gives `b` nothing explicit -> an empty assignment.
    let sync_b = tokio::spawn({
        let core = core.clone();
        let b = b.clone();
        async move { core.sync_group(sync("k", &b, 2, &[])).await }
    });
    sleep(Duration::from_millis(10)).await;
    let sa = core.sync_group(sync("k", &a, 2, &[(&a, b"A2")])).await.unwrap();
    assert_eq!(&sa.assignment[..], b"A2");
    assert!(sync_b.await.unwrap().unwrap().assignment.is_empty());
    assert_eq!(core.describe_group("k").await.unwrap().state, GroupState::Stable);
    assert_eq!(code(core.classic_heartbeat("k", &a, None, 1).await), ErrorCode::IllegalGeneration);
    assert_eq!(code(core.classic_heartbeat("k", "forged", None, 2).await), ErrorCode::UnknownMemberId);
    assert_eq!(code(core.sync_group(sync("k", &a, 9, &[])).await), ErrorCode::IllegalGeneration);

    // Commits are fenced by generation; a janus.v1 member cannot join a classic group.
    let as_a = CommitAs { member_id: a.clone(), generation: 2, instance_id: None };
    topic(core, "orders", 1).await;
    core.commit_offsets("k", "orders", &[(0, 4)], Some(&as_a)).await.unwrap();
    let stale = CommitAs { generation: 1, ..as_a };
    assert_eq!(code(core.commit_offsets("k", "orders", &[(0, 5)], Some(&stale)).await), ErrorCode::IllegalGeneration);
    assert_eq!(
        code(core.heartbeat_group(Member::new("k", &["orders"]).request()).await),
        ErrorCode::InconsistentGroupProtocol
    );
    let mut other = join("k", "", &[("other", b"")]);
    other.require_known_member_id = false;
    assert_eq!(code(core.join_group(other).await), ErrorCode::InconsistentGroupProtocol);

    // `b` stops heartbeating: expelled after 10 s; `a` rejoins alone.
    for _ in 0..4 {
        sleep(Duration::from_secs(3)).await;
        let _ = core.classic_heartbeat("k", &a, None, 2).await;
    }
    let ja = joined(core.join_group(join("k", &a, &[("range", b"ma")])).await.unwrap());
    assert_eq!(ja.members.len(), 1);
    assert_eq!(ja.generation, 3);
    core.leave_group("k", &a, None).await.unwrap();
    assert_eq!(core.describe_group("k").await.unwrap().state, GroupState::Empty);
}

#[tokio::test(start_paused = true)]
async fn classic_static_members_restart_without_a_rebalance_and_fence_the_old_instance() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    let core = &t.core;
    let static_join = |member_id: &str, instance: &str| JoinGroupRequest {
        instance_id: Some(instance.into()),
        ..join("s", member_id, &[("range", b"m")])
    };
    let leader = joined(core.join_group(static_join("", "leader-1")).await.unwrap());
    let lid = leader.member_id.clone();
    core.sync_group(sync("s", &lid, leader.generation, &[(&lid, b"L")])).await.unwrap();
    let join_f = tokio::spawn({
        let core = core.clone();
        async move { core.join_group(static_join("", "follower-1")).await }
    });
    sleep(Duration::from_millis(10)).await;
    let leader = joined(core.join_group(static_join(&lid, "leader-1")).await.unwrap());
    let follower = joined(join_f.await.unwrap().unwrap());
    let fid = follower.member_id.clone();
    let sync_f = tokio::spawn({
        let core = core.clone();
        let fid = fid.clone();
        let generation = follower.generation;
        async move {
            let mut s = sync("s", &fid, generation, &[]);
            s.instance_id = Some("follower-1".into());
            core.sync_group(s).await
        }
    });
    sleep(Duration::from_millis(10)).await;
    let mut s = sync("s", &lid, leader.generation, &[(&lid, b"L2"), (&fid, b"F2")]);
    s.instance_id = Some("leader-1".into());
    core.sync_group(s).await.unwrap();
    assert_eq!(&sync_f.await.unwrap().unwrap().assignment[..], b"F2");
    let generation = leader.generation;

    // The follower restarts with the same instance id: same generation, same assignment, no rebalance.
    let again = joined(core.join_group(static_join("", "follower-1")).await.unwrap());
    assert_eq!(again.generation, generation);
    assert_ne!(again.member_id, fid);
    let mut s = sync("s", &again.member_id, generation, &[]);
    s.instance_id = Some("follower-1".into());
    assert_eq!(&core.sync_group(s).await.unwrap().assignment[..], b"F2");
    core.classic_heartbeat("s", &lid, Some("leader-1"), generation).await.unwrap();
    // The old process is fenced.
    assert_eq!(
        code(core.classic_heartbeat("s", &fid, Some("follower-1"), generation).await),
        ErrorCode::FencedInstanceId
    );
}

#[tokio::test(start_paused = true)]
async fn a_classic_leader_that_never_syncs_does_not_leave_the_group_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    let core = &t.core;
    let a = first_join(core, "stuck", &[("range", b"")]).await;
    let ja = joined(core.join_group(join("stuck", &a, &[("range", b"")])).await.unwrap());
    assert_eq!(core.describe_group("stuck").await.unwrap().state, GroupState::CompletingRebalance);
    // The leader never sends SyncGroup, and keeps heartbeating.
    for _ in 0..11 {
        sleep(Duration::from_secs(3)).await;
        let _ = core.classic_heartbeat("stuck", &a, None, ja.generation).await;
    }
    let d = core.describe_group("stuck").await.unwrap();
    assert_eq!(d.state, GroupState::Empty, "removed after the 30 s rebalance timeout");
    assert!(d.members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn deleting_a_subscribed_topic_takes_its_partitions_out_of_the_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "a", 2).await;
    topic(&t.core, "b", 2).await;
    let mut m = Member::new("g", &["a", "b"]);
    m.heartbeat(&t.core).await;
    assert_eq!(m.count(), 4);
    let generation = m.generation;
    t.core.delete_topic("b".to_string()).await.unwrap();
    m.heartbeat(&t.core).await;
    assert_eq!(m.owned.keys().collect::<Vec<_>>(), vec!["a"], "the member keeps heartbeating, b is gone");
    assert_eq!(m.generation, generation + 1);
    let mut late = Member::new("g", &["a", "b"]);
    assert_eq!(code(t.core.heartbeat_group(late.request()).await), ErrorCode::UnknownTopic, "joins name live topics");
    late.topics = vec!["a".into()];
    late.heartbeat(&t.core).await;
}

#[tokio::test(start_paused = true)]
async fn a_classic_group_caught_mid_rebalance_by_a_restart_rebalances_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, generation);
    {
        let t = open(dir.path(), test_config());
        a = first_join(&t.core, "k", &[("range", b"m")]).await;
        generation = joined(t.core.join_group(join("k", &a, &[("range", b"m")])).await.unwrap()).generation;
        // The leader never synced: the group is stored in CompletingRebalance.
        t.close().await;
    }
    let t = open(dir.path(), test_config());
    assert_eq!(t.core.describe_group("k").await.unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(code(t.core.classic_heartbeat("k", &a, None, generation).await), ErrorCode::RebalanceInProgress);
    let again = joined(t.core.join_group(join("k", &a, &[("range", b"m")])).await.unwrap());
    assert_eq!(again.generation, generation + 1, "the generation keeps rising across the restart");
    let s = t.core.sync_group(sync("k", &a, again.generation, &[(&a, b"A")])).await.unwrap();
    assert_eq!(&s.assignment[..], b"A");
}

#[tokio::test(start_paused = true)]
async fn a_group_emptied_by_janus_members_takes_kafka_classic_members() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(dir.path(), test_config());
    topic(&t.core, "orders", 2).await;
    let mut m = Member::new("shared", &["orders"]);
    m.heartbeat(&t.core).await;
    t.core.leave_group("shared", &m.id, None).await.unwrap();
    let id = first_join(&t.core, "shared", &[("range", b"x")]).await;
    // A pending id that leaves is forgotten; joining with it afterwards is refused.
    t.core.leave_group("shared", &id, None).await.unwrap();
    assert_eq!(code(t.core.join_group(join("shared", &id, &[("range", b"x")])).await), ErrorCode::UnknownMemberId);
    let id = first_join(&t.core, "shared", &[("range", b"x")]).await;
    let j = joined(t.core.join_group(join("shared", &id, &[("range", b"x")])).await.unwrap());
    assert_eq!(j.leader, id);
    let d = t.core.describe_group("shared").await.unwrap();
    assert_eq!((d.protocol.as_str(), d.state), ("classic", GroupState::CompletingRebalance));
}
