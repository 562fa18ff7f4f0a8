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

use crate::engine::Inner;

/// The longest the flusher sleeps without looking at the settings again.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Starts the flusher thread for `inner`; it stops when `inner.stopping` is set and it is woken.
pub(crate) fn start(inner: &Arc<Inner>) -> std::io::Result<JoinHandle<()>> {
    let inner = Arc::clone(inner);
    std::thread::Builder::new().name("janus-cl-flush".into()).spawn(move || run(&inner))
}

fn run(inner: &Inner) {
    let checkpoint_every = Duration::from_millis(inner.options.checkpoint_interval_ms);
    let mut last_flush = Instant::now();
    let mut last_checkpoint = Instant::now();
    loop {
        if inner.stopping.load(Ordering::Acquire) || inner.tracker.has_failed() {
            return;
        }
        let interval = inner.min_interval_ms.load(Ordering::Acquire);
        let now = Instant::now();
        let until_checkpoint = checkpoint_every.saturating_sub(now - last_checkpoint);
        let until_flush = Duration::from_millis(interval).saturating_sub(now - last_flush);
        // Capped so that a topic switched to `interval` (or a shorter interval) is noticed soon.
        let requested = inner.tracker.wait_for_request(until_checkpoint.min(until_flush).min(MAX_SLEEP));
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let result = if now - last_checkpoint >= checkpoint_every {
            last_checkpoint = now;
            last_flush = now;
            inner.checkpoint().map(|_| ())
        } else if requested > inner.tracker.durable()
            || (interval != u64::MAX && now - last_flush >= Duration::from_millis(interval))
        {
            last_flush = now;
            inner.flush_commitlog().map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            let reason = format!("flushing the CommitLog failed: {e}");
            tracing::error!(%reason);
            inner.close(&reason);
            inner.tracker.fail(reason);
            return;
        }
    }
}
