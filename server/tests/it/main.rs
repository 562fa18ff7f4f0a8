//! The server's integration tests, as one test binary: each former `tests/*.rs` file is a module here, so
//! RocksDB and the rest of the dependency tree are linked once instead of once per file.
//!
//! Every test runs on a thread of this one process, in parallel with the others, so process-wide state is
//! shared and the tests are written for it: the `metrics` recorder is one Prometheus registry for every
//! in-process broker (assert on a broker's own API, or on series of topics and groups no other test uses);
//! no test changes the environment or the current directory (settings for `janusd` go to its `Command`);
//! signals go only to `janusd` child processes; and every listener binds 127.0.0.1 port 0, while a port
//! that must have no listener stays bound, not listening, for as long as the test needs it.
//!
//! Run one former file's tests with `cargo test -p janus-server --test it consume::`.

mod common;
mod e2e_common;

mod api_errors;
mod background;
mod batches;
mod broker_surface;
mod consume;
mod disk_space;
mod e2e_bench;
mod e2e_cli;
mod e2e_client;
mod e2e_crash;
mod e2e_group_churn;
mod e2e_roundtrip;
mod e2e_timers;
mod group_coordinator;
mod groups;
mod hostile;
mod idempotence;
mod janusd_binary;
mod kafka_clients;
mod kafka_face;
mod kafka_fetch;
mod kafka_groups;
mod kafka_wire;
mod layers;
mod limits_metrics;
mod messaging;
mod restart;
mod timer_clock;
mod transactions;
