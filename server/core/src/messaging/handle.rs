//! Receipt handles: what a receiver gets with each message and gives back to ack it or change its
//! invisible duration. Opaque to clients (hex), they name the group, the partition and offset where the
//! message is stored, and the lease's random 64-bit nonce. The broker trusts none of it: the lease table
//! must hold that offset for that group with that nonce, so a forged, stale or other group's handle is
//! refused and changes nothing.

use crate::error::{BrokerError, ErrorCode};
use crate::messaging::leases::QueueKey;

const VERSION: u8 = 1;

/// A decoded receipt handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptHandle {
    /// The queue (group, topic, partition) the message was received from.
    pub queue: QueueKey,
    /// Its offset there.
    pub offset: i64,
    /// The lease's nonce.
    pub nonce: u64,
}

fn malformed(why: &str) -> BrokerError {
    BrokerError::new(ErrorCode::InvalidReceiptHandle, format!("malformed receipt handle: {why}"))
}

impl ReceiptHandle {
    /// The handle as text.
    pub fn encode(&self) -> String {
        let (g, t) = (self.queue.group.as_bytes(), self.queue.topic.as_bytes());
        let mut raw = Vec::with_capacity(23 + g.len() + t.len());
        raw.push(VERSION);
        raw.extend_from_slice(&self.nonce.to_be_bytes());
        raw.extend_from_slice(&self.offset.to_be_bytes());
        raw.extend_from_slice(&self.queue.partition.to_be_bytes());
        raw.extend_from_slice(&(g.len() as u16).to_be_bytes());
        raw.extend_from_slice(g);
        raw.extend_from_slice(t);
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses a handle, refusing anything that is not one.
    pub fn decode(text: &str) -> Result<ReceiptHandle, BrokerError> {
        if text.is_empty() || !text.len().is_multiple_of(2) || text.len() > 4096 {
            return Err(malformed("wrong length"));
        }
        let raw: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| malformed("not hex"))?;
        if raw.len() < 23 || raw[0] != VERSION {
            return Err(malformed("unknown version or too short"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().unwrap_or_default());
        let nonce = u64_at(1);
        let offset = u64_at(9) as i64;
        let partition = u32::from_be_bytes(raw[17..21].try_into().unwrap_or_default());
        let glen = usize::from(u16::from_be_bytes([raw[21], raw[22]]));
        let rest = &raw[23..];
        if glen > rest.len() {
            return Err(malformed("truncated"));
        }
        let (g, t) = rest.split_at(glen);
        let group = std::str::from_utf8(g).map_err(|_| malformed("group is not UTF-8"))?;
        let topic = std::str::from_utf8(t).map_err(|_| malformed("topic is not UTF-8"))?;
        if group.is_empty() || topic.is_empty() {
            return Err(malformed("empty group or topic"));
        }
        Ok(ReceiptHandle { queue: QueueKey { group: group.into(), topic: topic.into(), partition }, offset, nonce })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_garbage_is_refused() {
        let h = ReceiptHandle {
            queue: QueueKey { group: "g1".into(), topic: "%RETRY%g1+orders".into(), partition: 3 },
            offset: 42,
            nonce: 0xDEAD_BEEF_1234,
        };
        assert_eq!(ReceiptHandle::decode(&h.encode()).unwrap(), h);
        for bad in ["", "zz", "0", "01", &"00".repeat(30), &h.encode()[..30]] {
            let err = ReceiptHandle::decode(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidReceiptHandle, "{bad}");
        }
    }
}
