//! Consumer groups, one coordinator for every face: membership, generations, assignment and committed
//! offsets.
//!
//! | module | holds |
//! |---|---|
//! | [`protocol`] | the requests and answers of both membership protocols and of describe |
//! | [`coordinator`] | every group behind one lock, stored in RocksDB, and the expiry timer |
//! | `group` | one group's state: members, generation, Kafka's states |
//! | `assigned` | the broker-assigned protocol (janus.v1): heartbeats, target assignments, cooperative moves |
//! | `classic` | Kafka's classic protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup |
//! | [`assignor`] | range, roundrobin and sticky assignors |
//! | `membership` | the core's membership calls, with their input checks |
//! | [`offsets`] | fenced commits, reads, resets, expiry of offsets |
//! | `describe` | describe and list |
//! | [`config`] | timeouts and limits |

mod assigned;
pub mod assignor;
mod classic;
pub mod config;
pub mod coordinator;
mod describe;
mod group;
mod membership;
pub mod offsets;
pub mod protocol;

pub use assignor::{Assignment, AssignmentInput, Assignor, MemberSubscription};
pub use config::GroupConfig;
pub use coordinator::Coordinator;
pub use membership::{MAX_OWNED_PARTITIONS, MAX_SUBSCRIBED_TOPICS};
pub use offsets::{MAX_OFFSET_METADATA_BYTES, OffsetCommit, validate_group_name};
pub use protocol::*;
