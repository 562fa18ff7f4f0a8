//! Request and response frames of Kafka's wire protocol over a blocking socket, for the load generators
//! ([`super::kafka_fetch`], [`super::kafka_produce`]): a 4-byte size, the header, the body.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, ensure};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Sends `body` as one `api` request of `version`.
pub fn send<R: Encodable>(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<()> {
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("janus-exp")))
        .encode(&mut frame, api.request_header_version(version))?;
    body.encode(&mut frame, version)?;
    let size = i32::try_from(frame.len() - 4)?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).with_context(|| format!("sending a {api:?} request"))
}

/// Reads one response frame into `buffer` and decodes it as `api`'s response of `version` (checking its
/// correlation id). Byte fields of the response point into `buffer`'s memory, which the next call reuses
/// once they are dropped (a fresh multi-megabyte buffer per response would be page-faulted in again: a cost
/// of the load generator, not of the broker).
pub fn receive<R: Decodable>(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<R> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).with_context(|| format!("reading a {api:?} response's size"))?;
    let size = usize::try_from(i32::from_be_bytes(size)).context("a negative response size")?;
    buffer.clear();
    buffer.resize(size, 0);
    stream.read_exact(&mut buffer[..]).with_context(|| format!("reading a {api:?} response"))?;
    let mut buf: Bytes = buffer.split().freeze();
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))?;
    ensure!(header.correlation_id == correlation_id, "correlation id {} for {correlation_id}", header.correlation_id);
    R::decode(&mut buf, version)
}
