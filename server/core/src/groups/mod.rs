//! Consumer groups, one for every face. Today a group is a namespace of committed offsets ([`offsets`]);
//! membership and rebalancing (the coordinator) come next.

pub mod offsets;

pub use offsets::{GroupPartition, validate_group_name};
