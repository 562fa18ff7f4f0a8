//! The faces: each decodes its protocol's requests, calls the core and encodes the answers; nothing else.
//! Today only [`grpc`] (`janus.v1`); the Kafka wire protocol comes next.

pub mod grpc;
