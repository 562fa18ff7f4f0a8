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
        ClientError::Status { code: status.code(), message }
    }
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
    fn code_names_are_canonical() {
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::AlreadyExists), "ALREADY_EXISTS");
    }
}
