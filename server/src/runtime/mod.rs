//! The runtime: [`Broker::start`](broker::Broker::start) opens storage, builds the core, serves every face on
//! its listener, runs the background tasks, and shuts it all down.

pub mod broker;
pub mod face;
pub mod metrics;
pub mod tasks;
