//! A bare Kafka connection for tests that must send exact requests (a chosen API version, a forged field):
//! each call encodes a request with the `kafka-protocol` crate, sends it as one frame and decodes the answer.

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client id every request of [`KafkaConn`] carries.
pub const CLIENT_ID: &str = "janus-wire-test";

/// One connection to the Kafka face.
pub struct KafkaConn {
    stream: TcpStream,
    next_id: i32,
}

impl KafkaConn {
    /// Connects to `addr`.
    pub async fn connect(addr: std::net::SocketAddr) -> KafkaConn {
        let stream = TcpStream::connect(addr).await.expect("the Kafka face accepts");
        KafkaConn { stream, next_id: 1 }
    }

    /// Sends `body` as `api` at `version` and decodes the answer (panics when the broker closes instead).
    pub async fn call<Q: Encodable, R: Decodable>(&mut self, api: ApiKey, version: i16, body: &Q) -> R {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
            .encode(&mut out, api.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        self.stream.write_all(&(out.len() as i32).to_be_bytes()).await.unwrap();
        self.stream.write_all(&out).await.unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).await.unwrap_or_else(|e| panic!("{api:?} v{version}: no answer: {e}"));
        let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut answer).await.unwrap();
        let mut buf = bytes::Bytes::from(answer);
        let header = ResponseHeader::decode(&mut buf, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id, "{api:?} v{version}: answers come in request order");
        let decoded = R::decode(&mut buf, version).unwrap_or_else(|e| panic!("{api:?} v{version} answer: {e}"));
        assert_eq!(buf.remaining(), 0, "{api:?} v{version}: the answer has trailing bytes");
        decoded
    }
}
