//! Consuming: long-poll Fetch wakes on new data, Subscribe streams and stays bounded under a slow reader,
//! tag filters on both engines, key partitioning, and consumer-group offsets.

use std::time::{Duration, Instant};

use crate::common::*;
use janus_client::partitioner::partition_for_key;
use janus_proto::v1;
use janus_proto::v1::position::At;
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn long_poll_fetch_returns_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    for (topic, engine) in [("lp-seg", v1::Engine::Segment), ("lp-cl", v1::Engine::Commitlog)] {
        create(&mut c, topic, engine, 1, &[]).await;
        // Nothing there: the fetch waits its full max_wait_ms and answers empty.
        let started = Instant::now();
        let r = c
            .consumer
            .fetch(v1::FetchRequest {
                topic: topic.into(),
                partition: 0,
                offset: 0,
                max_bytes: 0,
                max_wait_ms: 200,
                tags: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.messages.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(190), "{:?}", started.elapsed());

        // A producer appends while the fetch waits (up to 30 s): it returns right after.
        let mut consumer = c.consumer.clone();
        let t = topic.to_string();
        let waiter = tokio::spawn(async move {
            let started = Instant::now();
            let r = consumer
                .fetch(v1::FetchRequest {
                    topic: t,
                    partition: 0,
                    offset: 0,
                    max_bytes: 0,
                    max_wait_ms: 30_000,
                    tags: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (r, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce(&mut c, topic, Some(0), vec![msg(None, "wake up")]).await;
        let (r, waited) = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap();
        assert_eq!(values(&r), vec!["wake up"]);
        assert!(waited < Duration::from_secs(5), "{topic}: waited {waited:?}");
        assert_eq!(r.next_offset, 1);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn subscribe_streams_and_a_slow_reader_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.subscribe_buffer = 2;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "stream", v1::Engine::Segment, 1, &[]).await;
    // 4 MiB of data in batches of 16 KiB, read a batch per response by a reader that stalls for a while.
    let value = "s".repeat(8 * 1024);
    for _ in 0..256 {
        let batch = (0..2).map(|_| msg(None, &value)).collect();
        produce(&mut c, "stream", Some(0), batch).await;
    }
    let mut stream = c
        .consumer
        .subscribe(v1::SubscribeRequest { max_bytes: 16 * 1024, ..subscribe_request("stream", At::Earliest(true)) })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.messages[0].offset, 0);
    let bound = 3 * (20 * 1024) as u64;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let buffered = broker.subscribe_buffered_bytes();
        assert!(buffered <= bound, "the broker buffered {buffered} bytes for one slow subscription");
    }
    // Read the rest: every message arrives once, in order.
    let mut next = first.next_offset;
    let mut count = first.messages.len();
    while count < 512 {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(r.messages[0].offset, next);
        next = r.next_offset;
        count += r.messages.len();
        assert!(broker.subscribe_buffered_bytes() <= bound);
    }
    assert_eq!(count, 512);
    // Live tail: a new message arrives on the open stream.
    produce(&mut c, "stream", Some(0), vec![msg(None, "live")]).await;
    let r = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(values(&r), vec!["live"]);
    drop(stream);
    // Deleting the topic ends other subscriptions with NOT_FOUND.
    let mut tail = c.consumer.subscribe(subscribe_request("stream", At::Latest(true))).await.unwrap().into_inner();
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "stream".into() }).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), tail.next()).await.unwrap().unwrap();
    assert_eq!(end.unwrap_err().code(), Code::NotFound);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(broker.subscribe_buffered_bytes(), 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn tag_filters_work_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    for (topic, engine) in [("tags-cl", v1::Engine::Commitlog), ("tags-seg", v1::Engine::Segment)] {
        create(&mut c, topic, engine, 1, &[]).await;
        let messages = vec![
            tagged("a1", "TagA"),
            tagged("b1", "TagB"),
            msg(None, "untagged"),
            tagged("c1", "TagC"),
            tagged("a2", "TagA"),
        ];
        produce(&mut c, topic, Some(0), messages).await;
        let r = c
            .consumer
            .fetch(v1::FetchRequest {
                topic: topic.into(),
                partition: 0,
                offset: 0,
                max_bytes: 0,
                max_wait_ms: 1000,
                tags: vec!["TagA".into(), "TagC".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(values(&r), vec!["a1", "c1", "a2"], "{topic}");
        let offsets: Vec<i64> = r.messages.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![0, 3, 4]);
        assert_eq!(r.messages[0].headers[0].key, "TAGS");
        // A subscription with a filter sees only its tag, including new messages.
        let mut s = c
            .consumer
            .subscribe(v1::SubscribeRequest {
                tags: vec!["TagB".into()],
                ..subscribe_request(topic, At::Earliest(true))
            })
            .await
            .unwrap()
            .into_inner();
        let r = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(values(&r), vec!["b1"]);
        produce(&mut c, topic, Some(0), vec![tagged("a3", "TagA"), tagged("b2", "TagB")]).await;
        let r = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(values(&r), vec!["b2"]);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn keys_land_on_kafkas_partition_and_keyless_requests_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "keyed", v1::Engine::Segment, 7, &[]).await;
    let keys = ["21", "foobar", "abc", "user-1", "user-2", "a-little-bit-long-string"];
    let r = produce(&mut c, "keyed", None, keys.iter().map(|k| msg(Some(k), k)).collect()).await;
    for k in keys {
        let p = partition_for_key(k.as_bytes(), 7);
        let got = fetch(&mut c, "keyed", p, 0).await.unwrap();
        assert!(values(&got).contains(&k.to_string()), "{k} should be in partition {p}");
    }
    assert!(r.appends.iter().all(|a| a.partition < 7));
    // Keyless: all of one request in one partition; successive requests move on.
    let mut parts = Vec::new();
    for i in 0..7 {
        let r = produce(&mut c, "keyed", None, (0..3).map(|j| msg(None, &format!("{i}-{j}"))).collect()).await;
        assert_eq!(r.appends.len(), 1);
        assert_eq!(r.appends[0].last_offset - r.appends[0].base_offset, 2);
        parts.push(r.appends[0].partition);
    }
    parts.sort();
    parts.dedup();
    assert_eq!(parts.len(), 7, "keyless requests rotate over every partition");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn group_offsets_commit_fetch_reset_describe() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "g-topic", v1::Engine::Commitlog, 2, &[]).await;
    produce(&mut c, "g-topic", Some(0), (0..5).map(|i| msg(None, &i.to_string())).collect()).await;
    produce(&mut c, "g-topic", Some(1), (0..3).map(|i| msg(None, &i.to_string())).collect()).await;
    commit_offsets(&mut c, "g1", "g-topic", &[(0, 2)]).await;
    assert_eq!(fetch_offsets(&mut c, "g1", "g-topic").await, partition_offsets(&[(0, 2)]));
    let d = c.consumer.describe_group(v1::DescribeGroupRequest { group: "g1".into() }).await.unwrap().into_inner();
    assert_eq!(d.group, "g1");
    assert_eq!(d.partitions.len(), 1);
    assert_eq!((d.partitions[0].committed_offset, d.partitions[0].log_end_offset, d.partitions[0].lag), (2, 5, 3));
    let reset = c
        .consumer
        .reset_offsets(v1::ResetOffsetsRequest {
            group: "g1".into(),
            topic: "g-topic".into(),
            to: Some(v1::Position { at: Some(At::Latest(true)) }),
            partition: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.offsets, partition_offsets(&[(0, 5), (1, 3)]));
    let reset = c
        .consumer
        .reset_offsets(v1::ResetOffsetsRequest {
            group: "g1".into(),
            topic: "g-topic".into(),
            to: Some(v1::Position { at: Some(At::Earliest(true)) }),
            partition: Some(1),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.offsets, partition_offsets(&[(1, 0)]));
    let e = c
        .consumer
        .reset_offsets(v1::ResetOffsetsRequest {
            group: "g1".into(),
            topic: "g-topic".into(),
            to: Some(v1::Position { at: Some(At::Offset(42)) }),
            partition: Some(1),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    assert!(e.message().contains("0..3"), "{}", e.message());
    let e = c
        .consumer
        .commit_offsets(v1::CommitOffsetsRequest {
            group: "".into(),
            topic: "g-topic".into(),
            offsets: partition_offsets(&[(0, 1)]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let groups = c.consumer.list_groups(v1::ListGroupsRequest {}).await.unwrap().into_inner();
    assert_eq!(groups.groups, vec!["g1"]);
    let d = c.consumer.describe_group(v1::DescribeGroupRequest { group: "g1".into() }).await.unwrap().into_inner();
    let lags: Vec<(u32, i64, i64)> = d.partitions.iter().map(|p| (p.partition, p.committed_offset, p.lag)).collect();
    assert_eq!(lags, vec![(0, 5, 0), (1, 0, 3)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_long_polls_and_ends_subscriptions_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "idle", v1::Engine::Commitlog, 1, &[]).await;
    let mut stream = c.consumer.subscribe(subscribe_request("idle", At::Latest(true))).await.unwrap().into_inner();
    let mut consumer = c.consumer.clone();
    let poll = tokio::spawn(async move {
        consumer
            .fetch(v1::FetchRequest {
                topic: "idle".into(),
                partition: 0,
                offset: 0,
                max_bytes: 0,
                max_wait_ms: 60_000,
                tags: vec![],
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    broker.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let r = poll.await.unwrap().unwrap().into_inner();
    assert!(r.messages.is_empty());
    let end = stream.next().await.unwrap().unwrap_err();
    assert_eq!(end.code(), Code::Unavailable);
}
