//! The synchronous baseline: the same Exactly-N rules as the outbox path, and the lost event it
//! exists to demonstrate (a produce failure after commit).

use std::time::Duration;

use futures::future::join_all;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

use crate::{
    http::{burst_users, winners, Reply},
    kafka::read_topic,
    spawn::{spawn_app, spawn_app_with, test_settings, TestApp},
};

async fn join_sync(app: &TestApp, campaign: i64, user: i64) -> Reply {
    app.post_json(
        &format!("/api/v1/campaigns/{campaign}/participations/sync"),
        &json!({"userId": user}),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_path_exactly_n_wins_under_a_concurrent_burst() {
    // The naive path has no gate: all 400 requests queue for the campaign row's lock, one
    // transaction at a time. On a slow disk the last of them wait past the default 2 s for a
    // pooled connection and get the designed SERVICE_BUSY; this test is about who wins, so every
    // request is let wait for its turn.
    let mut settings = test_settings().await;
    settings.database.acquire_timeout = Duration::from_secs(60);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(50, 1).await;
    let users = burst_users();
    let replies = join_all(users.iter().map(|&u| join_sync(&app, campaign, u))).await;
    let winners = winners(&replies, &users);
    assert_eq!(winners.len(), 50);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 50);
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT user_id) FROM participation")
            .await,
        50
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM outbox_event").await,
        0,
        "the sync path writes no outbox"
    );
    // Each win was produced (and acknowledged) before its 201.
    let messages = read_topic(
        &app.kafka_bootstrap,
        &app.topic,
        50,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(messages.len(), 50);
    let again = join_sync(&app, campaign, 1).await;
    assert_eq!(again.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_failure_after_commit_loses_the_event_and_is_counted() {
    let app = spawn_app().await;
    let broker = app.broker.clone().expect("embedded broker");
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(join_sync(&app, campaign, 1).await.status, 201);

    // Kafka refuses every produce (non-retriable inside librdkafka, so it fails at once).
    broker.with_cluster(|c| {
        c.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        )
    });
    let lost = join_sync(&app, campaign, 2).await;
    assert_eq!(lost.status, 201, "the participation is committed: {lost:?}");
    broker.with_cluster(|c| c.clear_request_errors(RDKafkaApiKey::Produce));

    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM participation").await,
        2,
        "both wins are in MySQL"
    );
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.body["syncEventsLost"], json!(1), "{summary:?}");
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, 1, Duration::from_secs(10)).await;
    let users: Vec<_> = messages
        .iter()
        .map(|m| m.json()["userId"].clone())
        .collect();
    assert_eq!(
        users,
        vec![json!(1)],
        "only the first win ever reached Kafka"
    );
}

/// An operator switches the baseline off (`SYNC_PATH_ENABLED=false`; unset, it is off on an
/// exposed address): 404, nothing sold, while the outbox path serves the campaign.
#[tokio::test]
async fn a_service_with_the_sync_path_off_answers_not_found_and_sells_nothing_there() {
    let mut settings = test_settings().await;
    settings.http.sync_path = Some(false);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(5, 1).await;
    let refused = join_sync(&app, campaign, 1).await;
    assert_eq!(
        (refused.status, refused.code()),
        (404, "NOT_FOUND"),
        "{refused:?}"
    );
    assert_eq!(app.remaining_stock(campaign).await, 5);
    assert_eq!(
        app.join(campaign, 1, 1).await.status,
        201,
        "the outbox path serves"
    );
}
