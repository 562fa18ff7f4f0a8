//! The client's error type: every failure keeps the gRPC status code and the broker's message.

use std::error::Error as StdError;

/// A gRPC status code (re-exported from tonic).
pub use tonic::Code;

/// Everything the client library can fail with.
///
/// A broker refusal is [`ClientError::Status`]: it displays as `CODE: message`, e.g.
/// `OUT_OF_RANGE: offset 9 is out of range ... valid offsets are 0..5`, so a person sees both the
/// canonical code and what the broker said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The broker URL could not be parsed.
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// No connection could be made to the broker.
    #[error("cannot connect to the broker at {url}: {reason}")]
    Connect {
        /// The broker URL.
        url: String,
        /// The transport error, with its causes.
        reason: String,
    },
    /// The broker (or the gRPC transport) answered with a non-OK status.
    #[error("{}: {message}", code_name(*.code))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The broker's message, with the transport's causes appended when there are any.
        message: String,
        /// The broker's own numeric error code (the `janus-error-code` metadata entry; see [`codes`]),
        /// when the broker sent one.
        broker_code: Option<u16>,
    },
    /// An argument was refused before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The broker answered something the client cannot make sense of.
    #[error("unexpected answer from the broker: {0}")]
    Protocol(String),
    /// The producer or consumer was closed (or its background task ended).
    #[error("{0} is closed")]
    Closed(&'static str),
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ClientError {
    /// The gRPC status code, when the error came from the broker or the transport.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            ClientError::Connect { .. } => Some(Code::Unavailable),
            _ => None,
        }
    }

    /// The broker's numeric error code (one of [`codes`]), when the broker sent one.
    pub fn broker_code(&self) -> Option<u16> {
        match self {
            ClientError::Status { broker_code, .. } => *broker_code,
            _ => None,
        }
    }

    /// True when the broker no longer counts the caller as a member of the group (its member id is
    /// unknown, its generation is stale, or it committed for a partition it does not own in the
    /// generation): its partitions are lost and it must rejoin with an empty member id.
    pub fn must_rejoin(&self) -> bool {
        matches!(
            self.broker_code(),
            Some(codes::UNKNOWN_MEMBER_ID | codes::ILLEGAL_GENERATION | codes::PARTITION_NOT_ASSIGNED)
        )
    }

    /// True when another consumer joined the group with the same static instance id, which fences this one.
    pub fn is_fenced(&self) -> bool {
        self.broker_code() == Some(codes::FENCED_INSTANCE_ID)
    }

    /// Builds an [`ClientError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        ClientError::InvalidArgument(message.into())
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let mut message = status.message().to_string();
        let mut source = status.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !message.contains(&text) {
                if message.is_empty() {
                    message = text;
                } else {
                    message = format!("{message}: {text}");
                }
            }
            source = cause.source();
        }
        if message.is_empty() {
            message = status.code().description().to_string();
        }
        let broker_code =
            status.metadata().get(BROKER_CODE_KEY).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        ClientError::Status { code: status.code(), message, broker_code }
    }
}

/// The status metadata entry carrying the broker's numeric error code.
pub const BROKER_CODE_KEY: &str = "janus-error-code";

/// The broker's stable numeric error codes that a client acts on (the `janus-error-code` metadata entry;
/// the broker's `ErrorCode` numbers).
pub mod codes {
    /// The consumer group is rebalancing (classic protocol): rejoin.
    pub const REBALANCE_IN_PROGRESS: u16 = 17;
    /// The member's generation is stale: give up the partitions and rejoin.
    pub const ILLEGAL_GENERATION: u16 = 18;
    /// The member id is not (or no longer) in the group: give up the partitions and rejoin.
    pub const UNKNOWN_MEMBER_ID: u16 = 19;
    /// Another member joined with the same static instance id: this one is fenced and must stop.
    pub const FENCED_INSTANCE_ID: u16 = 20;
    /// The join needs a member id (classic protocol).
    pub const MEMBER_ID_REQUIRED: u16 = 21;
    /// The member's protocol or mode does not match the group's.
    pub const INCONSISTENT_GROUP_PROTOCOL: u16 = 22;
    /// The session timeout is outside the broker's allowed range.
    pub const INVALID_SESSION_TIMEOUT: u16 = 23;
    /// A member committed for a partition it does not own in the generation.
    pub const PARTITION_NOT_ASSIGNED: u16 = 24;
    /// The producer's epoch is older than its current one (fenced) or was never issued.
    pub const INVALID_PRODUCER_EPOCH: u16 = 29;
    /// The batch's sequence does not follow the producer's last one in the partition.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: u16 = 30;
    /// The broker never issued this producer id.
    pub const UNKNOWN_PRODUCER_ID: u16 = 31;
    /// No pending or recently decided transaction has this id.
    pub const UNKNOWN_TRANSACTION: u16 = 32;
    /// The transaction was already committed, rolled back or discarded.
    pub const INVALID_TRANSACTION_STATE: u16 = 33;
    /// The metadata committed with an offset is longer than the broker keeps (4096 bytes).
    pub const OFFSET_METADATA_TOO_LARGE: u16 = 34;
}

/// The canonical upper-case name of a gRPC code (`NOT_FOUND`, `OUT_OF_RANGE`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Joins an error and its causes with `": "`.
pub(crate) fn error_chain(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The result type of the client library.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_code_and_message() {
        let err = ClientError::from(tonic::Status::out_of_range(
            "offset 9 is out of range for orders/0: valid offsets are 0..5",
        ));
        assert_eq!(err.code(), Some(Code::OutOfRange));
        assert_eq!(err.to_string(), "OUT_OF_RANGE: offset 9 is out of range for orders/0: valid offsets are 0..5");
    }

    #[test]
    fn empty_message_falls_back_to_description() {
        let err = ClientError::from(tonic::Status::new(Code::NotFound, ""));
        assert!(err.to_string().starts_with("NOT_FOUND: "), "{err}");
        assert!(err.to_string().len() > "NOT_FOUND: ".len());
    }

    #[test]
    fn the_broker_code_travels_in_metadata() {
        let mut status = tonic::Status::aborted("member m-1 is not in group g");
        status.metadata_mut().insert(BROKER_CODE_KEY, "19".parse().unwrap());
        let err = ClientError::from(status);
        assert_eq!(err.broker_code(), Some(codes::UNKNOWN_MEMBER_ID));
        assert!(err.must_rejoin() && !err.is_fenced());
        assert_eq!(err.to_string(), "ABORTED: member m-1 is not in group g");
        let mut status = tonic::Status::failed_precondition("fenced");
        status.metadata_mut().insert(BROKER_CODE_KEY, "20".parse().unwrap());
        let err = ClientError::from(status);
        assert!(err.is_fenced() && !err.must_rejoin());
        let plain = ClientError::from(tonic::Status::aborted("no code"));
        assert_eq!(plain.broker_code(), None);
        assert!(!plain.must_rejoin());
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::AlreadyExists), "ALREADY_EXISTS");
    }
}
