//! [`Metrics`]: one application's registry and every metric in it.
//!
//! The fields are the handles the recording code uses (`metrics.relay_published.inc()`); each is a
//! cheap clone of atomics the registry also holds, so the text exposition, the admin summary and
//! the consumer reports read one set of values. Names are spelled out in full (`firstcome_…`) so
//! that a name on a dashboard can be found here with grep; [`NAMES`] lists them.

use std::sync::{atomic::AtomicU64, Arc};

use prometheus_client::{
    encoding::{text, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use super::pools::PoolGauges;
use crate::db::Db;

/// Request, gate and transaction latencies: 0.5 ms … 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Commit → Kafka ack and commit → applied: 1 ms … 5 min (a Kafka outage shows in the tail).
const LAG_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Wins per group-commit transaction: 1 … 2,048.
const BATCH_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn lag() -> Histogram {
    Histogram::new(LAG_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric family the service exports, as Prometheus names its series: counters with their
/// `_total`, histograms by their base name (the series add `_bucket`, `_sum`, `_count`). A family
/// with labels appears in `/metrics` once it has a first value.
pub const NAMES: &[&str] = &[
    "firstcome_http_requests_total",
    "firstcome_http_request_duration_seconds",
    "firstcome_participation_outcomes_total",
    "firstcome_gate_duration_seconds",
    "firstcome_participation_transaction_duration_seconds",
    "firstcome_group_commit_batch_size",
    "firstcome_group_commit_fallbacks_total",
    "firstcome_db_pool_connections",
    "firstcome_outbox_rows",
    "firstcome_outbox_oldest_due_age_seconds",
    "firstcome_relay_publish_lag_seconds",
    "firstcome_relay_published_total",
    "firstcome_relay_retried_total",
    "firstcome_relay_dead_lettered_total",
    "firstcome_relay_worker_restarts_total",
    "firstcome_relay_order_violations_total",
    "firstcome_relay_shards_led",
    "firstcome_consumer_events_total",
    "firstcome_consumer_retries_total",
    "firstcome_consumer_lag",
    "firstcome_consumer_apply_latency_seconds",
    "firstcome_sync_events_lost_total",
];

/// `method`, `route` (the template, `unmatched` when no route matched), `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

/// The two participation paths (docs/design.md §6).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ParticipationPath {
    Outbox,
    Sync,
}

impl ParticipationPath {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Sync => "sync",
        }
    }
}

/// `path`, and `code`: `CREATED` or the error code of the response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub path: &'static str,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: &'static str,
}

/// `status`: `PENDING`, `PUBLISHED` or `DEAD`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// `consumer`, `result`: `applied`, `duplicate` or `dead_lettered`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerEventLabels {
    pub consumer: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerPartitionLabels {
    pub consumer: &'static str,
    pub partition: i32,
}

/// One application's metrics. Shared as `Arc<Metrics>`; the registry is complete once built.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The pools read at scrape time (registered by whoever opens one).
    pools: Arc<PoolGauges>,

    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub participation_outcomes: Family<OutcomeLabels, Counter>,
    /// One Redis reserve call (EVALSHA of the gate script).
    pub gate_duration: Histogram,
    /// The participation's MySQL write: queueing for its group commit and the transaction
    /// (outbox), or the locked write (sync).
    pub transaction_duration: HistogramFamily<PathLabels>,
    /// Wins per outbox-path transaction (1 when no win queued behind another).
    pub group_commit_batch_size: Histogram,
    /// Batches whose transaction was refused (guard or duplicate) and were written one by one.
    pub group_commit_fallbacks: Counter,

    /// Written by [`super::outbox::run`].
    pub outbox_rows: Family<StatusLabels, Gauge>,
    pub outbox_oldest_due_age: Gauge<f64, AtomicU64>,

    /// Outbox row written (`created_at`, database clock) → Kafka's ack, per published row.
    pub relay_publish_lag: Histogram,
    /// Outbox rows the relay published.
    pub relay_published: Counter,
    /// Produce attempts that failed and were scheduled again.
    pub relay_retried: Counter,
    /// Rows sent to the dead-letter topic.
    pub relay_dead_lettered: Counter,
    /// Relay workers restarted after a panic.
    pub relay_worker_restarts: Counter,
    /// Rows delivered after an older row of their key failed (per-key order broken on the
    /// topic). Zero unless librdkafka breaks its gap-less guarantee.
    pub relay_order_violations: Counter,
    /// Shards this instance's relay held at its last lease renewal.
    pub relay_shards_led: Gauge,

    pub consumer_events: Family<ConsumerEventLabels, Counter>,
    /// Failed consumer transactions (and dead-letter publishes), each retried.
    pub consumer_retries: Family<ConsumerLabels, Counter>,
    /// Messages not yet applied, per assigned partition.
    pub consumer_lag: Family<ConsumerPartitionLabels, Gauge>,
    /// Event's `occurredAt` → the consumer's commit, per applied event.
    pub consumer_apply_latency: HistogramFamily<ConsumerLabels>,

    /// Sync-path wins committed whose event never reached Kafka (what the outbox prevents).
    pub sync_events_lost: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let pools = Arc::new(PoolGauges::default());
        let mut m = Self {
            registry: Registry::default(),
            pools: pools.clone(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency),
            participation_outcomes: Family::default(),
            gate_duration: latency(),
            transaction_duration: Family::new_with_constructor(latency),
            group_commit_batch_size: Histogram::new(BATCH_BUCKETS),
            group_commit_fallbacks: Counter::default(),
            outbox_rows: Family::default(),
            outbox_oldest_due_age: Gauge::default(),
            relay_publish_lag: lag(),
            relay_published: Counter::default(),
            relay_retried: Counter::default(),
            relay_dead_lettered: Counter::default(),
            relay_worker_restarts: Counter::default(),
            relay_order_violations: Counter::default(),
            relay_shards_led: Gauge::default(),
            consumer_events: Family::default(),
            consumer_retries: Family::default(),
            consumer_lag: Family::default(),
            consumer_apply_latency: Family::new_with_constructor(lag),
            sync_events_lost: Counter::default(),
        };
        let r = &mut m.registry;
        r.register_collector(Box::new(pools));
        r.register(
            "firstcome_http_requests",
            "HTTP requests by method, route template and status",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "firstcome_http_request_duration",
            "HTTP request latency by method and route template",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        r.register(
            "firstcome_participation_outcomes",
            "Participation answers by path (outbox, sync) and code (CREATED or the error code)",
            m.participation_outcomes.clone(),
        );
        r.register_with_unit(
            "firstcome_gate_duration",
            "Latency of one Redis gate reserve call",
            Unit::Seconds,
            m.gate_duration.clone(),
        );
        r.register_with_unit(
            "firstcome_participation_transaction_duration",
            "Latency of the participation's MySQL write by path",
            Unit::Seconds,
            m.transaction_duration.clone(),
        );
        r.register(
            "firstcome_group_commit_batch_size",
            "Wins committed per outbox-path transaction (group commit)",
            m.group_commit_batch_size.clone(),
        );
        r.register(
            "firstcome_group_commit_fallbacks",
            "Group-commit batches refused by the stock guard or a duplicate and written one win per transaction",
            m.group_commit_fallbacks.clone(),
        );
        r.register(
            "firstcome_outbox_rows",
            "Outbox rows by status (refreshed on a timer)",
            m.outbox_rows.clone(),
        );
        r.register_with_unit(
            "firstcome_outbox_oldest_due_age",
            "How long the oldest due PENDING outbox row has waited (0 when none is due)",
            Unit::Seconds,
            m.outbox_oldest_due_age.clone(),
        );
        r.register_with_unit(
            "firstcome_relay_publish_lag",
            "Outbox row committed to its Kafka ack, per published row",
            Unit::Seconds,
            m.relay_publish_lag.clone(),
        );
        r.register(
            "firstcome_relay_published",
            "Outbox rows the relay published",
            m.relay_published.clone(),
        );
        r.register(
            "firstcome_relay_retried",
            "Relay produces that failed and were scheduled again",
            m.relay_retried.clone(),
        );
        r.register(
            "firstcome_relay_dead_lettered",
            "Outbox rows sent to the dead-letter topic",
            m.relay_dead_lettered.clone(),
        );
        r.register(
            "firstcome_relay_worker_restarts",
            "Relay workers restarted after a panic",
            m.relay_worker_restarts.clone(),
        );
        r.register(
            "firstcome_relay_order_violations",
            "Rows delivered after an older row of their key failed (zero unless Kafka's client broke its ordering guarantee)",
            m.relay_order_violations.clone(),
        );
        r.register(
            "firstcome_relay_shards_led",
            "Relay shards this instance led at its last lease renewal",
            m.relay_shards_led.clone(),
        );
        r.register(
            "firstcome_consumer_events",
            "Consumer events by result (applied, duplicate, dead_lettered)",
            m.consumer_events.clone(),
        );
        r.register(
            "firstcome_consumer_retries",
            "Consumer transactions that failed and were retried",
            m.consumer_retries.clone(),
        );
        r.register(
            "firstcome_consumer_lag",
            "Messages not yet applied per assigned partition",
            m.consumer_lag.clone(),
        );
        r.register_with_unit(
            "firstcome_consumer_apply_latency",
            "Event occurredAt to the consumer's commit, per applied event",
            Unit::Seconds,
            m.consumer_apply_latency.clone(),
        );
        r.register(
            "firstcome_sync_events_lost",
            "Sync-path wins committed whose event never reached Kafka",
            m.sync_events_lost.clone(),
        );
        for status in ["PENDING", "PUBLISHED", "DEAD"] {
            m.outbox_rows.get_or_create(&StatusLabels { status }).set(0);
        }
        m
    }

    /// Reports `db`'s connections as `firstcome_db_pool_connections{pool=name}` from now on.
    pub fn watch_pool(&self, name: &'static str, db: &Db) {
        self.pools.watch(name, db.mysql_pool().clone());
    }

    /// Counts one participation answer.
    pub fn participation_outcome(&self, path: ParticipationPath, code: String) {
        self.participation_outcomes
            .get_or_create(&OutcomeLabels {
                path: path.as_str(),
                code,
            })
            .inc();
    }

    /// The OpenMetrics text exposition of everything registered.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug in a label value.
        if let Err(e) = text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "Could not encode the metrics.");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NAMES` is exactly what the registry exports once every family has a value.
    #[test]
    fn names_list_every_exported_family() {
        let m = Metrics::new();
        m.http_requests
            .get_or_create(&HttpLabels {
                method: "GET",
                route: "/x".into(),
                status: 200,
            })
            .inc();
        m.http_duration
            .get_or_create(&RouteLabels {
                method: "GET",
                route: "/x".into(),
            })
            .observe(0.1);
        m.participation_outcome(ParticipationPath::Outbox, "CREATED".into());
        m.transaction_duration
            .get_or_create(&PathLabels { path: "outbox" })
            .observe(0.1);
        let consumer = "stats";
        m.consumer_events
            .get_or_create(&ConsumerEventLabels {
                consumer,
                result: "applied",
            })
            .inc();
        m.consumer_retries
            .get_or_create(&ConsumerLabels { consumer })
            .inc();
        m.consumer_lag
            .get_or_create(&ConsumerPartitionLabels {
                consumer,
                partition: 0,
            })
            .set(1);
        m.consumer_apply_latency
            .get_or_create(&ConsumerLabels { consumer })
            .observe(0.1);
        let text = m.encode();
        let mut exported: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').expect("name and type");
                match kind {
                    "counter" => format!("{name}_total"),
                    _ => name.to_string(),
                }
            })
            .collect();
        exported.sort();
        let mut names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(exported, names, "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
