//! `GET /metrics` (docs/design.md §12) after real traffic: the exposition parses, and each figure equals
//! what the test counted or what the tables hold: outcomes by code, requests by route template,
//! the outbox gauges, the publish-lag histogram, the consumers' events. `firstcome consume` serves
//! the same endpoint.

mod consume_process;
pub(crate) mod exposition;

use std::{collections::HashMap, time::Duration};

use firstcome::{events::dlq, kafka::EmbeddedBroker};
use futures::future::join_all;
use serde_json::json;

use crate::{
    consumer_helpers::with_consumers,
    http::burst_users,
    spawn::{spawn_app, spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

use exposition::{has, scrape, sum, Sample};

const SETTLED: Duration = Duration::from_secs(30);
/// Route labels are the spec's paths.
const PARTICIPATE: &str = "/api/v1/campaigns/{id}/participations";
const PARTICIPATE_SYNC: &str = "/api/v1/campaigns/{id}/participations/sync";

/// The code a reply counts under: `CREATED` or its error code.
fn code(status: u16, body: &serde_json::Value) -> String {
    if status == 201 {
        "CREATED".into()
    } else {
        body["code"].as_str().expect("an error code").to_string()
    }
}

/// Outcomes the replies of the burst call for, by path (`outbox`, `sync`) and code.
type Outcomes = HashMap<(&'static str, String), f64>;
/// Requests the burst sent, by route template and status.
type Requests = HashMap<(&'static str, u16), f64>;

/// Outbox path: 400 requests from 300 users for 120 units (wins, SOLD_OUT, ALREADY_PARTICIPATED),
/// plus a campaign that does not exist; sync path: 25 users for 10 units. Returns what the
/// replies were, tallied as the metrics must count them.
async fn burst(app: &TestApp, outbox_campaign: i64, sync_campaign: i64) -> (Outcomes, Requests) {
    let users = burst_users();
    let outbox = join_all(users.iter().map(|u| app.join(outbox_campaign, *u, 1))).await;
    let missing = app.join(999_999, 1, 1).await;
    let sync_path = format!("/api/v1/campaigns/{sync_campaign}/participations/sync");
    let sync = join_all((1..=25).map(|u| {
        let (app, path) = (&app, &sync_path);
        async move { app.post_json(path, &json!({"userId": u}), None).await }
    }))
    .await;
    let mut expected: Outcomes = HashMap::new();
    let mut by_status: Requests = HashMap::new();
    for (path, route, reply) in outbox
        .iter()
        .chain([&missing])
        .map(|r| ("outbox", PARTICIPATE, r))
        .chain(sync.iter().map(|r| ("sync", PARTICIPATE_SYNC, r)))
    {
        *expected
            .entry((path, code(reply.status, &reply.body)))
            .or_default() += 1.0;
        *by_status.entry((route, reply.status)).or_default() += 1.0;
    }
    (expected, by_status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_burst_metrics_equal_the_responses_and_the_tables() {
    let mut settings = with_consumers(with_relay(test_settings().await));
    settings.metrics.outbox_refresh = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let outbox_campaign = app.open_campaign(120, 1).await;
    let sync_campaign = app.open_campaign(10, 1).await;
    // One user through a waiting room, for its families (counted in `waiting_room::tokens`).
    let queued = app
        .open_campaign_with(5, 1, json!({"admission": "QUEUE"}))
        .await;
    let ticket = app
        .post_json(
            &format!("/api/v1/campaigns/{queued}/queue"),
            &json!({"userId": 1}),
            None,
        )
        .await;
    assert_eq!(ticket.body["state"], "ADMITTED", "{ticket:?}");

    let (expected, by_status) = burst(&app, outbox_campaign, sync_campaign).await;
    assert!(expected[&("outbox", "SOLD_OUT".to_string())] > 0.0);
    assert!(expected[&("outbox", "ALREADY_PARTICIPATED".to_string())] > 0.0);
    assert_eq!(expected[&("outbox", "CAMPAIGN_NOT_FOUND".to_string())], 1.0);
    assert_eq!(expected[&("sync", "CREATED".to_string())], 10.0);
    let unknown = app.get("/no/such/route").await;
    assert_eq!(unknown.status, 404);

    app.wait_for_outbox_drained(SETTLED).await;
    app.wait_for_consumers(SETTLED).await;
    let published = app.outbox_count("PUBLISHED").await;
    let wins = app.scalar("SELECT COUNT(*) FROM participation").await;
    assert_eq!(published, 120);
    assert_eq!(wins, 130);

    // The outbox gauges equal the table once the refresher has run after the drain.
    let table = [
        ("PENDING", app.outbox_count("PENDING").await),
        ("PUBLISHED", published),
        ("DEAD", app.outbox_count("DEAD").await),
    ];
    wait_for_settled_gauges(&app, &table).await;
    // The drift audit runs every few seconds: its gauge appears once it has seen the campaign.
    let drift_of = [("campaign", outbox_campaign.to_string())];
    let drift_of: Vec<(&str, &str)> = drift_of.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wait_until(
        "the drift audit to report the campaign",
        SETTLED,
        || async { has(&scrape(&app).await, "firstcome_gate_drift_units", &drift_of) },
    )
    .await;

    let m = scrape(&app).await;
    assert_eq!(sum(&m, "firstcome_gate_drift_units", &drift_of), 0.0);
    for (status, rows) in table {
        assert_eq!(
            sum(&m, "firstcome_outbox_rows", &[("status", status)]),
            rows as f64,
            "{status}"
        );
    }
    assert_eq!(sum(&m, "firstcome_outbox_oldest_due_age_seconds", &[]), 0.0);
    assert_outcomes_equal_the_replies(&m, &expected);
    assert_requests_by_route(&m, &by_status, burst_users().len(), outbox_campaign);
    assert_relay_and_consumers(&app, &m, published, wins).await;
    assert_latencies_pools_and_families(&m);
}

/// Waits until the outbox gauges equal `table` and the consumers' lag gauges, which come from
/// librdkafka's statistics once a second, report 0.
async fn wait_for_settled_gauges(app: &TestApp, table: &[(&str, i64)]) {
    wait_until("the outbox gauges to match the table", SETTLED, || async {
        let m = scrape(app).await;
        table.iter().all(|(status, rows)| {
            sum(&m, "firstcome_outbox_rows", &[("status", status)]) == *rows as f64
        })
    })
    .await;
    wait_until(
        "every consumer's lag to be reported as 0",
        SETTLED,
        || async {
            let m = scrape(app).await;
            ["stats", "rewards"].iter().all(|c| {
                has(&m, "firstcome_consumer_lag", &[("consumer", c)])
                    && sum(&m, "firstcome_consumer_lag", &[("consumer", c)]) == 0.0
            })
        },
    )
    .await;
}

/// Outcomes by path and code: exactly the replies, nothing else.
fn assert_outcomes_equal_the_replies(m: &[Sample], expected: &Outcomes) {
    for ((path, code), n) in expected {
        assert_eq!(
            sum(
                m,
                "firstcome_participation_outcomes_total",
                &[("path", path), ("code", code)]
            ),
            *n,
            "{path} {code}"
        );
    }
    assert_eq!(
        sum(m, "firstcome_participation_outcomes_total", &[]),
        expected.values().sum::<f64>()
    );
}

/// Requests by route template and status; the raw path never appears. `joins` is how many
/// requests the burst sent on the outbox path.
fn assert_requests_by_route(
    m: &[Sample],
    by_status: &Requests,
    joins: usize,
    outbox_campaign: i64,
) {
    for ((route, status), n) in by_status {
        let status = status.to_string();
        assert_eq!(
            sum(
                m,
                "firstcome_http_requests_total",
                &[("method", "POST"), ("route", route), ("status", &status)]
            ),
            *n,
            "{route} {status}"
        );
    }
    assert_eq!(
        sum(
            m,
            "firstcome_http_requests_total",
            &[("method", "POST"), ("route", PARTICIPATE)]
        ),
        joins as f64 + 1.0
    );
    assert_eq!(
        sum(
            m,
            "firstcome_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", PARTICIPATE)]
        ),
        joins as f64 + 1.0
    );
    assert_eq!(
        sum(
            m,
            "firstcome_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    let raw = [format!("/{outbox_campaign}/"), "/999999/".to_string()];
    assert!(
        !m.iter().any(|s| s
            .labels
            .get("route")
            .is_some_and(|r| raw.iter().any(|id| r.contains(id.as_str())))),
        "a raw path in a route label"
    );
}

/// Relay: one lag observation per published row, and the admin summary reads the same values.
/// Consumers: every win applied once by each (outbox and sync events alike), one latency
/// observation per applied event.
async fn assert_relay_and_consumers(app: &TestApp, m: &[Sample], published: i64, wins: i64) {
    assert_eq!(
        sum(m, "firstcome_relay_publish_lag_seconds_count", &[]),
        published as f64
    );
    assert_eq!(
        sum(m, "firstcome_relay_published_total", &[]),
        published as f64
    );
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.body["relayPublished"], json!(published));
    assert_eq!(
        summary.body["relayRetried"],
        json!(sum(m, "firstcome_relay_retried_total", &[]) as i64)
    );
    assert_eq!(
        sum(m, "firstcome_relay_shards_led", &[]),
        app.settings_shards() as f64
    );

    for consumer in ["stats", "rewards"] {
        let applied = [("consumer", consumer), ("result", "applied")];
        assert_eq!(
            sum(m, "firstcome_consumer_events_total", &applied),
            wins as f64,
            "{consumer}"
        );
        assert_eq!(
            sum(
                m,
                "firstcome_consumer_apply_latency_seconds_count",
                &[("consumer", consumer)]
            ),
            wins as f64,
            "{consumer}"
        );
    }
}

/// Latencies and pools, and every metric family the service declares is exported.
fn assert_latencies_pools_and_families(m: &[Sample]) {
    assert!(sum(m, "firstcome_gate_duration_seconds_count", &[]) >= 120.0);
    assert_eq!(
        sum(
            m,
            "firstcome_participation_transaction_duration_seconds_count",
            &[("path", "sync")]
        ),
        25.0
    );
    assert!(
        sum(
            m,
            "firstcome_participation_transaction_duration_seconds_count",
            &[("path", "outbox")]
        ) >= 120.0
    );
    for pool in ["api", "relay", "consumers"] {
        for state in ["in_use", "idle"] {
            assert!(
                has(
                    m,
                    "firstcome_db_pool_connections",
                    &[("pool", pool), ("state", state)]
                ),
                "{pool} {state}"
            );
        }
        assert!(sum(m, "firstcome_db_pool_connections", &[("pool", pool)]) >= 1.0);
    }
    for family in firstcome::telemetry::metrics::NAMES {
        assert!(
            m.iter().any(|s| s.name.starts_with(family)),
            "{family} missing"
        );
    }
}

/// Each application counts only its own requests (one registry per application).
#[tokio::test]
async fn two_applications_in_one_process_count_their_own_requests() {
    let (a, b) = tokio::join!(spawn_app(), spawn_app());
    for _ in 0..3 {
        assert_eq!(a.get("/health/live").await.status, 200);
    }
    assert_eq!(b.get("/health/live").await.status, 200);
    let live = [("route", "/health/live"), ("status", "200")];
    let count = |m: Vec<Sample>| sum(&m, "firstcome_http_requests_total", &live);
    assert_eq!(count(scrape(&a).await), 3.0);
    assert_eq!(count(scrape(&b).await), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn firstcome_consume_serves_metrics_and_health() {
    const TOPIC: &str = "campaign.participation.v1";
    let topics = [
        TOPIC.to_string(),
        dlq::relay_topic(TOPIC),
        dlq::consumer_topic(TOPIC, "stats"),
        dlq::consumer_topic(TOPIC, "rewards"),
    ];
    let broker = EmbeddedBroker::start(&topics, 4).expect("broker");
    let bootstrap = broker.bootstrap_servers().to_string();
    let mut settings = with_relay(test_settings().await);
    settings.kafka.bootstrap_servers = Some(bootstrap.clone());
    let db_url = settings.database.url.expose().to_string();
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(10, 1).await;
    let replies = join_all((1..=10).map(|u| app.join(campaign, u, 1))).await;
    assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
    app.wait_for_outbox_drained(SETTLED).await;

    let (consume, base) = consume_process::start(&db_url, &bootstrap).await;
    let client = reqwest::Client::new();
    consume_process::wait_until_every_win_is_applied(&client, &base).await;
    consume_process::assert_its_metrics(&client, &base).await;
    consume_process::assert_its_health(&client, &base).await;
    consume_process::assert_its_deadlines(&base).await;
    drop(consume);
    app.stop().await.expect("clean stop");
}
