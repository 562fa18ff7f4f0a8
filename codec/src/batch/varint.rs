//! Zigzag variable-length integers as Kafka writes them in records (protobuf style, 7 bits a byte,
//! least significant group first, high bit = "more bytes follow").

use bytes::BufMut;
use thiserror::Error;

/// Most bytes a varint (i32) can take.
pub const MAX_VARINT_LEN: usize = 5;
/// Most bytes a varlong (i64) can take.
pub const MAX_VARLONG_LEN: usize = 10;

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum VarintError {
    /// The buffer ended in the middle of the varint.
    #[error("varint runs past the end of the data")]
    Overrun,
    /// More continuation bytes than the type can hold (5 for a varint, 10 for a varlong).
    #[error("varint is longer than {0} bytes")]
    TooLong(usize),
}

/// Maps a signed i32 to an unsigned one so that small magnitudes are small: 0, -1, 1, -2 -> 0, 1, 2, 3.
#[inline]
pub fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Inverse of [`zigzag32`].
#[inline]
pub fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Maps a signed i64 to an unsigned one so that small magnitudes are small.
#[inline]
pub fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag64`].
#[inline]
pub fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes that [`put_varint`] writes for `v`.
#[inline]
pub fn varint_len(v: i32) -> usize {
    unsigned_len(u64::from(zigzag32(v)))
}

/// Bytes that [`put_varlong`] writes for `v`.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    unsigned_len(zigzag64(v))
}

#[inline]
fn unsigned_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `v` as a zigzag varint (1 to 5 bytes).
#[inline]
pub fn put_varint<B: BufMut + ?Sized>(buf: &mut B, v: i32) {
    put_unsigned(buf, u64::from(zigzag32(v)));
}

/// Appends `v` as a zigzag varlong (1 to 10 bytes).
#[inline]
pub fn put_varlong<B: BufMut + ?Sized>(buf: &mut B, v: i64) {
    put_unsigned(buf, zigzag64(v));
}

#[inline]
fn put_unsigned<B: BufMut + ?Sized>(buf: &mut B, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads a zigzag varint from the start of `buf`; returns the value and the bytes it took.
///
/// Like Kafka's reader, bits beyond the 32nd in the fifth byte are ignored; a sixth byte is an error.
#[inline]
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, used) = read_unsigned(buf, MAX_VARINT_LEN)?;
    Ok((unzigzag32(raw as u32), used))
}

/// Reads a zigzag varlong from the start of `buf`; returns the value and the bytes it took.
#[inline]
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, used) = read_unsigned(buf, MAX_VARLONG_LEN)?;
    Ok((unzigzag64(raw), used))
}

#[inline]
fn read_unsigned(buf: &[u8], max_len: usize) -> Result<(u64, usize), VarintError> {
    // Fast path for the most common case: one byte.
    match buf.first() {
        None => return Err(VarintError::Overrun),
        Some(&b) if b < 0x80 => return Ok((u64::from(b), 1)),
        Some(_) => {}
    }
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().take(max_len).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() < max_len { Err(VarintError::Overrun) } else { Err(VarintError::TooLong(max_len)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    fn enc64(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        out
    }

    const VARINT_VECTORS: &[(i32, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (-2, &[0x03]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (-65, &[0x81, 0x01]),
        (300, &[0xd8, 0x04]),
        (8191, &[0xfe, 0x7f]),
        (8192, &[0x80, 0x80, 0x01]),
        (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];

    const VARLONG_VECTORS: &[(i64, &[u8])] = &[
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (64, &[0x80, 0x01]),
        (1_700_000_000_000, &[0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]),
        (i32::MAX as i64, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
        (i32::MIN as i64, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        (i64::MAX, &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        (i64::MIN, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ];

    #[test]
    fn varint_known_vectors() {
        for &(v, bytes) in VARINT_VECTORS {
            assert_eq!(enc32(v), bytes, "encoding {v}");
            assert_eq!(varint_len(v), bytes.len(), "length of {v}");
            assert_eq!(read_varint(bytes), Ok((v, bytes.len())), "decoding {v}");
        }
    }

    #[test]
    fn varlong_known_vectors() {
        for &(v, bytes) in VARLONG_VECTORS {
            assert_eq!(enc64(v), bytes, "encoding {v}");
            assert_eq!(varlong_len(v), bytes.len(), "length of {v}");
            assert_eq!(read_varlong(bytes), Ok((v, bytes.len())), "decoding {v}");
        }
    }

    #[test]
    fn decode_stops_at_the_last_byte_and_ignores_what_follows() {
        assert_eq!(read_varint(&[0x80, 0x01, 0xff, 0xff]), Ok((64, 2)));
        assert_eq!(read_varlong(&[0x7e, 0x80]), Ok((63, 1)));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(read_varint(&[]), Err(VarintError::Overrun));
        assert_eq!(read_varint(&[0x80]), Err(VarintError::Overrun));
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80]), Err(VarintError::Overrun));
        assert_eq!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), Err(VarintError::TooLong(5)));
        assert_eq!(read_varlong(&[0xff; 9]), Err(VarintError::Overrun));
        assert_eq!(read_varlong(&[0xff; 11]), Err(VarintError::TooLong(10)));
    }

    #[test]
    fn round_trip_edges() {
        for v in [i32::MIN, i32::MIN + 1, -129, -128, -127, 127, 128, 129, i32::MAX - 1, i32::MAX] {
            assert_eq!(read_varint(&enc32(v)), Ok((v, varint_len(v))));
        }
        for shift in 0..63 {
            for v in [1i64 << shift, -(1i64 << shift), (1i64 << shift) - 1] {
                assert_eq!(read_varlong(&enc64(v)), Ok((v, varlong_len(v))));
            }
        }
    }
}
