//! Mapping errors to gRPC status codes with messages a person can act on.

use janus_api::StorageError;
use tonic::Status;

use crate::limits::{BlockingError, LimiterClosed};
use crate::meta::MetaError;
use crate::registry::RegistryError;

/// The status for an engine error.
pub fn from_storage(e: StorageError) -> Status {
    match &e {
        StorageError::UnknownTopic(topic) => {
            Status::not_found(format!("topic '{topic}' does not exist; create it with Admin.CreateTopic"))
        }
        StorageError::UnknownPartition { .. } => Status::not_found(e.to_string()),
        StorageError::TopicExists(_) => Status::already_exists(e.to_string()),
        StorageError::InvalidTopicName { .. }
        | StorageError::InvalidConfig(_)
        | StorageError::InvalidBatch(_)
        | StorageError::InvalidRecord(_) => Status::invalid_argument(e.to_string()),
        StorageError::MessageTooLarge { .. } => Status::invalid_argument(format!(
            "{e}; send smaller messages or raise the topic's max.message.bytes with Admin.AlterTopicConfig"
        )),
        StorageError::OffsetOutOfRange { .. } => Status::out_of_range(e.to_string()),
        StorageError::DiskFull { .. } => Status::resource_exhausted(format!(
            "{e}; the broker refuses writes until space is freed (reads keep working): delete topics, lower \
             retention, or add disk"
        )),
        StorageError::Unsupported(_) => Status::failed_precondition(e.to_string()),
        StorageError::Closed(_) => Status::unavailable(format!("{e}; the broker is shutting down")),
        StorageError::Corrupt { .. } => Status::data_loss(e.to_string()),
        StorageError::Io { .. } => Status::internal(e.to_string()),
    }
}

/// The status for a registry error.
pub fn from_registry(e: RegistryError) -> Status {
    match e {
        RegistryError::Storage(s) => from_storage(s),
        RegistryError::Meta(m) => from_meta(m),
        RegistryError::InvalidArgument(msg) => Status::invalid_argument(msg),
        RegistryError::NotFound(msg) => Status::not_found(msg),
        RegistryError::AlreadyExists(msg) => Status::already_exists(msg),
        RegistryError::FailedPrecondition(msg) => Status::failed_precondition(msg),
        RegistryError::OutOfRange(msg) => Status::out_of_range(msg),
    }
}

/// The status for a metadata store error.
pub fn from_meta(e: MetaError) -> Status {
    Status::internal(e.to_string())
}

/// The status for a failed blocking task.
pub fn from_blocking(e: BlockingError) -> Status {
    Status::internal(e.to_string())
}

/// The status when the in-flight budgets are gone (shutdown).
pub fn from_limiter(e: LimiterClosed) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn engine_errors_map_to_the_documented_codes() {
        let cases = [
            (StorageError::UnknownTopic("t".into()), Code::NotFound),
            (StorageError::TopicExists("t".into()), Code::AlreadyExists),
            (StorageError::MessageTooLarge { size: 10, max: 5 }, Code::InvalidArgument),
            (
                StorageError::OffsetOutOfRange { topic: "t".into(), partition: 0, offset: 9, start: 0, end: 3 },
                Code::OutOfRange,
            ),
            (StorageError::DiskFull { path: "/x".into() }, Code::ResourceExhausted),
            (StorageError::Unsupported("tags".into()), Code::FailedPrecondition),
            (StorageError::Closed("bye".into()), Code::Unavailable),
        ];
        for (e, code) in cases {
            assert_eq!(from_storage(e).code(), code);
        }
        let s = from_storage(StorageError::OffsetOutOfRange {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            start: 0,
            end: 3,
        });
        assert!(s.message().contains("0..3"), "{}", s.message());
    }
}
