//! Reading the engine's files with the engine closed: where a queue's newest message is, and which
//! ConsumeQueue files a queue has (for tests that damage files, and for diagnostics).

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::format::{self as rec, BODY_CRC_POS, Entry, FIXED_HEADER_SIZE};
use janus_api::TopicPartition;

use crate::commitlog::{COMMITLOG_DIR, parse_file_name};
use crate::consume_queue::CONSUMEQUEUE_DIR;

/// Where a message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLocation {
    /// The CommitLog file.
    pub path: PathBuf,
    /// The message's bytes in that file.
    pub range: Range<u64>,
    /// A byte the body CRC covers: the first body byte, or a BODYCRC byte when the body is empty.
    pub checked_byte: u64,
}

fn sorted_files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_file_name) {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The newest message of `tp` in the CommitLog under `dir` (the engine's directory), read from disk.
pub fn last_message(dir: &Path, tp: &TopicPartition) -> io::Result<MessageLocation> {
    let mut found = None;
    for (_, path) in sorted_files(&dir.join(COMMITLOG_DIR))? {
        let data = fs::read(&path)?;
        let mut pos = 0;
        while pos < data.len() {
            match rec::parse_entry(&data[pos..]) {
                Ok(Entry::Message(v)) => {
                    if v.topic == tp.topic.as_bytes() && v.meta.queue_id == tp.partition as i32 {
                        let start = pos as u64;
                        let checked = if v.body.is_empty() { BODY_CRC_POS as u64 } else { FIXED_HEADER_SIZE as u64 };
                        found = Some(MessageLocation {
                            path: path.clone(),
                            range: start..start + v.total_size as u64,
                            checked_byte: start + checked,
                        });
                    }
                    pos += v.total_size;
                }
                _ => break,
            }
        }
    }
    found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no message of {tp} in the CommitLog")))
}

/// The ConsumeQueue files of `tp` under `dir` (the engine's directory), oldest first.
pub fn consume_queue_files(dir: &Path, tp: &TopicPartition) -> io::Result<Vec<PathBuf>> {
    let qdir = dir.join(CONSUMEQUEUE_DIR).join(&tp.topic).join(tp.partition.to_string());
    match sorted_files(&qdir) {
        Ok(files) => Ok(files.into_iter().map(|(_, p)| p).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
