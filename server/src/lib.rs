//! The janusd broker.
