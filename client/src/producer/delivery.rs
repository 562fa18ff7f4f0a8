//! Per-message acknowledgements: one watch channel per batch, one cheap future per message.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{ClientError, Result};
use crate::record::RecordMetadata;

/// Where a batch went: its partition and the offset ranges its messages took, in message order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchAck {
    /// Partition.
    pub partition: u32,
    /// Inclusive offset ranges covering the batch's messages in order (usually one).
    pub ranges: Vec<(i64, i64)>,
}

impl BatchAck {
    /// The offset of the `index`-th message of the batch.
    pub fn offset_of(&self, index: usize) -> Option<i64> {
        let mut rest = index as i64;
        for &(base, last) in &self.ranges {
            let len = last - base + 1;
            if rest < len {
                return Some(base + rest);
            }
            rest -= len;
        }
        None
    }
}

/// The outcome of a batch, shared by its messages' futures.
pub(crate) type Outcome = Option<Result<BatchAck>>;

/// The sending half: resolved once by the sender task.
pub(crate) type OutcomeSender = watch::Sender<Outcome>;

/// A new outcome channel.
pub(crate) fn outcome_channel() -> (OutcomeSender, watch::Receiver<Outcome>) {
    watch::channel(None)
}

/// Resolves when the message is stored (or its batch failed); `.await` it or call [`DeliveryFuture::wait`].
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: watch::Receiver<Outcome>,
    index: usize,
    topic: Arc<str>,
}

impl DeliveryFuture {
    pub(crate) fn new(rx: watch::Receiver<Outcome>, index: usize, topic: Arc<str>) -> Self {
        DeliveryFuture { rx, index, topic }
    }

    /// Waits for the broker's answer about this message.
    pub async fn wait(mut self) -> Result<RecordMetadata> {
        let outcome = self.rx.wait_for(Option::is_some).await.map_err(|_| ClientError::Closed("producer"))?;
        match outcome.as_ref() {
            Some(Ok(ack)) => {
                let offset = ack.offset_of(self.index).ok_or_else(|| {
                    ClientError::Protocol(format!("no offset for message {} of its batch", self.index))
                })?;
                Ok(RecordMetadata { topic: self.topic.to_string(), partition: ack.partition, offset })
            }
            Some(Err(e)) => Err(e.clone()),
            None => Err(ClientError::Closed("producer")),
        }
    }
}

impl IntoFuture for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_walk_ranges() {
        let ack = BatchAck { partition: 0, ranges: vec![(10, 12), (20, 21)] };
        let got: Vec<_> = (0..6).map(|i| ack.offset_of(i)).collect();
        assert_eq!(got, vec![Some(10), Some(11), Some(12), Some(20), Some(21), None]);
    }

    #[tokio::test]
    async fn futures_resolve_from_the_batch() {
        let (tx, rx) = outcome_channel();
        let a = DeliveryFuture::new(rx.clone(), 0, "t".into());
        let b = DeliveryFuture::new(rx, 1, "t".into());
        tx.send_replace(Some(Ok(BatchAck { partition: 3, ranges: vec![(5, 6)] })));
        assert_eq!(a.await.unwrap(), RecordMetadata { topic: "t".into(), partition: 3, offset: 5 });
        assert_eq!(b.await.unwrap().offset, 6);
    }

    #[tokio::test]
    async fn dropped_batch_reports_closed() {
        let (tx, rx) = outcome_channel();
        let f = DeliveryFuture::new(rx, 0, "t".into());
        drop(tx);
        assert_eq!(f.await.unwrap_err(), ClientError::Closed("producer"));
    }
}
