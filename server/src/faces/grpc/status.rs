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
}
