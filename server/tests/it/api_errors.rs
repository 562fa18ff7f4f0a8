//! Every error case of the API, through gRPC: NOT_FOUND, INVALID_ARGUMENT (name, config, oversized
//! message), OUT_OF_RANGE (with the valid range), ALREADY_EXISTS (full disks: `disk_space`).

use std::collections::HashMap;

use crate::common::*;
use janus_proto::v1;
use tonic::Code;

#[tokio::test]
async fn every_error_maps_to_its_status_code() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "orders", v1::Engine::Segment, 2, &[("max.message.bytes", "1024")]).await;
    create(&mut c, "events", v1::Engine::Commitlog, 1, &[]).await;

    // NOT_FOUND: unknown topic on every kind of call, unknown partition.
    let e = fetch(&mut c, "nope", 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("'nope'") && e.message().contains("CreateTopic"), "{}", e.message());
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "nope".into(),
            partition: None,
            messages: vec![msg(None, "x")],
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.admin.describe_topic(v1::DescribeTopicRequest { name: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.admin.delete_topic(v1::DeleteTopicRequest { name: "nope".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = fetch(&mut c, "orders", 7, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("no partition 7"), "{}", e.message());
    let e = c.consumer.describe_group(v1::DescribeGroupRequest { group: "ghosts".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // ALREADY_EXISTS.
    let e = c
        .admin
        .create_topic(v1::CreateTopicRequest {
            name: "orders".into(),
            engine: v1::Engine::Commitlog as i32,
            partitions: 1,
            configs: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains("orders"));

    // INVALID_ARGUMENT: bad name, unknown key, out-of-range value, compaction on commitlog, oversized message.
    let bad = |name: &str, configs: &[(&str, &str)]| v1::CreateTopicRequest {
        name: name.into(),
        engine: v1::Engine::Segment as i32,
        partitions: 1,
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let e = c.admin.create_topic(bad("a/b", &[])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("a/b"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("retention.mss", "1")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("retention.mss") && e.message().contains("unknown"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("flush.policy", "often")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("flush.policy") && e.message().contains("os, interval, sync"), "{}", e.message());
    let e = c.admin.create_topic(bad("ok", &[("partitions", "0")])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mut compact = bad("ok", &[("cleanup.policy", "compact")]);
    compact.engine = v1::Engine::Commitlog as i32;
    let e = c.admin.create_topic(compact).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("cleanup.policy"), "{}", e.message());
    let e = c
        .admin
        .alter_topic_config(v1::AlterTopicConfigRequest {
            name: "orders".into(),
            configs: [("retention.ms".to_string(), "-5".to_string())].into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("retention.ms"), "{}", e.message());
    let big = "x".repeat(2000);
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "orders".into(),
            partition: Some(0),
            messages: vec![msg(None, &big)],
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("max.message.bytes = 1024"), "{}", e.message());
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "orders".into(),
            partition: None,
            messages: vec![],
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A failed create leaves nothing behind.
    let list = c.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap().into_inner();
    let names: Vec<_> = list.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["events", "orders"]);

    // OUT_OF_RANGE with the valid range, on both engines; reading at the end is fine.
    for topic in ["orders", "events"] {
        produce(&mut c, topic, Some(0), vec![msg(None, "a"), msg(None, "b"), msg(None, "c")]).await;
        let e = fetch(&mut c, topic, 0, 10).await.unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange, "{topic}: {e:?}");
        assert!(e.message().contains("0..3"), "{topic}: {}", e.message());
        let at_end = fetch(&mut c, topic, 0, 3).await.unwrap();
        assert!(at_end.messages.is_empty());
        assert_eq!(at_end.log_end_offset, 3);
        let e = c.consumer.subscribe(subscribe_request(topic, v1::position::At::Offset(99))).await.unwrap_err();
        assert_eq!(e.code(), Code::OutOfRange);
        assert!(e.message().contains("0..3"), "{}", e.message());
    }
    broker.shutdown().await.unwrap();
}
