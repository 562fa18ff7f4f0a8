//! The consumer: reads the partitions of one topic, tracks positions, commits them for a group.
//!
//! Each partition has a reader task (a Subscribe stream, or long-poll Fetch calls) that feeds one
//! bounded queue; `poll` / `poll_batch` take from it in arrival order (per-partition order is kept).
//! A partition's *position* is the next offset the application has not yet been handed; `commit`
//! stores the positions as the group's offsets, so a restarted consumer neither re-reads nor skips.
//!
//! # Group members
//!
//! With a group and no explicit partitions ([`ConsumerConfig::is_group_member`]) the consumer joins the
//! group when it is created and the broker assigns its partitions. A background task heartbeats at the
//! interval the broker returns, reporting the partitions the consumer owns. Assignment changes are applied
//! inside [`Consumer::poll`], [`Consumer::poll_batch`] and [`Consumer::close`], on the application's task:
//!
//! - a **revoked** partition: its reader stops, records of it already buffered are dropped (every reader
//!   stamps its events with an epoch, and events of a stopped reader are discarded), its position is
//!   committed as the member (member id and generation), the on-revoke callback runs, and the partition is
//!   given up at once with an immediate heartbeat, so its new owner can start;
//! - an **assigned** partition: its committed offset is fetched (partitions without one start at
//!   [`ConsumerConfig::start`]), a reader starts, and the on-assign callback runs.
//!
//! When the broker no longer counts the consumer as a member (its session timed out, its generation is
//! stale), its partitions are **lost**: readers stop, the on-revoke callback runs without a commit (the
//! partitions may already be someone else's), and the consumer rejoins with a new member id. Records it
//! handed out since its last commit will be read again by the partitions' new owners (at least once). A
//! consumer fenced by another with the same static instance id gets the error from `poll`.
//!
//! Callbacks are set with [`Consumer::on_assign`] and [`Consumer::on_revoke`]; since changes are applied
//! only in `poll`, `poll_batch` and `close`, callbacks set right after [`Client::consumer`] see every
//! change, the first assignment included. Dropping a member without `close` neither commits nor leaves:
//! the broker expels it after its session timeout, as it would a crashed process.

mod assignment;
mod config;
mod fetcher;
mod membership;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{ConsumerConfig, DEFAULT_CLIENT_ID, FetchMode, ReadFormat};

use assignment::{diff, moved};
use fetcher::{Event, ReadSpec};
use membership::{MemberSettings, Membership, heartbeat_loop};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;
use crate::types::{GroupHeartbeat, GroupMode, MemberIdentity, Position};

/// A callback that gets partitions: assigned ones ([`Consumer::on_assign`]) or revoked ones
/// ([`Consumer::on_revoke`]).
pub type PartitionCallback = Box<dyn FnMut(&[u32]) + Send>;

/// Messages of one partition, in offset order, as one broker response delivered them.
#[derive(Debug, Clone)]
pub struct ConsumerBatch {
    /// Partition.
    pub partition: u32,
    /// The messages.
    pub records: Vec<ConsumerRecord>,
    /// Where the partition's position is after this batch.
    pub next_offset: i64,
    /// The partition's end offset when the broker answered.
    pub log_end_offset: i64,
}

/// A group member's side of the consumer: the state shared with the heartbeat task, and the task.
struct Member {
    membership: Arc<Membership>,
    changed: watch::Receiver<u64>,
    heartbeat: JoinHandle<()>,
}

/// A partition being read: its reader task and the epoch stamped on the reader's events.
struct Reader {
    epoch: u64,
    task: JoinHandle<()>,
}

/// Reads one topic; see the module docs.
pub struct Consumer {
    client: Client,
    topic: String,
    config: ConsumerConfig,
    /// The partitions owned now, sorted.
    partitions: Vec<u32>,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    readers: BTreeMap<u32, Reader>,
    next_epoch: u64,
    current: Option<Current>,
    positions: BTreeMap<u32, i64>,
    committed: BTreeMap<u32, i64>,
    last_commit: Instant,
    member: Option<Member>,
    on_assign: Option<PartitionCallback>,
    on_revoke: Option<PartitionCallback>,
}

/// The response being handed out record by record.
struct Current {
    partition: u32,
    records: VecDeque<ConsumerRecord>,
    next_offset: i64,
    log_end_offset: i64,
}

impl Client {
    /// A consumer of `topic`. With a group and no explicit partitions it joins the group (see
    /// [`crate::consumer`]); otherwise it reads the given partitions (all without a group), each resuming
    /// from the group's committed offset when there is a group (partitions without one start at
    /// `config.start`).
    pub async fn consumer(&self, topic: &str, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::start(self.clone(), topic, config).await
    }
}

impl Consumer {
    async fn start(client: Client, topic: &str, config: ConsumerConfig) -> Result<Consumer> {
        if let Some(group) = &config.group
            && group.trim().is_empty()
        {
            return Err(ClientError::invalid("the group name is empty"));
        }
        let description = client.describe_topic(topic).await?;
        let count = description.topic.partitions.max(description.partitions.len() as u32);
        let capacity = (count as usize * config.prefetch.max(1)).max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let mut consumer = Consumer {
            client,
            topic: topic.to_string(),
            config,
            partitions: Vec::new(),
            tx,
            rx,
            readers: BTreeMap::new(),
            next_epoch: 0,
            current: None,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_commit: Instant::now(),
            member: None,
            on_assign: None,
            on_revoke: None,
        };
        if consumer.config.is_group_member() {
            consumer.join().await?;
            return Ok(consumer);
        }
        let partitions = match &consumer.config.partitions {
            None => (0..count).collect::<Vec<u32>>(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|&&p| p >= count) {
                    return Err(ClientError::invalid(format!(
                        "partition {bad} does not exist: topic {topic} has {count} partitions (0..{count})"
                    )));
                }
                list.clone()
            }
        };
        consumer.assign(&partitions).await?;
        Ok(consumer)
    }

    /// Joins the group: the first heartbeat (its refusal is the construction error), then the heartbeat
    /// task. The assignment is applied by the first poll.
    async fn join(&mut self) -> Result<()> {
        let group = self.config.group.clone().unwrap_or_default();
        let client_id = match self.config.client_id.as_str() {
            "" => DEFAULT_CLIENT_ID.to_string(),
            id => id.to_string(),
        };
        let template = GroupHeartbeat {
            group: group.clone(),
            instance_id: self.config.instance_id.clone(),
            client_id,
            topics: vec![self.topic.clone()],
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            assignor: self.config.assignor.clone(),
            mode: self.config.group_mode,
            ..GroupHeartbeat::default()
        };
        let membership = Membership::new(MemberSettings { group, topic: self.topic.clone(), template });
        let interval = membership.join(&self.client).await?;
        let changed = membership.subscribe();
        let heartbeat = tokio::spawn(heartbeat_loop(self.client.clone(), Arc::clone(&membership), interval));
        self.member = Some(Member { membership, changed, heartbeat });
        Ok(())
    }

    /// The topic being read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions being read now (for a group member: those it owns now), sorted.
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// The partitions the consumer owns now, sorted: for a group member, what the broker assigned and the
    /// last `poll` applied; otherwise the partitions it was created with.
    pub fn assignment(&self) -> &[u32] {
        &self.partitions
    }

    /// The group, if any.
    pub fn group(&self) -> Option<&str> {
        self.config.group.as_deref()
    }

    /// A group member's identity (member id, generation, instance id); `None` for a consumer that is not a
    /// member. The member id is empty while the consumer rejoins.
    pub fn member(&self) -> Option<MemberIdentity> {
        self.member.as_ref().map(|m| m.membership.identity())
    }

    /// Next offset to hand out, per partition (only partitions with a known position).
    pub fn positions(&self) -> &BTreeMap<u32, i64> {
        &self.positions
    }

    /// The offsets last committed (or found committed at start), per partition.
    pub fn committed(&self) -> &BTreeMap<u32, i64> {
        &self.committed
    }

    /// Sets the callback run with the partitions a group member starts reading (after their readers
    /// started), inside `poll`/`poll_batch`. Replaces any earlier one.
    pub fn on_assign(&mut self, callback: impl FnMut(&[u32]) + Send + 'static) {
        self.on_assign = Some(Box::new(callback));
    }

    /// Sets the callback run with the partitions a group member gives up, inside `poll`/`poll_batch`/`close`:
    /// after their readers stopped and their positions were committed (no commit when the partitions were
    /// lost), before the broker is told. Replaces any earlier one.
    pub fn on_revoke(&mut self, callback: impl FnMut(&[u32]) + Send + 'static) {
        self.on_revoke = Some(Box::new(callback));
    }

    /// The next message, waiting up to `timeout` (`None` = forever); `Ok(None)` on timeout.
    pub async fn poll(&mut self, timeout: Option<Duration>) -> Result<Option<ConsumerRecord>> {
        self.follow_group().await?;
        self.maybe_auto_commit().await?;
        if self.current.as_ref().is_none_or(|c| c.records.is_empty()) && !self.receive(timeout).await? {
            return Ok(None);
        }
        let Some(current) = self.current.as_mut() else { return Ok(None) };
        let record = current.records.pop_front();
        if let Some(r) = &record {
            let position =
                if current.records.is_empty() { current.next_offset.max(r.offset + 1) } else { r.offset + 1 };
            self.positions.insert(current.partition, position);
        }
        if current.records.is_empty() {
            self.current = None;
        }
        Ok(record)
    }

    /// The rest of the current response, or the next one, waiting up to `timeout` (`None` = forever);
    /// `Ok(None)` on timeout.
    pub async fn poll_batch(&mut self, timeout: Option<Duration>) -> Result<Option<ConsumerBatch>> {
        self.follow_group().await?;
        self.maybe_auto_commit().await?;
        if self.current.as_ref().is_none_or(|c| c.records.is_empty()) && !self.receive(timeout).await? {
            return Ok(None);
        }
        let Some(current) = self.current.take() else { return Ok(None) };
        let next_offset = current.records.back().map_or(current.next_offset, |r| current.next_offset.max(r.offset + 1));
        self.positions.insert(current.partition, next_offset);
        Ok(Some(ConsumerBatch {
            partition: current.partition,
            records: current.records.into(),
            next_offset,
            log_end_offset: current.log_end_offset,
        }))
    }

    /// Waits for the next response of a partition still read into `current`, applying group changes that
    /// arrive meanwhile; false on timeout.
    async fn receive(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let group_changed = async {
                match self.member.as_mut() {
                    Some(m) => {
                        if m.changed.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                event = self.rx.recv() => event,
                _ = group_changed => {
                    self.follow_group().await?;
                    continue;
                }
                _ = sleep => return Ok(false),
            };
            let Some(event) = event else { return Err(ClientError::Closed("consumer")) };
            if self.readers.get(&event.partition).is_none_or(|r| r.epoch != event.epoch) {
                // From a reader stopped since (its partition was revoked): already given up.
                continue;
            }
            let response = event.result?;
            self.current = Some(Current {
                partition: event.partition,
                records: response.records.into(),
                next_offset: response.next_offset,
                log_end_offset: response.log_end_offset,
            });
            return Ok(true);
        }
    }

    /// Applies what the heartbeat task recorded: a failure, lost partitions, revocations, assignments.
    async fn follow_group(&mut self) -> Result<()> {
        let Some(member) = self.member.as_mut() else { return Ok(()) };
        member.changed.mark_unchanged();
        let membership = Arc::clone(&member.membership);
        let (lost, failed, target) = {
            let state = membership.lock();
            (state.lost, state.failed.clone(), state.target.clone())
        };
        if let Some(e) = failed {
            return Err(e);
        }
        if lost {
            let all = self.partitions.clone();
            self.give_up(&all);
            for p in &all {
                self.positions.remove(p);
                self.committed.remove(p);
            }
            self.run_on_revoke(&all);
            let mut state = membership.lock();
            state.owned.clear();
            state.target.clear();
            state.member_id.clear();
            state.generation = 0;
            state.lost = false;
            drop(state);
            membership.poke();
            return Ok(());
        }
        let owned: BTreeSet<u32> = self.partitions.iter().copied().collect();
        let changes = diff(&owned, &target);
        if changes.is_empty() {
            return Ok(());
        }
        if !changes.revoked.is_empty() {
            self.give_up(&changes.revoked);
            let identity = membership.identity();
            let to_commit = moved(&self.positions, &self.committed, Some(&changes.revoked));
            let committed = self.commit_pairs(&to_commit, Some(&identity)).await;
            for p in &changes.revoked {
                self.positions.remove(p);
                self.committed.remove(p);
            }
            self.run_on_revoke(&changes.revoked);
            membership.lock().owned = self.partitions.iter().copied().collect();
            membership.poke();
            match committed {
                Err(e) if e.must_rejoin() => {
                    membership.mark_lost(&identity.member_id);
                    return Ok(());
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        if !changes.assigned.is_empty() {
            // Held from now on: while the committed offsets are fetched, a heartbeat must not report these as
            // given up, or the broker could grant them to another member while this one starts reading them.
            // The target is read again under the same lock: an answer recorded meanwhile (during the commit
            // above) may have moved some of them away, and those must not be started.
            let assigned: Vec<u32> = {
                let mut state = membership.lock();
                let still: Vec<u32> = changes.assigned.iter().copied().filter(|p| state.target.contains(p)).collect();
                state.owned.extend(&still);
                still
            };
            if assigned.is_empty() {
                return Ok(());
            }
            let started = self.assign(&assigned).await;
            // Whatever happened, report what is really read: a partition that failed to start is given up.
            membership.lock().owned = self.partitions.iter().copied().collect();
            started?;
            if let Some(callback) = self.on_assign.as_mut() {
                callback(&assigned);
            }
        }
        Ok(())
    }

    fn run_on_revoke(&mut self, partitions: &[u32]) {
        if !partitions.is_empty()
            && let Some(callback) = self.on_revoke.as_mut()
        {
            callback(partitions);
        }
    }

    /// Stops reading `partitions`: aborts their readers (their buffered events carry the old epoch and are
    /// dropped) and drops the response being handed out if it is one of theirs.
    fn give_up(&mut self, partitions: &[u32]) {
        for p in partitions {
            if let Some(reader) = self.readers.remove(p) {
                reader.task.abort();
            }
        }
        if self.current.as_ref().is_some_and(|c| partitions.contains(&c.partition)) {
            self.current = None;
        }
        self.partitions.retain(|p| !partitions.contains(p));
    }

    /// Starts reading `partitions` from the group's committed offsets (a broadcasting member's own), or
    /// from `config.start` where none is committed or there is no group.
    async fn assign(&mut self, partitions: &[u32]) -> Result<()> {
        let committed = match &self.config.group {
            Some(group) => {
                let member_id = match (&self.member, self.config.group_mode) {
                    (Some(m), GroupMode::Broadcasting) => Some(m.membership.identity().member_id),
                    _ => None,
                };
                self.client.fetch_offsets_of(group, &self.topic, member_id.as_deref()).await?
            }
            None => BTreeMap::new(),
        };
        let needs_bounds = matches!(self.config.mode, FetchMode::Fetch { .. })
            && partitions.iter().any(|p| !committed.contains_key(p))
            && matches!(self.config.start, Position::Earliest | Position::Latest);
        let bounds = if needs_bounds { Some(self.client.describe_topic(&self.topic).await?) } else { None };
        for &partition in partitions {
            if self.readers.contains_key(&partition) {
                continue;
            }
            let start = match committed.get(&partition) {
                Some(&offset) => {
                    self.positions.insert(partition, offset);
                    self.committed.insert(partition, offset);
                    Position::Offset(offset)
                }
                None => self.config.start,
            };
            self.next_epoch += 1;
            let spec = ReadSpec {
                client: self.client.clone(),
                topic: self.topic.clone(),
                partition,
                tags: self.config.tags.clone(),
                max_bytes: self.config.max_bytes,
                format: self.config.format,
                epoch: self.next_epoch,
            };
            let task = match self.config.mode {
                FetchMode::Subscribe => tokio::spawn(fetcher::subscribe_loop(spec, start, self.tx.clone())),
                FetchMode::Fetch { max_wait } => {
                    let info = bounds.as_ref().and_then(|d| d.partitions.iter().find(|p| p.partition == partition));
                    let offset = match (start, info) {
                        (Position::Offset(o), _) => o,
                        (Position::Earliest, Some(i)) => i.log_start_offset,
                        (Position::Latest, Some(i)) => i.log_end_offset,
                        (Position::Earliest | Position::Latest, None) => 0,
                        (Position::Timestamp(_), _) => {
                            return Err(ClientError::invalid(
                                "fetch mode cannot start from a timestamp; use subscribe mode",
                            ));
                        }
                    };
                    tokio::spawn(fetcher::fetch_loop(spec, offset, max_wait, self.tx.clone()))
                }
            };
            self.readers.insert(partition, Reader { epoch: self.next_epoch, task });
            self.partitions.push(partition);
        }
        self.partitions.sort_unstable();
        self.partitions.dedup();
        Ok(())
    }

    /// Commits the positions of every partition that moved since the last commit (a group member commits
    /// as the member). Fails with `InvalidArgument` when the consumer has no group. A member whose
    /// commit is refused because the broker no longer counts it (see [`ClientError::must_rejoin`]) gets
    /// the error, and its next `poll` gives the partitions up and rejoins.
    pub async fn commit(&mut self) -> Result<()> {
        if self.config.group.is_none() {
            return Err(ClientError::invalid("cannot commit: the consumer has no group"));
        }
        self.last_commit = Instant::now();
        let changed = moved(&self.positions, &self.committed, None);
        let identity = self.member.as_ref().map(|m| m.membership.identity());
        let result = self.commit_pairs(&changed, identity.as_ref()).await;
        if let (Err(e), Some(member), Some(identity)) = (&result, &self.member, &identity)
            && e.must_rejoin()
        {
            member.membership.mark_lost(&identity.member_id);
        }
        result
    }

    /// Commits `pairs` (as `member` when given) and records them as committed.
    async fn commit_pairs(&mut self, pairs: &BTreeMap<u32, i64>, member: Option<&MemberIdentity>) -> Result<()> {
        let Some(group) = self.config.group.clone() else { return Ok(()) };
        if pairs.is_empty() {
            return Ok(());
        }
        match member {
            Some(m) => self.client.commit_offsets_as(&group, &self.topic, pairs, m).await?,
            None => self.client.commit_offsets(&group, &self.topic, pairs).await?,
        }
        self.committed.extend(pairs);
        Ok(())
    }

    /// Commits when `auto_commit` is due. A member's commit refused because the broker no longer counts it
    /// is not an error here: the next `poll` gives the partitions up and rejoins.
    async fn maybe_auto_commit(&mut self) -> Result<()> {
        if let (Some(_), Some(interval)) = (&self.config.group, self.config.auto_commit)
            && self.last_commit.elapsed() >= interval
        {
            match self.commit().await {
                Err(e) if e.must_rejoin() => return self.follow_group().await,
                other => other?,
            }
        }
        Ok(())
    }

    /// Commits (with a group) and stops the reader tasks. A group member also stops heartbeating, runs the
    /// on-revoke callback for the partitions it owned, and leaves the group, so its partitions move to the
    /// other members at once; a static member (with an instance id) does not leave, so that a restart within
    /// its session timeout gets the same partitions back. The first failure is returned, after every step
    /// was tried.
    pub async fn close(mut self) -> Result<()> {
        if let Some(member) = &self.member {
            member.heartbeat.abort();
        }
        let result = if self.config.group.is_some() { self.commit().await } else { Ok(()) };
        self.stop();
        let Some(member) = self.member.take() else { return result };
        let owned = std::mem::take(&mut self.partitions);
        self.run_on_revoke(&owned);
        let identity = member.membership.identity();
        // A static member does not leave (Kafka's static membership): the broker keeps its partitions for
        // its session timeout, so a restart with the same instance id gets them back with no rebalance.
        if identity.member_id.is_empty() || identity.instance_id.is_some() {
            return result;
        }
        let left = self
            .client
            .leave_group(member.membership.group(), &identity.member_id, member.membership.instance_id())
            .await;
        result.and(left)
    }

    fn stop(&mut self) {
        for (_, reader) in std::mem::take(&mut self.readers) {
            reader.task.abort();
        }
        if let Some(member) = &self.member {
            member.heartbeat.abort();
        }
    }
}

impl Drop for Consumer {
    /// Stops the readers and the heartbeat task. A group member dropped without [`Consumer::close`]
    /// neither commits nor leaves: to the broker it is a member that crashed, expelled after its session
    /// timeout (as with Kafka's clients), so call `close` to hand its partitions over at once.
    fn drop(&mut self) {
        self.stop();
    }
}
