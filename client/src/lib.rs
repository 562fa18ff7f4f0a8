//! The Janus client library and CLI.
