//! Messages as the application sees them: what it produces and what it consumes.

use bytes::Bytes;
use janus_proto::v1 as pb;

/// The header that carries RocketMQ-style tags.
pub const TAGS_HEADER: &str = "TAGS";
/// The header that carries RocketMQ-style keys.
pub const KEYS_HEADER: &str = "KEYS";

/// A message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Destination topic.
    pub topic: String,
    /// Destination partition; `None` = by key hash (Kafka's murmur2), keyless messages spread.
    pub partition: Option<u32>,
    /// Key; `None` = null key.
    pub key: Option<Bytes>,
    /// Value; `None` = null value (a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Record headers, in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp in ms since the Unix epoch; 0 = the broker's clock at append.
    pub timestamp_ms: i64,
}

impl ProducerRecord {
    /// A keyless message with this value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: 0,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sets the `TAGS` header (RocketMQ tag, used by commitlog topics for filtering).
    pub fn tag(mut self, tag: impl Into<Bytes>) -> Self {
        self.headers.retain(|(k, _)| k != TAGS_HEADER);
        self.headers.push((TAGS_HEADER.to_string(), Some(tag.into())));
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Approximate encoded size, used for batching and for the buffer bound.
    pub fn encoded_len(&self) -> usize {
        let key = self.key.as_ref().map_or(0, Bytes::len);
        let value = self.value.as_ref().map_or(0, Bytes::len);
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 6).sum();
        key + value + headers + 24
    }

    /// Splits the record into its routing part (topic, partition) and the wire message.
    pub(crate) fn into_parts(self) -> (String, Option<u32>, pb::Message) {
        let message = pb::Message {
            key: self.key,
            value: self.value,
            headers: self.headers.into_iter().map(|(key, value)| pb::Header { key, value }).collect(),
            timestamp_ms: self.timestamp_ms,
        };
        (self.topic, self.partition, message)
    }
}

/// Where a produced message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset assigned by the broker.
    pub offset: i64,
}

/// A consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Partition it was read from.
    pub partition: u32,
    /// Its offset.
    pub offset: i64,
    /// Timestamp (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// Key, if not null.
    pub key: Option<Bytes>,
    /// Value, if not null.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl ConsumerRecord {
    /// Builds a record from a wire message of `partition`.
    pub fn from_proto(partition: u32, m: pb::ConsumedMessage) -> Self {
        ConsumerRecord {
            partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key,
            value: m.value,
            headers: m.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        }
    }

    /// A record decoded from a batch the broker sent.
    pub fn from_record(partition: u32, r: janus_codec::Record) -> Self {
        ConsumerRecord {
            partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        }
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_ref())
    }

    /// The `TAGS` header as text, if present.
    pub fn tag(&self) -> Option<String> {
        self.header(TAGS_HEADER).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_parts() {
        let r = ProducerRecord::new("t", "v").key("k").partition(2).header("h", "x").tag("a").tag("b");
        assert_eq!(r.headers.len(), 2);
        assert!(r.encoded_len() >= 4);
        let (topic, partition, m) = r.into_parts();
        assert_eq!((topic.as_str(), partition), ("t", Some(2)));
        assert_eq!(m.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(m.headers[1].key, TAGS_HEADER);
        assert_eq!(m.headers[1].value.as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn consumed_tag() {
        let m = pb::ConsumedMessage {
            offset: 3,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![pb::Header { key: TAGS_HEADER.into(), value: Some(Bytes::from_static(b"red")) }],
            timestamp_ms: 5,
        };
        let r = ConsumerRecord::from_proto(1, m);
        assert_eq!(r.tag().as_deref(), Some("red"));
        assert_eq!(r.header("nope"), None);
    }
}
