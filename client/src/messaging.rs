//! RocketMQ's delivery model through the broker's Messaging service: scheduled produce, receive and
//! acknowledge (RocketMQ 5's SimpleConsumer), nack and invisible durations, cancelling timers, and finding
//! messages by id or key.

use std::time::Duration;

use janus_proto::v1 as pb;
use janus_proto::v1::messaging_client::MessagingClient;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;

/// When a scheduled message is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// RocketMQ delay level 1 to 18 (1s 5s 10s 30s 1m ... 1h 2h).
    Level(u32),
    /// This long after the broker receives it.
    After(Duration),
    /// At this time, milliseconds since the Unix epoch.
    At(i64),
}

/// What to receive.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    /// The receiving group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// At most this many messages (1 to 1024).
    pub max_messages: u32,
    /// How long received messages stay invisible to the group's other receivers (`None`: the broker's
    /// default, 60 s; allowed 10 s to 12 h).
    pub invisible: Option<Duration>,
    /// Only messages with one of these tags; empty: all.
    pub tags: Vec<String>,
    /// How long to wait when nothing is there (at most 30 s).
    pub wait: Duration,
}

impl ReceiveOptions {
    /// Up to 32 messages of `topic` for `group`, waiting up to 5 s.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> Self {
        ReceiveOptions {
            group: group.into(),
            topic: topic.into(),
            max_messages: 32,
            invisible: None,
            tags: Vec::new(),
            wait: Duration::from_secs(5),
        }
    }
}

/// A received message.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The topic it was produced to (for a redelivery, the original topic).
    pub topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: i64,
    /// Its id.
    pub message_id: String,
    /// 1 for the first delivery, 2 for the first redelivery, ...
    pub attempt: u32,
    /// Give it to [`Client::ack`], [`Client::nack`] or [`Client::change_invisible`].
    pub receipt_handle: String,
    /// When it becomes visible again unless acknowledged (ms since the Unix epoch).
    pub invisible_until_ms: i64,
    /// The message as stored (for a redelivery, the retry topic's copy).
    pub record: ConsumerRecord,
}

/// What to look a message up by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Its id (`UNIQ_KEY`).
    Id(String),
    /// One of its keys (`KEYS` header words, or the record key).
    Key(String),
}

impl Client {
    /// A generated Messaging client on this connection.
    pub fn messaging_rpc(&self) -> MessagingClient<Channel> {
        MessagingClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// Produces `messages` to `topic` (by key, or to `partition`), delivered now or as `delivery` says;
    /// returns the broker's answer with every message's id and the scheduled messages (about 40 bytes of
    /// answer per message: send large volumes with the [`crate::Producer`]).
    pub async fn produce_messages(
        &self,
        topic: &str,
        partition: Option<u32>,
        messages: Vec<pb::Message>,
        delivery: Option<Delivery>,
        wait_durable: bool,
    ) -> Result<pb::ProduceResponse> {
        let mut request = pb::ProduceRequest {
            topic: topic.to_string(),
            partition,
            messages,
            wait_durable,
            return_message_ids: true,
            ..Default::default()
        };
        match delivery {
            None => {}
            Some(Delivery::Level(l)) => request.delay_level = Some(l),
            Some(Delivery::After(d)) => request.delay_ms = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Some(Delivery::At(ms)) => request.deliver_at_ms = Some(ms),
        }
        let rpc = self.producer_rpc(self.options().compression);
        Ok(rpc.clone().produce(self.request(request, Duration::ZERO)).await?.into_inner())
    }

    /// Receives up to `options.max_messages`, long-polling up to `options.wait`.
    pub async fn receive(&self, options: &ReceiveOptions) -> Result<Vec<ReceivedMessage>> {
        let request = pb::ReceiveRequest {
            group: options.group.clone(),
            topic: options.topic.clone(),
            max_messages: options.max_messages,
            invisible_ms: options.invisible.map_or(0, |d| d.as_millis() as u64),
            tags: options.tags.clone(),
            wait_ms: options.wait.as_millis().min(u128::from(u32::MAX)) as u32,
        };
        let response = self.messaging_rpc().receive(self.request(request, options.wait)).await?.into_inner();
        Ok(response
            .messages
            .into_iter()
            .map(|m| {
                let stored = m.message.unwrap_or_default();
                ReceivedMessage {
                    record: ConsumerRecord::from_proto(m.partition, stored),
                    topic: m.topic,
                    partition: m.partition,
                    offset: m.offset,
                    message_id: m.message_id,
                    attempt: m.attempt,
                    receipt_handle: m.receipt_handle,
                    invisible_until_ms: m.invisible_until_ms,
                }
            })
            .collect())
    }

    /// Acknowledges received messages; one result per handle, in order (a handle that is not current:
    /// an error with code `INVALID_RECEIPT_HANDLE`).
    pub async fn ack(&self, group: &str, receipt_handles: &[String]) -> Result<Vec<Result<()>>> {
        let request = pb::AckRequest { group: group.to_string(), receipt_handles: receipt_handles.to_vec() };
        let response = self.messaging_rpc().ack(self.request(request, Duration::ZERO)).await?.into_inner();
        Ok(response
            .results
            .into_iter()
            .map(|r| {
                if r.error_code == 0 {
                    Ok(())
                } else {
                    Err(ClientError::Status {
                        code: tonic::Code::InvalidArgument,
                        message: r.error,
                        broker_code: u16::try_from(r.error_code).ok(),
                    })
                }
            })
            .collect())
    }

    /// Acknowledges one received message, failing if its handle is not current.
    pub async fn ack_one(&self, group: &str, receipt_handle: &str) -> Result<()> {
        self.ack(group, &[receipt_handle.to_string()])
            .await?
            .pop()
            .unwrap_or_else(|| Err(ClientError::Protocol("the broker answered no ack result".into())))
    }

    /// Makes a received message invisible for `invisible` from now; returns its new receipt handle and
    /// when it becomes visible.
    pub async fn change_invisible(
        &self,
        group: &str,
        receipt_handle: &str,
        invisible: Duration,
    ) -> Result<(String, i64)> {
        let request = pb::ChangeInvisibleDurationRequest {
            group: group.to_string(),
            receipt_handle: receipt_handle.to_string(),
            invisible_ms: invisible.as_millis() as u64,
        };
        let r = self.messaging_rpc().change_invisible_duration(self.request(request, Duration::ZERO)).await?;
        let r = r.into_inner();
        Ok((r.receipt_handle, r.invisible_until_ms))
    }

    /// Gives a received message back: it is redelivered after the retry back-off of its attempt.
    pub async fn nack(&self, group: &str, receipt_handle: &str) -> Result<()> {
        let request = pb::NackRequest { group: group.to_string(), receipt_handle: receipt_handle.to_string() };
        self.messaging_rpc().nack(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }

    /// Cancels a scheduled message before it is due; returns where it would have gone.
    pub async fn cancel_timer(&self, message_id: &str) -> Result<pb::CancelTimerResponse> {
        let request = pb::CancelTimerRequest { message_id: message_id.to_string() };
        Ok(self.messaging_rpc().cancel_timer(self.request(request, Duration::ZERO)).await?.into_inner())
    }

    /// Messages of `topic` by id or key (a scheduled message not yet due comes back as `pending`).
    pub async fn lookup_message(&self, topic: &str, lookup: &Lookup) -> Result<pb::LookupMessageResponse> {
        use pb::lookup_message_request::Query;
        let query = match lookup {
            Lookup::Id(id) => Query::MessageId(id.clone()),
            Lookup::Key(key) => Query::Key(key.clone()),
        };
        let request = pb::LookupMessageRequest { topic: topic.to_string(), query: Some(query) };
        Ok(self.messaging_rpc().lookup_message(self.request(request, Duration::ZERO)).await?.into_inner())
    }

    /// Sets a receiving group's `max.reconsume.times`.
    pub async fn set_max_reconsume_times(&self, group: &str, times: u32) -> Result<()> {
        let request = pb::SetMaxReconsumeTimesRequest { group: group.to_string(), max_reconsume_times: times };
        self.messaging_rpc().set_max_reconsume_times(self.request(request, Duration::ZERO)).await?;
        Ok(())
    }
}
