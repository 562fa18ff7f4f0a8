//! RocketMQ 5's delivery model over the engine trait and RocksDB, for topics of either engine.
//!
//! | module | holds |
//! |---|---|
//! | [`schedule`] | delay levels, delays and delivery times; the retry back-off |
//! | [`timers`] | scheduling into the RocksDB timer store, the delivery task, cancelling by id |
//! | [`leases`] | the lease table of receive/ack: cursors, leased offsets, deadlines, nonces |
//! | [`handle`] | receipt handles |
//! | [`receive`] | receive, ack, change invisible duration, nack; retry and dead-letter topics |
//! | [`lookup`] | finding a message by id or key |
//! | [`transactions`] | half messages: prepare, commit, roll back, and finishing a commit after a crash |
//! | [`txn_checks`] | asking producers about undecided transactions; the max-check topic |
//! | [`config`] | the `[messaging]` settings |
//! | [`metrics`] | what it records |

pub mod config;
pub mod handle;
pub mod leases;
pub mod lookup;
pub mod metrics;
pub mod receive;
pub mod schedule;
pub mod timers;
pub mod transactions;
pub mod txn_checks;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use config::MessagingConfig;
use janus_api::Header;
pub use lookup::{FoundMessage, Lookup, MessageQuery};
pub use receive::{ReceiveRequest, ReceivedMessage, dlq_topic_name, retry_topic_name};
pub use schedule::Schedule;
pub use timers::{PendingTimer, ScheduledMessage};
pub use transactions::{
    Decided, Decision, PendingTransaction, PrepareRequest, Prepared, TRANS_CHECK_MAX_TIME_TOPIC, Transactions,
};
pub use txn_checks::{CheckerRegistration, TxnCheck};

use crate::messaging::leases::LeaseTable;
use crate::messaging::timers::Timers;

/// The messaging layer's state, held by the [`crate::Core`].
#[derive(Debug)]
pub struct Messaging {
    pub(crate) config: MessagingConfig,
    pub(crate) timers: Timers,
    pub(crate) leases: Mutex<LeaseTable>,
    /// Per group: its own `max.reconsume.times` (`None`: it set none), as read from the store.
    pub(crate) group_max_reconsume: Mutex<HashMap<String, Option<u32>>>,
    /// Pending transactions and the producers that are asked about them.
    pub(crate) transactions: std::sync::Arc<Transactions>,
    rotation: AtomicUsize,
}

impl Messaging {
    /// The layer over a timer store holding `pending_timers` messages.
    pub fn new(config: MessagingConfig, pending_timers: u64) -> Self {
        Messaging {
            config,
            timers: Timers::new(pending_timers),
            leases: Mutex::new(LeaseTable::default()),
            group_max_reconsume: Mutex::new(HashMap::new()),
            transactions: std::sync::Arc::default(),
            rotation: AtomicUsize::new(0),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MessagingConfig {
        &self.config
    }

    /// Milliseconds since the Unix epoch by the layer's clock.
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Scheduled messages not yet delivered.
    pub fn pending_timers(&self) -> u64 {
        self.timers.pending()
    }

    /// Received messages not yet acknowledged.
    pub fn inflight_leases(&self) -> usize {
        janus_api::sync::lock(&self.leases).inflight()
    }

    /// Where the next receive starts among `n` queues (rotates, so receivers share partitions fairly).
    fn next_start(&self, n: usize) -> usize {
        if n == 0 { 0 } else { self.rotation.fetch_add(1, Ordering::Relaxed) % n }
    }
}

/// The value of the first header named `name`, as text.
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.key == name).and_then(|h| h.value.as_deref()).and_then(|v| std::str::from_utf8(v).ok())
}
