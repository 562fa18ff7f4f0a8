//! Message ids in the shape of RocketMQ's `UNIQ_KEY`: 32 upper-case hex digits, unique per producer
//! process without coordination.
//!
//! Layout (16 bytes): the creation time in milliseconds since the Unix epoch (6 bytes), a per-process
//! token drawn from the OS's random source at first use (4 bytes) and a per-process counter that starts at
//! a random value (6 bytes). RocketMQ puts the producer's IP, pid and a time since the start of the month
//! there; Janus puts the full time first so that a broker can find a message by its id with a time seek
//! ([`created_ms`]) instead of a full scan.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an id in characters.
pub const ID_LEN: usize = 32;

struct Generator {
    token: [u8; 4],
    counter: AtomicU64,
}

fn generator() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| {
        let mut seed = [0u8; 10];
        // Without an OS random source (never on Linux), fall back to the time and pid: still unique per
        // process in practice, only less unpredictable.
        if getrandom::fill(&mut seed).is_err() {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            seed[..8].copy_from_slice(&(nanos as u64 ^ u64::from(std::process::id()) << 32).to_be_bytes());
        }
        let mut start = [0u8; 8];
        start[2..].copy_from_slice(&seed[4..10]);
        Generator { token: [seed[0], seed[1], seed[2], seed[3]], counter: AtomicU64::new(u64::from_be_bytes(start)) }
    })
}

/// A new id created now.
pub fn new_message_id() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    message_id_at(ms)
}

/// A new id whose time part is `ms` (milliseconds since the Unix epoch).
pub fn message_id_at(ms: u64) -> String {
    let g = generator();
    let n = g.counter.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u8; 16];
    raw[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    raw[6..10].copy_from_slice(&g.token);
    raw[10..].copy_from_slice(&n.to_be_bytes()[2..]);
    let mut out = String::with_capacity(ID_LEN);
    for b in raw {
        out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
    }
    out
}

/// The creation time of an id made by [`new_message_id`], or `None` for an id of another shape (one a
/// producer chose).
pub fn created_ms(id: &str) -> Option<i64> {
    if id.len() != ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    i64::from_str_radix(&id[..12], 16).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_hex_and_carry_their_time() {
        let ids: Vec<String> = (0..10_000).map(|_| message_id_at(1_780_000_000_123)).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), ID_LEN);
            assert_eq!(created_ms(id), Some(1_780_000_000_123));
        }
        assert_eq!(created_ms("order-42"), None);
        assert_eq!(created_ms(&"Z".repeat(32)), None);
    }
}
