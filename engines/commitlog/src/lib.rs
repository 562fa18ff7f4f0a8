//! The RocketMQ-model storage engine.
