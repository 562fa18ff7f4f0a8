//! The core's errors as Kafka error codes: what a Kafka client acts on (retry, refresh metadata, rejoin,
//! give up).

use janus_core::{BrokerError, ErrorCode};

/// Kafka's UNKNOWN_SERVER_ERROR.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's COORDINATOR_NOT_AVAILABLE: the client looks the coordinator up again and retries.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Kafka's INVALID_GROUP_ID.
pub const INVALID_GROUP_ID: i16 = 24;
/// Kafka's INVALID_TOPIC_EXCEPTION.
pub const INVALID_TOPIC: i16 = 17;
/// Kafka's INVALID_PARTITIONS.
pub const INVALID_PARTITIONS: i16 = 37;
/// Kafka's INVALID_REPLICATION_FACTOR.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// Kafka's INVALID_REQUEST.
pub const INVALID_REQUEST: i16 = 42;
/// Kafka's UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// Kafka's TOPIC_ALREADY_EXISTS.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's INVALID_REPLICA_ASSIGNMENT.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// Kafka's INVALID_CONFIG.
pub const INVALID_CONFIG: i16 = 40;
/// Kafka's MEMBER_ID_REQUIRED: join again with the member id given.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// Kafka's UNKNOWN_TOPIC_ID.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// Kafka's GROUP_ID_NOT_FOUND.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// Kafka's POLICY_VIOLATION.
pub const POLICY_VIOLATION: i16 = 44;
/// Kafka's GROUP_MAX_SIZE_REACHED: the member gives up (not retriable).
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// Kafka's OFFSET_METADATA_TOO_LARGE.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// Kafka's UNKNOWN_MEMBER_ID.
pub const UNKNOWN_MEMBER_ID: i16 = 25;

/// Kafka's error code for a core error (what a Kafka client acts on).
pub fn kafka_error(e: &BrokerError) -> i16 {
    match e.code() {
        ErrorCode::OffsetOutOfRange => 1, // OFFSET_OUT_OF_RANGE
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::MessageTooLarge => 10, // MESSAGE_TOO_LARGE
        ErrorCode::Corrupt => 2,          // CORRUPT_MESSAGE
        ErrorCode::InvalidRecord | ErrorCode::InvalidArgument => 87, // INVALID_RECORD
        ErrorCode::DiskFull => 56,        // KAFKA_STORAGE_ERROR
        ErrorCode::LimitExceeded => 7,    // REQUEST_TIMED_OUT: the client retries
        ErrorCode::ShuttingDown => 6,     // NOT_LEADER_OR_FOLLOWER: the client refreshes
        ErrorCode::OutOfOrderSequenceNumber => 45, // OUT_OF_ORDER_SEQUENCE_NUMBER
        ErrorCode::InvalidProducerEpoch => 47, // INVALID_PRODUCER_EPOCH
        ErrorCode::UnknownProducerId => 59, // UNKNOWN_PRODUCER_ID
        ErrorCode::TopicExists => TOPIC_ALREADY_EXISTS,
        ErrorCode::InvalidConfig => INVALID_CONFIG,
        ErrorCode::IllegalGeneration => 22,         // ILLEGAL_GENERATION
        ErrorCode::InconsistentGroupProtocol => 23, // INCONSISTENT_GROUP_PROTOCOL
        ErrorCode::UnknownMemberId => 25,           // UNKNOWN_MEMBER_ID
        ErrorCode::InvalidSessionTimeout => 26,     // INVALID_SESSION_TIMEOUT
        ErrorCode::RebalanceInProgress => 27,       // REBALANCE_IN_PROGRESS
        ErrorCode::OffsetMetadataTooLarge => 12,    // OFFSET_METADATA_TOO_LARGE
        ErrorCode::UnknownGroup => GROUP_ID_NOT_FOUND,
        ErrorCode::MemberIdRequired => MEMBER_ID_REQUIRED,
        ErrorCode::FencedInstanceId => 82,         // FENCED_INSTANCE_ID
        ErrorCode::Unsupported => INVALID_REQUEST, // the topic's engine cannot do what was asked
        _ => UNKNOWN_SERVER_ERROR,
    }
}

/// Kafka's error code for a core error of a group API: as [`kafka_error`], but a malformed field is
/// INVALID_REQUEST (a refused group name is checked first, by [`check_group`]), a full group
/// GROUP_MAX_SIZE_REACHED (the member gives up instead of retrying) and a stopping broker
/// COORDINATOR_NOT_AVAILABLE (the client finds the coordinator again).
pub fn group_error(e: &BrokerError) -> i16 {
    match e.code() {
        ErrorCode::InvalidArgument => INVALID_REQUEST,
        ErrorCode::LimitExceeded => GROUP_MAX_SIZE_REACHED,
        ErrorCode::ShuttingDown => COORDINATOR_NOT_AVAILABLE,
        _ => kafka_error(e),
    }
}

/// INVALID_GROUP_ID for a group name the broker cannot have (empty, too long, control characters).
pub fn check_group(group: &str) -> Result<(), i16> {
    janus_core::groups::validate_group_name(group).map_err(|_| INVALID_GROUP_ID)
}

/// Kafka's error code for a core error creating a topic (CreateTopics, or Metadata's auto-creation): a
/// refused name or request is INVALID_TOPIC_EXCEPTION, a broker limit POLICY_VIOLATION (not retriable).
pub fn creation_error(e: &BrokerError) -> i16 {
    match e.code() {
        ErrorCode::InvalidArgument => INVALID_TOPIC,
        ErrorCode::LimitExceeded => POLICY_VIOLATION,
        _ => kafka_error(e),
    }
}
