//! InitProducerId 0-4 for the idempotent producer: a new producer id with epoch 0, or (v3 and later,
//! given the id and epoch the producer holds) the next epoch of it. A transactional id is refused with
//! INVALID_REQUEST until Kafka transactions exist, so a transactional client fails at once and says why.

use janus_core::Core;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::errors::{INVALID_REQUEST, kafka_error};

/// The answer to `req`.
pub async fn answer(core: &Core, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |code| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    if req.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
        tracing::info!("Kafka: refused a transactional id (Kafka transactions are not served)");
        return refused(INVALID_REQUEST);
    }
    let existing = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    match core.init_producer_id(existing).await {
        Ok(issued) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(issued.producer_id))
            .with_producer_epoch(issued.epoch),
        Err(e) => refused(kafka_error(&e)),
    }
}
