//! Bounded memory: budgets of in-flight bytes, broker-wide and per client connection, and a bounded pool
//! for the engines' blocking calls.
//!
//! A request acquires the memory it will hold once decoded (faces measure it before decoding: a request
//! of many tiny messages grows many times over as objects) from its connection's budget, then from the
//! broker's, and gives it back when it has been answered; a fetch does the same for the bytes it may
//! return, and a subscription for the responses it buffers ahead of its reader. A producer that outruns the disk therefore waits for permits instead of piling
//! up requests in memory; with `concurrency_per_connection` requests of a connection in progress, tonic
//! takes no more from it and HTTP/2 flow control pushes back to the client. A single request larger than a
//! budget takes the whole budget.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use janus_api::sync;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics as m;

/// A snapshot of the in-flight byte accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InflightStats {
    /// Bytes held by requests now.
    pub current: u64,
    /// The most bytes ever held at once.
    pub peak: u64,
    /// The broker-wide budget.
    pub limit: u64,
    /// How many acquisitions had to wait for permits.
    pub waits: u64,
}

/// The broker-wide and per-connection byte budgets.
#[derive(Debug)]
pub struct InflightLimiter {
    global: Arc<Semaphore>,
    global_limit: u32,
    /// The share of the broker's budget data read ahead for subscriptions may take: a subscriber that
    /// stops reading keeps what it buffered, so without a share stuck subscribers could hold the whole
    /// budget and starve every request.
    read_ahead: Arc<Semaphore>,
    read_ahead_limit: u32,
    connection_limit: u32,
    connections: Mutex<HashMap<SocketAddr, Weak<Semaphore>>>,
    current: AtomicU64,
    peak: AtomicU64,
    waits: AtomicU64,
}

/// Bytes held by one request; released when dropped.
#[derive(Debug)]
pub struct InflightPermit {
    _connection: Option<OwnedSemaphorePermit>,
    _read_ahead: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
    bytes: u64,
    limiter: Arc<InflightLimiter>,
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        let now = self.limiter.current.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        m::set_inflight_bytes(now);
    }
}

impl InflightLimiter {
    /// Budgets of `global` bytes for the broker and `per_connection` bytes for each connection (both are
    /// clamped to `u32::MAX`); subscriptions' read-ahead may take half of `global`.
    pub fn new(global: u64, per_connection: u64) -> Arc<Self> {
        let global_limit = global.clamp(1, u32::MAX as u64) as u32;
        let read_ahead_limit = (global_limit / 2).max(1);
        m::set_inflight_limit(global_limit as u64);
        Arc::new(InflightLimiter {
            global: Arc::new(Semaphore::new(global_limit as usize)),
            global_limit,
            read_ahead: Arc::new(Semaphore::new(read_ahead_limit as usize)),
            read_ahead_limit,
            connection_limit: per_connection.clamp(1, u32::MAX as u64) as u32,
            connections: Mutex::new(HashMap::new()),
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        })
    }

    fn connection_semaphore(&self, addr: SocketAddr) -> Arc<Semaphore> {
        let mut map = sync::lock(&self.connections);
        if let Some(s) = map.get(&addr).and_then(Weak::upgrade) {
            return s;
        }
        if map.len() >= 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let s = Arc::new(Semaphore::new(self.connection_limit as usize));
        map.insert(addr, Arc::downgrade(&s));
        s
    }

    async fn take(&self, semaphore: Arc<Semaphore>, n: u32) -> Result<OwnedSemaphorePermit, LimiterClosed> {
        if let Ok(p) = Arc::clone(&semaphore).try_acquire_many_owned(n) {
            return Ok(p);
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        m::inflight_wait();
        semaphore.acquire_many_owned(n).await.map_err(|_| LimiterClosed)
    }

    /// Waits until `bytes` fit in the connection's budget (when `connection` is known) and in the broker's.
    pub async fn acquire(
        self: &Arc<Self>,
        connection: Option<SocketAddr>,
        bytes: usize,
    ) -> Result<InflightPermit, LimiterClosed> {
        let bytes = bytes.max(1) as u64;
        let conn = match connection {
            Some(addr) => {
                let n = bytes.min(self.connection_limit as u64) as u32;
                Some(self.take(self.connection_semaphore(addr), n).await?)
            }
            None => None,
        };
        self.take_global(conn, None, bytes).await
    }

    /// Like [`InflightLimiter::acquire`], but refuses `bytes` larger than the connection's budget (when
    /// `connection` is known) or the broker's on its own, instead of letting them take the whole budget.
    pub async fn admit(
        self: &Arc<Self>,
        connection: Option<SocketAddr>,
        bytes: usize,
    ) -> Result<InflightPermit, AdmitError> {
        let oversized = |key, limit: u32| AdmitError::TooLarge { bytes, key, limit: u64::from(limit) };
        if bytes as u64 > u64::from(self.global_limit) {
            return Err(oversized("limits.inflight_bytes", self.global_limit));
        }
        if connection.is_some() && bytes as u64 > u64::from(self.connection_limit) {
            return Err(oversized("limits.connection_inflight_bytes", self.connection_limit));
        }
        Ok(self.acquire(connection, bytes).await?)
    }

    /// Waits until `bytes` read ahead for a subscription fit in the read-ahead share (half the broker's
    /// budget), then in the broker's budget.
    pub async fn acquire_read_ahead(self: &Arc<Self>, bytes: usize) -> Result<InflightPermit, LimiterClosed> {
        let bytes = bytes.max(1) as u64;
        let n = bytes.min(self.read_ahead_limit as u64) as u32;
        let share = self.take(Arc::clone(&self.read_ahead), n).await?;
        self.take_global(None, Some(share), bytes).await
    }

    async fn take_global(
        self: &Arc<Self>,
        connection: Option<OwnedSemaphorePermit>,
        read_ahead: Option<OwnedSemaphorePermit>,
        bytes: u64,
    ) -> Result<InflightPermit, LimiterClosed> {
        let n = bytes.min(self.global_limit as u64) as u32;
        let global = self.take(Arc::clone(&self.global), n).await?;
        let held = n as u64;
        let now = self.current.fetch_add(held, Ordering::AcqRel) + held;
        self.peak.fetch_max(now, Ordering::AcqRel);
        m::set_inflight_bytes(now);
        Ok(InflightPermit {
            _connection: connection,
            _read_ahead: read_ahead,
            _global: global,
            bytes: held,
            limiter: Arc::clone(self),
        })
    }

    /// The current accounting.
    pub fn stats(&self) -> InflightStats {
        InflightStats {
            current: self.current.load(Ordering::Acquire),
            peak: self.peak.load(Ordering::Acquire),
            limit: self.global_limit as u64,
            waits: self.waits.load(Ordering::Relaxed),
        }
    }
}

/// Why [`InflightLimiter::admit`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The request alone needs more than a budget.
    #[error(
        "the request needs about {bytes} bytes of broker memory once decoded, more than the memory budget {key} = \
         {limit}; send fewer messages per request"
    )]
    TooLarge {
        /// What the request needs.
        bytes: usize,
        /// The config key of the budget it exceeds.
        key: &'static str,
        /// That budget.
        limit: u64,
    },
    /// The broker is shutting down.
    #[error(transparent)]
    Closed(#[from] LimiterClosed),
}

/// The budgets were closed (never happens while the broker runs).
#[derive(Debug, thiserror::Error)]
#[error("the broker is shutting down")]
pub struct LimiterClosed;

/// A bounded pool for the engines' synchronous calls: at most `threads` run at once on tokio's blocking
/// threads, so a burst of requests cannot grow the blocking pool without limit.
#[derive(Debug, Clone)]
pub struct BlockingPool {
    permits: Arc<Semaphore>,
}

/// A blocking task panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("blocking task failed: {0}")]
pub struct BlockingError(pub String);

impl BlockingPool {
    /// A pool running at most `threads` calls at once.
    pub fn new(threads: usize) -> Self {
        BlockingPool { permits: Arc::new(Semaphore::new(threads.max(1))) }
    }

    /// Runs `f` on a blocking thread once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|e| BlockingError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| BlockingError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_never_exceed_the_budget_and_waiters_finish() {
        let limiter = InflightLimiter::new(1000, 600);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let limiter = Arc::clone(&limiter);
            tasks.push(tokio::spawn(async move {
                let conn = if i % 2 == 0 { Some(addr) } else { None };
                let _p = limiter.acquire(conn, 300).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let s = limiter.stats();
        assert_eq!(s.current, 0);
        assert!(s.peak <= 1000, "{s:?}");
        assert!(s.peak >= 300);
        assert!(s.waits > 0, "{s:?}");
    }

    #[tokio::test]
    async fn read_ahead_takes_at_most_half_the_budget_and_requests_still_get_the_rest() {
        let limiter = InflightLimiter::new(1000, 1000);
        let held = limiter.acquire_read_ahead(400).await.unwrap();
        // The share is spent: more read-ahead waits, while a request still gets the other half at once.
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), limiter.acquire_read_ahead(200)).await;
        assert!(more.is_err(), "read-ahead beyond half the budget must wait");
        let request = tokio::time::timeout(std::time::Duration::from_millis(50), limiter.acquire(None, 500)).await;
        assert!(request.is_ok(), "requests keep the half of the budget read-ahead cannot take");
        drop(held);
        limiter.acquire_read_ahead(200).await.unwrap();
    }

    #[tokio::test]
    async fn an_oversized_request_takes_the_whole_budget() {
        let limiter = InflightLimiter::new(1024, 1024);
        let p = limiter.acquire(None, 1 << 20).await.unwrap();
        assert_eq!(limiter.stats().current, 1024);
        drop(p);
        assert_eq!(limiter.stats().current, 0);
    }

    #[tokio::test]
    async fn the_pool_bounds_concurrent_calls() {
        let pool = BlockingPool::new(2);
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pool, running, most) = (pool.clone(), Arc::clone(&running), Arc::clone(&most));
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
    }
}
