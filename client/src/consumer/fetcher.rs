//! Per-partition reader tasks feeding the consumer's queue.

use std::time::Duration;

use janus_codec::batch::decode_batches;
use janus_proto::v1 as pb;
use tokio::sync::mpsc;

use super::config::ReadFormat;
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;
use crate::types::Position;

/// A broker response (or a failure) for one partition.
pub(crate) struct Event {
    /// The partition it concerns.
    pub partition: u32,
    /// The epoch of the reader that sent it: events of a reader the consumer has since stopped (its
    /// partition was revoked, perhaps assigned again) carry an old epoch and are dropped.
    pub epoch: u64,
    /// The response's records, or why the partition's reader stopped.
    pub result: Result<Response>,
}

/// One broker response, decoded.
pub(crate) struct Response {
    /// The records, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where the next read starts.
    pub next_offset: i64,
    /// The partition's end offset when the broker answered.
    pub log_end_offset: i64,
}

impl Response {
    /// Decodes `r` from `partition`: its batches (checking every CRC, skipping records below the offset it
    /// was read from) or its messages.
    fn decode(partition: u32, r: pb::FetchResponse) -> Result<Response> {
        let records = if r.record_batches.is_empty() {
            r.messages.into_iter().map(|m| ConsumerRecord::from_proto(partition, m)).collect()
        } else {
            decode_batches(&r.record_batches, r.from_offset)
                .map_err(|e| {
                    ClientError::Protocol(format!(
                        "the broker's batches for {}/{partition} from offset {} do not decode: {e}",
                        r.topic, r.from_offset
                    ))
                })?
                .into_iter()
                .map(|rec| ConsumerRecord::from_record(partition, rec))
                .collect()
        };
        Ok(Response { records, next_offset: r.next_offset, log_end_offset: r.log_end_offset })
    }
}

fn proto_format(format: ReadFormat) -> i32 {
    match format {
        ReadFormat::Batches => pb::RecordFormat::Batches as i32,
        ReadFormat::Messages => pb::RecordFormat::Messages as i32,
    }
}

/// What a reader task reads.
#[derive(Clone)]
pub(crate) struct ReadSpec {
    pub client: Client,
    pub topic: String,
    pub partition: u32,
    pub tags: Vec<String>,
    pub max_bytes: u32,
    pub format: ReadFormat,
    /// This reader's epoch, stamped on its events.
    pub epoch: u64,
}

impl ReadSpec {
    fn event(&self, result: Result<Response>) -> Event {
        Event { partition: self.partition, epoch: self.epoch, result }
    }
}

/// Subscribe mode: one stream; resubscribes from the next offset if the broker ends it cleanly.
pub(crate) async fn subscribe_loop(spec: ReadSpec, start: Position, tx: mpsc::Sender<Event>) {
    const MAX_QUIET_ENDS: u32 = 3;
    let mut position = start;
    let mut quiet_ends = 0;
    loop {
        let request = pb::SubscribeRequest {
            topic: spec.topic.clone(),
            partition: spec.partition,
            start: Some(position.to_proto()),
            tags: spec.tags.clone(),
            max_bytes: spec.max_bytes,
            format: proto_format(spec.format),
        };
        let mut stream = match spec.client.subscribe(request).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = tx.send(spec.event(Err(e))).await;
                return;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    quiet_ends = 0;
                    position = Position::Offset(response.next_offset);
                    let result = Response::decode(spec.partition, response);
                    let failed = result.is_err();
                    if result.as_ref().is_ok_and(|r| r.records.is_empty()) {
                        continue;
                    }
                    if tx.send(spec.event(result)).await.is_err() || failed {
                        return;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(spec.event(Err(status.into()))).await;
                    return;
                }
            }
        }
        quiet_ends += 1;
        if quiet_ends > MAX_QUIET_ENDS {
            let e = ClientError::Protocol(format!(
                "the broker keeps ending the subscription to {}/{}",
                spec.topic, spec.partition
            ));
            let _ = tx.send(spec.event(Err(e))).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50 * u64::from(quiet_ends))).await;
    }
}

/// Fetch mode: long-poll fetches from `offset`.
pub(crate) async fn fetch_loop(spec: ReadSpec, mut offset: i64, max_wait: Duration, tx: mpsc::Sender<Event>) {
    let max_wait_ms = max_wait.as_millis().min(u128::from(u32::MAX)) as u32;
    loop {
        let request = pb::FetchRequest {
            topic: spec.topic.clone(),
            partition: spec.partition,
            offset,
            max_bytes: spec.max_bytes,
            max_wait_ms,
            tags: spec.tags.clone(),
            format: proto_format(spec.format),
        };
        match spec.client.fetch(request).await.and_then(|r| {
            let next = r.next_offset;
            Response::decode(spec.partition, r).map(|decoded| (next, decoded))
        }) {
            Ok((next, response)) => {
                offset = next.max(offset);
                if response.records.is_empty() {
                    if tx.is_closed() {
                        return;
                    }
                    if max_wait_ms == 0 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
                if tx.send(spec.event(Ok(response))).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(spec.event(Err(e))).await;
                return;
            }
        }
    }
}
