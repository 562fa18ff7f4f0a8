//! Background upkeep the runtime schedules: retention on every engine, compaction on every engine that
//! can compact, consumer-lag gauges. Each pass is blocking; the runtime runs it on the blocking pool.

use janus_api::now_ms;

use crate::groups::offsets::record_lag;
use crate::metrics;
use crate::topics::Registry;

/// One retention and compaction pass over every engine; failures are logged and the pass goes on.
pub fn retention_pass(registry: &Registry) {
    let now = now_ms();
    for (kind, engine) in registry.engines().all() {
        match engine.enforce_retention(now) {
            Ok(r) => {
                if r.files_deleted > 0 {
                    tracing::info!(engine = %kind, files = r.files_deleted, bytes = r.bytes_deleted,
                        "retention deleted old data");
                }
                metrics::record_retention(kind.as_str(), r.files_deleted, r.bytes_deleted);
            }
            Err(e) => tracing::warn!(engine = %kind, error = %e, "retention pass failed"),
        }
        if let Some(compaction) = engine.compaction() {
            match compaction.compact(now) {
                Ok(n) => metrics::record_compaction(n),
                Err(e) => tracing::warn!(engine = %kind, error = %e, "compaction pass failed"),
            }
        }
    }
}

/// Sets the lag gauge of every committed offset of every group.
pub fn lag_pass(registry: &Registry) {
    match registry.meta().all_offsets() {
        Ok(offsets) => {
            for o in offsets {
                record_lag(registry, &o.group, &o.topic, o.partition, o.offset);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read committed offsets for lag metrics"),
    }
}
