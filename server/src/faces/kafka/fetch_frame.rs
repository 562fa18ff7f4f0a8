//! The Fetch response (versions 4-12) written as [`Parts`]: the framing as bytes and each partition's
//! records as a part of its own, so stored batches can follow the framing by `sendfile(2)` (the
//! `kafka-protocol` crate's encoder wants the records in memory).
//!
//! Layout (Kafka's `FetchResponse.json`; integers big-endian). Versions 4-11 use int32 array lengths,
//! int16-prefixed strings and int32-prefixed nullable bytes, after response header v0 (the correlation id).
//! Version 12 is flexible: compact arrays, strings and nullable bytes (an unsigned varint of length + 1), an
//! empty tagged-field section (byte 0) after each partition, each topic and the body, and response header
//! v1 (the correlation id and an empty tagged-field section).
//!
//! | field | versions |
//! |---|---|
//! | throttle_time_ms: int32 | 1+ |
//! | error_code: int16, session_id: int32 | 7+ |
//! | responses: [topic: string, partitions: [...]] | all |
//! | partition_index: int32, error_code: int16, high_watermark: int64, last_stable_offset: int64 | 4+ |
//! | log_start_offset: int64 | 5+ |
//! | aborted_transactions: nullable [producer_id: int64, first_offset: int64] (always empty here) | 4+ |
//! | preferred_read_replica: int32 (always -1 here) | 11+ |
//! | records: nullable bytes | all |

use bytes::{BufMut, Bytes, BytesMut};

use super::parts::{Part, Parts};

/// The lowest Fetch version this encoder writes.
pub const MIN_VERSION: i16 = 4;
/// The highest Fetch version this encoder writes.
pub const MAX_VERSION: i16 = 12;
/// The first flexible Fetch version.
const FIRST_FLEXIBLE: i16 = 12;

/// One partition of a Fetch response.
#[derive(Clone, Debug)]
pub struct PartitionFrame {
    /// The partition.
    pub partition_index: i32,
    /// Kafka's error code for the partition (0: none).
    pub error_code: i16,
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset.
    pub last_stable_offset: i64,
    /// The log start offset (sent from v5).
    pub log_start_offset: i64,
    /// The record batches, in memory or as a file range.
    pub records: Part,
}

/// One topic of a Fetch response.
#[derive(Clone, Debug)]
pub struct TopicFrame {
    /// The topic's name.
    pub name: String,
    /// Its partitions.
    pub partitions: Vec<PartitionFrame>,
}

/// A Fetch response body.
#[derive(Clone, Debug, Default)]
pub struct FetchFrame {
    /// How long the client should wait before its next request (sent from v1).
    pub throttle_time_ms: i32,
    /// The top-level error code (sent from v7).
    pub error_code: i16,
    /// The fetch session id (sent from v7; 0: no session).
    pub session_id: i32,
    /// The topics.
    pub topics: Vec<TopicFrame>,
}

/// Why a response could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The version is outside [`MIN_VERSION`]..=[`MAX_VERSION`].
    #[error("Fetch v{0} responses are not written (v{MIN_VERSION} to v{MAX_VERSION} are)")]
    Version(i16),
    /// A string, an array or the records are longer than their length field can say.
    #[error("{0} is too long for its length field")]
    TooLong(&'static str),
}

/// Writes the response to a Fetch request of `version` with `correlation_id`: header, then `frame`.
pub fn encode(version: i16, correlation_id: i32, frame: &FetchFrame) -> Result<Parts, FrameError> {
    if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
        return Err(FrameError::Version(version));
    }
    let mut w = Writer { flexible: version >= FIRST_FLEXIBLE, buf: BytesMut::with_capacity(256), parts: Parts::new() };
    w.buf.put_i32(correlation_id);
    w.tagged_fields();
    w.buf.put_i32(frame.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(frame.error_code);
        w.buf.put_i32(frame.session_id);
    }
    w.array_len(frame.topics.len(), "the topic array")?;
    for topic in &frame.topics {
        w.string(&topic.name, "a topic name")?;
        w.array_len(topic.partitions.len(), "a partition array")?;
        for p in &topic.partitions {
            w.buf.put_i32(p.partition_index);
            w.buf.put_i16(p.error_code);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.buf.put_i64(p.log_start_offset);
            }
            w.array_len(0, "aborted transactions")?;
            if version >= 11 {
                w.buf.put_i32(-1);
            }
            w.records(&p.records)?;
            w.tagged_fields();
        }
        w.tagged_fields();
    }
    w.tagged_fields();
    Ok(w.finish())
}

/// Framing bytes being written, and the parts finished so far.
struct Writer {
    flexible: bool,
    buf: BytesMut,
    parts: Parts,
}

impl Writer {
    /// An array's length: int32, or in flexible versions an unsigned varint of length + 1.
    fn array_len(&mut self, len: usize, what: &'static str) -> Result<(), FrameError> {
        if self.flexible {
            let n = u32::try_from(len).ok().and_then(|n| n.checked_add(1)).ok_or(FrameError::TooLong(what))?;
            self.uvarint(n);
        } else {
            self.buf.put_i32(i32::try_from(len).map_err(|_| FrameError::TooLong(what))?);
        }
        Ok(())
    }

    /// A string: int16 length, or in flexible versions an unsigned varint of length + 1; then its bytes.
    fn string(&mut self, s: &str, what: &'static str) -> Result<(), FrameError> {
        if self.flexible {
            self.array_len(s.len(), what)?;
        } else {
            self.buf.put_i16(i16::try_from(s.len()).map_err(|_| FrameError::TooLong(what))?);
        }
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    /// The records: their length as nullable bytes (never null here), then the records as a part of
    /// their own, after the framing written so far.
    fn records(&mut self, records: &Part) -> Result<(), FrameError> {
        if i32::try_from(records.len()).is_err() {
            return Err(FrameError::TooLong("a partition's records"));
        }
        self.array_len(records.len(), "a partition's records")?;
        let framing = self.buf.split().freeze();
        self.parts.push(Part::Memory(framing));
        self.parts.push(records.clone());
        Ok(())
    }

    /// An empty tagged-field section, in flexible versions only.
    fn tagged_fields(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }

    /// An unsigned varint: 7 bits a byte, lowest first, the high bit set on all but the last.
    fn uvarint(&mut self, mut n: u32) {
        while n >= 0x80 {
            self.buf.put_u8((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        self.buf.put_u8(n as u8);
    }

    /// The parts, ending with the framing still unwritten.
    fn finish(mut self) -> Parts {
        let rest: Bytes = self.buf.split().freeze();
        self.parts.push(Part::Memory(rest));
        self.parts
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    /// The frame's bytes, with every file range read in.
    fn inline(parts: &Parts) -> Vec<u8> {
        let mut out = Vec::with_capacity(parts.len());
        for part in parts.parts() {
            match part {
                Part::Memory(b) => out.extend_from_slice(b),
                Part::File { file, position, len } => {
                    let mut range = vec![0u8; *len as usize];
                    file.read_exact_at(&mut range, *position).unwrap();
                    out.extend_from_slice(&range);
                }
            }
        }
        out
    }

    /// What `kafka-protocol` writes for the same response: header then body.
    fn reference(version: i16, correlation_id: i32, response: &FetchResponse) -> Vec<u8> {
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        response.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    /// A frame with records in memory, in a file (twice, at different places), empty, and an error, over
    /// two topics (one with a name long enough that its varint length takes two bytes), and the
    /// `kafka-protocol` response it stands for at `version`.
    fn sample(version: i16) -> (FetchFrame, FetchResponse) {
        let stored: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&stored).unwrap();
        let file = Arc::new(f);
        let memory = Bytes::from_static(b"re-encoded batches");
        let long_name = "t".repeat(200);
        let part = |index, error_code, records: Part| PartitionFrame {
            partition_index: index,
            error_code,
            high_watermark: 1000 + i64::from(index),
            last_stable_offset: 1000 + i64::from(index),
            log_start_offset: 7,
            records,
        };
        let frame = FetchFrame {
            throttle_time_ms: 0,
            error_code: 0,
            session_id: 0,
            topics: vec![
                TopicFrame {
                    name: "seg".into(),
                    partitions: vec![
                        part(0, 0, Part::File { file: Arc::clone(&file), position: 100, len: 3000 }),
                        part(1, 1, Part::Memory(Bytes::new())),
                        part(2, 0, Part::File { file: Arc::clone(&file), position: 0, len: 5000 }),
                    ],
                },
                TopicFrame {
                    name: long_name.clone(),
                    partitions: vec![part(0, 0, Part::Memory(memory.clone())), part(5, 0, Part::Memory(Bytes::new()))],
                },
            ],
        };
        let data = |index, error_code, records: &[u8]| {
            PartitionData::default()
                .with_partition_index(index)
                .with_error_code(error_code)
                .with_high_watermark(1000 + i64::from(index))
                .with_last_stable_offset(1000 + i64::from(index))
                .with_log_start_offset(if version >= 5 { 7 } else { -1 })
                .with_aborted_transactions(Some(Vec::new()))
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::copy_from_slice(records)))
        };
        let topic = |name: &str, partitions| {
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        };
        let response = FetchResponse::default().with_responses(vec![
            topic("seg", vec![data(0, 0, &stored[100..3100]), data(1, 1, b""), data(2, 0, &stored)]),
            topic(&long_name, vec![data(0, 0, &memory), data(5, 0, b"")]),
        ]);
        (frame, response)
    }

    #[test]
    fn every_version_is_byte_for_byte_what_kafka_protocol_writes_and_decodes_back() {
        for version in MIN_VERSION..=MAX_VERSION {
            let (frame, expected) = sample(version);
            let parts = encode(version, 0x0102_0304, &frame).unwrap();
            let bytes = inline(&parts);
            assert_eq!(bytes.len(), parts.len(), "v{version}");
            assert!(bytes == reference(version, 0x0102_0304, &expected), "v{version}: the bytes differ");
            let mut buf = Bytes::from(bytes);
            let header = ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, 0x0102_0304, "v{version}");
            let decoded = FetchResponse::decode(&mut buf, version).unwrap();
            assert!(buf.is_empty(), "v{version}: {} bytes left over", buf.len());
            assert_eq!(decoded, expected, "v{version}");
        }
    }

    #[test]
    fn file_ranges_stay_parts_of_their_own_and_the_framing_is_small() {
        let (frame, _) = sample(12);
        let parts = encode(12, 1, &frame).unwrap();
        let files: Vec<usize> =
            parts.parts().iter().filter(|p| matches!(p, Part::File { .. })).map(Part::len).collect();
        assert_eq!(files, [3000, 5000]);
        assert_eq!(parts.in_memory_len(), parts.len() - 8000);
        // Besides the names (203 bytes) and the records in memory (18), a few bytes per field.
        assert!(parts.in_memory_len() - 203 - 18 < 250, "{}", parts.in_memory_len());
    }

    #[test]
    fn v7_and_later_carry_the_error_code_and_session_id() {
        let frame = FetchFrame { throttle_time_ms: 5, error_code: 3, session_id: 9, topics: Vec::new() };
        for version in 7..=MAX_VERSION {
            let bytes = inline(&encode(version, 2, &frame).unwrap());
            let mut buf = Bytes::from(bytes);
            ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(version)).unwrap();
            let r = FetchResponse::decode(&mut buf, version).unwrap();
            assert_eq!((r.throttle_time_ms, r.error_code, r.session_id), (5, 3, 9), "v{version}");
        }
    }

    #[test]
    fn versions_outside_the_range_and_overlong_names_are_refused() {
        for version in [0, 3, 13, -1] {
            assert!(matches!(encode(version, 1, &FetchFrame::default()), Err(FrameError::Version(v)) if v == version));
        }
        let frame = FetchFrame {
            topics: vec![TopicFrame { name: "x".repeat(40_000), partitions: Vec::new() }],
            ..FetchFrame::default()
        };
        assert!(matches!(encode(11, 1, &frame), Err(FrameError::TooLong(_))));
        assert!(encode(12, 1, &frame).is_ok(), "compact strings have no 32 KiB limit");
    }
}
