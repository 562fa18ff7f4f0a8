//! A/B experiments across the two storage engines.
