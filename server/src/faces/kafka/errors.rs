//! The core's errors as Kafka error codes: what a Kafka client acts on (retry, refresh metadata, give up).

use janus_core::{BrokerError, ErrorCode};

/// Kafka's error code for a core error (what a Kafka client acts on).
pub fn kafka_error(e: &BrokerError) -> i16 {
    match e.code() {
        ErrorCode::OffsetOutOfRange => 1,                            // OFFSET_OUT_OF_RANGE
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition => 3,  // UNKNOWN_TOPIC_OR_PARTITION
        ErrorCode::MessageTooLarge => 10,                            // MESSAGE_TOO_LARGE
        ErrorCode::Corrupt => 2,                                     // CORRUPT_MESSAGE
        ErrorCode::InvalidRecord | ErrorCode::InvalidArgument => 87, // INVALID_RECORD
        ErrorCode::DiskFull => 56,                                   // KAFKA_STORAGE_ERROR
        ErrorCode::LimitExceeded => 7,                               // REQUEST_TIMED_OUT: the client retries
        ErrorCode::ShuttingDown => 6,                                // NOT_LEADER_OR_FOLLOWER: the client refreshes
        ErrorCode::OutOfOrderSequenceNumber => 45,                   // OUT_OF_ORDER_SEQUENCE_NUMBER
        ErrorCode::InvalidProducerEpoch => 47,                       // INVALID_PRODUCER_EPOCH
        ErrorCode::UnknownProducerId => 59,                          // UNKNOWN_PRODUCER_ID
        _ => -1,                                                     // UNKNOWN_SERVER_ERROR
    }
}
