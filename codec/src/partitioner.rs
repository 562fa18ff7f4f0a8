//! Kafka's default partitioner for keyed messages: `toPositive(murmur2(key)) % partitions`, so that a key
//! lands on the partition Kafka's Java client would pick for it.
//!
//! Spreading keyless messages is a broker (or client) policy, not part of this format, and lives with its
//! user.

/// Kafka's `Utils.murmur2`: MurmurHash2 (32-bit) with seed `0x9747b28c`, reading 4-byte little-endian
/// chunks, as the Java client computes it (signed result).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes an `int` length: keys of 4 GiB or more wrap the same way there.
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`. A topic has at least one
/// partition; `partitions == 0` is treated as 1 (answers 0) instead of dividing by zero.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors (the Java client's signed results).
    #[test]
    fn murmur2_matches_kafka_byte_for_byte() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn every_tail_length_and_high_bytes_are_handled() {
        // Bytes >= 0x80 are read unsigned (Java's `& 0xff`); each tail length takes its own branch.
        let data: Vec<u8> = (0..16u8).map(|i| 0x80 | i).collect();
        let hashes: Vec<i32> = (0..8).map(|n| murmur2(&data[..n])).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The empty key: seed ^ 0 through the final mix only.
        let mut h: u32 = 0x9747_b28c;
        h ^= h >> 13;
        h = h.wrapping_mul(0x5bd1_e995);
        h ^= h >> 15;
        assert_eq!(murmur2(b""), h as i32);
        assert_eq!(murmur2(b""), 275_646_681);
    }

    #[test]
    fn partitions_follow_to_positive_modulo() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(to_positive(-790_332_482), 1_357_151_166);
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX as u32);
        for p in 1..20 {
            assert!(partition_for_key(b"21", p) < p);
        }
    }

    #[test]
    fn partitions_are_in_range_and_zero_partitions_do_not_panic() {
        for i in 0..1000u32 {
            let key = i.to_string();
            assert!(partition_for_key(key.as_bytes(), 7) < 7);
        }
        assert_eq!(partition_for_key(b"x", 1), 0);
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
