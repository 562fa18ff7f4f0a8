//! A group member's shared state and its background heartbeat task.
//!
//! The task heartbeats at the interval the broker returns (at once when the consumer pokes it after giving
//! partitions up), reporting the partitions the consumer owns, and records the answer; it never touches a
//! reader. The consumer applies what changed inside `poll` on the application's task (see the consumer's
//! module docs), so callbacks and commits run there.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::assignment::{owned_report, partitions_of};
use crate::client::Client;
use crate::error::{ClientError, Code};
use crate::types::{GroupAssignment, GroupHeartbeat, MemberIdentity};

/// The shortest pause between heartbeats, whatever the broker says.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest pause before retrying a heartbeat that failed on the way (the broker restarting, say).
const MAX_RETRY: Duration = Duration::from_secs(1);
/// The broker's default session timeout, for a member that asks for none.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// What a member is, as the broker last answered and as the consumer last reported.
#[derive(Debug, Default)]
pub(crate) struct MemberState {
    /// The member id; empty while (re)joining.
    pub member_id: String,
    /// The generation of the last answer.
    pub generation: i32,
    /// The partitions the consumer owns now (reported in every heartbeat).
    pub owned: BTreeSet<u32>,
    /// The partitions the broker's last answer lets the member read.
    pub target: BTreeSet<u32>,
    /// The group's state in the last answer.
    pub group_state: String,
    /// The broker no longer counts this member: the consumer must drop its partitions without committing;
    /// the task then rejoins with an empty member id.
    pub lost: bool,
    /// Why the member cannot go on (fenced, or refused for good): `poll` returns it.
    pub failed: Option<ClientError>,
    /// When the broker last answered a heartbeat of this member.
    pub last_answer: Option<Instant>,
}

/// The settings every heartbeat repeats.
#[derive(Debug, Clone)]
pub(crate) struct MemberSettings {
    /// The group.
    pub group: String,
    /// The one topic the consumer reads.
    pub topic: String,
    /// The heartbeat without its member-specific fields (id, generation, owned).
    pub template: GroupHeartbeat,
}

/// The state shared by the consumer and its heartbeat task.
#[derive(Debug)]
pub(crate) struct Membership {
    settings: MemberSettings,
    state: Mutex<MemberState>,
    /// Consumer -> task: heartbeat now (it gave partitions up, or needs to rejoin).
    poke: Notify,
    /// Task -> consumer: the state changed; bumped on every answer or failure.
    changed: watch::Sender<u64>,
}

/// How a failed heartbeat affects the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The partitions are lost; rejoin.
    Rejoin,
    /// The broker or the network hiccupped: try again soon.
    Retry,
    /// Stop: fenced, or a request the broker will never accept.
    Fatal,
}

/// Classifies a heartbeat failure.
pub(crate) fn classify(e: &ClientError) -> Failure {
    if e.must_rejoin() {
        return Failure::Rejoin;
    }
    if e.is_fenced() {
        return Failure::Fatal;
    }
    if e.broker_code() == Some(crate::error::codes::REBALANCE_IN_PROGRESS) {
        return Failure::Retry;
    }
    match e.code() {
        Some(
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Internal,
        ) => Failure::Retry,
        _ if matches!(e, ClientError::Timeout(_) | ClientError::Protocol(_)) => Failure::Retry,
        _ => Failure::Fatal,
    }
}

impl Membership {
    /// A member that is not yet in the group.
    pub fn new(settings: MemberSettings) -> Arc<Membership> {
        let (changed, _) = watch::channel(0);
        Arc::new(Membership { settings, state: Mutex::new(MemberState::default()), poke: Notify::new(), changed })
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.settings.group
    }

    /// The member's static instance id.
    pub fn instance_id(&self) -> Option<&str> {
        self.settings.template.instance_id.as_deref()
    }

    /// The state, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, MemberState> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that sees every change the task records.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Asks the task for a heartbeat now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Who commits: the current member id and generation (empty id while rejoining).
    pub fn identity(&self) -> MemberIdentity {
        let state = self.lock();
        MemberIdentity {
            member_id: state.member_id.clone(),
            generation: state.generation,
            instance_id: self.settings.template.instance_id.clone(),
        }
    }

    /// Marks the partitions lost when the broker refused `member_id` (unless the member has moved on).
    pub fn mark_lost(&self, member_id: &str) {
        let mut state = self.lock();
        if state.member_id == member_id && !state.member_id.is_empty() {
            state.lost = true;
        }
        drop(state);
        self.changed.send_modify(|v| *v += 1);
    }

    /// The next heartbeat: the template with the member's id, generation and owned partitions; `None` while
    /// the consumer has not yet dropped partitions it lost.
    fn next_heartbeat(&self) -> Option<GroupHeartbeat> {
        let state = self.lock();
        if state.lost || state.failed.is_some() {
            return None;
        }
        // What the last answer granted counts as held until the consumer has applied that answer: were it
        // left out, the broker would take it as given up and could grant it to another member while this
        // consumer, applying the older answer, starts reading it.
        let held: BTreeSet<u32> = state.owned.union(&state.target).copied().collect();
        Some(GroupHeartbeat {
            member_id: state.member_id.clone(),
            generation: state.generation,
            owned: owned_report(&self.settings.topic, &held),
            ..self.settings.template.clone()
        })
    }

    /// Records the answer to `sent`; returns when to heartbeat next. An answer to a heartbeat sent under
    /// another member id (the member was lost and rejoined meanwhile) is ignored.
    fn record(&self, sent: &GroupHeartbeat, answer: GroupAssignment) -> Duration {
        let mut state = self.lock();
        if state.member_id == sent.member_id && !state.lost {
            state.last_answer = Some(Instant::now());
            state.member_id = answer.member_id;
            state.generation = answer.generation;
            state.target = partitions_of(&answer.assignment, &self.settings.topic);
            state.group_state = answer.state;
        }
        drop(state);
        self.changed.send_modify(|v| *v += 1);
        answer.heartbeat_interval.max(MIN_INTERVAL)
    }

    /// Records a failed heartbeat sent as `sent`; returns false when the task must stop.
    fn record_failure(&self, sent: &GroupHeartbeat, e: ClientError) -> bool {
        match classify(&e) {
            Failure::Retry => {
                // Unanswered for a whole session: the broker has expelled this member by now and may have
                // given its partitions to others, so stop reading them (as Kafka's clients do) and rejoin.
                let session = self.settings.template.session_timeout.unwrap_or(DEFAULT_SESSION_TIMEOUT);
                let silent = self.lock().last_answer.is_some_and(|at| at.elapsed() >= session);
                if silent {
                    self.mark_lost(&sent.member_id);
                }
                true
            }
            Failure::Rejoin => {
                self.mark_lost(&sent.member_id);
                true
            }
            Failure::Fatal => {
                self.lock().failed = Some(e);
                self.changed.send_modify(|v| *v += 1);
                false
            }
        }
    }

    /// Joins: the first heartbeat, sent before the task starts so a refusal (bad group name, unknown topic,
    /// session timeout out of range) is the consumer's construction error.
    pub async fn join(&self, client: &Client) -> Result<Duration, ClientError> {
        let sent = self.next_heartbeat().unwrap_or_else(|| self.settings.template.clone());
        let answer = client.group_heartbeat(&sent).await?;
        Ok(self.record(&sent, answer))
    }
}

/// The heartbeat task: runs until aborted, or until the member fails for good.
pub(crate) async fn heartbeat_loop(client: Client, membership: Arc<Membership>, mut interval: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = membership.poke.notified() => {}
        }
        // While the consumer has not dropped lost partitions, wait for its poke.
        let Some(sent) = membership.next_heartbeat() else { continue };
        match client.group_heartbeat(&sent).await {
            Ok(answer) => interval = membership.record(&sent, answer),
            Err(e) => {
                if !membership.record_failure(&sent, e) {
                    return;
                }
                interval = interval.min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, broker: Option<u16>) -> ClientError {
        ClientError::Status { code, message: "x".into(), broker_code: broker }
    }

    #[test]
    fn failures_are_classified() {
        use crate::error::codes;
        assert_eq!(classify(&status(Code::Aborted, Some(codes::UNKNOWN_MEMBER_ID))), Failure::Rejoin);
        assert_eq!(classify(&status(Code::Aborted, Some(codes::ILLEGAL_GENERATION))), Failure::Rejoin);
        assert_eq!(classify(&status(Code::Aborted, Some(codes::REBALANCE_IN_PROGRESS))), Failure::Retry);
        assert_eq!(classify(&status(Code::FailedPrecondition, Some(codes::FENCED_INSTANCE_ID))), Failure::Fatal);
        assert_eq!(classify(&status(Code::Unavailable, None)), Failure::Retry);
        assert_eq!(classify(&status(Code::InvalidArgument, Some(codes::INVALID_SESSION_TIMEOUT))), Failure::Fatal);
        assert_eq!(classify(&status(Code::NotFound, Some(2))), Failure::Fatal);
        assert_eq!(classify(&ClientError::Timeout("hb".into())), Failure::Retry);
    }

    fn membership() -> Arc<Membership> {
        let template = GroupHeartbeat { group: "g".into(), topics: vec!["t".into()], ..Default::default() };
        Membership::new(MemberSettings { group: "g".into(), topic: "t".into(), template })
    }

    fn answer(member: &str, generation: i32, partitions: &[u32]) -> GroupAssignment {
        GroupAssignment {
            member_id: member.into(),
            generation,
            assignment: [("t".to_string(), partitions.to_vec())].into(),
            heartbeat_interval: Duration::ZERO,
            state: "Stable".into(),
        }
    }

    #[test]
    fn answers_update_the_member_and_stale_ones_are_ignored() {
        let m = membership();
        let join = m.next_heartbeat().unwrap();
        assert_eq!(join.member_id, "");
        assert_eq!(m.record(&join, answer("m1", 1, &[0, 1])), MIN_INTERVAL);
        assert_eq!(m.identity(), MemberIdentity { member_id: "m1".into(), generation: 1, instance_id: None });
        assert_eq!(m.lock().target, BTreeSet::from([0, 1]));
        m.lock().owned = BTreeSet::from([0, 1]);
        let hb = m.next_heartbeat().unwrap();
        assert_eq!(hb.owned.get("t"), Some(&vec![0, 1]));

        // Refused as an unknown member: lost, and no heartbeat until the consumer dropped its partitions.
        assert!(m.record_failure(&hb, status(Code::Aborted, Some(crate::error::codes::UNKNOWN_MEMBER_ID))));
        assert!(m.lock().lost);
        assert!(m.next_heartbeat().is_none());
        // An answer to the old member's heartbeat that arrives now changes nothing.
        m.record(&hb, answer("m1", 2, &[0]));
        assert_eq!(m.lock().generation, 1);

        let fenced = status(Code::FailedPrecondition, Some(crate::error::codes::FENCED_INSTANCE_ID));
        assert!(!m.record_failure(&hb, fenced.clone()));
        assert_eq!(m.lock().failed, Some(fenced));
    }

    #[test]
    fn granted_partitions_count_as_held_until_the_consumer_applied_the_answer() {
        let m = membership();
        let join = m.next_heartbeat().unwrap();
        m.record(&join, answer("m1", 1, &[0, 1]));
        // The consumer has not polled yet: the grant is still reported, so the broker keeps it for us.
        assert_eq!(m.next_heartbeat().unwrap().owned.get("t"), Some(&vec![0, 1]));
        // The consumer applied it; the next answer moves 1 away: 1 stays reported until it is given up.
        m.lock().owned = BTreeSet::from([0, 1]);
        let hb = m.next_heartbeat().unwrap();
        m.record(&hb, answer("m1", 2, &[0]));
        assert_eq!(m.next_heartbeat().unwrap().owned.get("t"), Some(&vec![0, 1]));
        m.lock().owned = BTreeSet::from([0]);
        assert_eq!(m.next_heartbeat().unwrap().owned.get("t"), Some(&vec![0]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_unanswered_for_its_session_timeout_counts_its_partitions_lost() {
        let template = GroupHeartbeat {
            group: "g".into(),
            topics: vec!["t".into()],
            session_timeout: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let m = Membership::new(MemberSettings { group: "g".into(), topic: "t".into(), template });
        let join = m.next_heartbeat().unwrap();
        m.record(&join, answer("m1", 1, &[0]));
        let hb = m.next_heartbeat().unwrap();
        let down = status(Code::Unavailable, None);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(m.record_failure(&hb, down.clone()));
        assert!(!m.lock().lost, "9 s without an answer: still a member");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(m.record_failure(&hb, down));
        assert!(m.lock().lost, "11 s: the broker has expelled it; its partitions are dropped");
    }
}
