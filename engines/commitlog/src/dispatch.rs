//! Turning input into CommitLog messages, and messages into ConsumeQueue and IndexFile entries.
//!
//! The dispatcher runs inline: `append` writes the messages, their ConsumeQueue entries and IndexFile keys
//! under the writer mutex and then publishes the queue's new end, so a message is readable exactly when
//! `append` returns and `offsets()` always agrees with what the caller appended (deterministic, no lag).
//! Recovery uses [`Redispatcher`] to rebuild entries from messages it scans.

use std::collections::HashMap;

use crate::format::{
    self as rec, MessageView, PROPERTY_KEYS, PROPERTY_RECORD_KEY, ProducerMark, SYSFLAG_NULL_VALUE, find_property,
};
use bytes::Bytes;
use janus_api::batch::header::compute_crc;
use janus_api::{BatchError, BatchHeader, Record, RecordBatch, StorageError};

use crate::consume_queue::{CqEntry, CqStore, QueueLoc};
use crate::index_file::{IndexStore, key_hash};

/// One record ready to be written as a message.
#[derive(Debug)]
pub struct PreparedMessage {
    /// The record (value, timestamp).
    pub record: Record,
    /// Its properties: `props[range]` of the batch's shared buffer.
    pub props: std::ops::Range<usize>,
    /// SYSFLAG.
    pub sys_flag: i32,
    /// BODYCRC.
    pub body_crc: u32,
    /// TOTALSIZE.
    pub size: usize,
    /// ConsumeQueue tag hash.
    pub tag_hash: i64,
    /// IndexFile hashes of its keys (KEYS words and the record key when it is UTF-8).
    pub key_hashes: Vec<i32>,
}

/// A batch turned into messages, before any byte is written.
#[derive(Debug)]
pub struct PreparedBatch {
    /// The messages.
    pub messages: Vec<PreparedMessage>,
    /// Every message's properties, back to back.
    pub props: Vec<u8>,
}

/// The keys a message is indexed under: each word of KEYS, and the record key if it is clean UTF-8 and
/// not among them.
pub fn index_keys(properties: &[u8]) -> Result<Vec<Vec<u8>>, rec::RecordError> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    if let Some(Some(k)) = find_property(properties, PROPERTY_KEYS)? {
        keys.extend(rec::split_keys(&k).map(<[u8]>::to_vec));
    }
    if let Some(Some(k)) = find_property(properties, PROPERTY_RECORD_KEY)?
        && !k.is_empty()
        && std::str::from_utf8(&k).is_ok()
        && !keys.iter().any(|x| x[..] == k[..])
    {
        keys.push(k.into_owned());
    }
    Ok(keys)
}

/// Whether `key` is one of the message's keys (see [`index_keys`]).
pub fn has_key(properties: &[u8], key: &[u8]) -> Result<bool, rec::RecordError> {
    Ok(index_keys(properties)?.iter().any(|k| k[..] == *key))
}

/// Validates `batch` (header, length, CRC-32C, record structure; at most `max_message_bytes`), decodes its
/// records and prepares one message per record for `topic`, the first marked with the batch's producer
/// fields when it has a producer id (see [`ProducerMark`]). Nothing is written.
pub fn prepare(
    topic: &str,
    batch: &RecordBatch,
    max_message_bytes: usize,
    file_bytes: u64,
) -> Result<PreparedBatch, StorageError> {
    if batch.len() > max_message_bytes {
        return Err(StorageError::MessageTooLarge { size: batch.len(), max: max_message_bytes });
    }
    let bytes = batch.as_bytes();
    let header = BatchHeader::parse(bytes)?;
    if header.batch_size() != bytes.len() {
        return Err(BatchError::BadLength { declared: header.batch_size(), actual: bytes.len() }.into());
    }
    let computed = compute_crc(bytes);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed }.into());
    }
    // Decompressed records may exceed the batch by at most the margin every topic allows (see
    // `TopicConfig::max_decompressed_bytes`).
    let records = batch.records_within(max_message_bytes + janus_api::config::DECOMPRESSION_MARGIN)?;
    if records.is_empty() {
        return Err(BatchError::Empty.into());
    }
    // `records` is not empty and holds exactly recordsCount records (checked by `records_within`).
    let mark = (header.producer_id >= 0).then_some(ProducerMark {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        record_count: header.records_count,
    });
    let max_size = (file_bytes as usize).saturating_sub(rec::BLANK_RECORD_SIZE);
    let mut props = Vec::with_capacity(records.len() * 16);
    let mut messages = Vec::with_capacity(records.len());
    let too_large = |e: rec::RecordError| BatchError::InvalidInput(e.to_string());
    for (i, record) in records.into_iter().enumerate() {
        let start = props.len();
        let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
        let producer = if i == 0 { mark.as_ref() } else { None };
        rec::encode_properties(&mut props, record.key.as_deref(), producer, headers).map_err(too_large)?;
        let range = start..props.len();
        let own = &props[range.clone()];
        let tag = find_property(own, rec::PROPERTY_TAGS).map_err(too_large)?.flatten();
        let tag_hash = rec::tag_hash(tag.as_deref());
        let key_hashes = index_keys(own).map_err(too_large)?.iter().map(|k| key_hash(topic, k)).collect();
        let body: &[u8] = record.value.as_deref().unwrap_or_default();
        let size = rec::message_size(body.len(), topic.len(), range.len()).map_err(too_large)?;
        if size > max_size {
            return Err(StorageError::MessageTooLarge { size, max: max_size });
        }
        messages.push(PreparedMessage {
            sys_flag: if record.value.is_none() { SYSFLAG_NULL_VALUE } else { 0 },
            body_crc: rec::body_crc(body),
            size,
            tag_hash,
            key_hashes,
            props: range,
            record,
        });
    }
    Ok(PreparedBatch { messages, props })
}

/// Which queues a [`Redispatcher`] writes: `(topic, queue) -> bool`.
pub type QueueFilter<'a> = &'a dyn Fn(&str, u32) -> bool;
/// How a [`Redispatcher`] finds a queue's files.
pub type QueueLocator<'a> = &'a dyn Fn(&str, u32) -> QueueLoc;

/// Rebuilds ConsumeQueue (and optionally IndexFile) entries from scanned messages, batching the writes of
/// consecutive entries of a queue.
pub struct Redispatcher<'a> {
    cq: &'a CqStore,
    index: Option<&'a IndexStore>,
    /// Skip IndexFile entries for messages at or below this physical offset (already indexed).
    indexed_to: i64,
    /// Only these topics (all but tombstoned ones when `None`).
    only: Option<QueueFilter<'a>>,
    tombstones: &'a HashMap<String, u64>,
    loc: QueueLocator<'a>,
    pending: HashMap<(String, u32), (u64, Vec<CqEntry>)>,
    pending_entries: usize,
    /// Highest STORETIMESTAMP seen.
    pub max_store_ms: i64,
}

impl<'a> Redispatcher<'a> {
    /// A dispatcher writing through `cq` (and `index` when given), skipping tombstoned messages; `loc`
    /// names a queue's files.
    pub fn new(
        cq: &'a CqStore,
        index: Option<&'a IndexStore>,
        tombstones: &'a HashMap<String, u64>,
        loc: QueueLocator<'a>,
    ) -> Self {
        let indexed_to = index.map_or(i64::MAX, IndexStore::end_phys);
        Redispatcher {
            cq,
            index,
            indexed_to,
            only: None,
            tombstones,
            loc,
            pending: HashMap::new(),
            pending_entries: 0,
            max_store_ms: i64::MIN,
        }
    }

    /// Restricts dispatch to the queues `only` accepts.
    pub fn only(mut self, only: QueueFilter<'a>) -> Self {
        self.only = Some(only);
        self
    }

    /// Dispatches the message at `phys`.
    pub fn dispatch(&mut self, phys: u64, view: &MessageView<'_>) -> Result<(), StorageError> {
        self.max_store_ms = self.max_store_ms.max(view.meta.store_timestamp);
        let Ok(topic) = std::str::from_utf8(view.topic) else { return Ok(()) };
        let Ok(queue) = u32::try_from(view.meta.queue_id) else { return Ok(()) };
        if view.meta.queue_offset < 0 || self.tombstones.get(topic).is_some_and(|&t| phys < t) {
            return Ok(());
        }
        if self.only.is_some_and(|only| !only(topic, queue)) {
            return Ok(());
        }
        let tag = view.tags().ok().flatten();
        let entry =
            CqEntry { phys: phys as i64, size: view.total_size as i32, tag_hash: rec::tag_hash(tag.as_deref()) };
        let offset = view.meta.queue_offset as u64;
        let key = (topic.to_string(), queue);
        let flush_first = match self.pending.get(&key) {
            Some((first, entries)) => first + entries.len() as u64 != offset,
            None => false,
        };
        if flush_first {
            self.flush_one(&key)?;
        }
        let slot = self.pending.entry(key).or_insert_with(|| (offset, Vec::new()));
        slot.1.push(entry);
        self.pending_entries += 1;
        if self.pending_entries >= 64 * 1024 {
            self.finish()?;
        }
        if let Some(index) = self.index
            && (phys as i64) > self.indexed_to
        {
            let keys = index_keys(view.properties).unwrap_or_default();
            for k in keys {
                index.put(key_hash(topic, &k), phys as i64, view.meta.store_timestamp)?;
            }
        }
        Ok(())
    }

    fn flush_one(&mut self, key: &(String, u32)) -> Result<(), StorageError> {
        if let Some((first, entries)) = self.pending.remove(key) {
            self.pending_entries -= entries.len();
            self.cq.write(&(self.loc)(&key.0, key.1), first, &entries)?;
        }
        Ok(())
    }

    /// Writes every pending entry.
    pub fn finish(&mut self) -> Result<(), StorageError> {
        let keys: Vec<(String, u32)> = self.pending.keys().cloned().collect();
        for k in keys {
            self.flush_one(&k)?;
        }
        Ok(())
    }
}

/// The record stored at a message, sharing memory with `region` (which holds exactly that message).
pub fn region_record(region: &Bytes) -> Result<Record, rec::RecordError> {
    match rec::parse_entry(region)? {
        rec::Entry::Message(view) => {
            view.verify_crc()?;
            rec::message_to_record(&view, region)
        }
        _ => Err(rec::RecordError::BadSize { total: region.len() as i64, detail: "not a message".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use janus_api::{Compression, Header, NewRecord};

    #[test]
    fn prepare_checks_the_batch_and_finds_tags_and_keys() {
        let records = vec![
            NewRecord {
                key: Some(Bytes::from_static(b"k0")),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![Header::new("TAGS", "TagA"), Header::new("KEYS", "a b")],
                timestamp_ms: 5,
            },
            NewRecord { key: None, value: None, headers: vec![], timestamp_ms: 6 },
        ];
        let batch = RecordBatch::build(&records, Compression::None).unwrap();
        let p = prepare("t", &batch, 1 << 20, 1 << 20).unwrap();
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.messages[0].tag_hash, i64::from(rec::java_string_hash(b"TagA")));
        assert_eq!(p.messages[0].key_hashes, vec![key_hash("t", b"a"), key_hash("t", b"b"), key_hash("t", b"k0")]);
        assert_eq!(p.messages[1].sys_flag, SYSFLAG_NULL_VALUE);
        assert_eq!(p.messages[1].tag_hash, 0);
        assert!(matches!(prepare("t", &batch, 10, 1 << 20), Err(StorageError::MessageTooLarge { .. })));
        assert!(matches!(prepare("t", &batch, 1 << 20, 100), Err(StorageError::MessageTooLarge { .. })));
        let mut raw = batch.as_bytes().to_vec();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let bad = RecordBatch::from_bytes(Bytes::from(raw)).unwrap();
        assert!(matches!(prepare("t", &bad, 1 << 20, 1 << 20), Err(StorageError::InvalidBatch(_))));
    }

    #[test]
    fn prepare_marks_the_first_message_of_a_producer_batch() {
        let records: Vec<NewRecord> =
            (0..3).map(|i| NewRecord { value: Some(Bytes::from(vec![b'v'; i])), ..Default::default() }).collect();
        let plain = RecordBatch::build(&records, Compression::None).unwrap();
        let template = BatchHeader { producer_id: 9, producer_epoch: 2, base_sequence: 40, ..plain.header() };
        let batch = RecordBatch::rebuild(&template, &plain.records().unwrap()).unwrap();
        let p = prepare("t", &batch, 1 << 20, 1 << 20).unwrap();
        let props: Vec<&[u8]> = p.messages.iter().map(|m| &p.props[m.props.clone()]).collect();
        assert_eq!(props, [&b"%P\x019.2.40.3\x02"[..], b"", b""]);
        assert_eq!(p.messages[0].size, rec::message_size(0, 1, props[0].len()).unwrap());
        let unmarked = prepare("t", &plain, 1 << 20, 1 << 20).unwrap();
        assert!(unmarked.props.is_empty());
        assert_eq!(p.messages[1].size, unmarked.messages[1].size);
    }
}
