//! The core's errors as gRPC statuses: each [`ErrorCode`] has one gRPC code, the message gets the hint
//! that fits this API (which RPC creates a topic or raises a limit), and the stable numeric code travels
//! in the `janus-error-code` metadata entry for programs.

use janus_core::{BrokerError, ErrorCode};
use tonic::{Code, Status};

/// Metadata key carrying the core's numeric error code.
pub const ERROR_CODE_KEY: &str = "janus-error-code";

/// The gRPC code of a core error code.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument
        | ErrorCode::InvalidConfig
        | ErrorCode::MessageTooLarge
        | ErrorCode::InvalidRecord => Code::InvalidArgument,
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition | ErrorCode::UnknownGroup => Code::NotFound,
        ErrorCode::TopicExists => Code::AlreadyExists,
        ErrorCode::OffsetOutOfRange => Code::OutOfRange,
        ErrorCode::DiskFull | ErrorCode::LimitExceeded => Code::ResourceExhausted,
        ErrorCode::Unsupported | ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::ShuttingDown => Code::Unavailable,
        ErrorCode::Corrupt => Code::DataLoss,
        ErrorCode::Internal => Code::Internal,
        // The member's view of the group is stale: it must give up its partitions and rejoin (a retry at a
        // higher level, which is what ABORTED asks of a client).
        ErrorCode::RebalanceInProgress
        | ErrorCode::IllegalGeneration
        | ErrorCode::UnknownMemberId
        | ErrorCode::MemberIdRequired
        | ErrorCode::PartitionNotAssigned => Code::Aborted,
        // Retrying cannot help until something else changes (the other member with the instance id stops;
        // the group's members leave).
        ErrorCode::FencedInstanceId | ErrorCode::InconsistentGroupProtocol => Code::FailedPrecondition,
        ErrorCode::InvalidSessionTimeout
        | ErrorCode::InvalidDelivery
        | ErrorCode::InvalidReceiptHandle
        | ErrorCode::InvalidInvisibleTime
        | ErrorCode::OffsetMetadataTooLarge => Code::InvalidArgument,
        ErrorCode::UnknownMessage | ErrorCode::UnknownProducerId | ErrorCode::UnknownTransaction => Code::NotFound,
        // The producer must not retry as is: it is fenced, or it lost sequence (it starts again with a new
        // producer id).
        ErrorCode::InvalidProducerEpoch | ErrorCode::OutOfOrderSequenceNumber => Code::FailedPrecondition,
        ErrorCode::InvalidTransactionState => Code::FailedPrecondition,
    }
}

/// What a person can do about an error of `code` through this API, appended to the message.
fn hint(code: ErrorCode) -> Option<&'static str> {
    match code {
        ErrorCode::UnknownTopic => Some("create it with Admin.CreateTopic"),
        ErrorCode::MessageTooLarge => {
            Some("send smaller messages or raise the topic's max.message.bytes with Admin.AlterTopicConfig")
        }
        ErrorCode::DiskFull => Some(
            "the broker refuses writes until space is freed (reads keep working): delete topics, lower retention, \
             or add disk",
        ),
        ErrorCode::ShuttingDown => Some("the broker is shutting down"),
        ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
            Some("give up the partitions and rejoin with an empty member_id (Consumer.GroupHeartbeat)")
        }
        ErrorCode::RebalanceInProgress => Some("rejoin the group to get the new assignment"),
        ErrorCode::MemberIdRequired => Some("join again with the member id this answer carries"),
        ErrorCode::PartitionNotAssigned => {
            Some("commit only partitions the last GroupHeartbeat assigned, with its generation")
        }
        ErrorCode::FencedInstanceId => {
            Some("another consumer joined with the same instance id: give every consumer its own")
        }
        ErrorCode::InconsistentGroupProtocol => {
            Some("every member of a group must use the same protocol and mode (clustering or broadcasting)")
        }
        ErrorCode::InvalidSessionTimeout => Some(
            "the broker's group.min.session.timeout.ms and group.max.session.timeout.ms bound it; 0 asks for the \
             default",
        ),
        _ => None,
    }
}

/// The status for a core error.
pub fn to_status(e: BrokerError) -> Status {
    let code = e.code();
    let message = match hint(code) {
        Some(h) if !e.message().contains(h) => format!("{}; {h}", e.message()),
        _ => e.message().to_string(),
    };
    let mut status = Status::new(grpc_code(code), message);
    if let Ok(v) = code.number().to_string().parse() {
        status.metadata_mut().insert(ERROR_CODE_KEY, v);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use janus_api::StorageError;

    #[test]
    fn core_errors_map_to_the_documented_codes() {
        let cases = [
            (StorageError::UnknownTopic("t".into()), Code::NotFound),
            (StorageError::TopicExists("t".into()), Code::AlreadyExists),
            (StorageError::MessageTooLarge { size: 10, max: 5 }, Code::InvalidArgument),
            (
                StorageError::OffsetOutOfRange { topic: "t".into(), partition: 0, offset: 9, start: 0, end: 3 },
                Code::OutOfRange,
            ),
            (StorageError::disk_full("/x"), Code::ResourceExhausted),
            (StorageError::Unsupported("tags".into()), Code::FailedPrecondition),
            (StorageError::Closed("bye".into()), Code::Unavailable),
        ];
        for (e, code) in cases {
            assert_eq!(to_status(e.into()).code(), code);
        }
        let s = to_status(BrokerError::unknown_topic("orders"));
        assert!(s.message().contains("'orders'") && s.message().contains("Admin.CreateTopic"), "{}", s.message());
        assert_eq!(s.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok()), Some("2"));
    }

    #[test]
    fn group_errors_tell_a_member_to_rejoin_or_stop() {
        let cases = [
            (ErrorCode::UnknownMemberId, Code::Aborted, "rejoin"),
            (ErrorCode::IllegalGeneration, Code::Aborted, "rejoin"),
            (ErrorCode::RebalanceInProgress, Code::Aborted, "rejoin"),
            (ErrorCode::PartitionNotAssigned, Code::Aborted, "generation"),
            (ErrorCode::MemberIdRequired, Code::Aborted, "member id"),
            (ErrorCode::FencedInstanceId, Code::FailedPrecondition, "instance id"),
            (ErrorCode::InconsistentGroupProtocol, Code::FailedPrecondition, "mode"),
            (ErrorCode::InvalidSessionTimeout, Code::InvalidArgument, "group.max.session.timeout.ms"),
        ];
        for (code, grpc, hint) in cases {
            let s = to_status(BrokerError::new(code, "x"));
            assert_eq!(s.code(), grpc, "{code}");
            assert!(s.message().contains(hint), "{code}: {}", s.message());
            let number = code.number().to_string();
            assert_eq!(s.metadata().get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok()), Some(number.as_str()));
        }
    }
}
