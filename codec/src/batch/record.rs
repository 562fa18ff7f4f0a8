//! One record inside a batch: encode, and a zero-copy parse that checks every length.
//!
//! ```text
//! length          varint  (bytes of the rest of the record)
//! attributes      i8      (unused, 0)
//! timestampDelta  varlong
//! offsetDelta     varint
//! keyLength       varint  (-1 = null)
//! key             bytes
//! valueLength     varint  (-1 = null, a tombstone)
//! value           bytes
//! headersCount    varint
//! headers         (keyLength varint, key UTF-8, valueLength varint (-1 = null), value) * headersCount
//! ```

use std::fmt;

use bytes::Bytes;

use super::error::BatchError;
use super::varint::{VarintError, put_varint, put_varlong, read_varint, read_varlong, varint_len, varlong_len};

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name (UTF-8; not required to be unique).
    pub key: String,
    /// Header value; `None` is a null value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header { key: key.into(), value: Some(value.into()) }
    }
}

/// A record to be put in a new batch; offsets are assigned by position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    /// Record key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a null value (a tombstone under compaction).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<Header>,
    /// CreateTime in milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// A record decoded from a batch, with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset: the batch's baseOffset plus the record's offset delta.
    pub offset: i64,
    /// baseTimestamp plus the record's delta, or the batch's maxTimestamp under LogAppendTime.
    pub timestamp_ms: i64,
    /// Record key; `None` is a null key.
    pub key: Option<Bytes>,
    /// Record value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Record headers, in order.
    pub headers: Vec<Header>,
}

/// Most bytes a key, value, header or record may have: lengths are i32 varints.
pub const MAX_FIELD_LEN: usize = i32::MAX as usize;

fn field_len(what: &'static str, len: usize) -> Result<i32, BatchError> {
    i32::try_from(len).map_err(|_| BatchError::TooLarge { what, size: len, max: MAX_FIELD_LEN })
}

fn nullable_len(what: &'static str, field: Option<&[u8]>) -> Result<usize, BatchError> {
    Ok(match field {
        None => varint_len(-1),
        Some(b) => varint_len(field_len(what, b.len())?) + b.len(),
    })
}

/// Bytes of a record after its length varint.
fn body_len(
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize, BatchError> {
    let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    len += nullable_len("record key", key)?;
    len += nullable_len("record value", value)?;
    len += varint_len(field_len("header count", headers.len())?);
    for h in headers {
        len += varint_len(field_len("header key", h.key.len())?) + h.key.len();
        len += nullable_len("header value", h.value.as_deref())?;
    }
    Ok(len)
}

fn put_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        // Lengths were checked by `body_len`.
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

/// Appends one record to `out`; returns the bytes written.
pub fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<usize, BatchError> {
    let body = body_len(offset_delta, timestamp_delta, key, value, headers)?;
    let body_i32 = field_len("record", body)?;
    let total = varint_len(body_i32) + body;
    out.reserve(total);
    put_varint(out, body_i32);
    out.push(0); // attributes
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_nullable(out, key);
    put_nullable(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_varint(out, h.key.len() as i32);
        out.extend_from_slice(h.key.as_bytes());
        put_nullable(out, h.value.as_deref());
    }
    Ok(total)
}

/// What is wrong inside one record; [`RecordFault::at`] turns it into a [`BatchError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    /// A varint field could not be read.
    Varint {
        /// Which field.
        field: &'static str,
        /// Why.
        error: VarintError,
    },
    /// A length field is negative where it must not be (or below -1 where -1 means null).
    NegativeLength {
        /// Which field.
        field: &'static str,
        /// The length read.
        len: i64,
    },
    /// A field is longer than what is left of the record.
    Overrun {
        /// Which field.
        field: &'static str,
        /// Its declared length.
        len: usize,
        /// Bytes left in the record.
        left: usize,
    },
    /// The fields end before the record's length says the record ends.
    LengthMismatch {
        /// Length from the record's length varint.
        declared: usize,
        /// Bytes its fields took.
        used: usize,
    },
    /// A header key is not UTF-8.
    HeaderKeyNotUtf8 {
        /// Index of the header in the record.
        index: usize,
    },
}

impl fmt::Display for RecordFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordFault::Varint { field, error } => write!(f, "{field}: {error}"),
            RecordFault::NegativeLength { field, len } => {
                write!(f, "{field} is {len}, which is not a valid length")
            }
            RecordFault::Overrun { field, len, left } => {
                write!(f, "{field} is {len} bytes but only {left} bytes of the record are left")
            }
            RecordFault::LengthMismatch { declared, used } => {
                write!(f, "record length says {declared} bytes but its fields take {used} bytes")
            }
            RecordFault::HeaderKeyNotUtf8 { index } => write!(f, "header {index} key is not UTF-8"),
        }
    }
}

impl RecordFault {
    /// Turns the fault into a [`BatchError::Corrupt`] naming the record and its position.
    pub fn at(&self, record_index: usize, byte_pos: usize) -> BatchError {
        BatchError::Corrupt(format!("record {record_index} (byte {byte_pos} of the records section): {self}"))
    }
}

/// A cursor over a record's bytes that names the failing field.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn varint(&mut self, field: &'static str) -> Result<i32, RecordFault> {
        let (v, n) = read_varint(&self.buf[self.pos..]).map_err(|error| RecordFault::Varint { field, error })?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn varlong(&mut self, field: &'static str) -> Result<i64, RecordFault> {
        let (v, n) = read_varlong(&self.buf[self.pos..]).map_err(|error| RecordFault::Varint { field, error })?;
        self.pos += n;
        Ok(v)
    }

    #[inline]
    fn bytes(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], RecordFault> {
        let left = self.buf.len() - self.pos;
        if len > left {
            return Err(RecordFault::Overrun { field, len, left });
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// A length-prefixed field where -1 means null.
    #[inline]
    fn nullable(&mut self, len_field: &'static str, field: &'static str) -> Result<Option<&'a [u8]>, RecordFault> {
        match self.varint(len_field)? {
            -1 => Ok(None),
            len if len < -1 => Err(RecordFault::NegativeLength { field: len_field, len: i64::from(len) }),
            len => self.bytes(field, len as usize).map(Some),
        }
    }
}

/// A record parsed in place: slices into the records section, nothing copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's attributes byte (unused by Kafka so far).
    pub attributes: i8,
    /// Timestamp minus the batch's baseTimestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's baseOffset.
    pub offset_delta: i32,
    /// Key bytes, `None` if null.
    pub key: Option<&'a [u8]>,
    /// Value bytes, `None` if null.
    pub value: Option<&'a [u8]>,
    /// Number of headers.
    pub header_count: usize,
    /// The encoded headers (already checked by [`RecordView::parse`]).
    headers_raw: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// Parses the record at the start of `buf`; returns it and the bytes it takes (length varint
    /// included). Every length, the record's own length, and every header key's UTF-8 are checked, so
    /// [`RecordView::headers`] cannot fail afterwards.
    pub fn parse(buf: &'a [u8]) -> Result<(RecordView<'a>, usize), RecordFault> {
        let (len, len_size) =
            read_varint(buf).map_err(|error| RecordFault::Varint { field: "record length", error })?;
        if len < 0 {
            return Err(RecordFault::NegativeLength { field: "record length", len: i64::from(len) });
        }
        let len = len as usize;
        let left = buf.len() - len_size;
        if len > left {
            return Err(RecordFault::Overrun { field: "record", len, left });
        }
        let body = &buf[len_size..len_size + len];
        let mut c = Cursor { buf: body, pos: 0 };
        let attributes = c.bytes("record attributes", 1)?[0] as i8;
        let timestamp_delta = c.varlong("timestamp delta")?;
        let offset_delta = c.varint("offset delta")?;
        let key = c.nullable("key length", "key")?;
        let value = c.nullable("value length", "value")?;
        let count = c.varint("header count")?;
        if count < 0 {
            return Err(RecordFault::NegativeLength { field: "header count", len: i64::from(count) });
        }
        let headers_start = c.pos;
        for index in 0..count as usize {
            let key_len = c.varint("header key length")?;
            if key_len < 0 {
                return Err(RecordFault::NegativeLength { field: "header key length", len: i64::from(key_len) });
            }
            let key = c.bytes("header key", key_len as usize)?;
            if std::str::from_utf8(key).is_err() {
                return Err(RecordFault::HeaderKeyNotUtf8 { index });
            }
            c.nullable("header value length", "header value")?;
        }
        if c.pos != len {
            return Err(RecordFault::LengthMismatch { declared: len, used: c.pos });
        }
        let view = RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count: count as usize,
            headers_raw: &body[headers_start..],
        };
        Ok((view, len_size + len))
    }

    /// The headers as (key, value) pairs, in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter { cursor: Cursor { buf: self.headers_raw, pos: 0 }, left: self.header_count }
    }

    /// Copies out the headers, sharing value bytes with `backing` (which must contain the record).
    pub(crate) fn owned_headers(&self, backing: &Bytes) -> Vec<Header> {
        let mut out = Vec::with_capacity(self.header_count);
        for (key, value) in self.headers() {
            out.push(Header { key: key.to_owned(), value: value.map(|v| backing.slice_ref(v)) });
        }
        out
    }
}

/// Iterator over the headers of a [`RecordView`].
#[derive(Debug)]
pub struct HeaderIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
}

impl fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor").field("len", &self.buf.len()).field("pos", &self.pos).finish()
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were checked by `RecordView::parse`; any failure here just ends the iteration.
        let key_len = usize::try_from(self.cursor.varint("").ok()?).ok()?;
        let key = std::str::from_utf8(self.cursor.bytes("", key_len).ok()?).ok()?;
        let value = self.cursor.nullable("", "").ok()?;
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_record_is_byte_exact() {
        let mut out = Vec::new();
        let n = encode_record(&mut out, 0, 0, Some(b"k"), Some(b"v"), &[]).unwrap();
        assert_eq!(out, [0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00]);
        assert_eq!(n, out.len());
    }

    #[test]
    fn nulls_and_headers_are_byte_exact() {
        let mut out = Vec::new();
        let headers = [Header::new("h", &b"xy"[..]), Header { key: String::new(), value: None }];
        encode_record(&mut out, 3, -1, None, None, &headers).unwrap();
        #[rustfmt::skip]
        let expected = [
            0x1a,       // length 13
            0x00,       // attributes
            0x01,       // timestamp delta -1
            0x06,       // offset delta 3
            0x01,       // key null
            0x01,       // value null
            0x04,       // 2 headers
            0x02, b'h', // key "h"
            0x04, b'x', b'y',
            0x00,       // key ""
            0x01,       // value null
        ];
        assert_eq!(out, expected);

        let (view, used) = RecordView::parse(&out).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(view.offset_delta, 3);
        assert_eq!(view.timestamp_delta, -1);
        assert_eq!(view.key, None);
        assert_eq!(view.value, None);
        let hs: Vec<_> = view.headers().collect();
        assert_eq!(hs, vec![("h", Some(&b"xy"[..])), ("", None)]);
    }

    #[test]
    fn parse_reports_faults() {
        let mut good = Vec::new();
        encode_record(&mut good, 0, 0, Some(b"k"), Some(b"v"), &[Header::new("a", "b")]).unwrap();

        // Cut short.
        for cut in 0..good.len() {
            assert!(RecordView::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        // Record length one too big / small.
        let mut bad = good.clone();
        bad[0] += 2;
        bad.push(0);
        assert!(matches!(RecordView::parse(&bad), Err(RecordFault::LengthMismatch { .. })));
        let mut bad = good.clone();
        bad[0] -= 2;
        assert!(RecordView::parse(&bad).is_err());
        // Key length -2.
        let mut bad = good.clone();
        bad[4] = 0x03;
        assert!(matches!(RecordView::parse(&bad), Err(RecordFault::NegativeLength { field: "key length", len: -2 })));
        // Header key not UTF-8.
        let mut bad = good.clone();
        let pos = bad.iter().rposition(|&b| b == b'a').unwrap();
        bad[pos] = 0xff;
        assert_eq!(RecordView::parse(&bad), Err(RecordFault::HeaderKeyNotUtf8 { index: 0 }));
        let err = RecordFault::HeaderKeyNotUtf8 { index: 0 }.at(2, 40);
        assert_eq!(
            err,
            BatchError::Corrupt("record 2 (byte 40 of the records section): header 0 key is not UTF-8".into())
        );
    }
}
