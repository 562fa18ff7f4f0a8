//! Test data: payloads, tags, and prebuilt record batches.

use bytes::Bytes;
use janus_api::{Compression, Header, NewRecord, RecordBatch};

use crate::scenario::Workload;

/// The tag a tag-filtered consumer asks for; other messages carry [`OTHER_TAG`] or further tags.
pub const WANTED_TAG: &str = "wanted";
/// The tag of messages the filtered consumer does not want.
pub const OTHER_TAG: &str = "other";

/// A small xorshift generator: reproducible data without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A uniform value in `0..1`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A value of `len` bytes of text-like letters.
pub fn payload(len: usize, rng: &mut Rng) -> Bytes {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let bits = rng.next_u64();
        for i in 0..8 {
            if v.len() == len {
                break;
            }
            v.push(b'a' + ((bits >> (i * 8)) as u8) % 26);
        }
    }
    Bytes::from(v)
}

/// The value size of the next message.
pub fn message_len(workload: &Workload, rng: &mut Rng) -> usize {
    match workload.message_bytes_max {
        Some(max) if max > workload.message_bytes => {
            workload.message_bytes + (rng.next_u64() % (max - workload.message_bytes + 1) as u64) as usize
        }
        _ => workload.message_bytes,
    }
}

/// The tag of the next message: [`WANTED_TAG`] with probability `selectivity`, otherwise one of the other
/// `tags - 1` tags. `None` when the workload writes no tags.
pub fn tag(workload: &Workload, rng: &mut Rng) -> Option<String> {
    if workload.tags == 0 {
        return None;
    }
    if rng.unit() < workload.selectivity {
        return Some(WANTED_TAG.into());
    }
    let others = workload.tags.saturating_sub(1).max(1);
    Some(format!("{OTHER_TAG}-{}", rng.next_u64() % others as u64))
}

/// A prebuilt batch and what it carries.
#[derive(Clone, Debug)]
pub struct Prebuilt {
    /// The batch.
    pub batch: RecordBatch,
    /// Messages in it.
    pub messages: u64,
    /// Payload bytes (values) in it.
    pub payload_bytes: u64,
    /// Messages tagged [`WANTED_TAG`].
    pub wanted: u64,
}

/// `count` distinct batches of `workload.batch_messages` messages each, to be appended over and over
/// (appends share the batch's bytes; each engine writes its own copy with its offsets).
pub fn batches(workload: &Workload, count: usize, seed: u64) -> Vec<Prebuilt> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let mut wanted = 0;
            let records: Vec<NewRecord> = (0..workload.messages_per_batch())
                .map(|_| {
                    let len = message_len(workload, &mut rng);
                    let headers = match tag(workload, &mut rng) {
                        Some(t) => {
                            wanted += u64::from(t == WANTED_TAG);
                            vec![Header::new("TAGS", Bytes::from(t))]
                        }
                        None => Vec::new(),
                    };
                    NewRecord {
                        key: None,
                        value: Some(payload(len, &mut rng)),
                        headers,
                        timestamp_ms: janus_api::now_ms(),
                    }
                })
                .collect();
            let payload_bytes = records.iter().map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64).sum();
            let batch = RecordBatch::build(&records, Compression::None).expect("generated records form a valid batch");
            Prebuilt { batch, messages: records.len() as u64, payload_bytes, wanted }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_carry_the_sizes_and_tag_mix_asked_for() {
        let workload = Workload {
            batch_messages: 200,
            message_bytes: 10,
            message_bytes_max: Some(30),
            tags: 4,
            selectivity: 0.25,
            ..Workload::default()
        };
        let built = batches(&workload, 5, 7);
        let messages: u64 = built.iter().map(|b| b.messages).sum();
        let wanted: u64 = built.iter().map(|b| b.wanted).sum();
        let bytes: u64 = built.iter().map(|b| b.payload_bytes).sum();
        assert_eq!(messages, 1000);
        assert!((150..350).contains(&wanted), "about a quarter wanted: {wanted}");
        assert!((15_000..25_000).contains(&bytes), "mean about 20 bytes: {bytes}");
        let records = built[0].batch.records().unwrap();
        assert!(records.iter().all(|r| r.headers.iter().any(|h| h.key == "TAGS")));
    }
}
