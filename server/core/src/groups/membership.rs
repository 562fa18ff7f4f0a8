//! The core's membership calls, for every face: checks of outside input, then one coordinator transition.
//! Broker-assigned members (janus.v1) call [`Core::heartbeat_group`]; Kafka classic members call
//! [`Core::join_group`], [`Core::sync_group`] and [`Core::classic_heartbeat`]; both leave with
//! [`Core::leave_group`].

use std::time::Duration;

use tokio::sync::oneshot;

use super::coordinator::MAX_MEMBER_NAME_LEN;
use super::group::unknown_member;
use super::offsets::validate_group_name;
use super::protocol::{
    JoinGroupRequest, JoinOutcome, MemberAssignment, MemberHeartbeat, SyncGroupRequest, SyncGroupResponse,
};
use crate::Core;
use crate::error::{BrokerError, ErrorCode};

/// The most topics one member may subscribe to.
pub const MAX_SUBSCRIBED_TOPICS: usize = 1000;
/// The most partitions one heartbeat may list as owned.
pub const MAX_OWNED_PARTITIONS: usize = 100_000;
/// The most assignment protocols a classic member may offer.
pub const MAX_PROTOCOLS: usize = 64;
/// The most bytes of protocol names and metadata one classic member may send.
pub const MAX_PROTOCOL_METADATA_BYTES: usize = 1 << 20;

fn check_name(what: &str, value: &str) -> Result<(), BrokerError> {
    if value.len() > MAX_MEMBER_NAME_LEN {
        return Err(BrokerError::invalid(format!("the {what} is longer than {MAX_MEMBER_NAME_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(BrokerError::invalid(format!("the {what} contains control characters")));
    }
    Ok(())
}

fn check_instance(instance_id: Option<&str>) -> Result<(), BrokerError> {
    match instance_id {
        Some("") => Err(BrokerError::invalid("the static instance id is empty: leave it out for a dynamic member")),
        Some(i) => check_name("static instance id", i),
        None => Ok(()),
    }
}

fn interrupted() -> BrokerError {
    BrokerError::new(ErrorCode::ShuttingDown, "the coordinator stopped before the group answered")
}

impl Core {
    /// Checks a session timeout against the broker's allowed range.
    fn session_timeout(&self, asked: Option<Duration>) -> Result<Duration, BrokerError> {
        let config = self.coordinator.config();
        let timeout = asked.unwrap_or(config.default_session_timeout);
        if timeout < config.min_session_timeout || timeout > config.max_session_timeout {
            return Err(BrokerError::new(
                ErrorCode::InvalidSessionTimeout,
                format!(
                    "session timeout {} ms is outside the allowed {}..={} ms (group.min.session.timeout.ms, \
                     group.max.session.timeout.ms)",
                    timeout.as_millis(),
                    config.min_session_timeout.as_millis(),
                    config.max_session_timeout.as_millis()
                ),
            ));
        }
        Ok(timeout)
    }

    /// One heartbeat of the broker-assigned protocol (an empty member id joins); see
    /// [`MemberHeartbeat`] and [`MemberAssignment`].
    pub async fn heartbeat_group(&self, hb: MemberHeartbeat) -> Result<MemberAssignment, BrokerError> {
        validate_group_name(&hb.group)?;
        check_name("member id", &hb.member_id)?;
        check_name("client id", &hb.client_id)?;
        check_instance(hb.instance_id.as_deref())?;
        let session = self.session_timeout(hb.session_timeout)?;
        let rebalance = hb.rebalance_timeout.unwrap_or(self.coordinator.config().default_rebalance_timeout);
        if rebalance < Duration::from_secs(1) || rebalance > self.coordinator.config().max_session_timeout {
            return Err(BrokerError::invalid(format!(
                "rebalance timeout {} ms is outside 1000..={} ms",
                rebalance.as_millis(),
                self.coordinator.config().max_session_timeout.as_millis()
            )));
        }
        if hb.topics.is_empty() {
            return Err(BrokerError::invalid("a member must subscribe to at least one topic"));
        }
        if hb.topics.len() > MAX_SUBSCRIBED_TOPICS {
            return Err(BrokerError::invalid(format!(
                "a member may subscribe to at most {MAX_SUBSCRIBED_TOPICS} topics"
            )));
        }
        // A joining member must name existing topics; a member already in the group keeps heartbeating
        // when one of its topics is deleted (its partitions just leave the assignment).
        if hb.member_id.is_empty() {
            for t in &hb.topics {
                self.topic(t)?;
            }
        } else {
            for t in &hb.topics {
                janus_api::topic::validate_topic_name(t).map_err(|e| BrokerError::invalid(e.to_string()))?;
            }
        }
        let owned: usize = hb.owned.values().map(Vec::len).sum();
        if owned > MAX_OWNED_PARTITIONS {
            return Err(BrokerError::invalid(format!(
                "the heartbeat lists {owned} owned partitions; at most {MAX_OWNED_PARTITIONS} are accepted"
            )));
        }
        let (group, member_id) = (hb.group.clone(), hb.member_id.clone());
        self.coordinator.with_group(
            &group,
            true,
            &hb.client_id,
            || unknown_member(&group, &member_id),
            |g, env| g.assigned_heartbeat(&hb, session, rebalance, env),
        )
    }

    /// Leaves `group`: by member id, or (with an empty member id) by static instance id. The member's
    /// partitions go to the others at once.
    pub async fn leave_group(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        check_name("member id", member_id)?;
        check_instance(instance_id)?;
        if member_id.is_empty() && instance_id.is_none() {
            return Err(BrokerError::invalid("leaving needs a member id or a static instance id"));
        }
        self.coordinator.with_group(
            group,
            false,
            "",
            || unknown_member(group, member_id),
            |g, env| {
                if !member_id.is_empty() && g.pending.remove(member_id).is_some() {
                    // A classic member that got MEMBER_ID_REQUIRED and gave up joining.
                    g.pending_left(env);
                    return Ok(((), true));
                }
                let id = if member_id.is_empty() {
                    let instance = instance_id.unwrap_or_default();
                    g.static_member(instance).map(str::to_string).ok_or_else(|| unknown_member(group, instance))?
                } else {
                    g.member_mut(member_id, instance_id)?;
                    member_id.to_string()
                };
                tracing::info!(group = %group, member = %id, "member left");
                if g.is_classic() {
                    g.classic_remove(&id, env);
                } else {
                    g.assigned_remove(&id, env);
                }
                Ok(((), true))
            },
        )
    }

    /// A Kafka classic JoinGroup: completes when the group's join phase ends (or at once when nothing
    /// changes).
    pub async fn join_group(&self, req: JoinGroupRequest) -> Result<JoinOutcome, BrokerError> {
        validate_group_name(&req.group)?;
        check_name("member id", &req.member_id)?;
        check_name("client id", &req.client_id)?;
        check_instance(req.instance_id.as_deref())?;
        self.session_timeout(Some(req.session_timeout))?;
        if req.rebalance_timeout.is_zero() {
            return Err(BrokerError::invalid("the rebalance timeout is 0: give at least 1 ms"));
        }
        // Kafka does not bound it (it is the consumer's `max.poll.interval.ms`, often an hour or more): the
        // coordinator waits at most the longest session timeout it allows.
        let mut req = req;
        req.rebalance_timeout = req.rebalance_timeout.min(self.coordinator.config().max_session_timeout);
        if req.protocols.len() > MAX_PROTOCOLS {
            return Err(BrokerError::invalid(format!("a member may offer at most {MAX_PROTOCOLS} protocols")));
        }
        let metadata: usize = req.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if metadata > MAX_PROTOCOL_METADATA_BYTES {
            return Err(BrokerError::invalid(format!(
                "the member's protocol metadata is {metadata} bytes; at most {MAX_PROTOCOL_METADATA_BYTES} are accepted"
            )));
        }
        let (tx, rx) = oneshot::channel();
        let (group, member_id) = (req.group.clone(), req.member_id.clone());
        self.coordinator.with_group(
            &group,
            true,
            &req.client_id,
            || unknown_member(&group, &member_id),
            |g, env| g.classic_join(&req, tx, env).map(|dirty| ((), dirty)),
        )?;
        rx.await.map_err(|_| interrupted())?
    }

    /// A Kafka classic SyncGroup: completes when the leader's assignment arrives (at once when stable).
    pub async fn sync_group(&self, req: SyncGroupRequest) -> Result<SyncGroupResponse, BrokerError> {
        validate_group_name(&req.group)?;
        check_name("member id", &req.member_id)?;
        check_instance(req.instance_id.as_deref())?;
        let (tx, rx) = oneshot::channel();
        let (group, member_id) = (req.group.clone(), req.member_id.clone());
        self.coordinator.with_group(
            &group,
            false,
            "",
            || unknown_member(&group, &member_id),
            |g, env| g.classic_sync(&req, tx, env).map(|dirty| ((), dirty)),
        )?;
        rx.await.map_err(|_| interrupted())?
    }

    /// A Kafka classic Heartbeat.
    pub async fn classic_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), BrokerError> {
        validate_group_name(group)?;
        check_name("member id", member_id)?;
        check_instance(instance_id)?;
        self.coordinator.with_group(
            group,
            false,
            "",
            || unknown_member(group, member_id),
            |g, env| g.classic_heartbeat(member_id, instance_id, generation, env).map(|()| ((), false)),
        )
    }
}
