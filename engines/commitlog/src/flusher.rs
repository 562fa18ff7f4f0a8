//! The flusher thread: group commit for `sync`, periodic flushes for `interval`, periodic checkpoints.
//!
//! The sequence of the [`janus_api::FlushTracker`] is the CommitLog's physical end offset. A `sync` append
//! asks for its end offset and wakes the flusher; one `msync` of everything written by then completes every
//! waiter at or below it (however many appends arrived meanwhile). An `interval` append waits without
//! waking it; the flusher flushes at least every `flush.interval.ms` (the smallest over `interval` topics)
//! while there is unflushed data. Every `checkpoint.interval.ms` it also syncs ConsumeQueues and IndexFiles
//! and writes the checkpoint. `os` appends never wait for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use janus_api::StorageError;
use janus_api::sync::lock;

use crate::checkpoint::Checkpoint;
use crate::state::State;

/// The longest the flusher sleeps without looking at the settings again.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Starts the flusher thread for `state`; it stops when `state.stopping` is set and it is woken.
pub(crate) fn start(state: &Arc<State>) -> std::io::Result<JoinHandle<()>> {
    let state = Arc::clone(state);
    std::thread::Builder::new().name("janus-cl-flush".into()).spawn(move || run(&state))
}

fn run(state: &State) {
    let checkpoint_every = Duration::from_millis(state.options.checkpoint_interval_ms);
    let mut last_flush = Instant::now();
    let mut last_checkpoint = Instant::now();
    loop {
        if state.stopping.load(Ordering::Acquire) || state.tracker.has_failed() {
            return;
        }
        let interval = state.min_interval_ms.load(Ordering::Acquire);
        let now = Instant::now();
        let until_checkpoint = checkpoint_every.saturating_sub(now - last_checkpoint);
        let until_flush = Duration::from_millis(interval).saturating_sub(now - last_flush);
        // Capped so that a topic switched to `interval` (or a shorter interval) is noticed soon.
        let requested = state.tracker.wait_for_request(until_checkpoint.min(until_flush).min(MAX_SLEEP));
        if state.stopping.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let result = if now - last_checkpoint >= checkpoint_every {
            last_checkpoint = now;
            last_flush = now;
            checkpoint(state)
        } else if requested > state.tracker.durable()
            || (interval != u64::MAX && now - last_flush >= Duration::from_millis(interval))
        {
            last_flush = now;
            flush_commitlog(state).map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            let reason = format!("flushing the CommitLog failed: {e}");
            tracing::error!(%reason);
            state.close(&reason);
            state.tracker.fail(reason);
            return;
        }
    }
}

/// Syncs the CommitLog up to what is written, then marks it durable.
pub(crate) fn flush_commitlog(state: &State) -> Result<u64, StorageError> {
    let end = state.log.written();
    let durable = state.tracker.durable();
    if end > durable {
        state.log.flush_range(durable, end)?;
        state.tracker.mark_durable(end);
    }
    Ok(end)
}

/// Flushes everything and writes the checkpoint.
pub(crate) fn checkpoint(state: &State) -> Result<(), StorageError> {
    let _m = lock(&state.maintenance);
    let (end, store_ms) = {
        let w = lock(&state.writer);
        (w.pos(), w.last_store_ms())
    };
    // Queue ends at `end`: every entry dispatched up to now (entries past `end` are harmless: they are
    // rebuilt or validated on recovery anyway).
    let mut queues = lock(&state.known_queues).clone();
    for t in state.open_topics() {
        for q in &t.queues {
            queues.insert((t.name.to_string(), q.id), q.next.load(Ordering::Acquire));
        }
    }
    let flushed = flush_commitlog(state)?.max(end);
    state.cq.sync()?;
    state.index.flush()?;
    let c = Checkpoint { commitlog_flushed: flushed, dispatch_flushed: end, last_store_ms: store_ms, queues };
    c.write(&state.dir)?;
    *lock(&state.known_queues) = c.queues;
    Ok(())
}
