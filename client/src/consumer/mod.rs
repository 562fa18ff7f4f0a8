//! The consumer: reads the partitions of one topic, tracks positions, commits them for a group.
//!
//! Each partition has a reader task (a Subscribe stream, or long-poll Fetch calls) that feeds one
//! bounded queue; `poll` / `poll_batch` take from it in arrival order (per-partition order is kept).
//! A partition's *position* is the next offset the application has not yet been handed; `commit`
//! stores the positions as the group's offsets, so a restarted consumer neither re-reads nor skips.

mod config;
mod fetcher;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use config::{ConsumerConfig, FetchMode, ReadFormat};

use fetcher::{Event, ReadSpec};

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::record::ConsumerRecord;
use crate::types::Position;

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

/// Reads one topic; see the module docs.
pub struct Consumer {
    client: Client,
    topic: String,
    config: ConsumerConfig,
    partitions: Vec<u32>,
    rx: mpsc::Receiver<Event>,
    tasks: Vec<JoinHandle<()>>,
    current: Option<Current>,
    positions: BTreeMap<u32, i64>,
    committed: BTreeMap<u32, i64>,
    last_commit: Instant,
}

/// The response being handed out record by record.
struct Current {
    partition: u32,
    records: VecDeque<ConsumerRecord>,
    next_offset: i64,
    log_end_offset: i64,
}

impl Client {
    /// A consumer of `topic`. With a group, each partition resumes from the group's committed offset
    /// (partitions without one start at `config.start`).
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
        let partitions = match &config.partitions {
            None => (0..count).collect::<Vec<u32>>(),
            Some(list) => {
                if let Some(bad) = list.iter().find(|&&p| p >= count) {
                    return Err(ClientError::invalid(format!(
                        "partition {bad} does not exist: topic {topic} has {count} partitions (0..{count})"
                    )));
                }
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
        };
        let committed = match &config.group {
            Some(group) => client.fetch_offsets(group, topic).await?,
            None => BTreeMap::new(),
        };
        let capacity = (partitions.len() * config.prefetch.max(1)).max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let mut tasks = Vec::with_capacity(partitions.len());
        let mut positions = BTreeMap::new();
        for &partition in &partitions {
            let spec = ReadSpec {
                client: client.clone(),
                topic: topic.to_string(),
                partition,
                tags: config.tags.clone(),
                max_bytes: config.max_bytes,
                format: config.format,
            };
            let start = match committed.get(&partition) {
                Some(&offset) => {
                    positions.insert(partition, offset);
                    Position::Offset(offset)
                }
                None => config.start,
            };
            let task = match config.mode {
                FetchMode::Subscribe => tokio::spawn(fetcher::subscribe_loop(spec, start, tx.clone())),
                FetchMode::Fetch { max_wait } => {
                    let info = description.partitions.iter().find(|p| p.partition == partition);
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
                    tokio::spawn(fetcher::fetch_loop(spec, offset, max_wait, tx.clone()))
                }
            };
            tasks.push(task);
        }
        Ok(Consumer {
            client,
            topic: topic.to_string(),
            config,
            partitions,
            rx,
            tasks,
            current: None,
            positions,
            committed,
            last_commit: Instant::now(),
        })
    }

    /// The topic being read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions being read.
    pub fn partitions(&self) -> &[u32] {
        &self.partitions
    }

    /// The group, if any.
    pub fn group(&self) -> Option<&str> {
        self.config.group.as_deref()
    }

    /// Next offset to hand out, per partition (only partitions with a known position).
    pub fn positions(&self) -> &BTreeMap<u32, i64> {
        &self.positions
    }

    /// The offsets last committed (or found committed at start), per partition.
    pub fn committed(&self) -> &BTreeMap<u32, i64> {
        &self.committed
    }

    /// The next message, waiting up to `timeout` (`None` = forever); `Ok(None)` on timeout.
    pub async fn poll(&mut self, timeout: Option<Duration>) -> Result<Option<ConsumerRecord>> {
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

    /// Waits for the next response into `current`; false on timeout.
    async fn receive(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let event = match timeout {
            None => self.rx.recv().await,
            Some(t) => match tokio::time::timeout(t, self.rx.recv()).await {
                Ok(event) => event,
                Err(_) => return Ok(false),
            },
        };
        let Some(event) = event else { return Err(ClientError::Closed("consumer")) };
        let response = event.result?;
        let partition = event.partition;
        let records: VecDeque<ConsumerRecord> = response.records.into();
        self.current = Some(Current {
            partition,
            records,
            next_offset: response.next_offset,
            log_end_offset: response.log_end_offset,
        });
        Ok(true)
    }

    /// Commits the positions of every partition that moved since the last commit.
    /// Fails with `InvalidArgument` when the consumer has no group.
    pub async fn commit(&mut self) -> Result<()> {
        let Some(group) = self.config.group.clone() else {
            return Err(ClientError::invalid("cannot commit: the consumer has no group"));
        };
        let changed: BTreeMap<u32, i64> =
            self.positions.iter().filter(|(p, o)| self.committed.get(p) != Some(o)).map(|(&p, &o)| (p, o)).collect();
        self.last_commit = Instant::now();
        if changed.is_empty() {
            return Ok(());
        }
        self.client.commit_offsets(&group, &self.topic, &changed).await?;
        self.committed.extend(changed);
        Ok(())
    }

    async fn maybe_auto_commit(&mut self) -> Result<()> {
        if let (Some(_), Some(interval)) = (&self.config.group, self.config.auto_commit)
            && self.last_commit.elapsed() >= interval
        {
            self.commit().await?;
        }
        Ok(())
    }

    /// Commits (with a group) and stops the reader tasks.
    pub async fn close(mut self) -> Result<()> {
        let result = if self.config.group.is_some() { self.commit().await } else { Ok(()) };
        self.stop();
        result
    }

    fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop();
    }
}
