//! Finding messages by id (`UNIQ_KEY`) or key, on either engine.
//!
//! - **By key**: through the engine's key index when it has one (the commitlog engine's IndexFile); else
//!   a scan of the newest [`SCAN_MESSAGES`] messages of each partition.
//! - **By id**: ids the broker or the client library made carry their creation time
//!   ([`janus_codec::message_id`]), so the scan starts a minute before it (a time-index seek) and reads at
//!   most [`SCAN_MESSAGES`] messages per partition; if that misses (a delayed message is stored when it
//!   falls due) or the id has another shape, the newest [`SCAN_MESSAGES`] are scanned too. A message still
//!   waiting in the timer store is reported as pending instead ([`Lookup::Pending`]).

use std::sync::Arc;

use janus_api::{Engine, Record, TopicPartition, headers};
use janus_codec::message_id::created_ms;

use crate::Core;
use crate::error::{BrokerError, ErrorCode};
use crate::messaging::header_value;
use crate::topics::Topic;

/// The most messages a lookup scans per partition and pass.
pub const SCAN_MESSAGES: i64 = 100_000;
const SCAN_CHUNK_BYTES: usize = 1 << 20;
const MAX_RESULTS: usize = 64;

/// What to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageQuery {
    /// The message with this id.
    Id(String),
    /// Messages with this key (a word of their `KEYS` header, or their record key).
    Key(String),
}

/// What a lookup found.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// Stored messages, by partition and offset.
    Found(Vec<FoundMessage>),
    /// The id names a message of the topic still waiting in the timer store.
    Pending(crate::messaging::PendingTimer),
}

/// A message found by a lookup.
#[derive(Clone, Debug)]
pub struct FoundMessage {
    /// Its partition.
    pub partition: u32,
    /// The message (with its offset).
    pub record: Record,
}

fn matches(query: &MessageQuery, record: &Record) -> bool {
    match query {
        MessageQuery::Id(id) => header_value(&record.headers, headers::UNIQ_KEY) == Some(id.as_str()),
        MessageQuery::Key(key) => {
            record.key.as_deref() == Some(key.as_bytes())
                || header_value(&record.headers, headers::KEYS).is_some_and(|k| k.split(' ').any(|w| w == key))
        }
    }
}

/// Scans `from..end` of one partition (at most [`SCAN_MESSAGES`]) for records `wanted` accepts, adding
/// them to `out` until it holds `limit`.
pub(crate) fn scan(
    engine: &dyn Engine,
    tp: &TopicPartition,
    from: i64,
    wanted: &dyn Fn(&Record) -> bool,
    limit: usize,
    out: &mut Vec<FoundMessage>,
) -> Result<(), BrokerError> {
    let o = engine.offsets(tp)?;
    let (mut at, stop) = (from.clamp(o.log_start, o.log_end), (from.max(o.log_start) + SCAN_MESSAGES).min(o.log_end));
    while at < stop && out.len() < limit {
        let slice = engine.read(tp, at, SCAN_CHUNK_BYTES)?;
        if slice.is_empty() {
            break;
        }
        let next = slice.next_offset();
        for record in engine.decode_records(&slice, at)? {
            if record.offset < stop
                && wanted(&record)
                && !out.iter().any(|f| f.partition == tp.partition && f.record.offset == record.offset)
            {
                out.push(FoundMessage { partition: tp.partition, record });
            }
        }
        if next <= at {
            break;
        }
        at = next;
    }
    Ok(())
}

impl Core {
    /// Messages of `topic` matching `query` (at most 64), by partition and offset; for an id that names a
    /// scheduled message of the topic not yet due, that pending message.
    pub async fn lookup_message(&self, topic: &str, query: MessageQuery) -> Result<Lookup, BrokerError> {
        let topic = self.topic(topic)?;
        if let MessageQuery::Id(id) = &query
            && !id.is_empty()
            && let Ok(pending) = self.pending_timer(id.clone()).await
            && pending.topic == topic.name
        {
            return Ok(Lookup::Pending(pending));
        }
        let what = match &query {
            MessageQuery::Id(id) | MessageQuery::Key(id) if id.is_empty() => {
                return Err(BrokerError::invalid("the id or key to look up is empty"));
            }
            MessageQuery::Id(id) => format!("id '{id}'"),
            MessageQuery::Key(key) => format!("key '{key}'"),
        };
        let t = Arc::clone(&topic);
        let mut found = self.blocking(move |r| lookup_blocking(r.engine(t.engine), &t, &query)).await?;
        if found.is_empty() {
            return Err(BrokerError::new(
                ErrorCode::UnknownMessage,
                format!(
                    "no message of topic '{}' has {what} (scanned: the key index, or the newest {SCAN_MESSAGES} \
                     messages of each partition)",
                    topic.name
                ),
            ));
        }
        found.sort_by_key(|f| (f.partition, f.record.offset));
        Ok(Lookup::Found(found))
    }
}

fn lookup_blocking(engine: &dyn Engine, topic: &Topic, query: &MessageQuery) -> Result<Vec<FoundMessage>, BrokerError> {
    let mut out = Vec::new();
    if let (MessageQuery::Key(key), Some(index)) = (query, engine.key_lookup()) {
        for (tp, record) in index.lookup_by_key(&topic.name, key, 0, i64::MAX, MAX_RESULTS)? {
            out.push(FoundMessage { partition: tp.partition, record });
        }
        return Ok(out);
    }
    for partition in 0..topic.partitions {
        let tp = TopicPartition::new(topic.name.clone(), partition);
        if let MessageQuery::Id(id) = query
            && let Some(ms) = created_ms(id)
        {
            let from = engine.offset_for_timestamp(&tp, ms - 60_000)?;
            if let Some(from) = from {
                scan(engine, &tp, from, &|r| matches(query, r), MAX_RESULTS, &mut out)?;
            }
            if out.iter().any(|f| f.partition == partition) {
                continue;
            }
        }
        let o = engine.offsets(&tp)?;
        scan(engine, &tp, o.log_end - SCAN_MESSAGES, &|r| matches(query, r), MAX_RESULTS, &mut out)?;
    }
    Ok(out)
}
