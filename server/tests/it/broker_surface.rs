//! What the redesign added at the broker's surface: server reflection in both versions older and newer
//! tools speak, the broker-wide `max.partitions` budget, and the stable numeric error code every gRPC
//! error carries.

use janus_proto::v1;
use tonic::Code;
use tonic_reflection::pb::{v1 as reflection_v1, v1alpha as reflection_v1alpha};

use crate::common::*;

/// The services a reflection `list_services` call names, through either protocol version.
macro_rules! list_services {
    ($module:ident, $addr:expr) => {{
        use $module::server_reflection_client::ServerReflectionClient;
        use $module::server_reflection_request::MessageRequest;
        use $module::server_reflection_response::MessageResponse;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", $addr)).unwrap().connect().await.unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let request = $module::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses =
            client.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
        let response = responses.message().await.unwrap().expect("one reflection response");
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
            }
            other => panic!("unexpected reflection answer: {other:?}"),
        }
    }};
}

#[tokio::test]
async fn reflection_answers_in_v1_and_v1alpha() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _c) = start(config(dir.path())).await;
    let addr = broker.grpc_addr();
    for services in [list_services!(reflection_v1, addr), list_services!(reflection_v1alpha, addr)] {
        for wanted in ["janus.v1.Admin", "janus.v1.Producer", "janus.v1.Consumer", "grpc.health.v1.Health"] {
            assert!(services.iter().any(|s| s == wanted), "{wanted} missing from {services:?}");
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_partition_budget_is_broker_wide() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_partitions = 6;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "a", v1::Engine::Segment, 4, &[]).await;
    let refused = |engine: v1::Engine, partitions: u32| v1::CreateTopicRequest {
        name: "b".into(),
        engine: engine as i32,
        partitions,
        configs: Default::default(),
    };
    for engine in [v1::Engine::Segment, v1::Engine::Commitlog] {
        let e = c.admin.create_topic(refused(engine, 3)).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("max.partitions = 6") && e.message().contains("4 in use"), "{}", e.message());
        assert_eq!(e.metadata().get("janus-error-code").and_then(|v| v.to_str().ok()), Some("15"));
    }
    // Nothing was made for the refused topic, and the budget's rest is usable.
    assert!(!dir.path().join("segment/b-0").exists());
    create(&mut c, "b", v1::Engine::Commitlog, 2, &[]).await;
    // Deleting a topic gives its partitions back.
    c.admin.delete_topic(v1::DeleteTopicRequest { name: "a".into() }).await.unwrap();
    create(&mut c, "c", v1::Engine::Segment, 4, &[]).await;
    let names: Vec<String> = c
        .admin
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner()
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["b", "c"]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_carry_their_stable_code() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    create(&mut c, "t", v1::Engine::Segment, 1, &[]).await;
    let code =
        |s: &tonic::Status| s.metadata().get("janus-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);
    let e = fetch(&mut c, "nope", 0, 0).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::NotFound, Some("2")));
    let e = fetch(&mut c, "t", 3, 0).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::NotFound, Some("3")));
    let e = fetch(&mut c, "t", 0, 99).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::OutOfRange, Some("7")));
    let e = c.consumer.describe_group(v1::DescribeGroupRequest { group: "ghosts".into() }).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::NotFound, Some("12")));
    // A reset names its topic before its target: an unknown topic is NOT_FOUND even without `to`.
    let reset =
        |topic: &str| v1::ResetOffsetsRequest { group: "g".into(), topic: topic.into(), partition: None, to: None };
    let e = c.consumer.reset_offsets(reset("nope")).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::NotFound, Some("2")));
    let e = c.consumer.reset_offsets(reset("t")).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::InvalidArgument, Some("1")));
    assert!(e.message().contains("'to' is required"), "{}", e.message());
    broker.shutdown().await.unwrap();
}

/// The `grpc-encoding` a Fetch answer declares to a client that accepts gzip, with the values it carried.
async fn fetch_accepting_gzip(c: &Clients, topic: &str) -> (Option<String>, Vec<String>) {
    let mut consumer = c.consumer.clone().accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let request = v1::FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        max_bytes: 0,
        max_wait_ms: 0,
        tags: vec![],
        ..Default::default()
    };
    let response = consumer.fetch(request).await.unwrap();
    let encoding = response.metadata().get("grpc-encoding").and_then(|v| v.to_str().ok()).map(str::to_string);
    (encoding, values(response.get_ref()))
}

#[tokio::test]
async fn responses_are_compressed_only_when_the_operator_turns_it_on() {
    let payload: Vec<String> = (0..64).map(|i| format!("{i:04}{}", "x".repeat(2000))).collect();
    for on in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.response_compression = on;
        cfg.response_compression_min_bytes = 1024;
        let (broker, mut c) = start(cfg).await;
        for (topic, engine) in [("squeezed", v1::Engine::Segment), ("squeezed-cl", v1::Engine::Commitlog)] {
            create(&mut c, topic, engine, 1, &[]).await;
            produce(&mut c, topic, Some(0), payload.iter().map(|v| msg(None, v)).collect()).await;
            let (encoding, got) = fetch_accepting_gzip(&c, topic).await;
            assert_eq!(got, payload, "{topic}, response_compression = {on}: the data round-trips");
            if on {
                assert_eq!(encoding.as_deref(), Some("gzip"), "{topic}: turned on, a client accepting gzip gets gzip");
            } else {
                assert_eq!(
                    encoding, None,
                    "{topic}: off by default, nothing is compressed though the client accepts it"
                );
            }
        }
        broker.shutdown().await.unwrap();
    }
    assert!(!janus_server::BrokerConfig::default().response_compression, "off is the default");
}

#[tokio::test]
async fn shutdown_is_prompt_with_subscribers_that_never_read() {
    use janus_proto::v1::position::At;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.shutdown_timeout_ms = janus_server::BrokerConfig::default().shutdown_timeout_ms;
    let (broker, mut c) = start(cfg).await;
    let value = "v".repeat(64 * 1024);
    let topics = [("backlog", v1::Engine::Segment), ("backlog-cl", v1::Engine::Commitlog)];
    for (topic, engine) in topics {
        create(&mut c, topic, engine, 1, &[]).await;
        for _ in 0..64 {
            produce(&mut c, topic, Some(0), (0..8).map(|_| msg(None, &value)).collect()).await;
        }
    }
    // Subscribers that never read: the broker fills their HTTP/2 windows (and this connection's) and its
    // read-ahead, then waits.
    let mut stuck = Vec::new();
    for (topic, _) in topics {
        for _ in 0..4 {
            let request = subscribe_request(topic, At::Earliest(true));
            stuck.push(c.consumer.clone().subscribe(request).await.unwrap().into_inner());
        }
    }
    // And a long poll at the end of the log, which ends at once too.
    let long_poll = {
        let mut consumer = connect(broker.grpc_addr()).await.consumer;
        tokio::spawn(async move {
            consumer
                .fetch(v1::FetchRequest {
                    topic: "backlog".into(),
                    partition: 0,
                    offset: 512,
                    max_bytes: 0,
                    max_wait_ms: 60_000,
                    tags: vec![],
                    ..Default::default()
                })
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    broker.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "shutdown took {took:?} with stuck subscribers");
    let answered = tokio::time::timeout(std::time::Duration::from_secs(1), long_poll).await;
    assert!(answered.is_ok(), "the long poll was answered by the shutdown");
    drop(stuck);
}

#[tokio::test]
async fn undecodable_and_oversized_requests_get_this_apis_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.max_request_bytes = 64 * 1024;
    let (broker, mut c) = start(cfg).await;
    create(&mut c, "t", v1::Engine::Segment, 1, &[]).await;
    let code =
        |s: &tonic::Status| s.metadata().get("janus-error-code").and_then(|v| v.to_str().ok()).map(str::to_string);

    // A FetchRequest's bytes sent to Produce: field 3 is a varint there, a repeated message here.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", broker.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let wrong = v1::FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset: 5,
        max_bytes: 0,
        max_wait_ms: 0,
        tags: vec![],
        ..Default::default()
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/janus.v1.Producer/Produce");
    let codec = tonic_prost::ProstCodec::<v1::FetchRequest, v1::ProduceResponse>::default();
    let e = raw.unary(tonic::Request::new(wrong), path, codec).await.unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::InvalidArgument, Some("1")), "{e:?}");

    // Over limits.max_request_bytes: a size limit, not an offset out of range.
    let big = "b".repeat(100 * 1024);
    let e = c
        .producer
        .produce(v1::ProduceRequest {
            topic: "t".into(),
            partition: None,
            messages: vec![msg(None, &big)],
            wait_durable: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!((e.code(), code(&e).as_deref()), (Code::ResourceExhausted, Some("15")), "{e:?}");
    assert!(e.message().contains("limits.max_request_bytes"), "{}", e.message());
    // Nothing was stored, and the broker still serves.
    produce(&mut c, "t", None, vec![msg(None, "fine")]).await;
    assert_eq!(values(&fetch(&mut c, "t", 0, 0).await.unwrap()), vec!["fine"]);
    broker.shutdown().await.unwrap();
}
