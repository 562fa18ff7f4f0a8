//! The errors an engine returns. Each variant says what went wrong in words an operator can act on.

use std::path::PathBuf;

use crate::batch::BatchError;
use crate::config::ConfigError;
use crate::volume::{VolumeSpace, human_bytes};

/// Everything that can go wrong in a storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The topic does not exist in this engine.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// The topic exists but has no such partition.
    #[error("topic '{topic}' has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic asked for.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A topic of that name already exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic name breaks the naming rules.
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A topic config key or value was refused.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// The batch handed to `append` is malformed or fails its checksum.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The batch is well-formed but breaks a rule of the topic (e.g. a record without key on a compacted topic).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The batch (or one message in it) is larger than the topic allows.
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    MessageTooLarge {
        /// Size of the rejected batch.
        size: usize,
        /// The topic's `max.message.bytes`.
        max: usize,
    },
    /// A read asked for an offset outside the log.
    #[error("offset {offset} is out of range for {topic}-{partition}: valid offsets are {start}..{end}")]
    OffsetOutOfRange {
        /// The topic read.
        topic: String,
        /// The partition read.
        partition: u32,
        /// The offset asked for.
        offset: i64,
        /// The log start offset (first readable offset).
        start: i64,
        /// The log end offset (next offset to be written; reading it waits for new data).
        end: i64,
    },
    /// The disk is full, or below its free-space guard; reads still work, appends are refused until
    /// space is freed.
    #[error("no space left on device while writing {path}{}", volume_note(.volume, .needed))]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The volume holding it and its free space, when it could be measured.
        volume: Option<VolumeSpace>,
        /// The bytes the write needed (including what must stay free), when known.
        needed: Option<u64>,
    },
    /// Data on disk failed a check that recovery could not repair.
    #[error("corrupt data in {path}: {detail}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// An I/O error, with the file it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The engine does not offer what was asked (e.g. a tag filter on a segment topic).
    #[error("not supported by this engine: {0}")]
    Unsupported(String),
    /// The engine was shut down or a previous fatal error closed it.
    #[error("storage engine is closed: {0}")]
    Closed(String),
}

fn volume_note(volume: &Option<VolumeSpace>, needed: &Option<u64>) -> String {
    match (volume, needed) {
        (Some(v), Some(n)) => format!(" ({v}; {} needed)", human_bytes(*n)),
        (Some(v), None) => format!(" ({v})"),
        (None, Some(n)) => format!(" ({} needed)", human_bytes(*n)),
        (None, None) => String::new(),
    }
}

impl StorageError {
    /// [`StorageError::DiskFull`] for `path`, naming its volume and free space when they can be measured
    /// (from the nearest existing ancestor: the file itself may not exist).
    pub fn disk_full(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let volume = path.ancestors().find(|p| p.exists()).and_then(|p| crate::volume::space(p).ok());
        StorageError::DiskFull { path, volume, needed: None }
    }

    /// Wraps an I/O error with the path it happened on, turning `ENOSPC` into [`StorageError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(28) || source.kind() == std::io::ErrorKind::StorageFull {
            StorageError::disk_full(path)
        } else {
            StorageError::Io { path, source }
        }
    }
}

/// Adds a path to I/O results: `file.write_all(b).at(&path)?`.
pub trait IoResultExt<T> {
    /// Converts an `io::Result` into a `StorageError` that names `path`.
    fn at(self, path: impl Into<PathBuf>) -> Result<T, StorageError>;
}

impl<T> IoResultExt<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, StorageError> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
