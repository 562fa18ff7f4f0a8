//! Per-RPC latency: `janus_request_duration_seconds` with the RPC name and the gRPC status code.

use std::time::Instant;

use metrics::histogram;

/// Measures one RPC; records `janus_request_duration_seconds` with the status code when finished.
#[derive(Debug)]
pub struct RpcTimer {
    rpc: &'static str,
    started: Instant,
}

impl RpcTimer {
    /// Starts timing `rpc`.
    pub fn start(rpc: &'static str) -> Self {
        RpcTimer { rpc, started: Instant::now() }
    }

    /// Records the outcome and passes it through.
    pub fn finish<T>(self, result: Result<T, tonic::Status>) -> Result<T, tonic::Status> {
        let code = match &result {
            Ok(_) => "ok",
            Err(s) => code_name(s.code()),
        };
        histogram!("janus_request_duration_seconds", "rpc" => self.rpc, "code" => code)
            .record(self.started.elapsed().as_secs_f64());
        result
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}
