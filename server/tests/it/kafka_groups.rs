//! The Kafka face's group and admin APIs with exact requests (a bare connection per member): the classic
//! protocol on the shared coordinator (MEMBER_ID_REQUIRED from JoinGroup v4 only, the leader's assignment
//! passed through, a member left out getting zero bytes, fencing, protocol mismatch), offsets and their
//! metadata shared with the gRPC face, CreateTopics, DescribeConfigs, DeleteRecords, DeleteTopics and
//! topic auto-creation, and how one Produce request's partitions are appended.

use std::collections::BTreeMap;

use bytes::Bytes;
use janus_client::Engine;
use janus_server::Broker;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::e2e_common::{config, create};
use crate::kafka_wire::{CLIENT_ID, KafkaConn};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(group: &str, member: &str, protocol_type: &str, metadata: &'static [u8]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(metadata)),
        ])
}

fn sync_request(group: &str, member: &str, generation: i32, assignments: &[(&str, &'static [u8])]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default().with_member_id(s(m)).with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

fn commit_request(
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offset: i64,
    meta: &str,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s(meta))),
        ])])
}

fn commit_error(r: &OffsetCommitResponse) -> i16 {
    r.topics[0].partitions[0].error_code
}

/// The offset and metadata OffsetFetch v7 gives for partition 0 of `topic`.
async fn fetched_v7(conn: &mut KafkaConn, group: &str, topic: &str) -> (i64, String) {
    let req = OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_topics(Some(vec![
        offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(vec![0]),
    ]));
    let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &req).await;
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    (p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_groups_over_the_kafka_face_share_the_coordinator_and_offsets_with_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    create(&client, "kg-orders", Engine::Commitlog, 2, &[]).await;
    let addr = broker.kafka_addr().unwrap();
    let (mut a, mut b) = (KafkaConn::connect(addr).await, KafkaConn::connect(addr).await);

    // FindCoordinator, old and batched: this broker.
    let found: FindCoordinatorResponse =
        a.call(ApiKey::FindCoordinator, 2, &FindCoordinatorRequest::default().with_key(s("kg"))).await;
    assert_eq!((found.error_code, found.node_id.0, found.port), (0, 0, i32::from(addr.port())));
    let found: FindCoordinatorResponse = a
        .call(ApiKey::FindCoordinator, 4, &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("kg")]))
        .await;
    assert_eq!((found.coordinators[0].error_code, found.coordinators[0].node_id.0), (0, 0));

    // JoinGroup v3 never asks for a member id: A joins at once and leads generation 1.
    let joined: JoinGroupResponse = a.call(ApiKey::JoinGroup, 3, &join_request("kg", "", "consumer", b"meta-a")).await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let a_id = joined.member_id.to_string();
    assert_eq!((joined.leader.as_str(), joined.generation_id), (a_id.as_str(), 1));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(&joined.members[0].metadata[..], b"meta-a", "metadata passes through untouched");
    let synced: SyncGroupResponse =
        a.call(ApiKey::SyncGroup, 3, &sync_request("kg", &a_id, 1, &[(&a_id, b"\x00\x01all")])).await;
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"\x00\x01all"[..]));

    // JoinGroup v5 asks a new member to come back with the id it is given.
    let first: JoinGroupResponse = b.call(ApiKey::JoinGroup, 5, &join_request("kg", "", "consumer", b"meta-b")).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED: {first:?}");
    let b_id = first.member_id.to_string();
    assert!(!b_id.is_empty());
    // B's real join waits for A to rejoin; A learns of the rebalance from its heartbeat.
    let b_join = tokio::spawn(async move {
        let r: JoinGroupResponse =
            b.call(ApiKey::JoinGroup, 5, &join_request("kg", &b_id, "consumer", b"meta-b")).await;
        (b, r)
    });
    let heartbeat = HeartbeatRequest::default().with_group_id(GroupId(s("kg"))).with_member_id(s(&a_id));
    let mut rebalancing = false;
    for _ in 0..100 {
        let hb: HeartbeatResponse = a.call(ApiKey::Heartbeat, 3, &heartbeat.clone().with_generation_id(1)).await;
        if hb.error_code == 27 {
            rebalancing = true;
            break;
        }
        assert_eq!(hb.error_code, 0);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(rebalancing, "A's heartbeat reports REBALANCE_IN_PROGRESS once B joins");
    // While the group waits for rejoins, a member of the current generation may still commit (as in Kafka:
    // it commits before it rejoins).
    let before_rejoin: OffsetCommitResponse =
        a.call(ApiKey::OffsetCommit, 8, &commit_request("kg", &a_id, 1, "kg-orders", 3, "x")).await;
    assert_eq!(commit_error(&before_rejoin), 0, "{before_rejoin:?}");

    let rejoined: JoinGroupResponse =
        a.call(ApiKey::JoinGroup, 3, &join_request("kg", &a_id, "consumer", b"meta-a2")).await;
    let (mut b, b_joined) = b_join.await.unwrap();
    assert_eq!((rejoined.error_code, b_joined.error_code), (0, 0), "{rejoined:?} {b_joined:?}");
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(b_joined.generation_id, 2);
    let leader_sees: BTreeMap<String, Vec<u8>> =
        rejoined.members.iter().map(|m| (m.member_id.to_string(), m.metadata.to_vec())).collect();
    let b_id = b_joined.member_id.to_string();
    assert_eq!(leader_sees.get(&a_id).map(Vec::as_slice), Some(&b"meta-a2"[..]));
    assert_eq!(leader_sees.get(&b_id).map(Vec::as_slice), Some(&b"meta-b"[..]));
    assert!(b_joined.members.is_empty(), "only the leader gets the member list");

    // The leader assigns only itself: B gets an empty assignment.
    let b_sync = tokio::spawn(async move {
        let r: SyncGroupResponse = b.call(ApiKey::SyncGroup, 5, &sync_request("kg", &b_id, 2, &[])).await;
        (b, r)
    });
    let synced: SyncGroupResponse =
        a.call(ApiKey::SyncGroup, 5, &sync_request("kg", &a_id, 2, &[(&a_id, b"mine")])).await;
    let (mut b, b_synced) = b_sync.await.unwrap();
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"mine"[..]));
    assert_eq!((b_synced.error_code, b_synced.assignment.len()), (0, 0), "{b_synced:?}");
    assert_eq!(synced.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));

    // A member of another protocol type is refused.
    let mut c = KafkaConn::connect(addr).await;
    let other: JoinGroupResponse = c.call(ApiKey::JoinGroup, 3, &join_request("kg", "", "connect", b"m")).await;
    assert_eq!(other.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL: {other:?}");

    // The old generation is fenced now.
    let stale: OffsetCommitResponse =
        a.call(ApiKey::OffsetCommit, 8, &commit_request("kg", &a_id, 1, "kg-orders", 4, "x")).await;
    assert_eq!(commit_error(&stale), 22, "ILLEGAL_GENERATION: {stale:?}");
    // Commit with metadata; both faces read the same offset, and the metadata round-trips.
    let ok: OffsetCommitResponse =
        a.call(ApiKey::OffsetCommit, 8, &commit_request("kg", &a_id, 2, "kg-orders", 7, "ckpt-7")).await;
    assert_eq!(commit_error(&ok), 0, "{ok:?}");
    assert_eq!(fetched_v7(&mut b, "kg", "kg-orders").await, (7, "ckpt-7".to_string()));
    let v8: OffsetFetchResponse = b
        .call(
            ApiKey::OffsetFetch,
            8,
            &OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default().with_group_id(GroupId(s("kg"))).with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s("kg-orders")))
                        .with_partition_indexes(vec![0, 1]),
                ])),
            ]),
        )
        .await;
    let parts = &v8.groups[0].topics[0].partitions;
    assert_eq!((parts[0].committed_offset, parts[1].committed_offset), (7, -1), "{v8:?}");
    assert_eq!(client.fetch_offsets("kg", "kg-orders").await.unwrap().get(&0), Some(&7));

    // Described alike by both faces.
    let described: DescribeGroupsResponse = b
        .call(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("kg")), GroupId(s("kg-none"))]),
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str(), g.protocol_type.as_str(), g.protocol_data.as_str()),
        (0, "Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 2);
    let a_member = g.members.iter().find(|m| m.member_id.as_str() == a_id).unwrap();
    assert_eq!((a_member.client_id.as_str(), &a_member.member_assignment[..]), (CLIENT_ID, &b"mine"[..]));
    assert_eq!(described.groups[1].group_state.as_str(), "Dead", "an unknown group is Dead, as Kafka answers");
    let grpc = client.describe_group("kg").await.unwrap();
    assert_eq!((grpc.state.as_str(), grpc.protocol.as_str(), grpc.members.len()), ("Stable", "classic", 2));
    let listed: ListGroupsResponse =
        b.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default().with_states_filter(vec![s("Stable")])).await;
    assert!(
        listed.groups.iter().any(|l| l.group_id.as_str() == "kg" && l.protocol_type.as_str() == "consumer"),
        "{listed:?}"
    );

    // Both leave in one batch; then a tool commits without a member through gRPC, and Kafka reads it.
    let leave = LeaveGroupRequest::default().with_group_id(GroupId(s("kg"))).with_members(vec![
        MemberIdentity::default().with_member_id(s(&a_id)),
        MemberIdentity::default().with_member_id(s(&b_joined.member_id)),
        MemberIdentity::default().with_member_id(s("nobody")),
    ]);
    let left: LeaveGroupResponse = a.call(ApiKey::LeaveGroup, 4, &leave).await;
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 0, 25], "the unknown member gets UNKNOWN_MEMBER_ID alone");
    assert_eq!(client.describe_group("kg").await.unwrap().state, "Empty");
    client.commit_offsets("kg", "kg-orders", &BTreeMap::from([(0, 11)])).await.unwrap();
    assert_eq!(fetched_v7(&mut a, "kg", "kg-orders").await.0, 11);
    // And a Kafka commit without a member (generation -1) is accepted while the group is empty.
    let tool: OffsetCommitResponse =
        a.call(ApiKey::OffsetCommit, 2, &commit_request("kg", "", -1, "kg-orders", 12, "")).await;
    assert_eq!(commit_error(&tool), 0);
    assert_eq!(client.fetch_offsets("kg", "kg-orders").await.unwrap().get(&0), Some(&12));
    let too_long = "m".repeat(4097);
    let refused: OffsetCommitResponse =
        a.call(ApiKey::OffsetCommit, 2, &commit_request("kg", "", -1, "kg-orders", 13, &too_long)).await;
    assert_eq!(commit_error(&refused), 12, "OFFSET_METADATA_TOO_LARGE");

    // A group id no group can have is INVALID_GROUP_ID everywhere; OffsetFetch v1, which has no group-level
    // error field, gives it on each partition asked for.
    let fetch_v1 = OffsetFetchRequest::default().with_group_id(GroupId(s(""))).with_topics(Some(vec![
        offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("kg-orders")))
            .with_partition_indexes(vec![0, 1]),
    ]));
    let r: OffsetFetchResponse = a.call(ApiKey::OffsetFetch, 1, &fetch_v1).await;
    let codes: Vec<i16> = r.topics[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![24, 24], "{r:?}");
    let r: OffsetFetchResponse = a.call(ApiKey::OffsetFetch, 7, &fetch_v1).await;
    assert_eq!(r.error_code, 24);
    let r: DescribeGroupsResponse =
        a.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(""))])).await;
    assert_eq!(r.groups[0].error_code, 24);
    let r: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_request("", "", "consumer", b"m")).await;
    assert_eq!(r.error_code, 24);
    broker.shutdown().await.unwrap();
}

fn new_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
                .collect(),
        )
}

fn metadata_for(topic: &str, allow: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
        .with_allow_auto_topic_creation(allow)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_creates_describes_trims_and_deletes_topics_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    let mut k = KafkaConn::connect(broker.kafka_addr().unwrap()).await;

    let create_req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        new_topic("ka-seg", 3, &[("retention.ms", "3600000")]),
        new_topic("ka-cl", 2, &[("janus.engine", "commitlog")]),
        new_topic("ka-bad-engine", 1, &[("janus.engine", "innodb")]),
        new_topic("ka-zero", 0, &[]),
        new_topic("ka-replicated", 1, &[]).with_replication_factor(3),
        new_topic("ka-bad-key", 1, &[("flush.policy", "sometimes")]),
        // Kafka configs with no effect on one broker are accepted (Kafka Streams sets some of them).
        new_topic("ka-streams", 1, &[("min.insync.replicas", "2"), ("message.timestamp.type", "CreateTime")]),
        new_topic("ka-twice", 1, &[]),
        new_topic("ka-twice", 2, &[]),
    ]);
    let created: CreateTopicsResponse = k.call(ApiKey::CreateTopics, 7, &create_req).await;
    let codes: Vec<(String, i16)> = created.topics.iter().map(|t| (t.name.to_string(), t.error_code)).collect();
    assert_eq!(
        codes,
        vec![
            ("ka-seg".into(), 0),
            ("ka-cl".into(), 0),
            ("ka-bad-engine".into(), 40),
            ("ka-zero".into(), 37),
            ("ka-replicated".into(), 38),
            ("ka-bad-key".into(), 40),
            ("ka-streams".into(), 0),
            ("ka-twice".into(), 42),
            ("ka-twice".into(), 42),
        ]
    );
    assert!(
        created.topics[5].error_message.as_ref().is_some_and(|m| m.contains("flush.policy")),
        "{:?}",
        created.topics[5]
    );
    assert!(client.describe_topic("ka-twice").await.is_err(), "a name given twice creates neither");
    assert_eq!((created.topics[1].num_partitions, created.topics[1].replication_factor), (2, 1));
    assert_eq!(client.describe_topic("ka-cl").await.unwrap().topic.engine, Some(Engine::Commitlog));
    assert_eq!(client.describe_topic("ka-seg").await.unwrap().topic.engine, Some(Engine::Segment));
    let again: CreateTopicsResponse = k
        .call(ApiKey::CreateTopics, 4, &CreateTopicsRequest::default().with_topics(vec![new_topic("ka-seg", 1, &[])]))
        .await;
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    // validate_only runs every check of a creation and answers what the topic would get.
    let dry_run = CreateTopicsRequest::default().with_validate_only(true).with_topics(vec![
        new_topic("ka-dry", 2, &[("janus.engine", "commitlog"), ("retention.ms", "60000")]),
        new_topic("ka-dry-bad", 1, &[("retention.ms", "soon")]),
        new_topic("ka-seg", 1, &[]),
        new_topic("bad/name", 1, &[]),
    ]);
    let dry: CreateTopicsResponse = k.call(ApiKey::CreateTopics, 5, &dry_run).await;
    let codes: Vec<i16> = dry.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 40, 36, 17], "{dry:?}");
    assert_eq!(dry.topics[0].num_partitions, 2);
    let configs = dry.topics[0].configs.as_ref().expect("v5 answers the configs");
    let value = |key: &str| {
        configs.iter().find(|c| c.name.as_str() == key).and_then(|c| c.value.as_ref()).map(|v| v.to_string())
    };
    assert_eq!(
        (value("janus.engine").as_deref(), value("retention.ms").as_deref()),
        (Some("commitlog"), Some("60000"))
    );
    assert!(client.describe_topic("ka-dry").await.is_err(), "validate_only creates nothing");

    // Every config with its source; the engine is read-only.
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("ka-seg"))
            .with_configuration_keys(None),
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("ka-nope"))
            .with_configuration_keys(None),
    ]);
    let described: DescribeConfigsResponse = k.call(ApiKey::DescribeConfigs, 4, &describe).await;
    let configs: BTreeMap<String, (Option<String>, i8, bool)> = described.results[0]
        .configs
        .iter()
        .map(|c| (c.name.to_string(), (c.value.as_ref().map(|v| v.to_string()), c.config_source, c.read_only)))
        .collect();
    assert_eq!(configs["retention.ms"], (Some("3600000".into()), 1, false), "set on the topic: DYNAMIC_TOPIC_CONFIG");
    assert_eq!(configs["segment.bytes"].1, 5, "built in: DEFAULT_CONFIG");
    assert_eq!(configs["janus.engine"], (Some("segment".into()), 1, true));
    assert_eq!(described.results[1].error_code, 3);

    // DeleteRecords moves the log start on both engines; ListOffsets and gRPC agree.
    for topic in ["ka-seg", "ka-cl"] {
        let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        for v in &values {
            client
                .produce(janus_client::proto::ProduceRequest {
                    topic: topic.into(),
                    partition: Some(0),
                    messages: vec![janus_client::proto::Message {
                        value: Some(v.clone().into_bytes().into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let delete = |offset: i64| {
            DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
                DeleteRecordsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
                    DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset),
                ]),
            ])
        };
        let r: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 2, &delete(4)).await;
        assert_eq!((r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].low_watermark), (0, 4), "{topic}");
        let r: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 2, &delete(100)).await;
        assert_eq!(r.topics[0].partitions[0].error_code, 1, "{topic}: past the end is OFFSET_OUT_OF_RANGE");
        let r: DeleteRecordsResponse = k.call(ApiKey::DeleteRecords, 0, &delete(-1)).await;
        assert_eq!(r.topics[0].partitions[0].low_watermark, 10, "{topic}: -1 is the high watermark");
        let list = |timestamp: i64| {
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
            ])
        };
        let earliest: ListOffsetsResponse = k.call(ApiKey::ListOffsets, 7, &list(-2)).await;
        assert_eq!(earliest.topics[0].partitions[0].offset, 10, "{topic}: the log start moved");
        let max_timestamp: ListOffsetsResponse = k.call(ApiKey::ListOffsets, 7, &list(-3)).await;
        assert_eq!(max_timestamp.topics[0].partitions[0].error_code, 35, "{topic}: -3 is refused, not guessed");
        let d = client.describe_topic(topic).await.unwrap();
        assert_eq!(d.partitions[0].log_start_offset, 10, "{topic}");
    }

    // Auto-creation: only when the request allows it; on the broker default engine and partitions.
    let no: MetadataResponse = k.call(ApiKey::Metadata, 9, &metadata_for("ka-auto", false)).await;
    assert_eq!(no.topics[0].error_code, 3);
    let yes: MetadataResponse = k.call(ApiKey::Metadata, 9, &metadata_for("ka-auto", true)).await;
    assert_eq!((yes.topics[0].error_code, yes.topics[0].partitions.len()), (0, 1), "{yes:?}");
    assert_eq!(client.describe_topic("ka-auto").await.unwrap().topic.engine, Some(Engine::Segment));
    let bad: MetadataResponse = k.call(ApiKey::Metadata, 9, &metadata_for("bad/name", true)).await;
    assert_eq!(bad.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");

    // DeleteTopics by name; an unknown one has its own error.
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("ka-cl")), TopicName(s("ka-nope"))]);
    let deleted: DeleteTopicsResponse = k.call(ApiKey::DeleteTopics, 5, &delete).await;
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 3]);
    assert!(client.describe_topic("ka-cl").await.is_err());
    broker.shutdown().await.unwrap();

    // A broker with auto-creation off creates nothing.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.kafka.auto_create_topics = false;
    let broker = Broker::start(c).await.unwrap();
    let mut k = KafkaConn::connect(broker.kafka_addr().unwrap()).await;
    let no: MetadataResponse = k.call(ApiKey::Metadata, 4, &metadata_for("ka-auto", true)).await;
    assert_eq!(no.topics[0].error_code, 3);
    broker.shutdown().await.unwrap();
}

fn one_batch(values: &[&str]) -> Bytes {
    let records: Vec<janus_codec::NewRecord> = values
        .iter()
        .map(|v| janus_codec::NewRecord {
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
            timestamp_ms: 1_000,
        })
        .collect();
    janus_codec::RecordBatch::build(&records, janus_codec::Compression::None).unwrap().into_bytes()
}

fn produce_request(partitions: &[(i32, Bytes)]) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let data = partitions
        .iter()
        .map(|(index, batch)| PartitionProduceData::default().with_index(*index).with_records(Some(batch.clone())))
        .collect();
    ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(s("kp-orders"))).with_partition_data(data),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_request_appends_each_partition_on_its_own_and_a_repeated_one_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(config(dir.path())).await.unwrap();
    let client = janus_client::Client::connect(&format!("http://{}", broker.grpc_addr())).await.unwrap();
    for engine in [Engine::Segment, Engine::Commitlog] {
        let _ = client.delete_topic("kp-orders").await;
        create(&client, "kp-orders", engine, 3, &[("flush.policy", "sync")]).await;
        let mut k = KafkaConn::connect(broker.kafka_addr().unwrap()).await;
        // Three partitions, one the topic lacks: the others are appended, the missing one refused alone.
        let req = produce_request(&[(0, one_batch(&["a", "b"])), (99, one_batch(&["x"])), (2, one_batch(&["c"]))]);
        let r: ProduceResponse = k.call(ApiKey::Produce, 9, &req).await;
        let got: Vec<(i32, i16, i64)> =
            r.responses[0].partition_responses.iter().map(|p| (p.index, p.error_code, p.base_offset)).collect();
        assert_eq!(got, vec![(0, 0, 0), (99, 3, -1), (2, 0, 0)], "{engine:?}");
        // The same partition twice in one request: stored in request order.
        let req = produce_request(&[(0, one_batch(&["c"])), (0, one_batch(&["d", "e"]))]);
        let r: ProduceResponse = k.call(ApiKey::Produce, 9, &req).await;
        let offsets: Vec<i64> = r.responses[0].partition_responses.iter().map(|p| p.base_offset).collect();
        assert_eq!(offsets, vec![2, 3], "{engine:?}");
        let d = client.describe_topic("kp-orders").await.unwrap();
        let ends: Vec<i64> = d.partitions.iter().map(|p| p.log_end_offset).collect();
        assert_eq!(ends, vec![5, 0, 1], "{engine:?}");
    }
    broker.shutdown().await.unwrap();
}
