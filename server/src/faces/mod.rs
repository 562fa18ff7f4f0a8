//! The faces: each decodes its protocol's requests, calls the core and encodes the answers; nothing else.
//! [`grpc`] (`janus.v1`) and [`kafka`] (Kafka's wire protocol).

pub mod grpc;
pub mod kafka;
