//! Topics: the engines ([`EngineSet`]), the live topics and their crash-safe life cycle ([`Registry`]),
//! and what the core keeps per topic ([`Topic`]).

pub mod engine_set;
pub mod registry;
pub mod spreader;
pub mod topic;

pub use engine_set::{ENGINE_KINDS, EngineOptions, EngineSet, engine_dir};
pub use registry::{DEFAULT_MAX_PARTITIONS, Reconciliation, Registry, TopicDefaults};
pub use topic::{Topic, TopicSettings};
