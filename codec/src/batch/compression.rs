//! The five compression codecs of a RecordBatch, as the Kafka clients write them.
//!
//! | codec  | we write                                  | we read                                          |
//! |--------|-------------------------------------------|--------------------------------------------------|
//! | gzip   | one gzip member (flate2, default level)   | one or more gzip members                         |
//! | snappy | raw snappy (one block)                    | raw snappy, or the xerial framing of Java/librdkafka/kafka-protocol |
//! | lz4    | LZ4 frame, independent 64 KiB blocks, no checksums (as Kafka's Java client) | any LZ4 frame(s) |
//! | zstd   | one zstd frame (level 3)                  | one or more zstd frames                          |
//!
//! Decompression refuses to produce more than [`MAX_DECOMPRESSED_SIZE`] bytes, so a small hostile
//! batch cannot make the broker allocate without bound.

use std::io::{Read, Write};

use super::error::BatchError;
use super::header::COMPRESSION_CODEC_MASK;

/// Largest decompressed records section that [`decompress`] accepts (256 MiB).
pub const MAX_DECOMPRESSED_SIZE: usize = 256 << 20;

/// Magic that starts a snappy stream in the xerial framing (`\x82SNAPPY\0`).
pub const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Size of the xerial header: magic (8), version (4, BE), compatible version (4, BE).
pub const XERIAL_HEADER_SIZE: usize = 16;

/// zstd level used when compressing (zstd's and Kafka's default).
const ZSTD_LEVEL: i32 = 3;

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// Snappy (2).
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// Zstandard (4).
    Zstd,
}

impl Compression {
    /// All codecs, in attribute-value order.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec named by bits 0-2 of a batch's attributes; 5, 6 and 7 are an error.
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match attributes & COMPRESSION_CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnsupportedCompression(other)),
        }
    }

    /// The attribute bits of this codec (0 to 4).
    pub fn as_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type`): "none", "gzip", "snappy", "lz4", "zstd".
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn codec_error(codec: Compression, detail: impl std::fmt::Display) -> BatchError {
    BatchError::Compression { codec: codec.name(), detail: detail.to_string() }
}

fn too_big(codec: Compression, limit: usize) -> BatchError {
    codec_error(codec, format_args!("decompressed records would exceed the limit of {limit} bytes"))
}

/// Compresses `input` with `codec` and appends the result to `out` (a plain copy for `None`).
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            enc.write_all(input).map_err(|e| codec_error(codec, e))?;
            enc.finish().map_err(|e| codec_error(codec, e))?;
        }
        Compression::Snappy => {
            let start = out.len();
            out.resize(start + snap::raw::max_compress_len(input.len()), 0);
            let written =
                snap::raw::Encoder::new().compress(input, &mut out[start..]).map_err(|e| codec_error(codec, e))?;
            out.truncate(start + written);
        }
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new().block_size(BlockSize::Max64KB).block_mode(BlockMode::Independent);
            let mut enc = FrameEncoder::with_frame_info(info, out);
            enc.write_all(input).map_err(|e| codec_error(codec, e))?;
            enc.finish().map_err(|e| codec_error(codec, e))?;
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(out, ZSTD_LEVEL).map_err(|e| codec_error(codec, e))?;
            enc.set_pledged_src_size(Some(input.len() as u64)).map_err(|e| codec_error(codec, e))?;
            enc.include_contentsize(true).map_err(|e| codec_error(codec, e))?;
            enc.write_all(input).map_err(|e| codec_error(codec, e))?;
            enc.finish().map_err(|e| codec_error(codec, e))?;
        }
    }
    Ok(())
}

/// Decompresses a batch's records section, refusing output over [`MAX_DECOMPRESSED_SIZE`].
pub fn decompress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, BatchError> {
    decompress_with_limit(codec, input, MAX_DECOMPRESSED_SIZE)
}

/// Decompresses `input`, refusing to produce more than `limit` bytes.
pub fn decompress_with_limit(codec: Compression, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(too_big(codec, limit));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_limited(codec, flate2::read::MultiGzDecoder::new(input), input, limit),
        Compression::Snappy => snappy_decompress(input, limit),
        Compression::Lz4 => read_limited(codec, lz4_flex::frame::FrameDecoder::new(input), input, limit),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec_error(codec, e))?;
            read_limited(codec, dec, input, limit)
        }
    }
}

/// Reads a decoder to its end, failing once it yields more than `limit` bytes.
fn read_limited<R: Read>(codec: Compression, reader: R, input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit).max(64));
    // One byte over the limit tells "exactly the limit" from "more than the limit".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| codec_error(codec, e))?;
    if out.len() > limit {
        return Err(too_big(codec, limit));
    }
    Ok(out)
}

/// Raw snappy, or xerial-framed snappy as written by the Java client (and kafka-protocol).
fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    const CODEC: Compression = Compression::Snappy;
    if input.len() >= XERIAL_HEADER_SIZE && input.starts_with(XERIAL_MAGIC) {
        // Header: magic, version (1), compatible version (1); neither is checked by the Java reader
        // beyond the magic, so neither is checked here.
        let mut rest = &input[XERIAL_HEADER_SIZE..];
        let mut out = Vec::new();
        let mut decoder = snap::raw::Decoder::new();
        let mut chunk = 0usize;
        while !rest.is_empty() {
            let Some((len_bytes, after)) = rest.split_first_chunk::<4>() else {
                return Err(codec_error(
                    CODEC,
                    format_args!("xerial chunk {chunk}: {} bytes left, too few for a 4-byte chunk length", rest.len()),
                ));
            };
            let len = u32::from_be_bytes(*len_bytes) as usize;
            if len > after.len() {
                return Err(codec_error(
                    CODEC,
                    format_args!("xerial chunk {chunk} declares {len} bytes, only {} left", after.len()),
                ));
            }
            let (block, next) = after.split_at(len);
            append_raw_snappy(&mut decoder, block, &mut out, limit)
                .map_err(|e| codec_error(CODEC, format_args!("xerial chunk {chunk}: {e}")))?;
            rest = next;
            chunk += 1;
        }
        Ok(out)
    } else {
        let mut out = Vec::new();
        append_raw_snappy(&mut snap::raw::Decoder::new(), input, &mut out, limit).map_err(|e| codec_error(CODEC, e))?;
        Ok(out)
    }
}

/// Decompresses one raw snappy block and appends it to `out`, keeping `out` within `limit` bytes.
fn append_raw_snappy(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), String> {
    let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    let start = out.len();
    if len > limit.saturating_sub(start) {
        return Err(format!("decompressed records would exceed the limit of {limit} bytes"));
    }
    out.resize(start + len, 0);
    let written = decoder.decompress(block, &mut out[start..]).map_err(|e| e.to_string())?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn attribute_bits_round_trip() {
        for (bits, codec) in Compression::ALL.iter().enumerate() {
            assert_eq!(codec.as_bits(), bits as i16);
            assert_eq!(Compression::from_attributes(bits as i16), Ok(*codec));
            // Other attribute bits do not disturb the codec.
            assert_eq!(Compression::from_attributes(bits as i16 | 0x78), Ok(*codec));
        }
        for bad in 5..8 {
            assert_eq!(Compression::from_attributes(bad), Err(BatchError::UnsupportedCompression(bad)));
        }
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in Compression::ALL {
            for len in [0, 1, 100, 70_000, 200_000] {
                let input = sample(len);
                let mut out = vec![0xaa];
                compress(codec, &input, &mut out).unwrap();
                assert_eq!(out[0], 0xaa, "{codec}: compress must append");
                assert_eq!(decompress(codec, &out[1..]).unwrap(), input, "{codec} len {len}");
            }
        }
    }

    #[test]
    fn lz4_frame_header_is_what_kafka_writes() {
        let mut out = Vec::new();
        compress(Compression::Lz4, b"hello", &mut out).unwrap();
        assert_eq!(&out[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        // FLG: version 01, block independence, no block/content checksum, no content size.
        assert_eq!(out[4], 0x60);
        // BD: 64 KiB max block size.
        assert_eq!(out[5], 0x40);
    }

    #[test]
    fn xerial_snappy_is_decoded() {
        let input = sample(100_000);
        // Frame it the way snappy-java does: 32 KiB chunks.
        let mut framed = Vec::new();
        framed.extend_from_slice(XERIAL_MAGIC);
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        for chunk in input.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(decompress(Compression::Snappy, &framed).unwrap(), input);

        // A cut chunk is an error, not a panic.
        let err = decompress(Compression::Snappy, &framed[..framed.len() - 1]).unwrap_err();
        assert!(matches!(err, BatchError::Compression { codec: "snappy", .. }), "{err}");
        // So is a stray byte after the last chunk.
        let mut extra = framed.clone();
        extra.push(0);
        assert!(decompress(Compression::Snappy, &extra).is_err());
    }

    #[test]
    fn limit_is_enforced() {
        let input = vec![0u8; 10_000];
        for codec in Compression::ALL {
            let mut out = Vec::new();
            compress(codec, &input, &mut out).unwrap();
            assert_eq!(decompress_with_limit(codec, &out, 10_000).unwrap().len(), 10_000);
            let err = decompress_with_limit(codec, &out, 9_999).unwrap_err();
            assert!(matches!(err, BatchError::Compression { .. }), "{codec}: {err}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for codec in Compression::ALL.into_iter().skip(1) {
            let err = decompress(codec, &[0xff, 0x00, 0x13, 0x37, 0x42]).unwrap_err();
            assert!(matches!(&err, BatchError::Compression { codec: c, .. } if *c == codec.name()), "{codec}: {err}");
        }
    }
}
