//! Workload drivers: each runs one case (one point of a scenario on one engine) and returns its metrics.

pub mod face_read;
pub mod face_write;
pub mod grpc;
pub mod inproc;
pub mod janusd;
pub mod kafka_fetch;
pub mod kafka_frames;
pub mod kafka_produce;
pub mod produce_modes;
pub mod read;
pub mod rebalance;
pub mod receive;
pub mod recovery;
pub mod timers;
pub mod write;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};

use crate::scenario::{Access, Kind, Workload};

/// Runs one case of `kind` over `access` on engine `engine` with its files in `dir`, in round `round` (drivers
/// that draw random choices seed them with it, so both engines of a round get the same ones).
pub fn run(
    kind: Kind,
    access: Access,
    engine: &str,
    dir: &Path,
    workload: &Workload,
    round: u32,
) -> Result<BTreeMap<String, f64>> {
    match (kind, access) {
        (Kind::Produce, Access::Inproc) => inproc::produce(engine, dir, workload),
        (Kind::Produce, Access::Grpc) if workload.produce_mode.is_some() => {
            produce_modes::produce(engine, dir, workload)
        }
        (Kind::Produce, Access::Grpc) => grpc::produce(engine, dir, workload),
        (Kind::Consume | Kind::Fanout, Access::Inproc) => inproc::consume(engine, dir, workload),
        (Kind::Consume, Access::Janusd) => face_read::consume(engine, dir, workload),
        (Kind::Produce, Access::Janusd) => face_write::produce(engine, dir, workload),
        (Kind::Latency, Access::Grpc) => grpc::latency(engine, dir, workload),
        (Kind::Tags, Access::Grpc) => grpc::tags(engine, dir, workload),
        (Kind::Recovery, Access::Inproc) => recovery::recovery(engine, dir, workload),
        (Kind::Rebalance, Access::Grpc) => rebalance::rebalance(engine, dir, workload, round),
        (Kind::Timers, Access::Grpc) => timers::timers(engine, dir, workload),
        (Kind::Receive, Access::Grpc) => receive::receive(engine, dir, workload),
        (kind, access) => bail!("{kind:?} is not measured over {access:?}"),
    }
}

/// Which baseline a kind's `wire_mb_per_s` (or `mb_per_s`) is compared with, if any.
pub fn baseline_key(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Produce | Kind::Latency => Some("append_mb_per_s"),
        Kind::Consume | Kind::Fanout | Kind::Tags => Some("sendfile_mb_per_s"),
        Kind::Recovery | Kind::Rebalance | Kind::Timers | Kind::Receive => None,
    }
}
