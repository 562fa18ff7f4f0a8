//! Group commit bookkeeping shared by both engines.
//!
//! An engine numbers the appends that need the disk with a rising sequence (a global counter, or a byte
//! position). A [`FlushTracker`] remembers which sequence is durable and which one has been asked for; the
//! engine's flusher waits for requests with [`FlushTracker::wait_for_request`], syncs every file dirtied up
//! to the sequence it saw, and reports it with [`FlushTracker::mark_durable`]. One `fsync` thus completes
//! every [`Durable`] waiting at or below that sequence.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::sync;

#[derive(Default)]
struct State {
    /// Highest sequence known to be on disk.
    durable: u64,
    /// Highest sequence somebody waits for.
    requested: u64,
    /// Set when a flush failed or the engine closed: every waiter fails with this message.
    failed: Option<String>,
    /// Async waiters: the sequence each waits for and its waker.
    wakers: Vec<(u64, Waker)>,
    /// Set by [`FlushTracker::wake_flusher`]; consumed by the next `wait_for_request`.
    wake_pending: bool,
}

/// Tracks durable and requested sequences for one engine (see the module docs).
#[derive(Default)]
pub struct FlushTracker {
    state: Mutex<State>,
    /// Signalled when `durable` advances or the tracker fails.
    durable_changed: Condvar,
    /// Signalled when `requested` advances or the tracker fails.
    requested_changed: Condvar,
}

impl FlushTracker {
    /// A tracker whose sequences up to `durable` are already on disk.
    pub fn new(durable: u64) -> Arc<Self> {
        let tracker = FlushTracker::default();
        tracker.lock().durable = durable;
        tracker.lock().requested = durable;
        Arc::new(tracker)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (every update is one field).
        sync::lock(&self.state)
    }

    /// The highest sequence known to be on disk.
    pub fn durable(&self) -> u64 {
        self.lock().durable
    }

    /// A handle that completes once `seq` is durable; `request` also wakes the flusher at once
    /// (the `sync` policy) instead of leaving it to the next periodic flush (the `interval` policy).
    pub fn waiter(self: &Arc<Self>, seq: u64, request: bool) -> Durable {
        if request {
            let mut state = self.lock();
            if seq > state.requested {
                state.requested = seq;
                self.requested_changed.notify_all();
            }
        }
        Durable { wait: Some((Arc::clone(self), seq)) }
    }

    /// For the flusher: blocks until a sequence above the durable one is requested, `timeout` passes, or
    /// the tracker fails. Returns the requested sequence (which may equal the durable one on timeout).
    pub fn wait_for_request(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.requested <= state.durable && state.failed.is_none() && !state.wake_pending {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = sync::wait_timeout(&self.requested_changed, state, deadline - now);
        }
        state.wake_pending = false;
        state.requested
    }

    /// Makes the flusher's current (or next) `wait_for_request` return at once, e.g. so it sees a stop flag.
    pub fn wake_flusher(&self) {
        self.lock().wake_pending = true;
        self.requested_changed.notify_all();
    }

    /// For the flusher: everything up to `seq` is on disk; completes the waiters at or below it.
    pub fn mark_durable(&self, seq: u64) {
        let mut state = self.lock();
        if seq <= state.durable {
            return;
        }
        state.durable = seq;
        let mut ready = Vec::new();
        state.wakers.retain(|(target, waker)| {
            if *target <= seq {
                ready.push(waker.clone());
                false
            } else {
                true
            }
        });
        drop(state);
        self.durable_changed.notify_all();
        ready.into_iter().for_each(Waker::wake);
    }

    /// A flush failed or the engine closed: every current and future waiter above the durable sequence
    /// fails with `reason`.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut state = self.lock();
        state.failed.get_or_insert_with(|| reason.into());
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        self.durable_changed.notify_all();
        self.requested_changed.notify_all();
        wakers.into_iter().for_each(|(_, waker)| waker.wake());
    }

    /// Whether the tracker has failed (the flusher uses this to stop).
    pub fn has_failed(&self) -> bool {
        self.lock().failed.is_some()
    }

    fn check(&self, seq: u64) -> Option<Result<(), StorageError>> {
        let state = self.lock();
        if state.durable >= seq {
            Some(Ok(()))
        } else {
            state.failed.as_ref().map(|reason| Err(StorageError::Closed(reason.clone())))
        }
    }
}

/// Completes when an append is on disk as its topic's flush policy promises. Wait for it with
/// [`Durable::wait`] on a blocking thread or `.await` it in async code.
#[must_use = "a Durable does nothing unless waited for; drop it explicitly when the ack does not need the disk"]
pub struct Durable {
    wait: Option<(Arc<FlushTracker>, u64)>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.wait {
            None => f.write_str("Durable(ready)"),
            Some((_, seq)) => write!(f, "Durable(seq {seq})"),
        }
    }
}

impl Durable {
    /// A handle that is already complete (the `os` policy: the page-cache write is the acknowledgement).
    pub fn ready() -> Self {
        Durable { wait: None }
    }

    /// Whether the data is already durable (or the wait has already failed).
    pub fn is_done(&self) -> bool {
        self.wait.as_ref().is_none_or(|(tracker, seq)| tracker.check(*seq).is_some())
    }

    /// Blocks until the data is durable. Fails if the flush failed or the engine closed first.
    pub fn wait(self) -> Result<(), StorageError> {
        let Some((tracker, seq)) = self.wait else { return Ok(()) };
        let mut state = tracker.lock();
        loop {
            if state.durable >= seq {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                return Err(StorageError::Closed(reason.clone()));
            }
            state = sync::wait(&tracker.durable_changed, state);
        }
    }
}

impl Future for Durable {
    type Output = Result<(), StorageError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((tracker, seq)) = &self.wait else { return Poll::Ready(Ok(())) };
        let mut state = tracker.lock();
        if state.durable >= *seq {
            return Poll::Ready(Ok(()));
        }
        if let Some(reason) = &state.failed {
            return Poll::Ready(Err(StorageError::Closed(reason.clone())));
        }
        state.wakers.retain(|(_, w)| !w.will_wake(cx.waker()));
        state.wakers.push((*seq, cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn one_flush_completes_every_waiter_below_it() {
        let tracker = FlushTracker::new(0);
        let waiters: Vec<_> = (1..=5).map(|seq| tracker.waiter(seq, true)).collect();
        assert!(waiters.iter().all(|w| !w.is_done()));
        let flusher = {
            let tracker = Arc::clone(&tracker);
            thread::spawn(move || {
                let seq = tracker.wait_for_request(Duration::from_secs(5));
                tracker.mark_durable(seq);
                seq
            })
        };
        for w in waiters {
            w.wait().unwrap();
        }
        assert_eq!(flusher.join().unwrap(), 5);
        assert_eq!(tracker.durable(), 5);
    }

    #[test]
    fn waiters_above_the_flush_keep_waiting_and_fail_on_close() {
        let tracker = FlushTracker::new(0);
        let low = tracker.waiter(3, false);
        let high = tracker.waiter(9, false);
        tracker.mark_durable(3);
        assert!(low.is_done());
        assert!(!high.is_done());
        tracker.fail("engine shut down");
        let err = high.wait().unwrap_err();
        assert!(err.to_string().contains("engine shut down"), "{err}");
        low.wait().unwrap();
    }

    #[test]
    fn wait_for_request_times_out_without_requests() {
        let tracker = FlushTracker::new(7);
        let started = Instant::now();
        assert_eq!(tracker.wait_for_request(Duration::from_millis(20)), 7);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
