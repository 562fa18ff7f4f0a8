//! [`BrokerError`]: the one error of every core operation, with a stable numeric [`ErrorCode`] that each
//! face maps to its own protocol (a gRPC status, a Kafka error code) and a message a person can act on.
//!
//! The codes are part of the broker's contract: they never change meaning and are never reused. Faces add
//! their own hints (which RPC creates a topic, say) by code; the core's message names the object and says
//! what was wrong.

use janus_api::StorageError;

use crate::limits::{AdmitError, BlockingError, LimiterClosed};
use crate::meta::MetaError;

/// What kind of failure a [`BrokerError`] is. The numbers are stable (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The request is malformed: a bad name, a missing field, a negative offset.
    InvalidArgument = 1,
    /// The topic does not exist.
    UnknownTopic = 2,
    /// The topic exists but has no such partition.
    UnknownPartition = 3,
    /// A topic of that name already exists.
    TopicExists = 4,
    /// A config key is unknown or its value out of range.
    InvalidConfig = 5,
    /// A message or batch is larger than the topic's `max.message.bytes`.
    MessageTooLarge = 6,
    /// An offset is outside the partition's readable range.
    OffsetOutOfRange = 7,
    /// The disk is full: writes are refused until space is freed; reads go on.
    DiskFull = 8,
    /// The topic's engine cannot do what was asked.
    Unsupported = 9,
    /// The broker is shutting down.
    ShuttingDown = 10,
    /// Stored data failed its checks.
    Corrupt = 11,
    /// The consumer group does not exist.
    UnknownGroup = 12,
    /// A record batch or record failed validation (size, CRC, offsets).
    InvalidRecord = 13,
    /// The request is valid but cannot be done in the current state.
    FailedPrecondition = 14,
    /// A broker-wide limit refuses the request (for example `max.partitions`).
    LimitExceeded = 15,
    /// An unexpected failure inside the broker (disk IO, the metadata store, a task).
    Internal = 16,
    /// The consumer group is rebalancing: rejoin (classic protocol) to get the new assignment.
    RebalanceInProgress = 17,
    /// The member's generation is not the group's: its assignment is stale; rejoin.
    IllegalGeneration = 18,
    /// The member id is not (or no longer) in the group, for example after its session timed out: rejoin
    /// with an empty member id.
    UnknownMemberId = 19,
    /// Another member registered with the same static instance id: this one is fenced.
    FencedInstanceId = 20,
    /// The join needs a member id: the answer carries one; join again with it (classic protocol).
    MemberIdRequired = 21,
    /// The member's protocol type, protocols or mode do not match the group's.
    InconsistentGroupProtocol = 22,
    /// The session timeout is outside the broker's allowed range.
    InvalidSessionTimeout = 23,
    /// The member does not own the partition it commits for in the current generation.
    PartitionNotAssigned = 24,
    /// A delay level, delay or delivery time that is malformed or beyond `timer.max.delay.ms`.
    InvalidDelivery = 25,
    /// A receipt handle that is malformed, forged, from another group, or no longer current (acknowledged,
    /// timed out, or replaced by a change of its invisible duration).
    InvalidReceiptHandle = 26,
    /// An invisible duration outside the allowed range.
    InvalidInvisibleTime = 27,
    /// No message or pending timer has the id or key asked for.
    UnknownMessage = 28,
    /// A producer epoch older than the producer's current one (a fenced, zombie producer), or one the
    /// broker never issued.
    InvalidProducerEpoch = 29,
    /// A batch whose sequence does not follow the producer's last one in the partition (a gap).
    OutOfOrderSequenceNumber = 30,
    /// A producer id the broker never issued.
    UnknownProducerId = 31,
    /// No pending or recently decided transaction has the id given.
    UnknownTransaction = 32,
    /// The transaction was already decided (committed, rolled back, or discarded after its checks).
    InvalidTransactionState = 33,
    /// The metadata committed with an offset is longer than the broker keeps (Kafka's
    /// `offset.metadata.max.bytes`, 4096).
    OffsetMetadataTooLarge = 34,
}

impl ErrorCode {
    /// The stable number of this code.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// The code's name in upper snake case, as logs and metrics show it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::UnknownTopic => "UNKNOWN_TOPIC",
            ErrorCode::UnknownPartition => "UNKNOWN_PARTITION",
            ErrorCode::TopicExists => "TOPIC_EXISTS",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::DiskFull => "DISK_FULL",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Corrupt => "CORRUPT",
            ErrorCode::UnknownGroup => "UNKNOWN_GROUP",
            ErrorCode::InvalidRecord => "INVALID_RECORD",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            ErrorCode::FencedInstanceId => "FENCED_INSTANCE_ID",
            ErrorCode::MemberIdRequired => "MEMBER_ID_REQUIRED",
            ErrorCode::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            ErrorCode::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            ErrorCode::PartitionNotAssigned => "PARTITION_NOT_ASSIGNED",
            ErrorCode::InvalidDelivery => "INVALID_DELIVERY",
            ErrorCode::InvalidReceiptHandle => "INVALID_RECEIPT_HANDLE",
            ErrorCode::InvalidInvisibleTime => "INVALID_INVISIBLE_TIME",
            ErrorCode::UnknownMessage => "UNKNOWN_MESSAGE",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ErrorCode::UnknownTransaction => "UNKNOWN_TRANSACTION",
            ErrorCode::InvalidTransactionState => "INVALID_TRANSACTION_STATE",
            ErrorCode::OffsetMetadataTooLarge => "OFFSET_METADATA_TOO_LARGE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of a core operation: a stable code and a message for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BrokerError {
    code: ErrorCode,
    message: String,
}

impl BrokerError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BrokerError { code, message: message.into() }
    }

    /// What kind of failure this is.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A malformed request.
    pub fn invalid(message: impl Into<String>) -> Self {
        BrokerError::new(ErrorCode::InvalidArgument, message)
    }

    /// A topic that does not exist.
    pub fn unknown_topic(topic: &str) -> Self {
        BrokerError::new(ErrorCode::UnknownTopic, format!("topic '{topic}' does not exist"))
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        let code = match &e {
            StorageError::UnknownTopic(topic) => return BrokerError::unknown_topic(topic),
            StorageError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            StorageError::TopicExists(_) => ErrorCode::TopicExists,
            StorageError::InvalidTopicName { .. } => ErrorCode::InvalidArgument,
            StorageError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            StorageError::InvalidBatch(_) | StorageError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            StorageError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            StorageError::DiskFull { .. } => ErrorCode::DiskFull,
            StorageError::Unsupported(_) => ErrorCode::Unsupported,
            StorageError::Closed(_) => ErrorCode::ShuttingDown,
            StorageError::Corrupt { .. } => ErrorCode::Corrupt,
            StorageError::Io { .. } => ErrorCode::Internal,
        };
        BrokerError::new(code, e.to_string())
    }
}

impl From<MetaError> for BrokerError {
    fn from(e: MetaError) -> Self {
        BrokerError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<BlockingError> for BrokerError {
    fn from(e: BlockingError) -> Self {
        BrokerError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<AdmitError> for BrokerError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::TooLarge { .. } => BrokerError::new(ErrorCode::LimitExceeded, e.to_string()),
            AdmitError::Closed(closed) => closed.into(),
        }
    }
}

impl From<LimiterClosed> for BrokerError {
    fn from(e: LimiterClosed) -> Self {
        BrokerError::new(ErrorCode::ShuttingDown, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_numbers() {
        let expected = [
            (ErrorCode::InvalidArgument, 1),
            (ErrorCode::UnknownTopic, 2),
            (ErrorCode::UnknownPartition, 3),
            (ErrorCode::TopicExists, 4),
            (ErrorCode::InvalidConfig, 5),
            (ErrorCode::MessageTooLarge, 6),
            (ErrorCode::OffsetOutOfRange, 7),
            (ErrorCode::DiskFull, 8),
            (ErrorCode::Unsupported, 9),
            (ErrorCode::ShuttingDown, 10),
            (ErrorCode::Corrupt, 11),
            (ErrorCode::UnknownGroup, 12),
            (ErrorCode::InvalidRecord, 13),
            (ErrorCode::FailedPrecondition, 14),
            (ErrorCode::LimitExceeded, 15),
            (ErrorCode::Internal, 16),
            (ErrorCode::RebalanceInProgress, 17),
            (ErrorCode::IllegalGeneration, 18),
            (ErrorCode::UnknownMemberId, 19),
            (ErrorCode::FencedInstanceId, 20),
            (ErrorCode::MemberIdRequired, 21),
            (ErrorCode::InconsistentGroupProtocol, 22),
            (ErrorCode::InvalidSessionTimeout, 23),
            (ErrorCode::PartitionNotAssigned, 24),
            (ErrorCode::InvalidDelivery, 25),
            (ErrorCode::InvalidReceiptHandle, 26),
            (ErrorCode::InvalidInvisibleTime, 27),
            (ErrorCode::UnknownMessage, 28),
            (ErrorCode::InvalidProducerEpoch, 29),
            (ErrorCode::OutOfOrderSequenceNumber, 30),
            (ErrorCode::UnknownProducerId, 31),
            (ErrorCode::UnknownTransaction, 32),
            (ErrorCode::InvalidTransactionState, 33),
            (ErrorCode::OffsetMetadataTooLarge, 34),
        ];
        for (code, n) in expected {
            assert_eq!(code.number(), n, "{code}");
        }
    }

    #[test]
    fn storage_errors_keep_their_message_and_get_their_code() {
        let e = BrokerError::from(StorageError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            start: 0,
            end: 3,
        });
        assert_eq!(e.code(), ErrorCode::OffsetOutOfRange);
        assert!(e.message().contains("0..3"), "{e}");
        assert_eq!(BrokerError::from(StorageError::disk_full("/x")).code(), ErrorCode::DiskFull);
        let e = BrokerError::from(StorageError::UnknownTopic("orders".into()));
        assert_eq!(e.code(), ErrorCode::UnknownTopic);
        assert!(e.message().contains("'orders'"), "{e}");
    }
}
