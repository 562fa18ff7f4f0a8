//! The one error type of the batch codec.

use thiserror::Error;

/// Everything that can be wrong with a RecordBatch, or with a request to build one.
///
/// Each variant says what was found and, where it helps, what was expected, so that the message can be
/// shown to whoever sent the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// The buffer ends before the batch (or batch header) does.
    #[error("truncated record batch: need {needed} bytes, only {available} available")]
    Truncated {
        /// Bytes needed to hold the whole batch (or its header, when its length is not known yet).
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },

    /// The magic byte is not 2; only RecordBatch v2 is supported (message sets v0/v1 are not).
    #[error("unsupported record batch magic {0}: only magic 2 (RecordBatch v2) is supported")]
    BadMagic(i8),

    /// The length field is smaller than a batch header, or negative.
    #[error("invalid record batch length field {0}: must be at least 49 (a header without records)")]
    InvalidLength(i32),

    /// The batch size given by its length field is not the size of the buffer holding it.
    #[error(
        "record batch length mismatch: the length field says the batch is {declared} bytes, \
         the buffer holds {actual} bytes"
    )]
    BadLength {
        /// Size of the batch according to its length field (12 + length).
        declared: usize,
        /// Size of the buffer that was given as one batch.
        actual: usize,
    },

    /// The stored CRC-32C does not match the bytes from attributes to the end of the batch.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC written in the batch header.
        stored: u32,
        /// CRC-32C computed over the batch's bytes.
        computed: u32,
    },

    /// Attributes name a compression codec that does not exist (5, 6 or 7).
    #[error(
        "unsupported compression codec {0} in batch attributes \
         (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)"
    )]
    UnsupportedCompression(i16),

    /// Compressing or decompressing the records failed.
    #[error("{codec} compression error: {detail}")]
    Compression {
        /// Name of the codec ("gzip", "snappy", "lz4", "zstd").
        codec: &'static str,
        /// What went wrong.
        detail: String,
    },

    /// The records count in the header is not the number of records in the batch.
    #[error("record batch says it holds {declared} records, but it holds {actual}")]
    RecordCountMismatch {
        /// Records count from the header.
        declared: i32,
        /// Records actually found (complete records only).
        actual: usize,
    },

    /// Bytes after the last record that do not form a record.
    #[error("{extra} unexpected bytes after the last record of the batch")]
    TrailingBytes {
        /// Number of bytes left over.
        extra: usize,
    },

    /// A record, or a header field, is malformed; the text says which and how.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),

    /// A batch must hold at least one record.
    #[error("cannot build a record batch with no records")]
    Empty,

    /// A batch, record, key, value or header is larger than the format can describe.
    #[error("{what} is too large: {size} bytes (the format allows at most {max})")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The largest size allowed.
        max: usize,
    },

    /// The arguments given to a batch builder are inconsistent (for example offsets out of order).
    #[error("invalid input for a record batch: {0}")]
    InvalidInput(String),
}
