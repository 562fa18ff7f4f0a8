//! The server's integration tests, as one test binary: each former `tests/*.rs` file is a module here, so
//! RocksDB and the rest of the dependency tree are linked once instead of once per file.
//!
//! Run one former file's tests with `cargo test -p janus-server --test it consume::`.

mod common;
mod e2e_common;

mod api_errors;
mod background;
mod consume;
mod e2e_cli;
mod e2e_client;
mod e2e_crash;
mod e2e_roundtrip;
mod janusd_binary;
mod limits_metrics;
mod restart;
