//! Record header names with a meaning beyond the record: RocketMQ message properties carried as Kafka
//! record headers, so that a message produced through either protocol keeps them.

/// RocketMQ's `TAGS` property (the message tag, what a `TagA || TagB` subscription filters on), carried as
/// a Kafka record header of this name.
pub const TAGS: &str = "TAGS";

/// RocketMQ's `KEYS` property (space-separated keys a message can be looked up by), carried as a Kafka
/// record header of this name.
pub const KEYS: &str = "KEYS";
