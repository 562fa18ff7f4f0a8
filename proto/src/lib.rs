//! The Janus gRPC API (`janus.v1`), generated from `janus/v1/janus.proto` by tonic and prost.

/// The `janus.v1` package: messages, clients and servers.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("janus.v1");
}

/// The encoded file descriptor set, for the gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("janus_descriptor");
