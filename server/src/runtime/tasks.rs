//! The registry of background tasks: each runs until the broker's shutdown signal, and shutdown waits for
//! every one of them (at most a timeout each), then aborts what is left.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The broker's background tasks.
#[derive(Debug, Default)]
pub struct Tasks {
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    /// Starts `task` under `name` (for logs).
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.running.push((name, tokio::spawn(task)));
    }

    /// Waits for every task to end (the shutdown signal has been sent), at most `timeout` for each.
    pub async fn join(&mut self, timeout: Duration) {
        for (name, task) in std::mem::take(&mut self.running) {
            let abort = task.abort_handle();
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!(task = name, "a background task did not stop in time");
                abort.abort();
            }
        }
    }

    /// Aborts every task at once (a broker dropped without a shutdown).
    pub fn abort_all(&self) {
        for (_, task) in &self.running {
            task.abort();
        }
    }
}

/// Waits `interval` or until shutdown; returns whether the broker is shutting down.
pub async fn tick(shutdown: &mut watch::Receiver<bool>, interval: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(interval) => false,
        _ = shutdown.wait_for(|s| *s) => true,
    };
    stopped || *shutdown.borrow()
}
