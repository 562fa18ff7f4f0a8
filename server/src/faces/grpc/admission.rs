//! Admission before decoding: every gRPC request message waits for (or is refused) the memory it will hold
//! once decoded, *before* tonic and prost turn it into objects.
//!
//! Counting encoded bytes is not enough: a `ProduceRequest` of millions of empty messages is 2 bytes per
//! message on the wire and well over a hundred once decoded (more with the message id the core adds to each) (issue 11: 8 concurrent 14 MB requests took the
//! broker to 2.5 GB). So this layer wraps each request body, cuts it into gRPC messages (decompressing
//! gzip or zstd ones itself, once, so the estimate sees the real size), measures each message's decoded
//! size ([`decoded_estimate`]: for produce requests from the counts of messages and headers, read from
//! the protobuf without decoding it), and asks the core to admit that much ([`Core::admit`]) before it
//! hands the message on. A request larger than a budget on its own is refused with RESOURCE_EXHAUSTED.
//!
//! The permit of the message just admitted is left in the request's [`Admitted`] extension: the handler
//! takes it and holds it while the core works on the message (the producer service hands it to
//! [`Core::produce`]); a message the handler leaves there is released when the next message of the call is
//! admitted or the call ends.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use janus_core::limits::InflightPermit;
use janus_core::{BrokerError, Core};
use janus_proto::v1;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};

use super::status::to_status;

/// Bytes of a gRPC message's prefix: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// The permit of the request message most recently admitted on a call, for its handler to take.
#[derive(Clone, Debug, Default)]
pub struct Admitted(Arc<Mutex<Option<InflightPermit>>>);

impl Admitted {
    /// Takes the permit of the message the handler is about to process (`None` when none is waiting).
    pub fn take(&self) -> Option<InflightPermit> {
        janus_api::sync::lock(&self.0).take()
    }

    fn put(&self, permit: InflightPermit) {
        *janus_api::sync::lock(&self.0) = Some(permit);
    }
}

/// How a call's messages are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `janus.v1.ProduceRequest`: counted messages and headers.
    Produce,
    /// Anything else: small fixed-shape requests, twice their encoded size.
    Other,
}

/// The memory a request message of `payload` (uncompressed protobuf) holds in the broker once decoded: its
/// bytes, the decoded objects (protobuf structs and the core's records, sized by the compiler), and the
/// record batches the core encodes from them.
fn decoded_estimate(shape: Shape, payload: &[u8]) -> usize {
    match shape {
        Shape::Other => payload.len() * 2,
        Shape::Produce => {
            let (mut messages, mut headers) = (0usize, 0usize);
            each_field(payload, |field, value| {
                if let (3, Some(message)) = (field, value) {
                    messages += 1;
                    each_field(message, |f, v| headers += usize::from(f == 3 && v.is_some()));
                }
            });
            let per_message =
                size_of::<v1::Message>() + size_of::<janus_api::NewRecord>() + janus_core::produce::MESSAGE_ID_OVERHEAD;
            let per_header = size_of::<v1::Header>() + size_of::<janus_api::Header>();
            payload.len() * 2 + messages * per_message + headers * per_header
        }
    }
}

/// Reads a protobuf varint from the front of `buf`.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Calls `f(field number, Some(bytes))` for each length-delimited field of the protobuf message `buf`, and
/// `f(field number, None)` for the others; stops quietly at malformed input (decoding reports it later).
fn each_field(mut buf: &[u8], mut f: impl FnMut(u64, Option<&[u8]>)) {
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else { return };
        let skip = match key & 7 {
            0 => varint(&mut buf).map(|_| 0),
            1 => Some(8),
            2 => {
                let Some(len) = varint(&mut buf).and_then(|l| usize::try_from(l).ok()).filter(|&l| l <= buf.len())
                else {
                    return;
                };
                f(key >> 3, Some(&buf[..len]));
                Some(len)
            }
            5 => Some(4),
            _ => None,
        };
        match skip {
            Some(n) if n <= buf.len() => {
                if key & 7 != 2 {
                    f(key >> 3, None);
                }
                buf = &buf[n..];
            }
            _ => return,
        }
    }
}

/// Decompresses a gzip or zstd gRPC message of at most `max` bytes; `None` for another encoding, broken
/// data or more than `max` bytes (tonic then reports it as it would have).
fn decompress(encoding: &str, data: &[u8], max: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let limit = max as u64 + 1;
    let read = match encoding {
        "gzip" => flate2::read::GzDecoder::new(data).take(limit).read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(data).ok()?.take(limit).read_to_end(&mut out),
        _ => return None,
    };
    (read.is_ok() && out.len() <= max).then_some(out)
}

/// The layer (see the module docs).
#[derive(Clone, Debug)]
pub struct AdmissionLayer {
    core: Core,
    max_message: usize,
}

impl AdmissionLayer {
    /// Admits every request message through `core`'s budgets; messages over `max_message` bytes pass
    /// unmeasured to tonic, which refuses them.
    pub fn new(core: Core, max_message: usize) -> Self {
        AdmissionLayer { core, max_message }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission { inner, layer: self.clone() }
    }
}

/// The service the layer wraps around tonic's routes.
#[derive(Clone, Debug)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S, B> Service<Request<Body>> for Admission<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let shape = match parts.uri.path() {
            "/janus.v1.Producer/Produce" | "/janus.v1.Producer/ProduceStream" => Shape::Produce,
            _ => Shape::Other,
        };
        let encoding = parts.headers.get("grpc-encoding").and_then(|v| v.to_str().ok()).map(str::to_string);
        let connection = parts.extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr);
        let admitted = Admitted::default();
        parts.extensions.insert(admitted.clone());
        let body = AdmittedBody {
            inner: body,
            buf: BytesMut::new(),
            shape,
            encoding,
            connection,
            core: self.layer.core.clone(),
            max_message: self.layer.max_message,
            admitted: admitted.clone(),
            waiting: None,
            passthrough: false,
            inner_done: false,
        };
        let call = self.inner.call(Request::from_parts(parts, Body::new(body)));
        Box::pin(async move {
            let response = call.await;
            // A permit the handler did not take lasts until the call is answered.
            drop(admitted);
            response
        })
    }
}

type AdmitFuture = Pin<Box<dyn Future<Output = Result<InflightPermit, BrokerError>> + Send>>;

/// A request body handed on one admitted gRPC message at a time.
struct AdmittedBody {
    inner: Body,
    /// Bytes received and not yet handed on.
    buf: BytesMut,
    shape: Shape,
    encoding: Option<String>,
    connection: Option<SocketAddr>,
    core: Core,
    max_message: usize,
    admitted: Admitted,
    /// A message waiting for its admission.
    waiting: Option<(Bytes, AdmitFuture)>,
    /// Hand everything on unmeasured (a message over the size limit: tonic refuses it).
    passthrough: bool,
    inner_done: bool,
}

impl AdmittedBody {
    /// Measures one whole gRPC message (prefix included), decompressing it first when it is compressed;
    /// returns the message to hand on and its decoded estimate.
    fn measure(&self, message: Bytes) -> (Bytes, usize) {
        let payload = &message[PREFIX..];
        if message[0] == 0 {
            return (message.clone(), decoded_estimate(self.shape, payload));
        }
        let plain = self.encoding.as_deref().and_then(|e| decompress(e, payload, self.max_message));
        match plain {
            Some(plain) => {
                let estimate = decoded_estimate(self.shape, &plain);
                let mut out = BytesMut::with_capacity(PREFIX + plain.len());
                out.put_u8(0);
                out.put_u32(plain.len() as u32);
                out.extend_from_slice(&plain);
                (out.freeze(), estimate)
            }
            // Undecodable: tonic reports it; count it as its largest possible size.
            None => (message, self.max_message * 2),
        }
    }
}

impl HttpBody for AdmittedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some((_, admit)) = this.waiting.as_mut() {
                let result = std::task::ready!(admit.as_mut().poll(cx));
                let (message, _) = this.waiting.take().expect("a message waits");
                return Poll::Ready(Some(match result {
                    Ok(permit) => {
                        this.admitted.put(permit);
                        Ok(Frame::data(message))
                    }
                    Err(e) => {
                        this.passthrough = true;
                        this.buf.clear();
                        Err(to_status(e))
                    }
                }));
            }
            if !this.passthrough && this.buf.len() >= PREFIX {
                let len = u32::from_be_bytes([this.buf[1], this.buf[2], this.buf[3], this.buf[4]]) as usize;
                if len > this.max_message {
                    this.passthrough = true;
                } else if this.buf.len() >= PREFIX + len {
                    let message = this.buf.split_to(PREFIX + len).freeze();
                    let (message, estimate) = this.measure(message);
                    // The call's previous message is answered by now: the next is read only after it.
                    drop(this.admitted.take());
                    let (core, connection) = (this.core.clone(), this.connection);
                    this.waiting = Some((message, Box::pin(async move { core.admit(connection, estimate).await })));
                    continue;
                }
            }
            if (this.passthrough || this.inner_done) && !this.buf.is_empty() {
                // Unmeasured bytes (oversized or truncated messages): tonic refuses them.
                return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
            }
            if this.inner_done {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.buf.extend_from_slice(&data),
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.inner_done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner_done && self.buf.is_empty() && self.waiting.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn produce_request(messages: usize, headers: usize) -> Vec<u8> {
        v1::ProduceRequest {
            topic: "t".into(),
            partition: Some(1),
            messages: (0..messages)
                .map(|_| v1::Message {
                    headers: (0..headers).map(|_| v1::Header { key: "k".into(), value: None }).collect(),
                    ..v1::Message::default()
                })
                .collect(),
            wait_durable: true,
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn produce_requests_are_measured_by_what_they_decode_into() {
        let bytes = produce_request(1000, 2);
        let per_message =
            size_of::<v1::Message>() + size_of::<janus_api::NewRecord>() + janus_core::produce::MESSAGE_ID_OVERHEAD;
        let per_header = size_of::<v1::Header>() + size_of::<janus_api::Header>();
        assert_eq!(decoded_estimate(Shape::Produce, &bytes), bytes.len() * 2 + 1000 * per_message + 2000 * per_header);
        // Empty messages: two bytes each on the wire, dozens of times more once decoded.
        let empty = produce_request(10_000, 0);
        assert!(decoded_estimate(Shape::Produce, &empty) > 40 * empty.len());
        assert_eq!(decoded_estimate(Shape::Other, &empty), 2 * empty.len());
    }

    #[test]
    fn malformed_protobuf_is_measured_without_panicking() {
        for bytes in [&[0x1a, 0xff, 0xff][..], &[0xff; 11], &[0x1a, 0x05, 0x1a], &[0x0b]] {
            assert!(decoded_estimate(Shape::Produce, bytes) >= bytes.len() * 2);
        }
    }

    #[test]
    fn compressed_messages_are_measured_uncompressed_and_bounded() {
        use std::io::Write;
        let plain = produce_request(500, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress("gzip", &gz, 1 << 20).unwrap(), plain);
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        assert_eq!(decompress("zstd", &zst, 1 << 20).unwrap(), plain);
        assert_eq!(decompress("zstd", &zst, plain.len() - 1), None, "a bomb stops at the limit");
        assert_eq!(decompress("snappy", &zst, 1 << 20), None);
        assert_eq!(decompress("gzip", b"not gzip", 1 << 20), None);
    }
}
