//! tonic answers two failures before any service runs, with codes this API gives other meanings: a body
//! that does not decode as the request's protobuf message is INTERNAL, and a request over
//! `limits.max_request_bytes` is OUT_OF_RANGE (this API's code for offsets outside the log). This layer
//! rewrites those answers, whether the status travels in the response headers (trailers-only) or in the
//! trailers, to INVALID_ARGUMENT and RESOURCE_EXHAUSTED with the core's numeric code, so a client can tell
//! a bad request from a broker fault and a size limit from an offset.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use janus_core::ErrorCode;
use tonic::codegen::http::{HeaderMap, HeaderValue, Response};
use tower::util::MapResponseLayer;

use super::status::{ERROR_CODE_KEY, grpc_code};

/// The start of the message tonic (through prost) gives an undecodable request body, as `grpc-message`
/// carries it (percent-encoded: a space is `%20`).
const DECODE_FAILED: &str = "failed%20to%20decode%20Protobuf%20message";
/// The start of the message tonic gives a request over its decoding size limit, percent-encoded.
const TOO_LARGE: &str = "Error,%20decoded%20message%20length%20too%20large";
/// What the size-limit message gains, percent-encoded.
const TOO_LARGE_HINT: &str = ";%20raise%20limits.max_request_bytes%20or%20send%20smaller%20requests";

/// The response mapping the layer applies.
pub type Correction<B> = fn(Response<B>) -> Response<Corrected<B>>;

/// The layer for the gRPC server (see the module docs).
pub fn layer<B>() -> MapResponseLayer<Correction<B>> {
    MapResponseLayer::new(correct_response::<B>)
}

/// A response body whose trailers get the corrections of the module docs.
#[derive(Debug)]
pub struct Corrected<B> {
    inner: B,
}

fn correct_response<B>(response: Response<B>) -> Response<Corrected<B>> {
    let (mut parts, inner) = response.into_parts();
    correct(&mut parts.headers);
    Response::from_parts(parts, Corrected { inner })
}

impl<B: Body + Unpin> Body for Corrected<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(match frame.into_trailers() {
                Ok(mut trailers) => {
                    correct(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            }))),
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Rewrites a gRPC status in `headers` (response headers or trailers) when it is one of the two.
fn correct(headers: &mut HeaderMap) {
    let status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let code = match status {
        Some("13") if message.starts_with(DECODE_FAILED) => ErrorCode::InvalidArgument,
        Some("11") if message.starts_with(TOO_LARGE) => ErrorCode::LimitExceeded,
        _ => return,
    };
    headers.insert("grpc-status", HeaderValue::from(grpc_code(code) as i32));
    headers.insert(ERROR_CODE_KEY, HeaderValue::from(code.number()));
    if code == ErrorCode::LimitExceeded
        && let Ok(v) = HeaderValue::from_str(&format!("{message}{TOO_LARGE_HINT}"))
    {
        headers.insert("grpc-message", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &str, message: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_str(status).unwrap());
        h.insert("grpc-message", HeaderValue::from_str(message).unwrap());
        h
    }

    fn status(h: &HeaderMap) -> (&str, Option<&str>) {
        (h["grpc-status"].to_str().unwrap(), h.get(ERROR_CODE_KEY).and_then(|v| v.to_str().ok()))
    }

    fn correct(mut h: HeaderMap) -> HeaderMap {
        super::correct(&mut h);
        h
    }

    #[test]
    fn only_the_two_pre_service_failures_are_rewritten() {
        let r = correct(answer("13", "failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type"));
        assert_eq!(status(&r), ("3", Some("1")));
        let r = correct(answer("11", "Error,%20decoded%20message%20length%20too%20large:%20found%209%20bytes"));
        assert_eq!(status(&r), ("8", Some("15")));
        assert!(r["grpc-message"].to_str().unwrap().contains("limits.max_request_bytes"));
        // An offset out of range and a real internal error keep their codes.
        assert_eq!(status(&correct(answer("11", "offset%209%20is%20out%20of%20range"))), ("11", None));
        assert_eq!(status(&correct(answer("13", "I/O%20error%20on%20/x"))), ("13", None));
    }
}
