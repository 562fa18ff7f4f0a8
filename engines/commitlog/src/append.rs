//! `append`: validates a batch, writes one CommitLog message per record under the writer mutex, writes
//! their ConsumeQueue entries and IndexFile keys inline, then publishes (see [`crate::dispatch`]).

use bytes::Bytes;
use janus_api::sync::lock;
use janus_api::{Appended, Durable, FlushPolicy, RecordBatch, StorageError, TopicPartition};
use std::sync::atomic::Ordering;

use crate::consume_queue::CqEntry;
use crate::dispatch::prepare;
use crate::format::MessageMeta;
use crate::state::State;

/// The body of a message whose record has a null value.
static EMPTY: Bytes = Bytes::new();

/// Appends `batch` to `tp`: the messages are readable, and `offsets()` shows them, when this returns; the
/// [`Durable`] completes as the topic's flush policy promises. A failed append leaves nothing behind.
pub(crate) fn append(state: &State, tp: &TopicPartition, batch: &RecordBatch) -> Result<Appended, StorageError> {
    let (topic, queue) = state.queue(tp)?;
    let config = topic.config();
    let prepared = prepare(&tp.topic, batch, config.max_message_bytes as usize, state.options.file_bytes)?;
    let n = prepared.messages.len() as i64;
    let topic_bytes = tp.topic.as_bytes();
    let mut w = lock(&state.writer);
    state.check_open()?;
    if topic.deleted.load(Ordering::Acquire) {
        return Err(StorageError::UnknownTopic(tp.topic.clone()));
    }
    let base = queue.next.load(Ordering::Acquire);
    let mark = w.pos();
    let mut entries = Vec::with_capacity(prepared.messages.len());
    let mut keys = Vec::new();
    // One store time for the whole batch: it is appended at one instant.
    let store_ms = w.store_timestamp();
    let written: Result<(), StorageError> = (|| {
        for (i, m) in prepared.messages.iter().enumerate() {
            let slot = w.reserve(m.size)?;
            let meta = MessageMeta {
                queue_id: tp.partition as i32,
                queue_offset: base + i as i64,
                physical_offset: slot.phys as i64,
                sys_flag: m.sys_flag,
                born_timestamp: m.record.timestamp_ms,
                store_timestamp: store_ms,
                ..MessageMeta::default()
            };
            let body = m.record.value.as_ref().unwrap_or(&EMPTY);
            let props = &prepared.props[m.props.clone()];
            w.put_message(&slot, &meta, m.body_crc, body, topic_bytes, props)?;
            w.note_store_time(&slot, store_ms);
            entries.push(CqEntry { phys: slot.phys as i64, size: m.size as i32, tag_hash: m.tag_hash });
            keys.extend(m.key_hashes.iter().map(|&h| (h, slot.phys as i64, store_ms)));
        }
        state.cq.write(&queue.loc, base as u64, &entries)?;
        w.publish()
    })();
    if let Err(e) = written {
        if let Err(undo) = w.rollback(mark) {
            state.close(&format!("could not undo a failed append: {undo}"));
        }
        return Err(e);
    }
    for (hash, phys, store_ms) in keys {
        if let Err(e) = state.index.put(hash, phys, store_ms) {
            tracing::warn!(error = %e, "IndexFile entry not written; key lookups may miss this message");
        }
    }
    queue.next.store(base + n, Ordering::Release);
    let end = w.pos();
    drop(w);
    state.notify_data();
    let durable = match config.flush_policy {
        FlushPolicy::Os => Durable::ready(),
        FlushPolicy::Interval => state.tracker.waiter(end, false),
        FlushPolicy::Sync => state.tracker.waiter(end, true),
    };
    Ok(Appended { base_offset: base, last_offset: base + n - 1, durable })
}
