//! The fast data path through the public API, on both engines: client-built RecordBatch v2 bytes in
//! Produce, raw batches out of Fetch and Subscribe, the bad inputs the broker must refuse without storing
//! anything, and the client library's batching producer and decoding consumer.

use std::time::Duration;

use bytes::Bytes;
use janus_client::{
    ConsumerConfig, FetchMode, Position, ProducerConfig, ProducerRecord, ReadFormat, RecordCompression,
};
use janus_codec::batch::decode_batches;
use janus_codec::{Compression, Header, NewRecord, RecordBatch};
use janus_proto::v1;
use tonic::Code;

use crate::common::{Clients, config, create, start};

const ENGINES: [v1::Engine; 2] = [v1::Engine::Segment, v1::Engine::Commitlog];

fn records(prefix: &str, n: usize, tag: Option<&str>) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("{prefix}-{i}"))),
            headers: tag
                .map(|t| vec![Header { key: "TAGS".into(), value: Some(Bytes::from(t.to_string())) }])
                .unwrap_or_default(),
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect()
}

fn batch(prefix: &str, n: usize, codec: Compression) -> Bytes {
    RecordBatch::build(&records(prefix, n, None), codec).unwrap().into_bytes()
}

fn produce_request(topic: &str, partition: u32, bytes: Bytes) -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: topic.into(),
        batches: vec![v1::PartitionBatches { partition, record_batches: bytes }],
        ..Default::default()
    }
}

fn fetch_request(topic: &str, offset: i64, format: v1::RecordFormat) -> v1::FetchRequest {
    v1::FetchRequest { topic: topic.into(), offset, format: format as i32, ..Default::default() }
}

async fn fetch_batches(c: &mut Clients, topic: &str, offset: i64) -> v1::FetchResponse {
    c.consumer.fetch(fetch_request(topic, offset, v1::RecordFormat::Batches)).await.unwrap().into_inner()
}

async fn log_end(c: &mut Clients, topic: &str) -> i64 {
    let d = c.admin.describe_topic(v1::DescribeTopicRequest { name: topic.into() }).await.unwrap().into_inner();
    d.partitions[0].log_end_offset
}

fn values_of(records: &[janus_codec::Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_batches_of_every_codec_are_stored_and_read_back_as_batches_and_as_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for engine in ENGINES {
        let topic = format!("fast-{}", engine.as_str_name());
        create(&mut c, &topic, engine, 1, &[]).await;
        // Two batches back to back in one request, then one per codec.
        let two = [batch("a", 3, Compression::None), batch("b", 2, Compression::None)].concat();
        let r = c.producer.produce(produce_request(&topic, 0, two.into())).await.unwrap().into_inner();
        assert_eq!(r.appends, vec![v1::PartitionAppend { partition: 0, base_offset: 0, last_offset: 4 }]);
        let mut expected: Vec<String> = ["a-0", "a-1", "a-2", "b-0", "b-1"].map(String::from).to_vec();
        for (i, codec) in codecs.into_iter().enumerate() {
            let prefix = format!("c{i}");
            c.producer.produce(produce_request(&topic, 0, batch(&prefix, 4, codec))).await.unwrap();
            expected.extend((0..4).map(|j| format!("{prefix}-{j}")));
        }
        assert_eq!(log_end(&mut c, &topic).await, expected.len() as i64);

        // Batches out: decoded by the codec, offsets dense, timestamps and keys as produced.
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < expected.len() as i64 {
            let r = fetch_batches(&mut c, &topic, offset).await;
            assert!(r.messages.is_empty(), "a batch response carries no per-message fields");
            assert_eq!(r.from_offset, offset);
            let decoded = decode_batches(&r.record_batches, r.from_offset).unwrap();
            assert!(!decoded.is_empty());
            for (k, rec) in decoded.iter().enumerate() {
                assert_eq!(rec.offset, offset + k as i64, "{engine:?}: offsets are dense");
                assert!(rec.timestamp_ms >= 1_700_000_000_000);
            }
            got.extend(values_of(&decoded));
            offset = r.next_offset;
        }
        assert_eq!(got, expected, "{engine:?}");

        // The same data through the per-message fields.
        let r = c.consumer.fetch(fetch_request(&topic, 0, v1::RecordFormat::Messages)).await.unwrap().into_inner();
        assert!(r.record_batches.is_empty());
        assert_eq!(r.messages[0].value.as_deref(), Some(&b"a-0"[..]));
        assert_eq!(r.messages[0].key.as_deref(), Some(&b"k0"[..]));
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fetch_from_the_middle_of_a_batch_says_where_it_read_from() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    for engine in ENGINES {
        let topic = format!("mid-{}", engine.as_str_name());
        create(&mut c, &topic, engine, 1, &[]).await;
        c.producer.produce(produce_request(&topic, 0, batch("m", 10, Compression::Lz4))).await.unwrap();
        let r = fetch_batches(&mut c, &topic, 4).await;
        assert_eq!(r.from_offset, 4);
        assert_eq!(r.next_offset, 10);
        let all = decode_batches(&r.record_batches, 0).unwrap();
        if engine == v1::Engine::Segment {
            // The stored batch as it is: it begins before the offset asked for.
            assert_eq!(all.first().map(|r| r.offset), Some(0));
        }
        let from = decode_batches(&r.record_batches, r.from_offset).unwrap();
        assert_eq!(values_of(&from), (4..10).map(|i| format!("m-{i}")).collect::<Vec<_>>());
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filtered_reads_and_subscriptions_answer_with_batches_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    for engine in ENGINES {
        let topic = format!("tags-{}", engine.as_str_name());
        create(&mut c, &topic, engine, 1, &[]).await;
        for (prefix, tag) in [("red", "red"), ("blue", "blue"), ("red2", "red")] {
            let bytes = RecordBatch::build(&records(prefix, 3, Some(tag)), Compression::None).unwrap().into_bytes();
            c.producer.produce(produce_request(&topic, 0, bytes)).await.unwrap();
        }
        let mut req = fetch_request(&topic, 0, v1::RecordFormat::Batches);
        req.tags = vec!["red".into()];
        let r = c.consumer.fetch(req).await.unwrap().into_inner();
        let got = decode_batches(&r.record_batches, r.from_offset).unwrap();
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 6, 7, 8], "{engine:?}: only red, with their own offsets");

        let sub = v1::SubscribeRequest {
            format: v1::RecordFormat::Batches as i32,
            tags: vec!["blue".into()],
            ..crate::common::subscribe_request(&topic, v1::position::At::Earliest(true))
        };
        let mut stream = c.consumer.subscribe(sub).await.unwrap().into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
        let got = decode_batches(&first.record_batches, first.from_offset).unwrap();
        assert_eq!(values_of(&got), vec!["blue-0", "blue-1", "blue-2"], "{engine:?}");
        assert_eq!(got[0].offset, 3);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_are_refused_with_a_clear_error_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, mut c) = start(config(dir.path())).await;
    for engine in ENGINES {
        let topic = format!("bad-{}", engine.as_str_name());
        create(&mut c, &topic, engine, 2, &[("max.message.bytes", "4096")]).await;
        let good = batch("g", 2, Compression::None);
        let mut corrupt = good.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let mut transactional =
            RecordBatch::build(&records("t", 1, None), Compression::None).unwrap().into_bytes().to_vec();
        transactional[22] |= 0x10; // attributes (offset 21..23), bit 4: transactional; the CRC no longer matters
        let mut idempotent = good.to_vec();
        idempotent[43..51].copy_from_slice(&7i64.to_be_bytes()); // producerId
        let big = RecordBatch::build(
            &[NewRecord { value: Some(Bytes::from(vec![b'x'; 8000])), ..records("big", 1, None)[0].clone() }],
            Compression::None,
        )
        .unwrap()
        .into_bytes();
        let cases: Vec<(&str, v1::ProduceRequest, Code, &str)> = vec![
            ("corrupt CRC", produce_request(&topic, 0, corrupt.into()), Code::InvalidArgument, "crc"),
            ("truncated", produce_request(&topic, 0, good.slice(..good.len() - 3)), Code::InvalidArgument, "batch 0"),
            (
                "a good batch then a truncated one",
                produce_request(&topic, 0, [good.clone(), good.slice(..20)].concat().into()),
                Code::InvalidArgument,
                "batch 1",
            ),
            ("empty bytes", produce_request(&topic, 0, Bytes::new()), Code::InvalidArgument, "empty"),
            ("transactional", produce_request(&topic, 0, transactional.into()), Code::InvalidArgument, "transactional"),
            ("producer id", produce_request(&topic, 0, idempotent.into()), Code::InvalidArgument, "producer id"),
            ("too large", produce_request(&topic, 0, big), Code::InvalidArgument, "max.message.bytes = 4096"),
            ("unknown partition", produce_request(&topic, 9, good.clone()), Code::NotFound, "partition"),
            (
                "messages and batches",
                v1::ProduceRequest {
                    messages: vec![crate::common::msg(None, "x")],
                    ..produce_request(&topic, 0, good.clone())
                },
                Code::InvalidArgument,
                "not both",
            ),
        ];
        for (what, request, code, words) in cases {
            let err = c.producer.produce(request).await.expect_err(what);
            assert_eq!(err.code(), code, "{engine:?} {what}: {}", err.message());
            assert!(
                err.message().to_lowercase().contains(&words.to_lowercase()),
                "{engine:?} {what}: {}",
                err.message()
            );
        }
        assert_eq!(log_end(&mut c, &topic).await, 0, "{engine:?}: nothing refused was stored");
        let mut bad_format = fetch_request(&topic, 0, v1::RecordFormat::Batches);
        bad_format.format = 77;
        let err = c.consumer.fetch(bad_format).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("record format 77"), "{}", err.message());
        // A good batch still goes in afterwards.
        c.producer.produce(produce_request(&topic, 0, good.clone())).await.unwrap();
        assert_eq!(log_end(&mut c, &topic).await, 2);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_sends_compressed_batches_and_decodes_them_in_both_read_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, client) = crate::e2e_common::start(dir.path()).await;
    for engine in [janus_client::Engine::Segment, janus_client::Engine::Commitlog] {
        let topic = format!("lib-{engine}");
        // A small max.message.bytes: the producer must split its batches to fit.
        crate::e2e_common::create(&client, &topic, engine, 2, &[("max.message.bytes", "2048")]).await;
        for codec in [RecordCompression::None, RecordCompression::Zstd, RecordCompression::Lz4] {
            let producer = client.producer(ProducerConfig {
                record_compression: codec,
                batch_bytes: 64 * 1024,
                ..ProducerConfig::default()
            });
            for i in 0..300 {
                let value = format!("{codec:?}-{i}-{}", "v".repeat(100));
                producer.send(ProducerRecord::new(topic.clone(), value).key(format!("key{}", i % 7))).await.unwrap();
            }
            let appends = producer.close().await.unwrap();
            assert_eq!(appends.iter().map(|a| a.count()).sum::<u64>(), 300, "{engine} {codec:?}");
        }
        for (mode, format) in [
            (FetchMode::Subscribe, ReadFormat::Batches),
            (FetchMode::Fetch { max_wait: Duration::from_millis(100) }, ReadFormat::Batches),
            (FetchMode::Subscribe, ReadFormat::Messages),
        ] {
            let config = ConsumerConfig { mode, format, auto_commit: None, ..ConsumerConfig::default() };
            let mut consumer = client.consumer(&topic, config).await.unwrap();
            let mut per_partition = std::collections::BTreeMap::<u32, Vec<i64>>::new();
            let mut seen = 0;
            while seen < 900 {
                let Some(r) = consumer.poll(Some(Duration::from_secs(10))).await.unwrap() else {
                    panic!("{engine} {mode:?} {format:?}: only {seen} of 900")
                };
                assert!(r.value.as_ref().is_some_and(|v| v.len() > 100));
                per_partition.entry(r.partition).or_default().push(r.offset);
                seen += 1;
            }
            for (p, offsets) in per_partition {
                let dense: Vec<i64> = (0..offsets.len() as i64).collect();
                assert_eq!(offsets, dense, "{engine} {mode:?} {format:?} partition {p}");
            }
        }
        // Starting in the middle of a stored batch hands out exactly the records from there.
        let config = ConsumerConfig {
            partitions: Some(vec![0]),
            start: Position::Offset(3),
            auto_commit: None,
            ..ConsumerConfig::default()
        };
        let mut consumer = client.consumer(&topic, config).await.unwrap();
        let first = consumer.poll(Some(Duration::from_secs(10))).await.unwrap().unwrap();
        assert_eq!(first.offset, 3, "{engine}");
    }
    broker.shutdown().await.unwrap();
}
