//! Record header names with a meaning beyond the record: RocketMQ message properties carried as Kafka
//! record headers, so that a message produced through either protocol keeps them.

/// RocketMQ's `TAGS` property (the message tag, what a `TagA || TagB` subscription filters on), carried as
/// a Kafka record header of this name.
pub const TAGS: &str = "TAGS";

/// RocketMQ's `KEYS` property (space-separated keys a message can be looked up by), carried as a Kafka
/// record header of this name.
pub const KEYS: &str = "KEYS";

/// RocketMQ's `UNIQ_KEY` property: the message id the producer (or, when it set none, the broker) gave it.
pub const UNIQ_KEY: &str = "UNIQ_KEY";

/// RocketMQ's `DELAY` property: a delay level, 1 to 18.
pub const DELAY: &str = "DELAY";

/// RocketMQ's `TIMER_DELIVER_MS` property: the delivery time, milliseconds since the Unix epoch.
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";

/// RocketMQ's `TIMER_DELAY_MS` property: a delay in milliseconds from when the broker received the message.
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";

/// RocketMQ's `TIMER_DELAY_SEC` property: a delay in seconds from when the broker received the message.
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";

/// RocketMQ's `RECONSUME_TIME` property: how many times the message was redelivered before this copy.
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";

/// RocketMQ's `RETRY_TOPIC` property: the topic a retried or dead-lettered message was first produced to.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";

/// RocketMQ's `ORIGIN_MESSAGE_ID` property: the id of the message a retry or dead letter copies.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";

/// The partition a retried or dead-lettered message was first produced to (Janus's own header: RocketMQ
/// names none).
pub const ORIGIN_PARTITION: &str = "JANUS_ORIGIN_PARTITION";

/// The offset a retried or dead-lettered message had in its first partition (Janus's own header).
pub const ORIGIN_OFFSET: &str = "JANUS_ORIGIN_OFFSET";

/// The delivery attempts a dead letter went through before it was dead-lettered (Janus's own header).
pub const DLQ_ATTEMPTS: &str = "JANUS_DLQ_ATTEMPTS";

/// The due time of a delivered delayed or timed message, milliseconds since the Unix epoch (Janus's own
/// header; the message's timestamp is when it was delivered, so their difference is the lateness).
pub const TIMER_DUE_MS: &str = "JANUS_TIMER_DUE_MS";

/// The producer group of a transactional message (RocketMQ's `PGROUP`).
pub const PRODUCER_GROUP: &str = "PGROUP";

/// Seconds a half message waits before its first check (RocketMQ's `CHECK_IMMUNITY_TIME_IN_SECONDS`).
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";

/// The topic a message in `TRANS_CHECK_MAX_TIME_TOPIC` was sent to (RocketMQ's `REAL_TOPIC`).
pub const REAL_TOPIC: &str = "REAL_TOPIC";

/// The partition (queue) a message in `TRANS_CHECK_MAX_TIME_TOPIC` was sent to (RocketMQ's `REAL_QID`).
pub const REAL_QUEUE_ID: &str = "REAL_QID";

/// The checks a half message got before it was discarded (RocketMQ's `TRANSACTION_CHECK_TIMES`).
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";

/// The transaction a committed or discarded message belonged to (Janus's own header).
pub const TRANSACTION_ID: &str = "JANUS_TRANSACTION_ID";
