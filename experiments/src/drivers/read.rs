//! In-process reads through the `Engine` trait, shipped to a loopback socket the way the broker ships them:
//! segment file ranges with `sendfile(2)`, commitlog regions with `writev(2)` from the mapping.
//!
//! Every consumer thread of every group reads its share of the partitions from the log start to the log end
//! and sends each slice to its own loopback connection, whose other end a thread drains; a group is done
//! when its bytes have all arrived.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use janus_api::{Engine, TopicPartition};
use janus_bench_support::LoopbackDrain;
use janus_transfer::send_slice;

use crate::measure::{Phase, Took};

/// What a read phase moved.
#[derive(Debug)]
pub struct ReadOut {
    /// Messages read, over every group.
    pub messages: u64,
    /// Bytes shipped to sockets (batches or CommitLog records), over every group.
    pub wire_bytes: u64,
    /// Time and CPU taken.
    pub took: Took,
}

/// `groups` groups of `consumers` threads each read every partition in `targets` to its end.
pub fn read_all(
    engine: &Arc<dyn Engine>,
    targets: &[TopicPartition],
    groups: usize,
    consumers: usize,
    read_bytes: usize,
) -> Result<ReadOut> {
    let targets = Arc::new(targets.to_vec());
    // Connections are made before timing starts.
    let mut drains = Vec::with_capacity(groups * consumers);
    for _ in 0..groups * consumers {
        drains.push(LoopbackDrain::new().context("loopback connection for a consumer")?);
    }
    let phase = Phase::start();
    let threads: Vec<_> = drains
        .into_iter()
        .enumerate()
        .map(|(i, drain)| {
            let (engine, targets) = (Arc::clone(engine), Arc::clone(&targets));
            let consumer = i % consumers;
            std::thread::Builder::new().name(format!("consumer-{i}")).spawn(move || {
                let mine: Vec<&TopicPartition> =
                    targets.iter().enumerate().filter(|(j, _)| j % consumers == consumer).map(|(_, tp)| tp).collect();
                consume(&*engine, &mine, read_bytes, &drain)
            })
        })
        .collect::<std::io::Result<_>>()
        .context("starting consumer threads")?;
    let (mut messages, mut wire_bytes) = (0, 0);
    for thread in threads {
        let (m, w) = thread.join().map_err(|_| anyhow!("a consumer thread panicked"))??;
        messages += m;
        wire_bytes += w;
    }
    Ok(ReadOut { messages, wire_bytes, took: phase.stop() })
}

/// Reads `partitions` to their ends, shipping every slice to `drain`; returns messages and bytes shipped.
fn consume(
    engine: &dyn Engine,
    partitions: &[&TopicPartition],
    read_bytes: usize,
    drain: &LoopbackDrain,
) -> Result<(u64, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().context("consumer runtime")?;
    let std_socket = drain.clone_sender().context("cloning the sending socket")?;
    std_socket.set_nonblocking(true)?;
    let (mut messages, mut shipped) = (0u64, 0u64);
    runtime.block_on(async {
        let socket = tokio::net::TcpStream::from_std(std_socket)?;
        for tp in partitions {
            let offsets = engine.offsets(tp)?;
            let mut offset = offsets.log_start;
            while offset < offsets.log_end {
                let slice = engine.read(tp, offset, read_bytes).with_context(|| format!("reading {tp}"))?;
                if slice.next_offset() <= offset {
                    bail!("a read of {tp} at {offset} made no progress");
                }
                shipped += send_slice(&socket, &slice).await.with_context(|| format!("shipping {tp}"))?;
                messages += (slice.next_offset().min(offsets.log_end) - offset) as u64;
                offset = slice.next_offset();
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    drain.wait_received(shipped, Duration::from_secs(300)).context("waiting for the bytes to arrive")?;
    Ok((messages, shipped))
}
