//! The RocketMQ CommitLog record format, and how a Kafka [`Record`] maps onto one CommitLog message.
//!
//! Pure format code: constants, encode, decode, checks. The engine writes these bytes into its mapped
//! files; [`decode_region`] turns mapped regions back into records (`Engine::decode_records`).
//!
//! # Layout (integers big-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  TOTALSIZE          size of the whole message, this field included
//!      4     4  MAGICCODE          MESSAGE_MAGIC_CODE (1-byte topic length) or _V2 (2-byte topic length)
//!      8     4  BODYCRC            CRC-32 (IEEE, crc32fast) of BODY's bytes
//!     12     4  QUEUEID            the queue (Kafka partition)
//!     16     4  FLAG               RocketMQ's user flag; Janus writes 0
//!     20     8  QUEUEOFFSET        the message's offset in its queue (the Kafka offset)
//!     28     8  PHYSICALOFFSET     the message's byte position in the whole CommitLog
//!     36     4  SYSFLAG            RocketMQ's system flags, plus SYSFLAG_NULL_VALUE (Janus)
//!     40     8  BORNTIMESTAMP      the Kafka record timestamp
//!     48     8  BORNHOST           IPv4 address + port of the producer; Janus writes zeros
//!     56     8  STORETIMESTAMP     wall clock at append (never decreasing within one CommitLog)
//!     64     8  STOREHOST          IPv4 address + port of the broker; Janus writes zeros
//!     72     4  RECONSUMETIMES     0
//!     76     8  PREPAREDTXOFFSET   0
//!     84     4  BODY length, then BODY bytes
//!        1|2    TOPIC length (1 byte with MESSAGE_MAGIC_CODE, 2 bytes with _V2), then TOPIC bytes
//!          2    PROPERTIES length, then PROPERTIES: `name \x01 value \x02` pairs
//! ```
//!
//! As RocketMQ does, the writer uses the v1 magic (1-byte topic length) for topics of at most 127 bytes
//! and the v2 magic (2-byte topic length) for longer ones (Kafka allows 249); the decoder reads both.
//! A blank record (TOTALSIZE, then BLANK_MAGIC_CODE) fills the rest of a file when the next message does
//! not fit; a message is placed only where at least [`BLANK_RECORD_SIZE`] bytes stay free after it.
//!
//! # Kafka record <-> CommitLog message
//!
//! - BODY is the record value. A null value (tombstone) is an empty BODY with [`SYSFLAG_NULL_VALUE`] set.
//! - QUEUEOFFSET is the record offset, BORNTIMESTAMP the record timestamp, QUEUEID the partition.
//! - The record key is the property named [`PROPERTY_RECORD_KEY`] (`%K`); absent means a null key.
//! - A batch from an idempotent or transactional producer (producerId >= 0) marks its first message with
//!   the property [`PROPERTY_PRODUCER`] (`%P`): `producerId.producerEpoch.baseSequence.recordCount` in
//!   decimal ASCII, e.g. `123.0.42.10` ([`ProducerMark`]). The batch is that message and the
//!   `recordCount - 1` after it in its queue; `Engine::encode_batches` gives it back as one batch with
//!   those producer fields. It is not a record header. Other batches add no property, so their messages
//!   are as before. Other batch header fields (attributes, leader epoch) are not kept.
//! - Every header becomes one property, in order (duplicates kept). The headers `TAGS` and `KEYS` are thus
//!   RocketMQ's TAGS (the message tag, filtered through the ConsumeQueue tag hash) and KEYS (space
//!   separated keys, indexed in the IndexFile).
//! - Escaping, the same for names and values: a name or value is stored as is when it is valid UTF-8, holds
//!   no `\x01`/`\x02` separator and does not start with `%`. Otherwise a value is stored as `%N` when it
//!   is null, or `%X` followed by the lowercase hex of its bytes; a name is stored as `%X` + hex. Raw
//!   names never start with `%`, so the reserved names (`%K`, `%P`) cannot collide with a header.
//! - The properties of one message, `%K` and `%P` included, must fit in 32,767 bytes (RocketMQ reads the
//!   length as a signed short).

use std::borrow::Cow;

use bytes::Bytes;

use janus_api::{Header, Record, StorageError, headers};

/// MAGICCODE of a message whose TOPIC length is one byte (RocketMQ's `0xAABBCCDD ^ 1880681586 + 8`).
pub const MESSAGE_MAGIC_CODE: i32 = -626_843_481;
/// MAGICCODE of a message whose TOPIC length is two bytes (RocketMQ's `0xAABBCCDD ^ 1880681586 + 4`).
pub const MESSAGE_MAGIC_CODE_V2: i32 = -626_843_477;
/// MAGICCODE of the blank record that fills the end of a file (`0xBBCCDDEE ^ 1880681586 + 8`).
pub const BLANK_MAGIC_CODE: i32 = -875_286_124;
/// Size of the smallest blank record (TOTALSIZE + MAGICCODE); a message always leaves room for one.
pub const BLANK_RECORD_SIZE: usize = 8;

/// Position of TOTALSIZE (i32).
pub const TOTAL_SIZE_POS: usize = 0;
/// Position of MAGICCODE (i32).
pub const MAGIC_CODE_POS: usize = 4;
/// Position of BODYCRC (u32).
pub const BODY_CRC_POS: usize = 8;
/// Position of QUEUEID (i32).
pub const QUEUE_ID_POS: usize = 12;
/// Position of FLAG (i32).
pub const FLAG_POS: usize = 16;
/// Position of QUEUEOFFSET (i64).
pub const QUEUE_OFFSET_POS: usize = 20;
/// Position of PHYSICALOFFSET (i64).
pub const PHYSICAL_OFFSET_POS: usize = 28;
/// Position of SYSFLAG (i32).
pub const SYS_FLAG_POS: usize = 36;
/// Position of BORNTIMESTAMP (i64).
pub const BORN_TIMESTAMP_POS: usize = 40;
/// Position of BORNHOST (4-byte IPv4 address + 4-byte port).
pub const BORN_HOST_POS: usize = 48;
/// Position of STORETIMESTAMP (i64).
pub const STORE_TIMESTAMP_POS: usize = 56;
/// Position of STOREHOST (4-byte IPv4 address + 4-byte port).
pub const STORE_HOST_POS: usize = 64;
/// Position of RECONSUMETIMES (i32).
pub const RECONSUME_TIMES_POS: usize = 72;
/// Position of PREPAREDTXOFFSET (i64).
pub const PREPARED_TX_OFFSET_POS: usize = 76;
/// Position of the BODY length (i32); the body follows.
pub const BODY_LEN_POS: usize = 84;
/// Bytes before BODY.
pub const FIXED_HEADER_SIZE: usize = 88;
/// The smallest message: empty body, topic and properties with a 1-byte topic length.
pub const MIN_MESSAGE_SIZE: usize = FIXED_HEADER_SIZE + 1 + 2;

/// Longest topic written with the 1-byte topic length ([`MESSAGE_MAGIC_CODE`]).
pub const MAX_V1_TOPIC_LEN: usize = 127;
/// Longest topic the format can hold.
pub const MAX_TOPIC_LEN: usize = i16::MAX as usize;
/// Most bytes of properties one message may hold.
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// RocketMQ SYSFLAG: the body is compressed (Janus never sets it and refuses to decode it).
pub const SYSFLAG_COMPRESSED: i32 = 0x1;
/// RocketMQ SYSFLAG: the born host is IPv6 (20 bytes); Janus never sets it and refuses to decode it.
pub const SYSFLAG_BORNHOST_V6: i32 = 0x1 << 4;
/// RocketMQ SYSFLAG: the store host is IPv6 (20 bytes); Janus never sets it and refuses to decode it.
pub const SYSFLAG_STOREHOST_V6: i32 = 0x1 << 5;
/// Janus SYSFLAG bit: the Kafka record value is null (a tombstone); BODY is then empty.
pub const SYSFLAG_NULL_VALUE: i32 = 0x1 << 24;

/// Separator between a property's name and its value.
pub const NAME_VALUE_SEPARATOR: u8 = 1;
/// Terminator after each property's value.
pub const PROPERTY_SEPARATOR: u8 = 2;
/// RocketMQ's tag property (the [`headers::TAGS`] record header).
pub const PROPERTY_TAGS: &str = headers::TAGS;
/// RocketMQ's keys property (the [`headers::KEYS`] record header): space-separated keys for the IndexFile.
pub const PROPERTY_KEYS: &str = headers::KEYS;
/// Janus's reserved property holding the Kafka record key (absent for a null key).
pub const PROPERTY_RECORD_KEY: &str = "%K";
/// Janus's reserved property on the first message of a batch with a producer id (see [`ProducerMark`]).
pub const PROPERTY_PRODUCER: &str = "%P";
/// Prefix of an escaped (hex) name or value.
pub const ESCAPE_HEX: &[u8] = b"%X";
/// A null value.
pub const ESCAPE_NULL: &[u8] = b"%N";

/// What can be wrong with CommitLog bytes, or with a record that is to become a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the message does.
    #[error("truncated CommitLog message: need {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// MAGICCODE is neither a message nor a blank magic.
    #[error("bad CommitLog magic code {0:#010x}")]
    BadMagic(u32),
    /// TOTALSIZE is impossible, or does not match the fields inside.
    #[error("bad CommitLog TOTALSIZE {total}: {detail}")]
    BadSize {
        /// The TOTALSIZE field.
        total: i64,
        /// What does not add up.
        detail: String,
    },
    /// BODYCRC does not match the body.
    #[error("CommitLog body CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// BODYCRC.
        stored: u32,
        /// CRC-32 of the body.
        computed: u32,
    },
    /// The properties are not `name\x01value\x02` pairs, or an escape is malformed.
    #[error("corrupt CommitLog properties: {0}")]
    BadProperties(String),
    /// A flag or field Janus does not support (compressed body, IPv6 hosts).
    #[error("unsupported CommitLog message: {0}")]
    Unsupported(String),
    /// The record cannot be stored as one message.
    #[error("{what} is too large for a CommitLog message: {size} bytes (at most {max})")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl RecordError {
    /// The storage error for this fault found in `path` (a file, or a description of the bytes).
    pub fn into_storage(self, path: impl Into<std::path::PathBuf>) -> StorageError {
        StorageError::Corrupt { path: path.into(), detail: self.to_string() }
    }
}

/// The fixed fields of a message (everything but BODY, TOPIC and PROPERTIES).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageMeta {
    /// QUEUEID.
    pub queue_id: i32,
    /// FLAG.
    pub flag: i32,
    /// QUEUEOFFSET.
    pub queue_offset: i64,
    /// PHYSICALOFFSET.
    pub physical_offset: i64,
    /// SYSFLAG.
    pub sys_flag: i32,
    /// BORNTIMESTAMP.
    pub born_timestamp: i64,
    /// BORNHOST (IPv4 address and port).
    pub born_host: [u8; 8],
    /// STORETIMESTAMP.
    pub store_timestamp: i64,
    /// STOREHOST (IPv4 address and port).
    pub store_host: [u8; 8],
    /// RECONSUMETIMES.
    pub reconsume_times: i32,
    /// PREPAREDTXOFFSET.
    pub prepared_tx_offset: i64,
}

/// A parsed message, borrowing its variable parts from the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// TOTALSIZE.
    pub total_size: usize,
    /// MAGICCODE.
    pub magic: i32,
    /// BODYCRC.
    pub body_crc: u32,
    /// The fixed fields.
    pub meta: MessageMeta,
    /// BODY.
    pub body: &'a [u8],
    /// TOPIC.
    pub topic: &'a [u8],
    /// PROPERTIES (raw).
    pub properties: &'a [u8],
}

/// The idempotent-producer fields of the Kafka batch whose first record a message holds: the value of its
/// [`PROPERTY_PRODUCER`] property, written (`Display`) and read ([`ProducerMark::parse`]) as
/// `producerId.producerEpoch.baseSequence.recordCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerMark {
    /// producerId (never negative).
    pub producer_id: i64,
    /// producerEpoch.
    pub producer_epoch: i16,
    /// baseSequence: the sequence of the record in this message.
    pub base_sequence: i32,
    /// Records in the batch (at least 1): this message's and those of the messages that follow it.
    pub record_count: i32,
}

impl std::fmt::Display for ProducerMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}.{}", self.producer_id, self.producer_epoch, self.base_sequence, self.record_count)
    }
}

impl ProducerMark {
    /// Parses a stored (raw, unescaped) [`PROPERTY_PRODUCER`] value.
    pub fn parse(raw: &[u8]) -> Result<ProducerMark, RecordError> {
        let bad =
            || RecordError::BadProperties(format!("malformed {PROPERTY_PRODUCER} value \"{}\"", raw.escape_ascii()));
        let text = std::str::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = text.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let mark = ProducerMark {
            producer_id: next()?.parse().map_err(|_| bad())?,
            producer_epoch: next()?.parse().map_err(|_| bad())?,
            base_sequence: next()?.parse().map_err(|_| bad())?,
            record_count: next()?.parse().map_err(|_| bad())?,
        };
        if parts.next().is_some() || mark.producer_id < 0 || mark.record_count < 1 {
            return Err(bad());
        }
        Ok(mark)
    }
}

/// What starts at a record boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A message.
    Message(MessageView<'a>),
    /// A blank record of this many bytes (the rest of the file).
    Blank(usize),
    /// TOTALSIZE is zero: nothing was written here yet.
    End,
}

#[inline]
fn get_i32(b: &[u8], pos: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[pos..pos + 4]);
    i32::from_be_bytes(a)
}

#[inline]
fn get_i64(b: &[u8], pos: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    i64::from_be_bytes(a)
}

#[inline]
fn get_u16(b: &[u8], pos: usize) -> u16 {
    u16::from_be_bytes([b[pos], b[pos + 1]])
}

/// Bytes of the TOPIC length field for a topic of `topic_len` bytes, and the magic code to write.
pub fn topic_len_size(topic_len: usize) -> (usize, i32) {
    if topic_len <= MAX_V1_TOPIC_LEN { (1, MESSAGE_MAGIC_CODE) } else { (2, MESSAGE_MAGIC_CODE_V2) }
}

/// TOTALSIZE of a message with these variable parts.
pub fn message_size(body_len: usize, topic_len: usize, properties_len: usize) -> Result<usize, RecordError> {
    if topic_len > MAX_TOPIC_LEN {
        return Err(RecordError::TooLarge { what: "topic name", size: topic_len, max: MAX_TOPIC_LEN });
    }
    if properties_len > MAX_PROPERTIES_LEN {
        return Err(RecordError::TooLarge { what: "properties", size: properties_len, max: MAX_PROPERTIES_LEN });
    }
    let size = FIXED_HEADER_SIZE + body_len + topic_len_size(topic_len).0 + topic_len + 2 + properties_len;
    if size > i32::MAX as usize {
        return Err(RecordError::TooLarge { what: "message", size, max: i32::MAX as usize });
    }
    Ok(size)
}

/// CRC-32 (IEEE) of a body, as stored in BODYCRC.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body)
}

/// Writes one message into `dst`, which must be exactly [`message_size`] bytes long.
pub fn encode_message(
    dst: &mut [u8],
    meta: &MessageMeta,
    body_crc: u32,
    body: &[u8],
    topic: &[u8],
    properties: &[u8],
) -> Result<(), RecordError> {
    let size = message_size(body.len(), topic.len(), properties.len())?;
    if dst.len() != size {
        return Err(RecordError::BadSize {
            total: size as i64,
            detail: format!("the destination holds {} bytes", dst.len()),
        });
    }
    let (head, rest) = dst.split_at_mut(FIXED_HEADER_SIZE);
    let (dst_body, tail) = rest.split_at_mut(body.len());
    encode_message_head(head, meta, body_crc, body.len(), size, topic.len())?;
    dst_body.copy_from_slice(body);
    encode_message_tail(tail, topic, properties)
}

/// Writes the [`FIXED_HEADER_SIZE`] bytes that come before the BODY of a message of `size` bytes (TOTALSIZE,
/// from [`message_size`]) with a body of `body_len` bytes and a topic of `topic_len` bytes. With the body
/// after it and [`encode_message_tail`] after that, the bytes are those of [`encode_message`]: the staged
/// writer uses the three parts to write bodies straight from the input batch (`pwritev`), not copying them.
pub fn encode_message_head(
    dst: &mut [u8],
    meta: &MessageMeta,
    body_crc: u32,
    body_len: usize,
    size: usize,
    topic_len: usize,
) -> Result<(), RecordError> {
    if dst.len() != FIXED_HEADER_SIZE || size > i32::MAX as usize || body_len > size {
        return Err(RecordError::BadSize {
            total: size as i64,
            detail: format!("a message head of {} bytes with a body of {body_len}", dst.len()),
        });
    }
    let (_, magic) = topic_len_size(topic_len);
    dst[TOTAL_SIZE_POS..4].copy_from_slice(&(size as i32).to_be_bytes());
    dst[MAGIC_CODE_POS..8].copy_from_slice(&magic.to_be_bytes());
    dst[BODY_CRC_POS..12].copy_from_slice(&body_crc.to_be_bytes());
    dst[QUEUE_ID_POS..16].copy_from_slice(&meta.queue_id.to_be_bytes());
    dst[FLAG_POS..20].copy_from_slice(&meta.flag.to_be_bytes());
    dst[QUEUE_OFFSET_POS..28].copy_from_slice(&meta.queue_offset.to_be_bytes());
    dst[PHYSICAL_OFFSET_POS..36].copy_from_slice(&meta.physical_offset.to_be_bytes());
    dst[SYS_FLAG_POS..40].copy_from_slice(&meta.sys_flag.to_be_bytes());
    dst[BORN_TIMESTAMP_POS..48].copy_from_slice(&meta.born_timestamp.to_be_bytes());
    dst[BORN_HOST_POS..56].copy_from_slice(&meta.born_host);
    dst[STORE_TIMESTAMP_POS..64].copy_from_slice(&meta.store_timestamp.to_be_bytes());
    dst[STORE_HOST_POS..72].copy_from_slice(&meta.store_host);
    dst[RECONSUME_TIMES_POS..76].copy_from_slice(&meta.reconsume_times.to_be_bytes());
    dst[PREPARED_TX_OFFSET_POS..84].copy_from_slice(&meta.prepared_tx_offset.to_be_bytes());
    dst[BODY_LEN_POS..FIXED_HEADER_SIZE].copy_from_slice(&(body_len as i32).to_be_bytes());
    Ok(())
}

/// Bytes of a message after its BODY: the TOPIC and PROPERTIES fields with their lengths.
pub fn message_tail_size(topic_len: usize, properties_len: usize) -> usize {
    topic_len_size(topic_len).0 + topic_len + 2 + properties_len
}

/// Writes the part of a message after its BODY (see [`encode_message_head`]); `dst` must be exactly
/// [`message_tail_size`] bytes long.
pub fn encode_message_tail(dst: &mut [u8], topic: &[u8], properties: &[u8]) -> Result<(), RecordError> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err(RecordError::TooLarge { what: "topic name", size: topic.len(), max: MAX_TOPIC_LEN });
    }
    if properties.len() > MAX_PROPERTIES_LEN {
        return Err(RecordError::TooLarge { what: "properties", size: properties.len(), max: MAX_PROPERTIES_LEN });
    }
    let want = message_tail_size(topic.len(), properties.len());
    if dst.len() != want {
        return Err(RecordError::BadSize {
            total: want as i64,
            detail: format!("the destination of a message tail holds {} bytes", dst.len()),
        });
    }
    let (topic_len_size, _) = topic_len_size(topic.len());
    let mut pos = 0;
    if topic_len_size == 1 {
        dst[pos] = topic.len() as u8;
    } else {
        dst[pos..pos + 2].copy_from_slice(&(topic.len() as u16).to_be_bytes());
    }
    pos += topic_len_size;
    dst[pos..pos + topic.len()].copy_from_slice(topic);
    pos += topic.len();
    dst[pos..pos + 2].copy_from_slice(&(properties.len() as u16).to_be_bytes());
    pos += 2;
    dst[pos..pos + properties.len()].copy_from_slice(properties);
    Ok(())
}

/// Writes a blank record filling all of `dst` (at least [`BLANK_RECORD_SIZE`] bytes): TOTALSIZE and
/// BLANK_MAGIC_CODE; the rest is left as it is (zeros in a fresh file).
pub fn encode_blank(dst: &mut [u8]) -> Result<(), RecordError> {
    if dst.len() < BLANK_RECORD_SIZE || dst.len() > i32::MAX as usize {
        return Err(RecordError::BadSize { total: dst.len() as i64, detail: "impossible blank record size".into() });
    }
    let total = dst.len() as i32;
    dst[0..4].copy_from_slice(&total.to_be_bytes());
    dst[4..8].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    Ok(())
}

/// Parses what starts at `buf[0]`; `buf` runs to the end of the written (or mapped) data. Checks every
/// length but not the body CRC (see [`MessageView::verify_crc`]).
pub fn parse_entry(buf: &[u8]) -> Result<Entry<'_>, RecordError> {
    if buf.len() < 4 {
        return if buf.iter().all(|&b| b == 0) {
            Ok(Entry::End)
        } else {
            Err(RecordError::Truncated { needed: 4, available: buf.len() })
        };
    }
    let total = get_i32(buf, TOTAL_SIZE_POS);
    if total == 0 {
        return Ok(Entry::End);
    }
    if buf.len() < 8 {
        return Err(RecordError::Truncated { needed: 8, available: buf.len() });
    }
    let magic = get_i32(buf, MAGIC_CODE_POS);
    let bad_size = |detail: &str| RecordError::BadSize { total: i64::from(total), detail: detail.to_string() };
    if total < 0 {
        return Err(bad_size("negative"));
    }
    let total = total as usize;
    if magic == BLANK_MAGIC_CODE {
        if total < BLANK_RECORD_SIZE {
            return Err(bad_size("smaller than a blank record"));
        }
        if total > buf.len() {
            return Err(RecordError::Truncated { needed: total, available: buf.len() });
        }
        return Ok(Entry::Blank(total));
    }
    let topic_len_size = match magic {
        MESSAGE_MAGIC_CODE => 1,
        MESSAGE_MAGIC_CODE_V2 => 2,
        other => return Err(RecordError::BadMagic(other as u32)),
    };
    if total < MIN_MESSAGE_SIZE {
        return Err(bad_size("smaller than the smallest message"));
    }
    if total > buf.len() {
        return Err(RecordError::Truncated { needed: total, available: buf.len() });
    }
    let msg = &buf[..total];
    let sys_flag = get_i32(msg, SYS_FLAG_POS);
    if sys_flag & (SYSFLAG_BORNHOST_V6 | SYSFLAG_STOREHOST_V6) != 0 {
        return Err(RecordError::Unsupported("IPv6 born or store host".into()));
    }
    let body_len = get_i32(msg, BODY_LEN_POS);
    if body_len < 0 || FIXED_HEADER_SIZE + body_len as usize + topic_len_size + 2 > total {
        return Err(bad_size(&format!("body length {body_len} does not fit")));
    }
    let body_end = FIXED_HEADER_SIZE + body_len as usize;
    let topic_len = if topic_len_size == 1 { usize::from(msg[body_end]) } else { usize::from(get_u16(msg, body_end)) };
    let topic_start = body_end + topic_len_size;
    if topic_start + topic_len + 2 > total {
        return Err(bad_size(&format!("topic length {topic_len} does not fit")));
    }
    let props_len_pos = topic_start + topic_len;
    let props_len = usize::from(get_u16(msg, props_len_pos));
    if props_len_pos + 2 + props_len != total {
        return Err(bad_size(&format!("properties length {props_len} does not end the message")));
    }
    let mut born_host = [0u8; 8];
    born_host.copy_from_slice(&msg[BORN_HOST_POS..BORN_HOST_POS + 8]);
    let mut store_host = [0u8; 8];
    store_host.copy_from_slice(&msg[STORE_HOST_POS..STORE_HOST_POS + 8]);
    Ok(Entry::Message(MessageView {
        total_size: total,
        magic,
        body_crc: get_i32(msg, BODY_CRC_POS) as u32,
        meta: MessageMeta {
            queue_id: get_i32(msg, QUEUE_ID_POS),
            flag: get_i32(msg, FLAG_POS),
            queue_offset: get_i64(msg, QUEUE_OFFSET_POS),
            physical_offset: get_i64(msg, PHYSICAL_OFFSET_POS),
            sys_flag,
            born_timestamp: get_i64(msg, BORN_TIMESTAMP_POS),
            born_host,
            store_timestamp: get_i64(msg, STORE_TIMESTAMP_POS),
            store_host,
            reconsume_times: get_i32(msg, RECONSUME_TIMES_POS),
            prepared_tx_offset: get_i64(msg, PREPARED_TX_OFFSET_POS),
        },
        body: &msg[FIXED_HEADER_SIZE..body_end],
        topic: &msg[topic_start..topic_start + topic_len],
        properties: &msg[props_len_pos + 2..total],
    }))
}

impl MessageView<'_> {
    /// Checks BODYCRC against the body.
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = body_crc(self.body);
        if computed == self.body_crc {
            Ok(())
        } else {
            Err(RecordError::CrcMismatch { stored: self.body_crc, computed })
        }
    }

    /// The message's TAGS property (decoded), if it has one with a non-null value.
    pub fn tags(&self) -> Result<Option<Cow<'_, [u8]>>, RecordError> {
        Ok(find_property(self.properties, PROPERTY_TAGS)?.flatten())
    }
}

/// Iterator over the raw `(name, value)` pairs of a PROPERTIES field (escapes not decoded).
#[derive(Debug, Clone)]
pub struct PropertyIter<'a> {
    rest: &'a [u8],
}

/// Walks the raw property pairs of `properties`.
pub fn properties(properties: &[u8]) -> PropertyIter<'_> {
    PropertyIter { rest: properties }
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.iter().position(|&b| b == PROPERTY_SEPARATOR).unwrap_or(self.rest.len());
        let pair = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or_default();
        match pair.iter().position(|&b| b == NAME_VALUE_SEPARATOR) {
            Some(sep) => Some(Ok((&pair[..sep], &pair[sep + 1..]))),
            None => {
                self.rest = &[];
                Some(Err(RecordError::BadProperties("a property without a name/value separator".into())))
            }
        }
    }
}

/// Whether `v` can be stored without escaping.
fn is_clean(v: &[u8]) -> bool {
    v.first() != Some(&b'%')
        && !v.iter().any(|&b| b == NAME_VALUE_SEPARATOR || b == PROPERTY_SEPARATOR)
        && std::str::from_utf8(v).is_ok()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(ESCAPE_HEX);
    for &b in v {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
}

fn unhex(v: &[u8]) -> Result<Vec<u8>, RecordError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(RecordError::BadProperties(format!("bad hex digit {c:#04x} in an escaped property"))),
    };
    if !v.len().is_multiple_of(2) {
        return Err(RecordError::BadProperties("odd length of an escaped property".into()));
    }
    v.chunks_exact(2).map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

/// Appends a property name, escaped if needed.
fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    if is_clean(name) { out.extend_from_slice(name) } else { put_hex(out, name) }
}

/// Appends a property value, escaped if needed.
fn put_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(ESCAPE_NULL),
        Some(v) if is_clean(v) => out.extend_from_slice(v),
        Some(v) => put_hex(out, v),
    }
}

/// Decodes an escaped or raw name or value.
pub fn decode_escaped(raw: &[u8]) -> Result<Option<Cow<'_, [u8]>>, RecordError> {
    if raw == ESCAPE_NULL {
        Ok(None)
    } else if let Some(hex) = raw.strip_prefix(ESCAPE_HEX) {
        Ok(Some(Cow::Owned(unhex(hex)?)))
    } else if raw.first() == Some(&b'%') {
        Err(RecordError::BadProperties("unknown escape in a property".into()))
    } else {
        Ok(Some(Cow::Borrowed(raw)))
    }
}

/// Appends the PROPERTIES of a record with this key and these headers to `out` (see the module docs), with
/// `producer` when the record is the first of a batch with a producer id. Returns the number of bytes
/// appended; fails if they exceed [`MAX_PROPERTIES_LEN`].
pub fn encode_properties<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    producer: Option<&ProducerMark>,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Result<usize, RecordError> {
    let start = out.len();
    if let Some(mark) = producer {
        out.extend_from_slice(PROPERTY_PRODUCER.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        out.extend_from_slice(mark.to_string().as_bytes());
        out.push(PROPERTY_SEPARATOR);
    }
    if let Some(key) = key {
        out.extend_from_slice(PROPERTY_RECORD_KEY.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        put_value(out, Some(key));
        out.push(PROPERTY_SEPARATOR);
    }
    for (name, value) in headers {
        put_name(out, name.as_bytes());
        out.push(NAME_VALUE_SEPARATOR);
        put_value(out, value);
        out.push(PROPERTY_SEPARATOR);
    }
    let len = out.len() - start;
    if len > MAX_PROPERTIES_LEN {
        out.truncate(start);
        return Err(RecordError::TooLarge { what: "record key and headers", size: len, max: MAX_PROPERTIES_LEN });
    }
    Ok(len)
}

/// The value of the first property named `name` (a clean name, or [`PROPERTY_RECORD_KEY`]): `None` when
/// absent, `Some(None)` when null.
pub fn find_property<'a>(props: &'a [u8], name: &str) -> Result<Option<Option<Cow<'a, [u8]>>>, RecordError> {
    for pair in properties(props) {
        let (n, v) = pair?;
        if n == name.as_bytes() {
            return decode_escaped(v).map(Some);
        }
    }
    Ok(None)
}

/// What [`decode_properties`] finds: the record key, the headers and the producer mark.
pub type DecodedProperties = (Option<Bytes>, Vec<Header>, Option<ProducerMark>);

/// The record key, headers and producer mark stored in `props` (the reserved properties are not headers).
/// Values share memory with `backing` when they were stored unescaped (`props` must lie inside `backing`).
pub fn decode_properties(props: &[u8], backing: &Bytes) -> Result<DecodedProperties, RecordError> {
    let to_bytes = |v: Option<Cow<'_, [u8]>>| match v {
        None => None,
        Some(Cow::Borrowed(b)) => Some(backing.slice_ref(b)),
        Some(Cow::Owned(o)) => Some(Bytes::from(o)),
    };
    let mut key = None;
    let mut headers = Vec::new();
    let mut producer = None;
    for pair in properties(props) {
        let (name, value) = pair?;
        if name == PROPERTY_PRODUCER.as_bytes() {
            producer = Some(ProducerMark::parse(value)?);
            continue;
        }
        let value = decode_escaped(value)?;
        if name == PROPERTY_RECORD_KEY.as_bytes() {
            key = Some(to_bytes(value).unwrap_or_default());
            continue;
        }
        let name = decode_escaped(name)?.ok_or_else(|| RecordError::BadProperties("a null property name".into()))?;
        let name = String::from_utf8(name.into_owned())
            .map_err(|_| RecordError::BadProperties("a property name that is not UTF-8".into()))?;
        headers.push(Header { key: name, value: to_bytes(value) });
    }
    Ok((key, headers, producer))
}

/// The Kafka record a message stands for: offset = QUEUEOFFSET, timestamp = BORNTIMESTAMP, value = BODY
/// (or null under [`SYSFLAG_NULL_VALUE`]), key and headers from the properties. `backing` must contain
/// the message's bytes; the record shares memory with it. Does not check the CRC.
pub fn message_to_record(view: &MessageView<'_>, backing: &Bytes) -> Result<Record, RecordError> {
    message_to_marked_record(view, backing).map(|(record, _)| record)
}

/// [`message_to_record`], with the message's [`ProducerMark`] when it has one.
pub fn message_to_marked_record(
    view: &MessageView<'_>,
    backing: &Bytes,
) -> Result<(Record, Option<ProducerMark>), RecordError> {
    if view.meta.sys_flag & SYSFLAG_COMPRESSED != 0 {
        return Err(RecordError::Unsupported("compressed message body".into()));
    }
    let (key, headers, producer) = decode_properties(view.properties, backing)?;
    let value = if view.meta.sys_flag & SYSFLAG_NULL_VALUE != 0 { None } else { Some(backing.slice_ref(view.body)) };
    let record = Record { offset: view.meta.queue_offset, timestamp_ms: view.meta.born_timestamp, key, value, headers };
    Ok((record, producer))
}

/// Decodes the messages in `region` (a whole number of CommitLog records, as in `ReadSlice::Mapped`) whose
/// queue offset is at least `from_offset`, verifying every body CRC. Blank records are skipped.
pub fn decode_region(region: &Bytes, from_offset: i64, out: &mut Vec<Record>) -> Result<(), StorageError> {
    decode_region_with(region, from_offset, |record, _| out.push(record))
}

/// [`decode_region`], handing each record to `f` with its message's [`ProducerMark`], in order.
pub fn decode_region_with(
    region: &Bytes,
    from_offset: i64,
    mut f: impl FnMut(Record, Option<ProducerMark>),
) -> Result<(), StorageError> {
    let corrupt = |e: RecordError, pos: usize| StorageError::Corrupt {
        path: "<mapped CommitLog region>".into(),
        detail: format!("at byte {pos} of the region: {e}"),
    };
    let mut pos = 0;
    while pos < region.len() {
        match parse_entry(&region[pos..]).map_err(|e| corrupt(e, pos))? {
            Entry::Message(view) => {
                view.verify_crc().map_err(|e| corrupt(e, pos))?;
                if view.meta.queue_offset >= from_offset {
                    let (record, producer) = message_to_marked_record(&view, region).map_err(|e| corrupt(e, pos))?;
                    f(record, producer);
                }
                pos += view.total_size;
            }
            Entry::Blank(size) => pos += size,
            Entry::End => {
                return Err(corrupt(RecordError::Truncated { needed: region.len() - pos, available: 0 }, pos));
            }
        }
    }
    Ok(())
}

/// Java's `String.hashCode` of the UTF-8 text `s` (invalid sequences read as U+FFFD), as RocketMQ
/// computes tag codes and IndexFile key hashes.
pub fn java_string_hash(s: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(s);
    let mut h: i32 = 0;
    for unit in text.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    h
}

/// The ConsumeQueue tag code of a message: Java's hash of its tag, 0 without a tag.
pub fn tag_hash(tag: Option<&[u8]>) -> i64 {
    tag.map_or(0, |t| i64::from(java_string_hash(t)))
}

/// The space-separated keys of a KEYS value (empty pieces skipped).
pub fn split_keys(keys: &[u8]) -> impl Iterator<Item = &[u8]> {
    keys.split(|&b| b == b' ').filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> MessageMeta {
        MessageMeta {
            queue_id: 3,
            flag: 0,
            queue_offset: 42,
            physical_offset: 0x1000,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            born_host: [0; 8],
            store_timestamp: 1_700_000_000_123,
            store_host: [0; 8],
            reconsume_times: 0,
            prepared_tx_offset: 0,
        }
    }

    fn encode(meta: &MessageMeta, body: &[u8], topic: &[u8], props: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; message_size(body.len(), topic.len(), props.len()).unwrap()];
        encode_message(&mut buf, meta, body_crc(body), body, topic, props).unwrap();
        buf
    }

    #[test]
    fn magic_codes_are_rocketmqs() {
        assert_eq!(MESSAGE_MAGIC_CODE as u32, 0xAABB_CCDDu32 ^ (1_880_681_586 + 8));
        assert_eq!(MESSAGE_MAGIC_CODE_V2 as u32, 0xAABB_CCDDu32 ^ (1_880_681_586 + 4));
        assert_eq!(BLANK_MAGIC_CODE as u32, 0xBBCC_DDEEu32 ^ (1_880_681_586 + 8));
        assert_eq!(MESSAGE_MAGIC_CODE as u32, 0xDAA3_20A7);
        assert_eq!(BLANK_MAGIC_CODE as u32, 0xCBD4_3194);
    }

    #[test]
    fn message_is_byte_exact() {
        let buf = encode(&meta(), b"hi", b"t", b"TAGS\x01a\x02");
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0, 0, 0, 101][..],                       // TOTALSIZE 88 + 2 + 1 + 1 + 2 + 7
            &[0xDA, 0xA3, 0x20, 0xA7],                 // MAGICCODE v1
            &crc32fast::hash(b"hi").to_be_bytes(),     // BODYCRC
            &[0, 0, 0, 3],                             // QUEUEID
            &[0, 0, 0, 0],                             // FLAG
            &[0, 0, 0, 0, 0, 0, 0, 42],                // QUEUEOFFSET
            &[0, 0, 0, 0, 0, 0, 0x10, 0],              // PHYSICALOFFSET
            &[0, 0, 0, 0],                             // SYSFLAG
            &1_700_000_000_000i64.to_be_bytes(),       // BORNTIMESTAMP
            &[0; 8],                                   // BORNHOST
            &1_700_000_000_123i64.to_be_bytes(),       // STORETIMESTAMP
            &[0; 8],                                   // STOREHOST
            &[0, 0, 0, 0],                             // RECONSUMETIMES
            &[0; 8],                                   // PREPAREDTXOFFSET
            &[0, 0, 0, 2], b"hi",                      // BODY
            &[1], b"t",                                // TOPIC (1-byte length)
            &[0, 7], b"TAGS\x01a\x02",                 // PROPERTIES
        ].concat();
        assert_eq!(buf, expected);
        assert_eq!(crc32fast::hash(b"hi"), 0xd8932aac);
        let Entry::Message(view) = parse_entry(&buf).unwrap() else { panic!("not a message") };
        assert_eq!(view.meta, meta());
        assert_eq!(view.total_size, 101);
        assert_eq!(view.body, b"hi");
        assert_eq!(view.topic, b"t");
        view.verify_crc().unwrap();
        assert_eq!(view.tags().unwrap().as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn head_body_tail_are_the_whole_message() {
        for topic in [&b"t"[..], &[b'x'; 200][..]] {
            let (body, props) = (&b"some body"[..], &b"TAGS\x01a\x02"[..]);
            let whole = encode(&meta(), body, topic, props);
            let size = whole.len();
            let mut parts = vec![0u8; FIXED_HEADER_SIZE];
            encode_message_head(&mut parts, &meta(), body_crc(body), body.len(), size, topic.len()).unwrap();
            parts.extend_from_slice(body);
            let mut tail = vec![0u8; message_tail_size(topic.len(), props.len())];
            encode_message_tail(&mut tail, topic, props).unwrap();
            parts.extend_from_slice(&tail);
            assert_eq!(parts, whole);
            assert!(encode_message_tail(&mut tail[1..], topic, props).is_err());
            assert!(encode_message_head(&mut parts[..10], &meta(), 0, 1, size, 1).is_err());
        }
    }

    #[test]
    fn long_topics_use_the_v2_magic_and_a_two_byte_length() {
        let topic = vec![b'x'; 200];
        let buf = encode(&meta(), b"", &topic, b"");
        assert_eq!(&buf[4..8], &MESSAGE_MAGIC_CODE_V2.to_be_bytes());
        assert_eq!(&buf[88..90], &[0, 200]);
        let Entry::Message(view) = parse_entry(&buf).unwrap() else { panic!("not a message") };
        assert_eq!(view.topic, &topic[..]);
        let short = encode(&meta(), b"", &[b'y'; 127], b"");
        assert_eq!(&short[4..8], &MESSAGE_MAGIC_CODE.to_be_bytes());
    }

    #[test]
    fn blank_and_end() {
        let mut buf = vec![0u8; 16];
        assert_eq!(parse_entry(&buf).unwrap(), Entry::End);
        encode_blank(&mut buf).unwrap();
        assert_eq!(&buf[..8], &[0, 0, 0, 16, 0xCB, 0xD4, 0x31, 0x94]);
        assert_eq!(parse_entry(&buf).unwrap(), Entry::Blank(16));
        assert!(encode_blank(&mut [0u8; 7]).is_err());
    }

    #[test]
    fn corruption_is_detected_not_panicked_on() {
        let buf = encode(&meta(), b"body", b"topic", b"KEYS\x01k1 k2\x02");
        for cut in 4..buf.len() {
            assert!(parse_entry(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[FIXED_HEADER_SIZE] ^= 1;
        let Entry::Message(view) = parse_entry(&bad).unwrap() else { panic!("not a message") };
        assert!(matches!(view.verify_crc(), Err(RecordError::CrcMismatch { .. })));
        let mut bad = buf.clone();
        bad[5] ^= 1;
        assert!(matches!(parse_entry(&bad), Err(RecordError::BadMagic(_))));
        // Every single-byte change in the header is either refused or parses without panicking.
        for i in 0..buf.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = buf.clone();
                bad[i] ^= flip;
                let bad = Bytes::from(bad);
                let _ = parse_entry(&bad).map(|e| {
                    if let Entry::Message(v) = e {
                        let _ = v.verify_crc();
                        let _ = message_to_record(&v, &bad);
                    }
                });
            }
        }
    }

    #[test]
    fn properties_are_byte_exact_and_escaped() {
        let mut out = Vec::new();
        let headers: Vec<(&str, Option<&[u8]>)> = vec![
            ("TAGS", Some(b"TagA")),
            ("KEYS", Some(b"k1 k2")),
            ("n", None),
            ("bin", Some(&[0x01, 0xff])),
            ("%pct", Some(b"%v")),
            ("sep\x02", Some(b"")),
        ];
        encode_properties(&mut out, Some(b"key"), None, headers.iter().copied()).unwrap();
        assert_eq!(
            out,
            b"%K\x01key\x02TAGS\x01TagA\x02KEYS\x01k1 k2\x02n\x01%N\x02bin\x01%X01ff\x02%X25706374\x01%X2576\x02\
              %X73657002\x01\x02"
                .to_vec()
        );
        let backing = Bytes::from(out.clone());
        let (key, hs, producer) = decode_properties(&backing, &backing).unwrap();
        assert_eq!(key.as_deref(), Some(&b"key"[..]));
        assert_eq!(producer, None);
        let back: Vec<(String, Option<Vec<u8>>)> =
            hs.into_iter().map(|h| (h.key, h.value.map(|v| v.to_vec()))).collect();
        let want: Vec<(String, Option<Vec<u8>>)> =
            headers.iter().map(|(k, v)| (k.to_string(), v.map(|v| v.to_vec()))).collect();
        assert_eq!(back, want);
        assert_eq!(find_property(&out, "KEYS").unwrap().flatten().as_deref(), Some(&b"k1 k2"[..]));
        assert_eq!(find_property(&out, "n").unwrap(), Some(None));
        assert_eq!(find_property(&out, "absent").unwrap(), None);
    }

    #[test]
    fn record_round_trips_through_a_message() {
        let mut props = Vec::new();
        let key: &[u8] = &[0x00, 0x01, 0x02, 0xfe];
        encode_properties(&mut props, Some(key), None, [("h", Some(&b"v"[..])), ("h", None)]).unwrap();
        let mut m = meta();
        m.sys_flag = SYSFLAG_NULL_VALUE;
        let buf = Bytes::from(encode(&m, b"", b"orders", &props));
        let mut out = Vec::new();
        decode_region(&buf, 0, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Record {
                offset: 42,
                timestamp_ms: 1_700_000_000_000,
                key: Some(Bytes::copy_from_slice(key)),
                value: None,
                headers: vec![Header::new("h", "v"), Header { key: "h".into(), value: None }],
            }]
        );
        decode_region(&buf, 43, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        // An empty key is not a null key; an empty value is not a null value.
        let mut props = Vec::new();
        encode_properties(&mut props, Some(b""), None, []).unwrap();
        let buf = Bytes::from(encode(&meta(), b"", b"t", &props));
        let mut out = Vec::new();
        decode_region(&buf, 0, &mut out).unwrap();
        assert_eq!(out[0].key.as_deref(), Some(&b""[..]));
        assert_eq!(out[0].value.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn decode_region_checks_crc_and_skips_blanks() {
        let a = encode(&meta(), b"aaa", b"t", b"");
        let mut m = meta();
        m.queue_offset = 43;
        let b = encode(&m, b"bbb", b"t", b"");
        let mut region = [a.clone(), b.clone(), vec![0, 0, 0, 8, 0xCB, 0xD4, 0x31, 0x94]].concat();
        let mut out = Vec::new();
        decode_region(&Bytes::from(region.clone()), 0, &mut out).unwrap();
        assert_eq!(out.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![42, 43]);
        region[a.len() + FIXED_HEADER_SIZE] ^= 0x40;
        let err = decode_region(&Bytes::from(region), 0, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("CRC"), "{err}");
    }

    #[test]
    fn producer_mark_round_trips_and_is_no_header() {
        let marks = [
            ProducerMark { producer_id: 123, producer_epoch: 0, base_sequence: 42, record_count: 10 },
            ProducerMark { producer_id: i64::MAX, producer_epoch: i16::MAX, base_sequence: i32::MAX, record_count: 1 },
            ProducerMark { producer_id: 0, producer_epoch: -1, base_sequence: -1, record_count: i32::MAX },
        ];
        for mark in marks {
            let mut props = Vec::new();
            encode_properties(&mut props, Some(b"k"), Some(&mark), [("TAGS", Some(&b"a"[..])), ("KEYS", Some(b"x"))])
                .unwrap();
            let want = format!(
                "%P\x01{}.{}.{}.{}\x02%K\x01k\x02TAGS\x01a\x02KEYS\x01x\x02",
                mark.producer_id, mark.producer_epoch, mark.base_sequence, mark.record_count
            );
            assert_eq!(props, want.as_bytes());
            assert_eq!(find_property(&props, PROPERTY_TAGS).unwrap().flatten().as_deref(), Some(&b"a"[..]));
            assert_eq!(find_property(&props, PROPERTY_KEYS).unwrap().flatten().as_deref(), Some(&b"x"[..]));
            assert_eq!(find_property(&props, PROPERTY_RECORD_KEY).unwrap().flatten().as_deref(), Some(&b"k"[..]));

            let buf = Bytes::from(encode(&meta(), b"v", b"t", &props));
            let Entry::Message(view) = parse_entry(&buf).unwrap() else { panic!("not a message") };
            assert_eq!(view.tags().unwrap().as_deref(), Some(&b"a"[..]));
            let (record, got) = message_to_marked_record(&view, &buf).unwrap();
            assert_eq!(got, Some(mark));
            assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
            assert_eq!(record.headers, vec![Header::new("TAGS", "a"), Header::new("KEYS", "x")]);
            let mut plain = Vec::new();
            decode_region(&buf, 0, &mut plain).unwrap();
            assert_eq!(plain, vec![record]);
        }
        // A header a user names "%P" is escaped, so it is a header and no mark.
        let mut props = Vec::new();
        encode_properties(&mut props, None, None, [("%P", Some(&b"1.0.0.1"[..]))]).unwrap();
        let backing = Bytes::from(props);
        let (_, headers, mark) = decode_properties(&backing, &backing).unwrap();
        assert_eq!((headers, mark), (vec![Header::new("%P", "1.0.0.1")], None));
    }

    #[test]
    fn messages_without_a_producer_mark_decode_as_before() {
        let mut props = Vec::new();
        encode_properties(&mut props, Some(b"k"), None, [("h", Some(&b"v"[..]))]).unwrap();
        assert_eq!(props, b"%K\x01k\x02h\x01v\x02");
        let buf = Bytes::from(encode(&meta(), b"body", b"t", &props));
        let mut marks = Vec::new();
        let mut records = Vec::new();
        decode_region_with(&buf, 0, |r, m| {
            records.push(r);
            marks.push(m);
        })
        .unwrap();
        assert_eq!(marks, vec![None]);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[0].headers, vec![Header::new("h", "v")]);
    }

    #[test]
    fn a_malformed_producer_mark_is_corrupt() {
        let bad: [&[u8]; 11] = [
            b"",
            b"1.2.3",
            b"1.2.3.4.5",
            b"-1.0.0.1",
            b"1.0.0.0",
            b"1.40000.0.1",
            b"1.0.2147483648.1",
            b"a.b.c.d",
            b"%N",
            b"%X312e302e302e31",
            b"1.0.0.\xff",
        ];
        for value in bad {
            let props = [&b"%P\x01"[..], value, b"\x02h\x01v\x02"].concat();
            let backing = Bytes::from(props.clone());
            let err = decode_properties(&backing, &backing).unwrap_err();
            assert!(matches!(err, RecordError::BadProperties(_)), "{value:?}: {err}");
            let buf = Bytes::from(encode(&meta(), b"v", b"t", &props));
            let err = decode_region(&buf, 0, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{value:?}: {err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(200))]

        /// Any key, value and headers (any bytes, nulls, separators, '%') survive a message exactly.
        #[test]
        fn any_record_round_trips(
            key in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
            value in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..200)),
            headers in proptest::collection::vec(
                ("\\PC{0,8}|%[a-z\u{1}\u{2}]{0,3}", proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..20))),
                0..5,
            ),
            offset in 0i64..i64::MAX,
            ts in proptest::num::i64::ANY,
        ) {
            let mut props = Vec::new();
            let hs: Vec<(&str, Option<&[u8]>)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            encode_properties(&mut props, key.as_deref(), None, hs.iter().copied()).unwrap();
            let mut m = meta();
            m.queue_offset = offset;
            m.born_timestamp = ts;
            if value.is_none() {
                m.sys_flag = SYSFLAG_NULL_VALUE;
            }
            let body = value.clone().unwrap_or_default();
            let buf = Bytes::from(encode(&m, &body, b"topic", &props));
            let mut out = Vec::new();
            decode_region(&buf, 0, &mut out).unwrap();
            let r = &out[0];
            proptest::prop_assert_eq!(r.offset, offset);
            proptest::prop_assert_eq!(r.timestamp_ms, ts);
            proptest::prop_assert_eq!(r.key.as_deref().map(<[u8]>::to_vec), key);
            proptest::prop_assert_eq!(r.value.as_deref().map(<[u8]>::to_vec), value);
            let back: Vec<(String, Option<Vec<u8>>)> =
                r.headers.iter().map(|h| (h.key.clone(), h.value.as_deref().map(<[u8]>::to_vec))).collect();
            proptest::prop_assert_eq!(back, headers);
        }
    }

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_string_hash(b""), 0);
        assert_eq!(java_string_hash(b"a"), 97);
        assert_eq!(java_string_hash(b"TagA"), 2_598_919);
        assert_eq!(java_string_hash(b"hello world"), 1_794_106_052);
        // "Aa" and "BB" collide in Java, a classic.
        assert_eq!(java_string_hash(b"Aa"), java_string_hash(b"BB"));
        assert_eq!(java_string_hash("é".as_bytes()), 233);
        assert_eq!(tag_hash(None), 0);
        assert_eq!(split_keys(b" a  b ").collect::<Vec<_>>(), vec![&b"a"[..], &b"b"[..]]);
    }
}
