//! `/health/ready` reports Kafka's live state (from the producers), the relay's shard leadership,
//! the consumers and whether user identity is checked as typed values, while readiness itself
//! stays MySQL + Redis only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    spawn::{spawn_app, spawn_app_with, spawn_pair, test_settings, with_relay, TestApp},
    wait::wait_until,
};

/// How long a change of Kafka's state may take to show (the statistics come every second; a
/// reconnection backs off for up to a few seconds).
const NOTICE: Duration = Duration::from_secs(15);

async fn ready(app: &TestApp) -> Value {
    let reply = app.admin_get("/health/ready").await;
    assert_eq!(reply.status, 200, "MySQL and Redis are up: {reply:?}");
    reply.body
}

async fn kafka_state(app: &TestApp) -> String {
    ready(app).await["kafka"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn since(body: &Value) -> DateTime<Utc> {
    body["kafka"]["since"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("kafka.since is an RFC 3339 time: {body}"))
}

fn led(body: &Value) -> Vec<u64> {
    body["relay"]["shardsLed"]
        .as_array()
        .unwrap_or_else(|| panic!("relay.shardsLed: {body}"))
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ready_reports_kafka_unreachable_after_broker_down_and_reachable_after_broker_up() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let broker = app.broker.clone().expect("embedded broker");

    wait_until("Kafka to be reachable", NOTICE, || async {
        kafka_state(&app).await == "REACHABLE"
    })
    .await;
    let body = ready(&app).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["kafka"]["kind"], "EMBEDDED");
    assert_eq!(
        body["kafka"]["bootstrapServers"],
        app.kafka_bootstrap.as_str()
    );
    assert!(body["kafka"].get("lastError").is_none(), "{body}");
    let up_since = since(&body);

    // One instance leads every shard.
    wait_until("the relay to lead every shard", NOTICE, || async {
        led(&ready(&app).await).len() == app.shards as usize
    })
    .await;
    let body = ready(&app).await;
    let relay = &body["relay"];
    assert_eq!(relay["enabled"], true);
    assert_eq!(relay["state"], "LEADING");
    assert_eq!(relay["totalShards"], app.shards);
    assert_eq!(relay["shardsLedCount"], app.shards);
    assert_eq!(led(&body), (0..u64::from(app.shards)).collect::<Vec<_>>());
    assert_eq!(
        relay["owner"],
        app.relay.as_ref().expect("relay").owner.as_str()
    );

    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    let down_at = Utc::now();
    wait_until("Kafka to be reported unreachable", NOTICE, || async {
        kafka_state(&app).await == "UNREACHABLE"
    })
    .await;
    let body = ready(&app).await;
    let down_since = since(&body);
    assert!(
        down_since >= down_at - chrono::Duration::seconds(1) && down_since > up_since,
        "since is when it went down: {body}"
    );
    assert!(body["kafka"]["lastError"].is_string(), "{body}");
    assert_eq!(body["status"], "ready", "readiness is MySQL and Redis only");

    // Wins are still accepted; their events wait in the outbox.
    let campaign = app.open_campaign(10, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    assert_eq!(app.outbox_count("PUBLISHED").await, 0);

    // The admin summary shows the same typed values.
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.status, 200, "{summary:?}");
    assert_eq!(summary.body["kafka"]["state"], "UNREACHABLE");
    assert_eq!(summary.body["relay"]["state"], "LEADING");
    assert_eq!(summary.body["relay"]["shardsLedCount"], app.shards);

    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");
    wait_until("Kafka to be reachable again", NOTICE, || async {
        kafka_state(&app).await == "REACHABLE"
    })
    .await;
    let body = ready(&app).await;
    assert!(since(&body) > down_since, "{body}");
    assert!(body["kafka"].get("lastError").is_none(), "{body}");
    app.wait_for_outbox_drained(NOTICE).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 1);
    app.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_split_the_shards_or_one_is_standby() {
    let (a, b, broker) = spawn_pair().await;
    let total = a.shards as usize;
    // Each instance reports what it leads; together they lead every shard exactly once.
    wait_until(
        "the pair to lead every shard between them",
        NOTICE,
        || async {
            let (ra, rb) = (ready(&a).await, ready(&b).await);
            let mut all = [led(&ra), led(&rb)].concat();
            all.sort_unstable();
            all == (0..total as u64).collect::<Vec<_>>()
        },
    )
    .await;
    for app in [&a, &b] {
        let body = ready(app).await;
        let relay = &body["relay"];
        let count = led(&body).len();
        assert_eq!(relay["shardsLedCount"], count);
        assert_eq!(relay["totalShards"], total);
        let want = if count == 0 { "STANDBY" } else { "LEADING" };
        assert_eq!(relay["state"], want, "{body}");
        assert_eq!(body["kafka"]["kind"], "EXTERNAL");
        assert_eq!(
            body["kafka"]["bootstrapServers"],
            broker.bootstrap_servers()
        );
    }

    // When one stops, the other takes over every shard once the leases expire.
    a.stop().await.expect("clean stop");
    wait_until("the survivor to lead every shard", NOTICE, || async {
        led(&ready(&b).await).len() == total
    })
    .await;
    assert_eq!(ready(&b).await["relay"]["state"], "LEADING");
    b.stop().await.expect("clean stop");
}

#[tokio::test]
async fn ready_reports_a_disabled_relay() {
    let app = spawn_app().await;
    let body = ready(&app).await;
    assert_eq!(body["relay"]["enabled"], false);
    assert_eq!(body["relay"]["state"], "DISABLED");
    assert_eq!(body["relay"]["shardsLed"], serde_json::json!([]));
    assert_eq!(body["relay"]["totalShards"], app.shards);
    assert!(
        ["CONNECTING", "REACHABLE"].contains(&body["kafka"]["state"].as_str().unwrap_or("")),
        "{body}"
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn ready_reports_whether_user_identity_is_checked() {
    // Loopback, USER_AUTH unset: identity off, which only this host can use.
    let app = spawn_app().await;
    assert_eq!(
        ready(&app).await["identity"],
        serde_json::json!({"userAuth": "none", "exposed": false})
    );
    let app = spawn_app_with(crate::jwt::with_jwt(test_settings().await)).await;
    assert_eq!(
        ready(&app).await["identity"],
        serde_json::json!({"userAuth": "jwt", "exposed": false})
    );
    // An address other hosts reach: tests/integration/operations/protected_mode.rs (the binary).
}
