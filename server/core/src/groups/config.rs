//! The coordinator's settings (broker config keys `group.*` and `offsets.retention.ms`).

use std::time::Duration;

/// How the coordinator times members and keeps offsets. Defaults are Kafka's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// How long a group that was empty waits for more members before its first assignment
    /// (`group.initial.rebalance.delay.ms`, 3 s; 0 in tests).
    pub initial_rebalance_delay: Duration,
    /// The shortest session timeout a member may ask for (`group.min.session.timeout.ms`, 6 s).
    pub min_session_timeout: Duration,
    /// The longest (`group.max.session.timeout.ms`, 30 min).
    pub max_session_timeout: Duration,
    /// The session timeout of a broker-assigned member that asks for none (45 s).
    pub default_session_timeout: Duration,
    /// The rebalance timeout of a broker-assigned member that asks for none (60 s): how long it may take
    /// to give up partitions that move.
    pub default_rebalance_timeout: Duration,
    /// The heartbeat interval told to broker-assigned members (`group.heartbeat.interval.ms`, 3 s), at
    /// most a third of the member's session timeout.
    pub heartbeat_interval: Duration,
    /// How long the offsets of a group that has no members are kept (`offsets.retention.ms`, 7 days).
    pub offsets_retention: Duration,
    /// The most members one group may have (`group.max.size`); a join beyond it is refused.
    pub max_members: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(30 * 60),
            default_session_timeout: Duration::from_secs(45),
            default_rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            max_members: 1000,
        }
    }
}
