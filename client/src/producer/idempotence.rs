//! The idempotent producer's client side: a producer id and epoch from the broker (asked for on the
//! first batch), and per partition the next sequence, stamped on each batch as it is built. A batch keeps
//! its sequence across retries, so the broker stores a retried batch once. After a batch fails for good
//! the session is dropped and the next batch asks for a new id, whose partitions start with no sequence
//! state (as Kafka's producer did before epoch bumps), so one lost batch does not block the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use janus_codec::RecordBatch;
use janus_proto::v1 as pb;

use crate::client::Client;
use crate::error::{ClientError, Result, codes};

/// One producer id's sequences.
#[derive(Debug)]
pub(crate) struct Session {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    sequences: Mutex<HashMap<(Arc<str>, u32), i32>>,
}

impl Session {
    /// Stamps `batches` (in send order) of one partition with this producer and the partition's next
    /// sequences.
    pub fn stamp(&self, topic: &Arc<str>, partition: u32, batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
        let mut sequences = self.sequences.lock().unwrap_or_else(|p| p.into_inner());
        let next = sequences.entry((Arc::clone(topic), partition)).or_insert(0);
        batches
            .into_iter()
            .map(|b| {
                let first = *next;
                *next = advance(first, b.record_count());
                b.with_producer(self.producer_id, self.epoch, first)
            })
            .collect()
    }
}

/// The sequence after `count` records starting at `first`, wrapping after `i32::MAX` to 0.
fn advance(first: i32, count: i32) -> i32 {
    let next = i64::from(first) + i64::from(count.max(0));
    (next % (i64::from(i32::MAX) + 1)) as i32
}

/// The producer's current session, if it has one.
#[derive(Debug, Default)]
pub(crate) struct Idempotence {
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl Idempotence {
    /// The current session, asking the broker for a producer id if there is none.
    pub async fn session(&self, client: &Client) -> Result<Arc<Session>> {
        let mut current = self.session.lock().await;
        if let Some(s) = current.as_ref() {
            return Ok(Arc::clone(s));
        }
        let issued = client.init_producer_id(None).await?;
        let epoch = i16::try_from(issued.producer_epoch)
            .map_err(|_| ClientError::Protocol(format!("producer epoch {} out of range", issued.producer_epoch)))?;
        let s = Arc::new(Session { producer_id: issued.producer_id, epoch, sequences: Mutex::default() });
        *current = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Drops `failed` if it is still the current session (a batch of it failed for good).
    pub async fn reset(&self, failed: &Arc<Session>) {
        let mut current = self.session.lock().await;
        if current.as_ref().is_some_and(|s| Arc::ptr_eq(s, failed)) {
            *current = None;
        }
    }
}

/// Whether a failed produce of an idempotent batch may be sent again as it is: the request or its answer
/// may have been lost, or an earlier batch of the partition is being retried (a sequence gap).
pub(crate) fn retriable(e: &ClientError) -> bool {
    use tonic::Code;
    if e.broker_code() == Some(codes::OUT_OF_ORDER_SEQUENCE_NUMBER) {
        return true;
    }
    if e.broker_code().is_some() {
        return false;
    }
    matches!(e.code(), Some(Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled))
        || matches!(e, ClientError::Timeout(_))
}

impl Client {
    /// Asks for a producer id and epoch (Kafka's InitProducerId): a new id, or, given the id and epoch
    /// this producer holds, the next epoch of it.
    pub async fn init_producer_id(&self, existing: Option<(i64, i16)>) -> Result<pb::InitProducerIdResponse> {
        let request = pb::InitProducerIdRequest {
            producer_id: existing.map(|(id, _)| id),
            producer_epoch: existing.map(|(_, e)| i32::from(e)),
        };
        let rpc = self.producer_rpc(crate::types::Compression::None);
        Ok(rpc.clone().init_producer_id(self.request(request, std::time::Duration::ZERO)).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(advance(0, 5), 5);
        assert_eq!(advance(i32::MAX - 1, 2), 0);
        assert_eq!(advance(i32::MAX, 1), 0);
        assert_eq!(advance(i32::MAX - 1, 5), 3);
    }
}
