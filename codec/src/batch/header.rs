//! The fixed 61-byte RecordBatch v2 header: field positions, parse and write.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  length                (bytes after this field)
//!     12     4  partitionLeaderEpoch
//!     16     1  magic                 (2)
//!     17     4  crc                   (CRC-32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61        records
//! ```

use super::compression::Compression;
use super::error::BatchError;

/// Size of the batch header; the records start here.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before the part counted by the length field: baseOffset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;
/// Smallest valid value of the length field: a header with no records.
pub const MIN_LENGTH: i32 = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;

/// Position of baseOffset (i64).
pub const BASE_OFFSET_OFFSET: usize = 0;
/// Position of length (i32).
pub const LENGTH_OFFSET: usize = 8;
/// Position of partitionLeaderEpoch (i32).
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
/// Position of magic (i8).
pub const MAGIC_OFFSET: usize = 16;
/// Position of crc (u32).
pub const CRC_OFFSET: usize = 17;
/// Position of attributes (i16); the CRC covers everything from here to the end of the batch.
pub const ATTRIBUTES_OFFSET: usize = 21;
/// Position of lastOffsetDelta (i32).
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
/// Position of baseTimestamp (i64).
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
/// Position of maxTimestamp (i64).
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Position of producerId (i64).
pub const PRODUCER_ID_OFFSET: usize = 43;
/// Position of producerEpoch (i16).
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
/// Position of baseSequence (i32).
pub const BASE_SEQUENCE_OFFSET: usize = 53;
/// Position of recordsCount (i32).
pub const RECORDS_COUNT_OFFSET: usize = 57;
/// Position of the first record.
pub const RECORDS_OFFSET: usize = BATCH_HEADER_SIZE;

/// Attribute bits 0-2: compression codec.
pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are the broker's LogAppendTime (maxTimestamp) rather than CreateTime.
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
/// Attribute bit 5: the batch holds a control record (transaction marker).
pub const CONTROL_FLAG_MASK: i16 = 0x20;
/// Attribute bit 6: baseTimestamp holds a delete horizon set by compaction.
pub const DELETE_HORIZON_FLAG_MASK: i16 = 0x40;

/// producerId of a batch from a producer that is neither idempotent nor transactional.
pub const NO_PRODUCER_ID: i64 = -1;
/// producerEpoch when there is no producer id.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// baseSequence when there is no producer id.
pub const NO_SEQUENCE: i32 = -1;
/// partitionLeaderEpoch before a leader has stamped the batch.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Timestamp meaning "none" (used for batches without records).
pub const NO_TIMESTAMP: i64 = -1;

/// The decoded fixed header of a RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes after the length field: the batch is `12 + length` bytes long.
    pub length: i32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// CRC-32C of the bytes from attributes to the end of the batch.
    pub crc: u32,
    /// Codec, timestamp type, transactional, control and delete-horizon bits.
    pub attributes: i16,
    /// Offset of the last record minus baseOffset.
    pub last_offset_delta: i32,
    /// Timestamp the records' timestamp deltas are relative to.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (the LogAppendTime when that attribute is set).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

#[inline]
fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

#[inline]
fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

#[inline]
fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads the length field of a batch starting at `buf[0]` (needs at least 12 bytes).
#[inline]
pub(crate) fn read_length(buf: &[u8]) -> i32 {
    be_i32(buf, LENGTH_OFFSET)
}

/// Writes `base_offset` into the baseOffset field of the batch starting at `buf[0]`.
///
/// # Panics
/// If `buf` is shorter than 8 bytes.
#[inline]
pub fn write_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// CRC-32C over `batch[21..]`, the part of a batch the stored CRC covers.
///
/// Returns the CRC of nothing (0) when `batch` is shorter than 21 bytes.
#[inline]
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_OFFSET..).unwrap_or_default())
}

impl BatchHeader {
    /// Parses the header at the start of `buf`.
    ///
    /// Checks only what the header alone can tell: at least 61 bytes, magic 2, and a length field of at
    /// least 49. It does not check the CRC or that `buf` holds the whole batch.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(BatchError::Truncated { needed: BATCH_HEADER_SIZE, available: buf.len() });
        }
        let header = Self::read(buf);
        if header.magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(header.magic));
        }
        if header.length < MIN_LENGTH {
            return Err(BatchError::InvalidLength(header.length));
        }
        Ok(header)
    }

    /// Reads the fields without any check. `buf` must hold at least 61 bytes.
    pub(crate) fn read(buf: &[u8]) -> BatchHeader {
        BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            length: be_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: be_i32(buf, RECORDS_COUNT_OFFSET),
        }
    }

    /// Writes all 61 header bytes (every field as it is, the CRC included) into `out[..61]`.
    ///
    /// # Panics
    /// If `out` is shorter than 61 bytes.
    pub fn write_to(&self, out: &mut [u8]) {
        let out = &mut out[..BATCH_HEADER_SIZE];
        out[BASE_OFFSET_OFFSET..LENGTH_OFFSET].copy_from_slice(&self.base_offset.to_be_bytes());
        out[LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET].copy_from_slice(&self.length.to_be_bytes());
        out[PARTITION_LEADER_EPOCH_OFFSET..MAGIC_OFFSET].copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[MAGIC_OFFSET] = self.magic as u8;
        out[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&self.crc.to_be_bytes());
        out[ATTRIBUTES_OFFSET..LAST_OFFSET_DELTA_OFFSET].copy_from_slice(&self.attributes.to_be_bytes());
        out[LAST_OFFSET_DELTA_OFFSET..BASE_TIMESTAMP_OFFSET].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[BASE_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET].copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[MAX_TIMESTAMP_OFFSET..PRODUCER_ID_OFFSET].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[PRODUCER_ID_OFFSET..PRODUCER_EPOCH_OFFSET].copy_from_slice(&self.producer_id.to_be_bytes());
        out[PRODUCER_EPOCH_OFFSET..BASE_SEQUENCE_OFFSET].copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[BASE_SEQUENCE_OFFSET..RECORDS_COUNT_OFFSET].copy_from_slice(&self.base_sequence.to_be_bytes());
        out[RECORDS_COUNT_OFFSET..RECORDS_OFFSET].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Whole size of the batch in bytes: `12 + length` (0 if the length field is negative).
    pub fn batch_size(&self) -> usize {
        LOG_OVERHEAD + usize::try_from(self.length).unwrap_or(0)
    }

    /// Offset of the last record: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Offset the next batch starts at: `last_offset() + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The codec in the attributes; an error for the undefined codecs 5, 6, 7.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    /// Whether the transactional bit is set.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG_MASK != 0
    }

    /// Whether the control bit is set (the batch holds a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG_MASK != 0
    }

    /// Whether timestamps are LogAppendTime: every record's timestamp is then `max_timestamp`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_MASK != 0
    }

    /// Whether compaction stored a delete horizon in `base_timestamp`.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_FLAG_MASK != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            length: 0x0a0b_0c0d,
            partition_leader_epoch: -2,
            magic: MAGIC_V2,
            crc: 0xdead_beef,
            attributes: 0x0013,
            last_offset_delta: 7,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_999,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 100,
            records_count: 8,
        }
    }

    #[test]
    fn field_offsets_add_up() {
        assert_eq!(LENGTH_OFFSET, BASE_OFFSET_OFFSET + 8);
        assert_eq!(PARTITION_LEADER_EPOCH_OFFSET, LENGTH_OFFSET + 4);
        assert_eq!(LOG_OVERHEAD, PARTITION_LEADER_EPOCH_OFFSET);
        assert_eq!(MAGIC_OFFSET, PARTITION_LEADER_EPOCH_OFFSET + 4);
        assert_eq!(CRC_OFFSET, MAGIC_OFFSET + 1);
        assert_eq!(ATTRIBUTES_OFFSET, CRC_OFFSET + 4);
        assert_eq!(LAST_OFFSET_DELTA_OFFSET, ATTRIBUTES_OFFSET + 2);
        assert_eq!(BASE_TIMESTAMP_OFFSET, LAST_OFFSET_DELTA_OFFSET + 4);
        assert_eq!(MAX_TIMESTAMP_OFFSET, BASE_TIMESTAMP_OFFSET + 8);
        assert_eq!(PRODUCER_ID_OFFSET, MAX_TIMESTAMP_OFFSET + 8);
        assert_eq!(PRODUCER_EPOCH_OFFSET, PRODUCER_ID_OFFSET + 8);
        assert_eq!(BASE_SEQUENCE_OFFSET, PRODUCER_EPOCH_OFFSET + 2);
        assert_eq!(RECORDS_COUNT_OFFSET, BASE_SEQUENCE_OFFSET + 4);
        assert_eq!(BATCH_HEADER_SIZE, RECORDS_COUNT_OFFSET + 4);
        assert_eq!(MIN_LENGTH, 49);
    }

    #[test]
    fn write_then_parse_is_identity_and_byte_exact() {
        let h = sample();
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        h.write_to(&mut buf);
        #[rustfmt::skip]
        let expected: [u8; BATCH_HEADER_SIZE] = [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // baseOffset
            0x0a, 0x0b, 0x0c, 0x0d,                         // length
            0xff, 0xff, 0xff, 0xfe,                         // partitionLeaderEpoch -2
            0x02,                                           // magic
            0xde, 0xad, 0xbe, 0xef,                         // crc
            0x00, 0x13,                                     // attributes
            0x00, 0x00, 0x00, 0x07,                         // lastOffsetDelta
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // baseTimestamp
            0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x6b, 0xe7, // maxTimestamp
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // producerId
            0x00, 0x03,                                     // producerEpoch
            0x00, 0x00, 0x00, 0x64,                         // baseSequence
            0x00, 0x00, 0x00, 0x08,                         // recordsCount
        ];
        assert_eq!(buf, expected);
        assert_eq!(BatchHeader::parse(&buf), Ok(h));
    }

    #[test]
    fn derived_values() {
        let h = sample();
        assert_eq!(h.batch_size(), 12 + 0x0a0b_0c0d);
        assert_eq!(h.last_offset(), 0x0102_0304_0506_070f);
        assert_eq!(h.next_offset(), 0x0102_0304_0506_0710);
        assert_eq!(h.compression(), Ok(Compression::Lz4));
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert!(!h.is_log_append_time());
        let h = BatchHeader { attributes: 0x2d, ..h };
        assert_eq!(h.compression(), Err(BatchError::UnsupportedCompression(5)));
        assert!(h.is_control());
        assert!(h.is_log_append_time());
        assert!(!h.is_transactional());
    }

    #[test]
    fn parse_checks() {
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        sample().write_to(&mut buf);
        assert_eq!(BatchHeader::parse(&buf[..60]), Err(BatchError::Truncated { needed: 61, available: 60 }));
        let mut bad = buf;
        bad[MAGIC_OFFSET] = 1;
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::BadMagic(1)));
        let mut bad = buf;
        bad[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::InvalidLength(48)));
        bad[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(BatchHeader::parse(&bad), Err(BatchError::InvalidLength(-1)));
        bad[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&49i32.to_be_bytes());
        assert!(BatchHeader::parse(&bad).is_ok());
    }

    #[test]
    fn base_offset_rewrite_and_crc_helper() {
        let mut buf = [0u8; BATCH_HEADER_SIZE];
        sample().write_to(&mut buf);
        write_base_offset(&mut buf, -5);
        assert_eq!(BatchHeader::read(&buf).base_offset, -5);
        assert_eq!(compute_crc(&buf[..10]), 0);
        assert_eq!(compute_crc(&buf), crc32c::crc32c(&buf[21..]));
    }
}
