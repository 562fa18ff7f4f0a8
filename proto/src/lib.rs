//! Protocol buffers for the Janus gRPC API (generated code lands with the server issue).
