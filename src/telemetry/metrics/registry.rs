//! [`Metrics`]: one application's registry and every metric in it.
//!
//! The fields are the handles the recording code uses (`metrics.relay_published.inc()`); each is a
//! cheap clone of atomics the registry also holds, so the text exposition, the admin summary and
//! the consumer reports read one set of values.
//!
//! Each metric is declared once, in the `declare_metrics!` list below: its field, type and
//! constructor, its name as Prometheus exports it, its help and its unit. The struct, its
//! registration and [`NAMES`] are generated from that list. Names are spelled out in full
//! (`firstcome_…_total`, `…_seconds`) so that a name on a dashboard can be found here with grep.

use std::sync::{atomic::AtomicU64, Arc};

use prometheus_client::{
    encoding::text,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, MetricType},
    registry::{Metric, Registry, Unit},
};

pub use crate::telemetry::metrics::labels::{
    CampaignLabels, ConsumerEventLabels, ConsumerLabels, ConsumerPartitionLabels, ControlLabels,
    HttpLabels, OutcomeLabels, ParticipationPath, PathLabels, ReasonLabels, RouteLabels,
    StatusLabels,
};
use crate::{
    db::Db,
    telemetry::metrics::pools::{self, PoolGauges},
};

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

/// Generates [`Metrics`] (a field per entry, plus the registry and the pools), [`Metrics::new`]
/// (each metric built and registered, in the order listed) and [`NAMES`], from one entry per
/// metric: `field: Type = constructor, "exported_name", "help" [, unit];`.
macro_rules! declare_metrics {
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ty = $init:expr, $name:literal, $help:literal $(, $unit:expr)?;
    )*) => {
        /// One application's metrics. Shared as `Arc<Metrics>`; the registry is complete once built.
        #[derive(Debug)]
        pub struct Metrics {
            registry: Registry,
            /// The pools read at scrape time (registered by whoever opens one).
            pools: Arc<PoolGauges>,
            $($(#[$doc])* pub $field: $ty,)*
        }

        /// Every metric family the service exports, as Prometheus names its series: counters with
        /// their `_total`, histograms by their base name (the series add `_bucket`, `_sum`,
        /// `_count`). A family with labels appears in `/metrics` once it has a first value.
        pub const NAMES: &[&str] = &[$($name,)* pools::NAME];

        impl Metrics {
            pub fn new() -> Self {
                let pools = Arc::new(PoolGauges::default());
                let mut registry = Registry::default();
                registry.register_collector(Box::new(pools.clone()));
                $(
                    let $field: $ty = $init;
                    register(
                        &mut registry,
                        $name,
                        $help,
                        declare_metrics!(@unit $($unit)?),
                        $field.clone(),
                    );
                )*
                let m = Self { registry, pools, $($field,)* };
                for status in ["PENDING", "PUBLISHED", "DEAD"] {
                    m.outbox_rows.get_or_create(&StatusLabels { status }).set(0);
                }
                m
            }
        }
    };
    (@unit) => { None };
    (@unit $unit:expr) => { Some($unit) };
}

declare_metrics! {
    http_requests: Family<HttpLabels, Counter> = Family::default(),
        "firstcome_http_requests_total",
        "HTTP requests by method, route template and status";
    http_duration: HistogramFamily<RouteLabels> = Family::new_with_constructor(latency),
        "firstcome_http_request_duration_seconds",
        "HTTP request latency by method and route template", Unit::Seconds;
    participation_outcomes: Family<OutcomeLabels, Counter> = Family::default(),
        "firstcome_participation_outcomes_total",
        "Participation answers by path (outbox, sync) and code (CREATED or the error code)";
    /// One Redis reserve call (EVALSHA of the gate script).
    gate_duration: Histogram = latency(),
        "firstcome_gate_duration_seconds",
        "Latency of one Redis gate reserve call", Unit::Seconds;
    /// The participation's MySQL write: queueing for its group commit and the transaction
    /// (outbox), or the locked write (sync).
    transaction_duration: HistogramFamily<PathLabels> = Family::new_with_constructor(latency),
        "firstcome_participation_transaction_duration_seconds",
        "Latency of the participation's MySQL write by path", Unit::Seconds;
    /// Wins per outbox-path transaction (1 when no win queued behind another).
    group_commit_batch_size: Histogram = Histogram::new(BATCH_BUCKETS),
        "firstcome_group_commit_batch_size",
        "Wins committed per outbox-path transaction (group commit)";
    /// Batches whose transaction was refused (guard or duplicate) and were written one by one.
    group_commit_fallbacks: Counter = Counter::default(),
        "firstcome_group_commit_fallbacks_total",
        "Group-commit batches refused by the stock guard or a duplicate and written one win per transaction";
    /// Wins a batch left for the lane's next because another writer held their bucket's row.
    group_commit_deferred: Counter = Counter::default(),
        "firstcome_group_commit_deferred_total",
        "Wins of a bucketed campaign left for the next group-commit batch because another transaction held their bucket's row";
    /// Wins handed to their campaign's writer on another instance (`write::writer`), by outcome.
    writer_handovers: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_writer_handovers_total",
        "Wins handed to their campaign's writer on another instance, by outcome (answered, taken_back: written here instead, found_written: no answer but the win was found written, unanswered: left to the reconciler)";
    /// Transactions whose COMMIT went unanswered, settled by `write::in_doubt`.
    group_commit_in_doubt: Counter = Counter::default(),
        "firstcome_group_commit_in_doubt_total",
        "Outbox-path transactions whose COMMIT went unanswered (settled once MySQL answers again)";
    /// The stock rows' hold of the outbox path's transactions (`write::transaction`): from the
    /// guarded decrement (or the bucket rows' lock) to COMMIT's answer, summed. Over the wins
    /// written (`firstcome_group_commit_batch_size`'s sum), a campaign's serial section at MySQL
    /// (docs/design.md §10 "Serial sections").
    write_row_hold: Counter<f64, AtomicU64> = Counter::default(),
        "firstcome_write_row_hold_seconds_total",
        "Time outbox-path transactions held their stock rows, guarded decrement to COMMIT's answer, summed", Unit::Seconds;
    /// Redis calls that reserved a batch of joins of one slot (`gate::batch`), and the joins they
    /// decided: their ratio is the batches' mean size (docs/design.md §10 "The Redis thread").
    gate_reserve_calls: Counter = Counter::default(),
        "firstcome_gate_reserve_batch_calls_total",
        "Redis calls that reserved a batch of joins of one campaign or bucket";
    gate_reserve_batched: Counter = Counter::default(),
        "firstcome_gate_reserve_batched_joins_total",
        "Joins decided by batched reservation calls (over the calls: the mean batch size)";
    /// Time the lanes spent on their batches (`write::group_commit`): the transaction and the
    /// answers, summed; one lane's is a campaign's serial section on its writer.
    write_lane_busy: Counter<f64, AtomicU64> = Counter::default(),
        "firstcome_write_lane_busy_seconds_total",
        "Time the group-commit lanes spent on their batches (transaction and answers), summed", Unit::Seconds;

    /// Written by [`crate::relay::backlog_metrics::run`].
    outbox_rows: Family<StatusLabels, Gauge> = Family::default(),
        "firstcome_outbox_rows",
        "Outbox rows by status (refreshed on a timer)";
    outbox_oldest_due_age: Gauge<f64, AtomicU64> = Gauge::default(),
        "firstcome_outbox_oldest_due_age_seconds",
        "How long the oldest due PENDING outbox row has waited (0 when none is due)", Unit::Seconds;

    /// Outbox row written (`created_at`, database clock) → Kafka's ack, per published row.
    relay_publish_lag: Histogram = lag(),
        "firstcome_relay_publish_lag_seconds",
        "Outbox row committed to its Kafka ack, per published row", Unit::Seconds;
    /// Outbox rows the relay published.
    relay_published: Counter = Counter::default(),
        "firstcome_relay_published_total",
        "Outbox rows the relay published";
    /// Produce attempts that failed and were scheduled again.
    relay_retried: Counter = Counter::default(),
        "firstcome_relay_retried_total",
        "Relay produces that failed and were scheduled again";
    /// Rows sent to the dead-letter topic.
    relay_dead_lettered: Counter = Counter::default(),
        "firstcome_relay_dead_lettered_total",
        "Outbox rows sent to the dead-letter topic";
    /// Relay workers restarted after a panic.
    relay_worker_restarts: Counter = Counter::default(),
        "firstcome_relay_worker_restarts_total",
        "Relay workers restarted after a panic";
    /// Rows delivered after an older row of their key failed (per-key order broken on the
    /// topic). Zero unless librdkafka breaks its gap-less guarantee.
    relay_order_violations: Counter = Counter::default(),
        "firstcome_relay_order_violations_total",
        "Rows delivered after an older row of their key failed (zero unless Kafka's client broke its ordering guarantee)";
    /// Shards this instance's relay held at its last lease renewal.
    relay_shards_led: Gauge = Gauge::default(),
        "firstcome_relay_shards_led",
        "Relay shards this instance led at its last lease renewal";

    consumer_events: Family<ConsumerEventLabels, Counter> = Family::default(),
        "firstcome_consumer_events_total",
        "Consumer events by result (applied, duplicate, dead_lettered; skipped: dropped by the broker before this consumer read them, never applied)";
    /// Failed consumer transactions (and dead-letter publishes), each retried.
    consumer_retries: Family<ConsumerLabels, Counter> = Family::default(),
        "firstcome_consumer_retries_total",
        "Consumer transactions that failed and were retried";
    /// Messages not yet applied, per assigned partition.
    consumer_lag: Family<ConsumerPartitionLabels, Gauge> = Family::default(),
        "firstcome_consumer_lag",
        "Messages not yet applied per assigned partition";
    /// Event's `occurredAt` → the consumer's commit, per applied event.
    consumer_apply_latency: HistogramFamily<ConsumerLabels> = Family::new_with_constructor(lag),
        "firstcome_consumer_apply_latency_seconds",
        "Event occurredAt to the consumer's commit, per applied event", Unit::Seconds;

    /// Written by [`crate::upkeep::drift`]: gate stock + open-reservation units +
    /// `gate_return` marker units − `remaining_stock`, per open campaign whose gate state is
    /// loaded, at the last audit (docs/design.md §14).
    gate_drift: Family<CampaignLabels, Gauge> = Family::default(),
        "firstcome_gate_drift_units",
        "Gate stock plus units in open reservations and return markers, minus MySQL's remaining stock, per campaign at the last audit";

    /// Live controls this instance committed (docs/design.md §15), by kind.
    campaign_controls: Family<ControlLabels, Counter> = Family::default(),
        "firstcome_campaign_controls_total",
        "Live campaign controls committed by this instance, by kind (STOCK_CHANGED, PAUSED, RESUMED, CLOSED)";

    /// Units moved between a bucketed campaign's rows by this instance (docs/design.md §21), by
    /// kind: REFILL (from the pool), STEAL (from a sibling).
    bucket_transfers: Family<ControlLabels, Counter> = Family::default(),
        "firstcome_bucket_transfers_total",
        "Transfers of units into a bucket committed by this instance, by kind (REFILL from the pool, STEAL from a sibling)";
    /// A dry bucket's searches for units by what they found: MOVED, IN_FLIGHT, SOLD_OUT.
    bucket_searches: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_bucket_searches_total",
        "Searches of a dry bucket for units, by outcome (MOVED, IN_FLIGHT, SOLD_OUT)";

    /// Waiting tickets per campaign, as this instance's last call to the room saw them
    /// (docs/design.md §16).
    queue_length: Family<CampaignLabels, Gauge> = Family::default(),
        "firstcome_queue_length",
        "Waiting tickets of a campaign's waiting room, as this instance last saw them";
    /// Users admitted by calls of this instance (every call admits what is due, whoever asks).
    queue_admitted: Family<CampaignLabels, Counter> = Family::default(),
        "firstcome_queue_admitted_total",
        "Users the waiting room admitted, per campaign (divide the wait by it for the mean wait)";
    queue_wait: Family<CampaignLabels, Counter<f64, AtomicU64>> = Family::default(),
        "firstcome_queue_wait_seconds_total",
        "Time admitted users waited in the queue, summed, per campaign", Unit::Seconds;
    /// Waitlists (docs/design.md §22): their length as this instance last saw it, and their
    /// offers by outcome.
    waitlist_length: Family<CampaignLabels, Gauge> = Family::default(),
        "firstcome_waitlist_length",
        "Tickets on a campaign's waitlist, as this instance last saw them";
    waitlist_offers: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_waitlist_offers_total",
        "Waitlist offers by outcome: OFFERED (a unit that came back offered to the next waitlisted user), TAKEN (used by a win), PASSED (expired, passed on)";
    admission_refused: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_admission_refused_total",
        "Joins of a campaign with a waiting room refused for their admission token, by reason";

    /// A group's limit refusing a join (docs/design.md §22): `GATE` in Redis's atomic step,
    /// `MYSQL` by the guard in the win's transaction (the gate had not seen the units).
    group_limit_refused: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_group_limit_refused_total",
        "Joins refused for their group's per-user limit, by where (GATE, MYSQL)";

    /// Refused joins this instance counted (the per-campaign counts are in MySQL, refusal::flush).
    refusals: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_refusals_total",
        "Joins refused by this instance, by the error code they were answered with";
    /// Live-stream watchers this instance serves (docs/design.md §20).
    live_watchers: Gauge = Gauge::default(),
        "firstcome_live_watchers",
        "Live-stream watchers this instance serves now";
    live_watchers_dropped: Counter = Counter::default(),
        "firstcome_live_watchers_dropped_total",
        "Live-stream watchers dropped because they stopped reading";
    live_snapshots: Counter = Counter::default(),
        "firstcome_live_snapshots_total",
        "Live snapshots taken (one per watched campaign and interval, whatever the watchers)";
    live_queries: Counter = Counter::default(),
        "firstcome_live_queries_total",
        "MySQL queries run for live snapshots";

    /// Sync-path wins committed whose event never reached Kafka (what the outbox prevents).
    sync_events_lost: Counter = Counter::default(),
        "firstcome_sync_events_lost_total",
        "Sync-path wins committed whose event never reached Kafka";

    /// The door (docs/design.md §17): connections, client addresses, admin attempts.
    connections_open: Gauge = Gauge::default(),
        "firstcome_connections_open",
        "HTTP connections this instance holds open now";
    connections_refused: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_connections_refused_total",
        "HTTP connections answered 503 and closed at once, by the cap they met (per_client, total)";
    connections_timed_out: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_connections_timed_out_total",
        "HTTP connections closed by a client deadline, by which (idle, header)";
    client_ip_unparseable: Counter = Counter::default(),
        "firstcome_client_ip_unparseable_total",
        "Requests from a trusted proxy whose client-address header could not be read (the peer counted as the client)";
    admin_auth_failures: Counter = Counter::default(),
        "firstcome_admin_auth_failures_total",
        "Admin calls refused for their token (401), and those refused before the comparison (429) among them";
    admin_door_tracked: Gauge = Gauge::default(),
        "firstcome_admin_door_tracked_clients",
        "Client addresses the admin door holds a bucket of failed attempts for (bounded by ADMIN_DOOR_MAX_CLIENTS)";
    rate_limit_unavailable: Counter = Counter::default(),
        "firstcome_rate_limit_unavailable_total",
        "Calls let through because the rate limiter could not reach Redis";
    readiness_checks: Counter = Counter::default(),
        "firstcome_readiness_checks_total",
        "Readiness checks run (each pings the dependencies); at most one a second, whoever asks";
    bot_checks: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_bot_checks_total",
        "Bot-check decisions (BOT_CHECK), by result: passed, missing, invalid, expired, reused, unavailable, let_through (the provider did not answer, BOT_CHECK_FAIL_OPEN)";
    bot_check_duration: Histogram = latency(),
        "firstcome_bot_check_duration_seconds",
        "Time to decide one bot check (a proof of work's verification, or the provider's siteverify call)", Unit::Seconds;
    live_streams_refused: Family<ReasonLabels, Counter> = Family::default(),
        "firstcome_live_streams_refused_total",
        "Live-stream requests refused by a watcher cap, by which (per_client, total)";
}

/// Registers `metric` under `exported`, its name as Prometheus exports it, less what the registry
/// adds back when encoding: a counter's `_total` and the unit's suffix (`_seconds`).
/// The test `names_list_every_exported_family` checks that the result is `exported` again.
fn register(
    registry: &mut Registry,
    exported: &str,
    help: &str,
    unit: Option<Unit>,
    metric: impl Metric,
) {
    let mut name = exported;
    if matches!(metric.metric_type(), MetricType::Counter) {
        name = name.strip_suffix("_total").unwrap_or(name);
    }
    match unit {
        Some(unit) => {
            let suffix = format!("_{}", unit.as_str());
            let name = name.strip_suffix(suffix.as_str()).unwrap_or(name);
            registry.register_with_unit(name, help, unit, metric);
        }
        None => registry.register(name, help, metric),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
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
        m.gate_drift
            .get_or_create(&CampaignLabels { campaign: 1 })
            .set(0);
        m.campaign_controls
            .get_or_create(&ControlLabels { kind: "PAUSED" })
            .inc();
        m.bucket_transfers
            .get_or_create(&ControlLabels { kind: "STEAL" })
            .inc();
        m.bucket_searches
            .get_or_create(&ReasonLabels { reason: "MOVED" })
            .inc();
        let campaign = CampaignLabels { campaign: 1 };
        m.queue_length.get_or_create(&campaign).set(3);
        m.queue_admitted.get_or_create(&campaign).inc();
        m.queue_wait.get_or_create(&campaign).inc_by(0.5);
        m.waitlist_length.get_or_create(&campaign).set(2);
        m.waitlist_offers
            .get_or_create(&ReasonLabels { reason: "TAKEN" })
            .inc();
        m.admission_refused
            .get_or_create(&ReasonLabels { reason: "USED" })
            .inc();
        m.refusals
            .get_or_create(&ReasonLabels { reason: "SOLD_OUT" })
            .inc();
        m.group_limit_refused
            .get_or_create(&ReasonLabels { reason: "GATE" })
            .inc();
        for family in [
            &m.connections_refused,
            &m.connections_timed_out,
            &m.live_streams_refused,
            &m.bot_checks,
            &m.writer_handovers,
        ] {
            family
                .get_or_create(&ReasonLabels { reason: "total" })
                .inc();
        }
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
