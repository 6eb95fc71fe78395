//! Process-wide counters, reported by `GET /api/v1/admin/outbox`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Outbox rows the relay published.
    pub published: AtomicU64,
    /// Produce attempts that failed and were scheduled again.
    pub retried: AtomicU64,
    /// Rows sent to the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// Rows delivered after an older row of their key failed (per-key order broken on the
    /// topic). Zero unless librdkafka breaks its gap-less guarantee.
    pub order_violations: AtomicU64,
    /// Relay workers restarted after a panic.
    pub worker_restarts: AtomicU64,
    /// Sync-path wins committed whose event never reached Kafka (what the outbox prevents).
    pub sync_events_lost: AtomicU64,
}

impl Metrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
