//! Bounded memory under load (a tiny memory budget: every produce completes, the budget is never exceeded,
//! producers wait, and a request larger than the budget on its own is refused), and the Prometheus
//! endpoint after traffic.

use std::sync::Arc;

use crate::common::*;
use janus_proto::v1;

#[tokio::test]
async fn many_concurrent_produces_finish_within_a_tiny_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // Each request below holds about 6.5 KiB once decoded (two 1,500-byte messages, measured before decoding).
    cfg.limits.inflight_bytes = 16 * 1024;
    cfg.limits.connection_inflight_bytes = 12 * 1024;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "load", v1::Engine::Segment, 4, &[("flush.policy", "sync")]).await;
    create(&mut c, "load-cl", v1::Engine::Commitlog, 4, &[("flush.policy", "sync")]).await;
    let value = Arc::new("m".repeat(1500));
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        // Half on the shared connection, half on their own: both budgets are exercised.
        let mut producer = if i % 2 == 0 { c.producer.clone() } else { connect(broker.grpc_addr()).await.producer };
        let value = Arc::clone(&value);
        tasks.push(tokio::spawn(async move {
            let topic = if i % 3 == 0 { "load-cl" } else { "load" };
            producer
                .produce(v1::ProduceRequest {
                    topic: topic.into(),
                    partition: Some(i % 4),
                    messages: vec![msg(None, &value), msg(None, &value)],
                    wait_durable: true,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().appends.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 1);
    }
    let stats = broker.inflight();
    assert_eq!(stats.limit, 16 * 1024);
    assert!(stats.peak <= stats.limit, "{stats:?}");
    assert!(stats.peak > 0, "{stats:?}");
    assert!(stats.waits > 0, "producers should have waited for budget: {stats:?}");
    assert_eq!(stats.current, 0, "{stats:?}");
    // A request that alone needs more than the connection's budget is refused, naming the limit.
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "load".into(),
            partition: Some(0),
            messages: (0..4).map(|_| msg(None, &value)).collect(),
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("limits.connection_inflight_bytes = 12288"), "{}", e.message());
    // (The gauges are process-wide and other tests' brokers share them: assert on the broker's own API.)
    let text = scrape(broker.metrics_addr()).await;
    assert!(text.contains("janus_inflight_bytes_limit"), "{text}");
    assert!(text.contains("janus_inflight_waits_total"), "{text}");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_metrics_endpoint_serves_every_family_after_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.metrics_interval_ms = 100;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "metered", v1::Engine::Segment, 1, &[("flush.policy", "sync")]).await;
    c.producer
        .produce(v1::ProduceRequest {
            topic: "metered".into(),
            partition: None,
            messages: vec![msg(Some("k"), "hello"), msg(Some("k"), "world")],
            wait_durable: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let r = fetch(&mut c, "metered", 0, 0).await.unwrap();
    assert_eq!(r.messages.len(), 2);
    commit_offsets(&mut c, "watchers", "metered", &[(0, 1)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = scrape(broker.metrics_addr()).await;
    for name in [
        "janus_messages_in_total{topic=\"metered\"} 2",
        "janus_bytes_in_total{topic=\"metered\"}",
        "janus_messages_out_total{topic=\"metered\"} 2",
        "janus_bytes_out_total{topic=\"metered\"}",
        "janus_request_duration_seconds_bucket{rpc=\"Produce\",code=\"ok\"",
        "janus_request_duration_seconds_bucket{rpc=\"Fetch\"",
        "janus_flush_duration_seconds_bucket{engine=\"segment\"",
        "janus_disk_bytes{engine=\"segment\"}",
        "janus_disk_bytes{engine=\"commitlog\"}",
        "janus_consumer_lag{group=\"watchers\",topic=\"metered\",partition=\"0\"} 1",
        "janus_inflight_bytes",
        "janus_topics",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    broker.shutdown().await.unwrap();
}
