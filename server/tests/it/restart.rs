//! Restarts and startup reconciliation: data, configs and committed offsets survive a restart; engine files
//! without metadata are removed; a topic whose files vanished is recreated empty; creates and deletes a
//! crash interrupted (their `creating` / `deleting` records, written here while the broker is down, with
//! the engine files they had made) are rolled back / finished.

use std::collections::BTreeMap;

use crate::common::*;
use janus_api::{EngineKind, NewRecord, RecordBatch, TopicPartition, TopicSpec};
use janus_core::topics::EngineSet;
use janus_proto::v1;
use janus_server::meta::{MetaStore, TopicRecord, TopicState};

#[tokio::test]
async fn topics_configs_data_and_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (broker, mut c) = start(config(dir.path())).await;
        create(&mut c, "seg", v1::Engine::Segment, 2, &[("retention.ms", "-1")]).await;
        create(&mut c, "cl", v1::Engine::Commitlog, 1, &[("flush.policy", "sync")]).await;
        for topic in ["seg", "cl"] {
            produce(&mut c, topic, Some(0), vec![msg(None, "one"), msg(None, "two")]).await;
            commit_offsets(&mut c, "survivors", topic, &[(0, 1)]).await;
        }
        c.admin
            .alter_topic_config(v1::AlterTopicConfigRequest {
                name: "seg".into(),
                configs: [("segment.bytes".to_string(), "1048576".to_string())].into(),
            })
            .await
            .unwrap();
        broker.shutdown().await.unwrap();
    }
    assert!(dir.path().join("segment/.clean-shutdown").exists());
    let (broker, mut c) = start(config(dir.path())).await;
    assert!(broker.reconciliation().orphans_removed.is_empty());
    assert!(broker.reconciliation().recreated.is_empty());
    let d = c.admin.describe_topic(v1::DescribeTopicRequest { name: "seg".into() }).await.unwrap().into_inner();
    let info = d.topic.unwrap();
    assert_eq!(info.engine, v1::Engine::Segment as i32);
    assert_eq!(info.partitions, 2);
    assert_eq!(info.configs["retention.ms"], "-1");
    assert_eq!(info.configs["segment.bytes"], "1048576");
    assert_eq!(d.partitions[0].log_end_offset, 2);
    let cl = c.admin.describe_topic(v1::DescribeTopicRequest { name: "cl".into() }).await.unwrap().into_inner();
    assert_eq!(cl.topic.unwrap().configs["flush.policy"], "sync");
    for topic in ["seg", "cl"] {
        assert_eq!(values(&fetch(&mut c, topic, 0, 0).await.unwrap()), vec!["one", "two"]);
        assert_eq!(fetch_offsets(&mut c, "survivors", topic).await, partition_offsets(&[(0, 1)]));
        // Appends continue after the old offsets.
        let r = produce(&mut c, topic, Some(0), vec![msg(None, "three")]).await;
        assert_eq!(r.appends[0].base_offset, 2);
    }
    // Deleting a topic drops its committed offsets with it.
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "cl".into() }).await.unwrap();
    let d =
        c.consumer.describe_group(v1::DescribeGroupRequest { group: "survivors".into() }).await.unwrap().into_inner();
    assert_eq!(d.partitions.iter().map(|p| p.topic.as_str()).collect::<Vec<_>>(), vec!["seg"]);
    broker.shutdown().await.unwrap();
}

fn batch(values: &[&str]) -> RecordBatch {
    let records: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
            timestamp_ms: 1,
            ..Default::default()
        })
        .collect();
    RecordBatch::build(&records, janus_api::Compression::None).unwrap()
}

fn record(name: &str, engine: &str, state: TopicState) -> TopicRecord {
    TopicRecord {
        name: name.into(),
        engine: engine.into(),
        partitions: 1,
        overrides: BTreeMap::new(),
        state,
        created_ms: 1,
    }
}

#[tokio::test]
async fn startup_reconciles_metadata_with_engine_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let (broker, mut c) = start(cfg.clone()).await;
        create(&mut c, "kept", v1::Engine::Segment, 1, &[]).await;
        create(&mut c, "kept-cl", v1::Engine::Commitlog, 1, &[]).await;
        produce(&mut c, "kept", Some(0), vec![msg(None, "lost")]).await;
        produce(&mut c, "kept-cl", Some(0), vec![msg(None, "kept")]).await;
        broker.shutdown().await.unwrap();
    }
    // While the broker is down: engine files nobody's metadata knows, interrupted creates and deletes (the
    // state records plus the files the engine had made), and a live topic whose files are gone.
    {
        let engines = EngineSet::open(dir.path(), &cfg.engine_options().unwrap()).unwrap();
        let seg = engines.get(EngineKind::Segment);
        for name in ["orphan-seg", "half-seg", "going-seg"] {
            seg.create_topic(&TopicSpec::new(name, 2)).unwrap();
            seg.append(&TopicPartition::new(name, 1), batch(&["old", "data"])).unwrap().durable.wait().unwrap();
        }
        seg.shutdown().unwrap();
        let cl = engines.get(EngineKind::Commitlog);
        for name in ["orphan-cl", "half-cl"] {
            cl.create_topic(&TopicSpec::new(name, 1)).unwrap();
            cl.append(&TopicPartition::new(name, 0), batch(&["old"])).unwrap().durable.wait().unwrap();
        }
        // Dropped without shutdown: a crash of the commitlog engine.
        drop(engines);
        let meta = MetaStore::open(&dir.path().join("meta")).unwrap();
        meta.put_topic(&record("half-seg", "segment", TopicState::Creating)).unwrap();
        meta.put_topic(&record("half-cl", "commitlog", TopicState::Creating)).unwrap();
        meta.put_topic(&record("going-seg", "segment", TopicState::Deleting)).unwrap();
        meta.put_topic(&record("never-made", "commitlog", TopicState::Creating)).unwrap();
        meta.close().unwrap();
        std::fs::remove_dir_all(dir.path().join("segment/kept-0")).unwrap();
    }
    let (broker, mut c) = start(cfg.clone()).await;
    let r = broker.reconciliation().clone();
    let mut orphans: Vec<String> = r.orphans_removed.iter().map(|(_, n)| n.clone()).collect();
    orphans.sort();
    assert_eq!(orphans, vec!["orphan-cl", "orphan-seg"]);
    assert_eq!(r.recreated, vec!["kept"]);
    let mut rolled_back = r.rolled_back.clone();
    rolled_back.sort();
    assert_eq!(rolled_back, vec!["half-cl", "half-seg", "never-made"]);
    assert_eq!(r.finished_deletes, vec!["going-seg"]);
    let list = c.admin.list_topics(v1::ListTopicsRequest {}).await.unwrap().into_inner();
    assert_eq!(list.topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["kept", "kept-cl"]);
    for gone in ["orphan-seg-0", "orphan-seg-1", "half-seg-1", "going-seg-1"] {
        assert!(!dir.path().join("segment").join(gone).exists(), "{gone} should be removed");
    }
    for gone in ["orphan-cl", "half-cl"] {
        assert!(!dir.path().join("commitlog/consumequeue").join(gone).exists(), "{gone} should be removed");
    }
    // The topic whose files vanished is there, empty and writable; the other one kept its data.
    let kept = fetch(&mut c, "kept", 0, 0).await.unwrap();
    assert!(kept.messages.is_empty());
    assert_eq!(kept.log_end_offset, 0);
    produce(&mut c, "kept", Some(0), vec![msg(None, "new")]).await;
    assert_eq!(values(&fetch(&mut c, "kept-cl", 0, 0).await.unwrap()), vec!["kept"]);
    // Names of removed topics can be reused, and nothing of their old data comes back.
    for (name, engine) in [("orphan-seg", v1::Engine::Segment), ("orphan-cl", v1::Engine::Commitlog)] {
        create(&mut c, name, engine, 2, &[]).await;
        for p in 0..2 {
            let r = fetch(&mut c, name, p, 0).await.unwrap();
            assert!(r.messages.is_empty() && r.log_end_offset == 0, "{name}-{p}: {r:?}");
        }
    }
    broker.shutdown().await.unwrap();
    // And after another restart everything is still consistent.
    let (broker, mut c) = start(cfg).await;
    assert!(broker.reconciliation().orphans_removed.is_empty(), "{:?}", broker.reconciliation());
    assert_eq!(values(&fetch(&mut c, "kept", 0, 0).await.unwrap()), vec!["new"]);
    broker.shutdown().await.unwrap();
}
