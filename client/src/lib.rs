//! The Janus client library and the `janus` CLI.
//!
//! ```no_run
//! # async fn demo() -> Result<(), janus_client::ClientError> {
//! use janus_client::{Client, ConsumerConfig, Engine, NewTopic, ProducerConfig, ProducerRecord};
//!
//! let client = Client::connect("http://127.0.0.1:7070").await?;
//! client.create_topic(&NewTopic::new("orders", Engine::Segment).partitions(3)).await?;
//!
//! let producer = client.producer(ProducerConfig::default());
//! let ack = producer.send(ProducerRecord::new("orders", "hello").key("k1")).await?;
//! let stored = ack.await?; // partition and offset
//! producer.flush().await?;
//!
//! // A member of the group "billing": the broker shares the topic's partitions among its members.
//! let mut consumer = client.consumer("orders", ConsumerConfig::with_group("billing")).await?;
//! consumer.on_revoke(|partitions| println!("giving up {partitions:?}"));
//! while let Some(record) = consumer.poll(Some(std::time::Duration::from_secs(1))).await? {
//!     println!("{}:{} {:?}", record.partition, record.offset, record.value);
//! }
//! consumer.close().await?; // commits the group's offsets and leaves the group
//! # let _ = stored;
//! # Ok(()) }
//! ```
//!
//! The client depends only on the generated gRPC API (`janus-proto`) and the Kafka formats of `janus-codec`
//! (Kafka's partitioner), never on a storage engine.

mod admin;
pub mod cli;
mod client;
pub mod consumer;
pub mod error;
mod groups;
pub mod messaging;
pub mod producer;
pub mod record;
pub mod transactions;
pub mod types;

pub use client::{Client, ClientOptions};
pub use consumer::{Consumer, ConsumerBatch, ConsumerConfig, FetchMode, PartitionCallback, ReadFormat};
pub use error::{ClientError, Code};
/// Kafka's default partitioner (murmur2 of the key), which the producer uses for keyed records.
pub use janus_codec::partitioner;
pub use janus_proto::v1 as proto;
pub use messaging::{Delivery, Lookup, ReceiveOptions, ReceivedMessage};
pub use producer::{
    DeliveryFuture, Producer, ProducerConfig, RecordCompression, RequestObserver, RequestReport, SendMode, WireFormat,
};
pub use record::{ConsumerRecord, ProducerRecord, RecordMetadata};
pub use transactions::{HalfMessages, TransactionDecision, TransactionOutcome, TransactionProducer};
pub use types::{
    Append, Compression, Engine, GroupAssignment, GroupDescription, GroupHeartbeat, GroupListing, GroupMember,
    GroupMode, GroupPartition, MemberIdentity, NewTopic, PartitionInfo, Position, TopicDescription, TopicInfo,
    TopicPartitions,
};
