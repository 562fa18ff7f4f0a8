//! Consumer groups above the core: the GroupHeartbeat / LeaveGroup RPCs and their errors, the client
//! library's group consumer (members share a topic's partitions and take over a closed member's), and the
//! `janus consume --group` / `janus group` commands. The brokers use `group.initial.rebalance.delay.ms = 0`
//! and a 200 ms heartbeat interval (see `common::config`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use janus_client::error::codes;
use janus_client::{Client, Consumer, ConsumerConfig, Engine, proto as v1};
use janus_core::ErrorCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::Code;

use crate::common::{Clients, connect};
use crate::e2e_common::{create, start};

/// How long a test waits for a group to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// Produces `per_partition` messages to each of `partitions` of `topic`, valued `{tag}-p{partition}-{i}`;
/// returns the values.
async fn produce(client: &Client, topic: &str, partitions: u32, per_partition: usize, tag: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for p in 0..partitions {
        let batch: Vec<String> = (0..per_partition).map(|i| format!("{tag}-p{p}-{i}")).collect();
        let request = v1::ProduceRequest {
            topic: topic.into(),
            partition: Some(p),
            messages: batch
                .iter()
                .map(|v| v1::Message { value: Some(bytes::Bytes::from(v.clone())), ..Default::default() })
                .collect(),
            ..Default::default()
        };
        client.produce(request).await.unwrap_or_else(|e| panic!("produce to {topic}/{p}: {e}"));
        values.extend(batch);
    }
    values
}

/// The `janus-error-code` of a status.
fn broker_code(status: &tonic::Status) -> Option<u16> {
    status.metadata().get("janus-error-code").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// A heartbeat of `member` (empty: join) at `generation` owning `owned` partitions of `topic`.
fn heartbeat(group: &str, topic: &str, member: &str, generation: i32, owned: &[u32]) -> v1::GroupHeartbeatRequest {
    v1::GroupHeartbeatRequest {
        group: group.into(),
        member_id: member.into(),
        generation,
        client_id: "raw".into(),
        topics: vec![topic.into()],
        owned: if owned.is_empty() {
            vec![]
        } else {
            vec![v1::TopicPartitions { topic: topic.into(), partitions: owned.to_vec() }]
        },
        ..Default::default()
    }
}

/// Commits `(partition, offset)` pairs of `topic` for `group` as `member` (empty: no member) at `generation`.
async fn commit_as(
    c: &mut Clients,
    (group, topic): (&str, &str),
    offsets: &[(u32, i64)],
    member: &str,
    generation: i32,
) -> Result<(), tonic::Status> {
    let request = v1::CommitOffsetsRequest {
        group: group.into(),
        topic: topic.into(),
        offsets: crate::common::partition_offsets(offsets),
        member_id: member.into(),
        generation,
        instance_id: None,
    };
    c.consumer.commit_offsets(request).await.map(|_| ())
}

/// The partitions of `topic` in an answer.
fn assigned(r: &v1::GroupHeartbeatResponse, topic: &str) -> Vec<u32> {
    r.assignment.iter().filter(|tp| tp.topic == topic).flat_map(|tp| tp.partitions.clone()).collect()
}

/// Heartbeats `member` (owning what each answer assigns) until `done` holds for an answer; returns it.
async fn heartbeat_until(
    c: &mut Clients,
    mut request: v1::GroupHeartbeatRequest,
    topic: &str,
    done: impl Fn(&v1::GroupHeartbeatResponse) -> bool,
) -> v1::GroupHeartbeatResponse {
    let deadline = Instant::now() + SETTLE;
    loop {
        let answer = c.consumer.group_heartbeat(request.clone()).await.expect("heartbeat").into_inner();
        if done(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "the group did not settle: last answer {answer:?}");
        request.member_id = answer.member_id.clone();
        request.generation = answer.generation;
        let partitions = assigned(&answer, topic);
        request.owned = vec![v1::TopicPartitions { topic: topic.into(), partitions }];
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_clients_error_codes_are_the_cores() {
    let pairs = [
        (codes::REBALANCE_IN_PROGRESS, ErrorCode::RebalanceInProgress),
        (codes::ILLEGAL_GENERATION, ErrorCode::IllegalGeneration),
        (codes::UNKNOWN_MEMBER_ID, ErrorCode::UnknownMemberId),
        (codes::FENCED_INSTANCE_ID, ErrorCode::FencedInstanceId),
        (codes::MEMBER_ID_REQUIRED, ErrorCode::MemberIdRequired),
        (codes::INCONSISTENT_GROUP_PROTOCOL, ErrorCode::InconsistentGroupProtocol),
        (codes::INVALID_SESSION_TIMEOUT, ErrorCode::InvalidSessionTimeout),
        (codes::PARTITION_NOT_ASSIGNED, ErrorCode::PartitionNotAssigned),
    ];
    for (client, core) in pairs {
        assert_eq!(client, core.number(), "{core}");
    }
}

/// Refused before the core is asked: an unknown mode or assignor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "hb-args", Engine::Segment, 2, &[]).await;
    let mut c = connect(broker.grpc_addr()).await;
    let bad_mode = v1::GroupHeartbeatRequest { mode: 9, ..heartbeat("hb-args-g", "hb-args", "", 0, &[]) };
    let e = c.consumer.group_heartbeat(bad_mode).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(broker_code(&e), Some(ErrorCode::InvalidArgument.number()));
    assert!(e.message().contains("GROUP_MODE_CLUSTERING"), "{}", e.message());
    let bad_assignor =
        v1::GroupHeartbeatRequest { assignor: "fastest".into(), ..heartbeat("hb-args-g", "hb-args", "", 0, &[]) };
    let e = c.consumer.group_heartbeat(bad_assignor).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("fastest"), "{}", e.message());
    broker.shutdown().await.unwrap();
}

/// Bad input through gRPC: clear errors with the core's codes, and the group unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let topic = "bad-input";
    let group = "bad-input-g";
    create(&client, topic, Engine::Segment, 4, &[]).await;
    let mut c = connect(broker.grpc_addr()).await;

    // Empty and oversized group names.
    for name in [String::new(), "g".repeat(256)] {
        let e = c.consumer.group_heartbeat(heartbeat(&name, topic, "", 0, &[])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{} bytes: {e:?}", name.len());
        assert_eq!(broker_code(&e), Some(ErrorCode::InvalidArgument.number()));
        assert!(e.message().contains("group name"), "{}", e.message());
    }
    // Session timeouts outside 6 s .. 30 min.
    for ms in [1_000, 2 * 3_600_000] {
        let request = v1::GroupHeartbeatRequest { session_timeout_ms: ms, ..heartbeat(group, topic, "", 0, &[]) };
        let e = c.consumer.group_heartbeat(request).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{ms} ms: {e:?}");
        assert_eq!(broker_code(&e), Some(codes::INVALID_SESSION_TIMEOUT), "{ms} ms: {e:?}");
    }
    // None of those joined anything.
    let listed = c.consumer.list_groups(v1::ListGroupsRequest {}).await.unwrap().into_inner();
    assert!(listed.listings.iter().all(|l| l.group != group || l.members == 0), "{listed:?}");

    // A member that owns every partition.
    let a =
        heartbeat_until(&mut c, heartbeat(group, topic, "", 0, &[]), topic, |r| assigned(r, topic).len() == 4).await;
    let first_generation = a.generation;

    // An unknown member id.
    let e = c.consumer.group_heartbeat(heartbeat(group, topic, "nobody", a.generation, &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert_eq!(broker_code(&e), Some(codes::UNKNOWN_MEMBER_ID), "{e:?}");
    let e = commit_as(&mut c, (group, topic), &[(0, 0)], "nobody", a.generation).await.unwrap_err();
    assert_eq!(broker_code(&e), Some(codes::UNKNOWN_MEMBER_ID), "{e:?}");
    // A commit without a member while the group has one.
    let e = commit_as(&mut c, (group, topic), &[(0, 0)], "", 0)
        .await
        .expect_err("a commit without a member while the group has members");
    let committed = c
        .consumer
        .fetch_offsets(v1::FetchOffsetsRequest { group: group.into(), topic: topic.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(committed.offsets.is_empty(), "refused commits change nothing: {e:?} {committed:?}");

    // Move the generation on by at least two with more members joining, then send A's first generation.
    let mut a_latest = a.clone();
    let mut others = Vec::new();
    while a_latest.generation < first_generation + 2 {
        assert!(others.len() < 5, "five joins did not move the generation on by two: {a_latest:?}");
        let joined = c.consumer.group_heartbeat(heartbeat(group, topic, "", 0, &[])).await.unwrap().into_inner();
        others.push(joined.member_id);
        let owned = assigned(&a_latest, topic);
        let request = heartbeat(group, topic, &a_latest.member_id, a_latest.generation, &owned);
        a_latest = c.consumer.group_heartbeat(request).await.unwrap().into_inner();
    }
    let before =
        c.consumer.describe_group(v1::DescribeGroupRequest { group: group.into() }).await.unwrap().into_inner();
    let owned = assigned(&a_latest, topic);
    let stale = heartbeat(group, topic, &a_latest.member_id, first_generation, &owned);
    let e = c.consumer.group_heartbeat(stale).await.unwrap_err();
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert_eq!(broker_code(&e), Some(codes::ILLEGAL_GENERATION), "{e:?}");
    let partition = owned.first().copied().unwrap_or(0);
    let e =
        commit_as(&mut c, (group, topic), &[(partition, 0)], &a_latest.member_id, first_generation).await.unwrap_err();
    assert_eq!(broker_code(&e), Some(codes::ILLEGAL_GENERATION), "{e:?}");
    let after = c.consumer.describe_group(v1::DescribeGroupRequest { group: group.into() }).await.unwrap().into_inner();
    assert_eq!(after.generation, before.generation, "a refused heartbeat changes nothing");
    assert_eq!(after.members.len(), before.members.len());
    broker.shutdown().await.unwrap();
}

/// A group consumer polling in a task until told to stop; what it reads goes to a channel, its
/// assignment to a watch.
struct Running {
    stop: Arc<AtomicBool>,
    assignment: watch::Receiver<Vec<u32>>,
    task: JoinHandle<Consumer>,
}

impl Running {
    fn start(name: &'static str, mut consumer: Consumer, out: mpsc::UnboundedSender<(&'static str, String)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, assignment) = watch::channel(Vec::new());
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Acquire) {
                match consumer.poll(Some(Duration::from_millis(100))).await {
                    Ok(Some(r)) => {
                        let value = String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap();
                        let _ = out.send((name, value));
                    }
                    Ok(None) => {}
                    Err(e) => panic!("{name}: poll failed: {e}"),
                }
                tx.send_replace(consumer.assignment().to_vec());
            }
            consumer
        });
        Running { stop, assignment, task }
    }

    /// Stops polling and hands the consumer back.
    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("the consumer task")
    }
}

/// Waits until the consumers' assignments satisfy `done`.
async fn wait_for_assignments(running: &[&Running], done: impl Fn(&[Vec<u32>]) -> bool) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now: Vec<Vec<u32>> = running.iter().map(|r| r.assignment.borrow().clone()).collect();
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "assignments did not settle: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Receives until `expected` values arrived (and 300 ms more, to catch duplicates); returns who read what.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<(&'static str, String)>,
    expected: usize,
) -> Vec<(&'static str, String)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + SETTLE;
    while got.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(item)) => got.push(item),
            _ => panic!("only {} of {expected} messages arrived", got.len()),
        }
    }
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        got.push(item);
    }
    got
}

/// Two members share a 4-partition topic, each message read by exactly one; when one closes, the other
/// takes all partitions and reads the rest, from where the closed one committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_partitions_and_one_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let (topic, group) = ("shared", "sharers");
    create(&client, topic, Engine::Segment, 4, &[]).await;
    let config = || ConsumerConfig { client_id: "lib".into(), ..ConsumerConfig::with_group(group) };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut first = client.consumer(topic, config()).await.expect("first joins");
    let assigned_log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&assigned_log);
    first.on_assign(move |p| log.lock().unwrap().push(p.to_vec()));
    let a = Running::start("a", first, tx.clone());
    let b = Running::start("b", client.consumer(topic, config()).await.expect("second joins"), tx.clone());
    wait_for_assignments(&[&a, &b], |now| {
        let all: BTreeSet<u32> = now.iter().flatten().copied().collect();
        now.iter().all(|p| p.len() == 2) && all == BTreeSet::from([0, 1, 2, 3])
    })
    .await;
    assert!(!assigned_log.lock().unwrap().is_empty(), "on_assign ran");

    let sent = produce(&client, topic, 4, 100, "one").await;
    let got = collect(&mut rx, sent.len()).await;
    let mut by_value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (who, value) in &got {
        by_value.entry(value.as_str()).or_default().push(who);
    }
    let duplicates: Vec<_> = by_value.iter().filter(|(_, who)| who.len() > 1).collect();
    assert!(duplicates.is_empty(), "read by both: {duplicates:?}");
    assert_eq!(by_value.keys().map(|v| v.to_string()).collect::<BTreeSet<_>>(), sent);
    for name in ["a", "b"] {
        assert_eq!(got.iter().filter(|(who, _)| *who == name).count(), 200, "{name} reads its two partitions");
    }

    // The first closes (commits and leaves): the second takes every partition.
    let first = a.stop().await;
    first.close().await.expect("close commits and leaves");
    wait_for_assignments(&[&b], |now| now[0] == vec![0, 1, 2, 3]).await;
    let sent = produce(&client, topic, 4, 50, "two").await;
    let got = collect(&mut rx, sent.len()).await;
    let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values.len(), sent.len(), "nothing read twice, nothing of the first round again: {values:?}");
    assert_eq!(values.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>(), sent);
    assert!(got.iter().all(|(who, _)| *who == "b"));

    let second = b.stop().await;
    second.close().await.expect("close");
    let d = client.describe_group(group).await.unwrap();
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());
    assert_eq!(d.total_lag(), 0, "{d:?}");
    broker.shutdown().await.unwrap();
}

/// Describe shows the members (client id, host, assignment) and, per partition, owner, committed offset,
/// end and lag; list shows the state and member count; the CLI prints both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_members_and_lag() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let (topic, group) = ("described", "describers");
    create(&client, topic, Engine::Commitlog, 4, &[]).await;
    produce(&client, topic, 4, 10, "d").await;
    let mut c = connect(broker.grpc_addr()).await;
    let join = v1::GroupHeartbeatRequest { client_id: "describer".into(), ..heartbeat(group, topic, "", 0, &[]) };
    let a = heartbeat_until(&mut c, join, topic, |r| assigned(r, topic).len() == 4).await;
    commit_as(&mut c, (group, topic), &[(0, 4), (1, 10)], &a.member_id, a.generation).await.expect("the owner commits");

    let d = client.describe_group(group).await.unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.generation, a.generation);
    assert_eq!(d.protocol, "janus");
    assert_eq!(d.assignor, "range");
    assert_eq!(d.mode, Some(janus_client::GroupMode::Clustering));
    assert_eq!(d.members.len(), 1, "{d:?}");
    let m = &d.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.client_id.as_str(), m.host.as_str()),
        (a.member_id.as_str(), "describer", "127.0.0.1")
    );
    assert_eq!(m.assignment.get(topic), Some(&vec![0, 1, 2, 3]));
    let rows: Vec<(u32, i64, i64, i64, Option<&str>)> = d
        .partitions
        .iter()
        .filter(|p| p.topic == topic)
        .map(|p| (p.partition, p.committed_offset, p.log_end_offset, p.lag, p.owner.as_deref()))
        .collect();
    let owner = Some(a.member_id.as_str());
    assert_eq!(rows[..2], [(0, 4, 10, 6, owner), (1, 10, 10, 0, owner)], "{rows:?}");
    assert!(
        rows[2..].iter().all(|r| r.2 == 10 && r.3 == 10 && r.4 == owner),
        "nothing committed: lag from the start: {rows:?}"
    );
    assert_eq!(d.total_lag(), 26);

    // The group's gauges (the recorder is process-wide: these series are this group's own).
    let metrics = crate::common::scrape(broker.metrics_addr()).await;
    for series in [
        "janus_group_members{group=\"describers\"} 1",
        "janus_group_state{group=\"describers\",state=\"Stable\"} 1",
        "janus_group_state{group=\"describers\",state=\"Empty\"} 0",
        "janus_consumer_lag{group=\"describers\",topic=\"described\",partition=\"0\"} 6",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series} missing from the metrics:\n{metrics}");
    }
    assert!(metrics.lines().any(|l| l.starts_with("janus_group_rebalances_total{group=\"describers\"}")), "{metrics}");

    let listings = client.list_groups().await.unwrap();
    let l = listings.iter().find(|l| l.group == group).expect("listed");
    assert_eq!((l.state.as_str(), l.members, l.protocol.as_str()), ("Stable", 1, "janus"));

    let url = format!("http://{}", broker.grpc_addr());
    let (result, out, _) = janus(&url, &["group", "describe", group]).await;
    result.unwrap();
    assert!(out.contains("state Stable") && out.contains("protocol janus") && out.contains("mode clustering"), "{out}");
    let member_row: Vec<&str> =
        out.lines().find(|l| l.starts_with(&a.member_id)).expect("a member row").split_whitespace().collect();
    assert_eq!(member_row, [a.member_id.as_str(), "-", "describer", "127.0.0.1", "described:0,1,2,3"], "{out}");
    let row0: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.starts_with(&[topic, "0"]))
        .unwrap_or_else(|| panic!("no row for partition 0: {out}"));
    assert_eq!(row0, ["described", "0", a.member_id.as_str(), "4", "10", "6"], "{out}");
    assert!(out.ends_with("total lag 26\n"), "{out}");
    let (result, out, _) = janus(&url, &["group", "list"]).await;
    result.unwrap();
    let row: Vec<&str> = out.lines().find(|l| l.starts_with(group)).expect("listed").split_whitespace().collect();
    assert_eq!(row, [group, "Stable", "1"], "{out}");

    c.consumer
        .leave_group(v1::LeaveGroupRequest { group: group.into(), member_id: a.member_id.clone(), instance_id: None })
        .await
        .expect("leave");
    let d = client.describe_group(group).await.unwrap();
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());
    broker.shutdown().await.unwrap();
}

/// Runs `janus --broker URL ARGS...` in-process; returns the result, stdout and stderr.
async fn janus(url: &str, args: &[&str]) -> (Result<(), janus_client::cli::CliError>, String, String) {
    let mut argv = vec!["janus".to_string(), "--broker".to_string(), url.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut input = Cursor::new(Vec::new());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = janus_client::cli::run(argv, &mut input, &mut out, &mut err).await;
    (result, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// Two `janus consume --group` runs print disjoint halves whose union is every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cli_consumers_split_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let (topic, group) = ("cli-shared", "cli-sharers");
    create(&client, topic, Engine::Segment, 4, &[]).await;
    let url = format!("http://{}", broker.grpc_addr());
    // Each stops 10 s after the last message it printed (the group must settle within that, too).
    // Each stops 10 s after the last message it printed (the group must settle within that, too). The
    // CLI's future is not Send: the two runs and the producer share this task.
    let run = |name: &'static str| {
        let url = url.clone();
        async move { janus(&url, &["consume", topic, "--group", group, "--client-id", name, "--timeout-ms", "10000"]).await }
    };
    let produce_once_settled = async {
        // Produce only once both members read two partitions each.
        let deadline = Instant::now() + SETTLE;
        loop {
            let d = client.describe_group(group).await;
            if let Ok(d) = &d
                && d.state == "Stable"
                && d.members.len() == 2
                && d.members.iter().all(|m| m.assignment.get(topic).is_some_and(|p| p.len() == 2))
            {
                break;
            }
            assert!(Instant::now() < deadline, "two CLI members did not settle: {d:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        produce(&client, topic, 4, 50, "cli").await
    };
    let (one, two, sent) = tokio::join!(run("cli-one"), run("cli-two"), produce_once_settled);
    let mut printed = Vec::new();
    for (result, out, err) in [one, two] {
        result.unwrap_or_else(|e| panic!("janus consume failed: {e}\n{err}"));
        let lines: BTreeSet<String> = out.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), out.lines().count(), "a member printed a message twice");
        assert_eq!(lines.len(), 100, "each member prints its two partitions: {err}");
        printed.push(lines);
    }
    assert!(printed[0].is_disjoint(&printed[1]), "a message printed by both");
    let union: BTreeSet<String> = printed.iter().flatten().cloned().collect();
    assert_eq!(union, sent);
    broker.shutdown().await.unwrap();
}

/// Broadcasting members each read every message; a member the broker removed (here by a LeaveGroup in its
/// name) loses its partitions (on_revoke runs), rejoins with a new member id and reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_members_read_everything_and_a_removed_member_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    let (topic, group) = ("broadcast", "broadcasters");
    create(&client, topic, Engine::Commitlog, 2, &[]).await;
    let config = |id: &str| ConsumerConfig {
        client_id: id.into(),
        group_mode: janus_client::GroupMode::Broadcasting,
        ..ConsumerConfig::with_group(group)
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut one = client.consumer(topic, config("b1")).await.expect("b1 joins");
    let revoked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&revoked);
    one.on_revoke(move |p| log.lock().unwrap().push(p.to_vec()));
    let one = Running::start("b1", one, tx.clone());
    let two = Running::start("b2", client.consumer(topic, config("b2")).await.expect("b2 joins"), tx.clone());
    wait_for_assignments(&[&one, &two], |now| now.iter().all(|p| p == &[0, 1])).await;

    let sent = produce(&client, topic, 2, 20, "all").await;
    let got = collect(&mut rx, 2 * sent.len()).await;
    for name in ["b1", "b2"] {
        let mine: Vec<&str> = got.iter().filter(|(who, _)| *who == name).map(|(_, v)| v.as_str()).collect();
        assert_eq!(mine.len(), sent.len(), "{name} reads every message once");
        assert_eq!(mine.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>(), sent, "{name}");
    }

    // Remove b1 behind its back: its next heartbeat is refused, it gives its partitions up and rejoins.
    let d = client.describe_group(group).await.unwrap();
    assert_eq!(d.mode, Some(janus_client::GroupMode::Broadcasting));
    let old = d.members.iter().find(|m| m.client_id == "b1").expect("b1 is a member").member_id.clone();
    client.leave_group(group, &old, None).await.expect("remove b1");
    let deadline = Instant::now() + SETTLE;
    loop {
        let d = client.describe_group(group).await.unwrap();
        let rejoined = d.members.iter().any(|m| m.client_id == "b1" && m.member_id != old);
        if rejoined && revoked.lock().unwrap().iter().any(|p| p == &[0, 1]) {
            break;
        }
        assert!(Instant::now() < deadline, "b1 did not rejoin: {d:?}, revoked {:?}", revoked.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_assignments(&[&one], |now| now[0] == [0, 1]).await;
    let sent = produce(&client, topic, 2, 5, "after").await;
    // b1 may read again what it had not committed when it lost its partitions (at least once): wait for
    // the new messages only.
    let mut after: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let deadline = Instant::now() + SETTLE;
    while ["b1", "b2"].iter().any(|name| after.get(name) != Some(&sent)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((who, value))) = tokio::time::timeout(left, rx.recv()).await else {
            panic!("not every member read the new messages: {after:?}")
        };
        if value.starts_with("after") {
            assert!(after.entry(who).or_default().insert(value.clone()), "{who} read {value} twice");
        }
    }
    for running in [one, two] {
        running.stop().await.close().await.expect("close");
    }
    broker.shutdown().await.unwrap();
}

/// Polls `consumer` until it owns `n` partitions (bounded by [`SETTLE`]); returns what it printed meanwhile.
async fn until_owning(consumer: &mut Consumer, n: usize) -> usize {
    let deadline = Instant::now() + SETTLE;
    let mut seen = 0;
    while consumer.assignment().len() != n {
        assert!(Instant::now() < deadline, "owns {:?}, wanted {n} partitions", consumer.assignment());
        if consumer.poll(Some(Duration::from_millis(20))).await.expect("poll").is_some() {
            seen += 1;
        }
    }
    seen
}

#[tokio::test]
async fn a_static_member_restarted_through_the_client_keeps_its_partitions_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "static-t", Engine::Segment, 4, &[]).await;
    let config = |instance: &str| ConsumerConfig {
        instance_id: Some(instance.to_string()),
        session_timeout: Some(Duration::from_secs(10)),
        ..ConsumerConfig::with_group("static-g")
    };
    let mut a = client.consumer("static-t", config("a")).await.unwrap();
    until_owning(&mut a, 4).await;
    let mut b = client.consumer("static-t", config("b")).await.unwrap();
    let deadline = Instant::now() + SETTLE;
    while a.assignment().len() != 2 || b.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "a {:?} b {:?}", a.assignment(), b.assignment());
        let _ = a.poll(Some(Duration::from_millis(10))).await.unwrap();
        let _ = b.poll(Some(Duration::from_millis(10))).await.unwrap();
    }
    let mine = b.assignment().to_vec();
    let generation = client.describe_group("static-g").await.unwrap().generation;
    // `b` stops (a static member does not leave) and starts again with its instance id.
    b.close().await.unwrap();
    let mut b = client.consumer("static-t", config("b")).await.unwrap();
    until_owning(&mut b, 2).await;
    assert_eq!(b.assignment(), &mine[..], "the same partitions");
    let d = client.describe_group("static-g").await.unwrap();
    assert_eq!(d.generation, generation, "no rebalance");
    assert_eq!(d.members.len(), 2);
    a.close().await.unwrap();
    b.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_consumer_with_the_same_instance_id_fences_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = start(dir.path()).await;
    create(&client, "fence-t", Engine::Segment, 2, &[]).await;
    let config = ConsumerConfig { instance_id: Some("only-one".into()), ..ConsumerConfig::with_group("fence-g") };
    let mut first = client.consumer("fence-t", config.clone()).await.unwrap();
    until_owning(&mut first, 2).await;
    // Another process starts with the same instance id: it takes the member's place...
    let mut second = client.consumer("fence-t", config).await.unwrap();
    until_owning(&mut second, 2).await;
    // ...and the first learns from its next heartbeat that it is fenced: poll says so.
    let deadline = Instant::now() + SETTLE;
    let error = loop {
        assert!(Instant::now() < deadline, "the first consumer was never told it is fenced");
        match first.poll(Some(Duration::from_millis(50))).await {
            Err(e) => break e,
            Ok(_) => continue,
        }
    };
    assert!(error.is_fenced(), "{error}");
    assert_eq!(client.describe_group("fence-g").await.unwrap().members.len(), 1);
    second.close().await.unwrap();
    broker.shutdown().await.unwrap();
}
