//! Bad batches: each kind of damage is reported with its own error variant.

use bytes::Bytes;
use janus_codec::batch::header::{
    ATTRIBUTES_OFFSET, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET, LENGTH_OFFSET, MAGIC_OFFSET, RECORDS_COUNT_OFFSET,
    compute_crc,
};
use janus_codec::batch::record::encode_record;
use janus_codec::batch::{BATCH_HEADER_SIZE, BatchError, Compression, Header, NewRecord, RecordBatch, split_batches};

fn records(n: usize) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value-{i}"))),
            headers: vec![Header::new("h", "v")],
            timestamp_ms: 1_000 + i as i64,
        })
        .collect()
}

fn good(n: usize, codec: Compression) -> Vec<u8> {
    RecordBatch::build(&records(n), codec).unwrap().into_bytes().to_vec()
}

fn put_i32(buf: &mut [u8], at: usize, v: i32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Recomputes the CRC after an edit, so that only the edited field is wrong.
fn fix_crc(buf: &mut [u8]) {
    let crc = compute_crc(buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Replaces the records section (uncompressed) and fixes length and CRC.
fn with_section(mut batch: Vec<u8>, section: &[u8]) -> Vec<u8> {
    batch.truncate(BATCH_HEADER_SIZE);
    batch.extend_from_slice(section);
    let len = (batch.len() - 12) as i32;
    put_i32(&mut batch, LENGTH_OFFSET, len);
    fix_crc(&mut batch);
    batch
}

fn validate(buf: Vec<u8>) -> Result<(), BatchError> {
    RecordBatch::from_bytes(Bytes::from(buf))?.validate().map(|_| ())
}

#[test]
fn wrong_magic() {
    for magic in [0u8, 1, 3, 0xff] {
        let mut b = good(2, Compression::None);
        b[MAGIC_OFFSET] = magic;
        assert_eq!(RecordBatch::from_bytes(Bytes::from(b.clone())).unwrap_err(), BatchError::BadMagic(magic as i8));
        assert_eq!(split_batches(&b).next(), Some(Err(BatchError::BadMagic(magic as i8))));
    }
}

#[test]
fn crc_mismatch() {
    let mut b = good(3, Compression::None);
    let stored = u32::from_be_bytes(b[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap());
    let last = b.len() - 1;
    b[last] ^= 0x01;
    let computed = compute_crc(&b);
    let batch = RecordBatch::from_bytes(Bytes::from(b)).expect("framing is still fine");
    assert_eq!(batch.validate(), Err(BatchError::CrcMismatch { stored, computed }));
    let msg = batch.validate().unwrap_err().to_string();
    assert!(msg.contains(&format!("{stored:#010x}")), "{msg}");
    assert!(msg.contains(&format!("{computed:#010x}")), "{msg}");
}

#[test]
fn length_mismatch() {
    let b = good(2, Compression::None);
    let size = b.len();
    // Buffer longer than the batch.
    let mut longer = b.clone();
    longer.push(0);
    assert_eq!(
        RecordBatch::from_bytes(Bytes::from(longer)).unwrap_err(),
        BatchError::BadLength { declared: size, actual: size + 1 }
    );
    // Length field bigger than the buffer.
    let mut bigger = b.clone();
    put_i32(&mut bigger, LENGTH_OFFSET, (size - 12 + 5) as i32);
    let err = RecordBatch::from_bytes(Bytes::from(bigger)).unwrap_err();
    assert_eq!(err, BatchError::BadLength { declared: size + 5, actual: size });
    assert!(err.to_string().contains(&format!("{}", size + 5)), "{err}");
    // Length field below a header's size.
    let mut tiny = b.clone();
    put_i32(&mut tiny, LENGTH_OFFSET, 10);
    assert_eq!(RecordBatch::from_bytes(Bytes::from(tiny.clone())).unwrap_err(), BatchError::InvalidLength(10));
    assert_eq!(split_batches(&tiny).next(), Some(Err(BatchError::InvalidLength(10))));
}

#[test]
fn truncated() {
    let b = good(2, Compression::Gzip);
    let size = b.len();
    for cut in [0, 1, 11, 12, 60] {
        assert_eq!(
            RecordBatch::from_bytes(Bytes::copy_from_slice(&b[..cut])).unwrap_err(),
            BatchError::Truncated { needed: BATCH_HEADER_SIZE, available: cut },
            "cut at {cut}"
        );
    }
    // split_batches: one good batch, then a partial one.
    let mut two = b.clone();
    two.extend_from_slice(&b[..size - 3]);
    let mut it = split_batches(&two);
    assert!(it.next().unwrap().is_ok());
    assert_eq!(it.next(), Some(Err(BatchError::Truncated { needed: size, available: size - 3 })));
    assert_eq!(it.next(), None);
    assert_eq!(it.consumed(), size);

    let mut it = split_batches(&b[..5]);
    assert_eq!(it.next(), Some(Err(BatchError::Truncated { needed: BATCH_HEADER_SIZE, available: 5 })));
    assert_eq!(it.next(), None);
    assert_eq!(it.consumed(), 0);
    assert_eq!(split_batches(&[]).next(), None);
}

#[test]
fn records_count_mismatch() {
    for codec in Compression::ALL {
        for (declared, actual) in [(4, 3), (2, 3), (100, 3), (0, 3)] {
            let mut b = good(3, codec);
            put_i32(&mut b, RECORDS_COUNT_OFFSET, declared);
            fix_crc(&mut b);
            assert_eq!(validate(b.clone()), Err(BatchError::RecordCountMismatch { declared, actual }), "{codec}");
            assert_eq!(
                RecordBatch::from_bytes(Bytes::from(b)).unwrap().records(),
                Err(BatchError::RecordCountMismatch { declared, actual }),
                "{codec}"
            );
        }
        let mut b = good(3, codec);
        put_i32(&mut b, RECORDS_COUNT_OFFSET, -1);
        fix_crc(&mut b);
        assert!(matches!(validate(b), Err(BatchError::Corrupt(_))));
    }
}

#[test]
fn unsupported_codec() {
    for bits in [5u8, 6, 7] {
        let mut b = good(1, Compression::None);
        b[ATTRIBUTES_OFFSET + 1] = bits;
        fix_crc(&mut b);
        assert_eq!(validate(b), Err(BatchError::UnsupportedCompression(i16::from(bits))));
    }
}

#[test]
fn undecompressable_records() {
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let mut b = with_section(good(2, codec), &[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
        fix_crc(&mut b);
        let err = validate(b).unwrap_err();
        assert!(matches!(&err, BatchError::Compression { codec: c, .. } if *c == codec.name()), "{codec}: {err}");
    }
}

#[test]
fn bad_records() {
    let base = good(1, Compression::None);
    let rec = |delta: i32| {
        let mut v = Vec::new();
        encode_record(&mut v, delta, 0, Some(b"k"), Some(b"v"), &[]).unwrap();
        v
    };

    // Offset deltas not increasing, or beyond lastOffsetDelta.
    let mut b = with_section(base.clone(), &[rec(1), rec(1)].concat());
    put_i32(&mut b, RECORDS_COUNT_OFFSET, 2);
    put_i32(&mut b, LAST_OFFSET_DELTA_OFFSET, 5);
    fix_crc(&mut b);
    let err = validate(b).unwrap_err();
    assert!(matches!(&err, BatchError::Corrupt(m) if m.contains("offset delta")), "{err}");

    let mut b = with_section(base.clone(), &[rec(0), rec(3)].concat());
    put_i32(&mut b, RECORDS_COUNT_OFFSET, 2);
    put_i32(&mut b, LAST_OFFSET_DELTA_OFFSET, 2);
    fix_crc(&mut b);
    let err = validate(b).unwrap_err();
    assert!(matches!(&err, BatchError::Corrupt(m) if m.contains("lastOffsetDelta")), "{err}");

    // Gaps are fine (compacted batch).
    let mut b = with_section(base.clone(), &[rec(0), rec(3)].concat());
    put_i32(&mut b, RECORDS_COUNT_OFFSET, 2);
    put_i32(&mut b, LAST_OFFSET_DELTA_OFFSET, 7);
    fix_crc(&mut b);
    assert_eq!(validate(b), Ok(()));

    // Garbage after the last record.
    let b = with_section(base.clone(), &[rec(0), vec![0xff]].concat());
    assert_eq!(validate(b), Err(BatchError::TrailingBytes { extra: 1 }));

    // A record whose length varint is one short of its fields.
    let mut r = rec(0);
    r[0] -= 2;
    let b = with_section(base.clone(), &r);
    let err = validate(b).unwrap_err();
    assert!(matches!(&err, BatchError::Corrupt(m) if m.contains("record 0")), "{err}");

    // A header key that is not UTF-8.
    let mut r = Vec::new();
    encode_record(&mut r, 0, 0, None, None, &[Header::new("ab", "c")]).unwrap();
    let pos = r.iter().position(|&x| x == b'a').unwrap();
    r[pos] = 0xc3; // starts a 2-byte sequence; 'b' does not continue it
    let b = with_section(base.clone(), &r);
    let err = validate(b).unwrap_err();
    assert!(matches!(&err, BatchError::Corrupt(m) if m.contains("UTF-8")), "{err}");
    let batch = RecordBatch::from_bytes(Bytes::from(with_section(base, &r))).unwrap();
    assert!(batch.records().is_err());
}

#[test]
fn good_batches_pass() {
    for codec in Compression::ALL {
        let b = good(5, codec);
        let batch = RecordBatch::from_bytes(Bytes::from(b)).unwrap();
        let h = batch.validate().unwrap();
        assert_eq!(h.records_count, 5);
        assert_eq!(batch.compression(), Ok(codec));
        assert_eq!(batch.records().unwrap().len(), 5);
    }
}
