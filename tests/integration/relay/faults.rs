//! The relay through faults injected on librdkafka's mock cluster: retriable produce errors and
//! an unreachable broker (docs/design.md §2.3, §2.5, §2.9's outage policy), poison rows and exhausted
//! attempts (dead letters, redrive one or a campaign's), a panicking worker.

use std::{sync::Arc, time::Duration};

use firstcome::{
    events::dlq,
    outbox::{self, OutboxStatus},
};
use futures::future::join_all;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    db::outbox_row,
    kafka::{assert_first_deliveries_in_order, read_topic},
    spawn::{spawn_app_with, start_broker, test_settings, with_relay, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

const DRAIN: Duration = Duration::from_secs(60);

/// Every row on the topic, first deliveries in outbox order per key.
async fn assert_order(app: &TestApp, expected: usize) -> Vec<crate::kafka::Consumed> {
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, expected, DRAIN).await;
    let distinct = assert_first_deliveries_in_order(&messages, &app.outbox_ids().await);
    assert_eq!(distinct, expected, "every row reached the topic");
    messages
}

async fn max_attempts(app: &TestApp) -> i64 {
    app.scalar("SELECT COALESCE(MAX(attempts), 0) FROM outbox_event")
        .await
}

/// 60 participations over two campaigns while every Produce request is answered with `error`:
/// all are accepted, none published until `seen` holds; then the errors stop and everything is
/// published once, in order, with no dead letter.
async fn through_produce_errors<F, Fut>(app: &TestApp, error: RDKafkaRespErr, what: &str, seen: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let broker = app.broker.clone().expect("embedded broker");
    let campaigns = [
        app.open_campaign(100, 1).await,
        app.open_campaign(100, 1).await,
    ];
    broker.with_cluster(|c| c.request_errors(RDKafkaApiKey::Produce, &[error; 5_000]));
    let replies = join_all((1..=60).map(|u| app.join(campaigns[u as usize % 2], u, 1))).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "participations do not wait for Kafka"
    );
    wait_until(what, DRAIN, seen).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 0);
    assert!(
        app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
            .await
            > 0,
        "the failure is recorded on the rows"
    );
    broker.with_cluster(|c| c.clear_request_errors(RDKafkaApiKey::Produce));
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 60);
    assert_eq!(app.outbox_count("DEAD").await, 0);
    assert_order(app, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retriable_produce_errors_delay_publication_without_losing_reordering_or_using_attempts() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    // An error librdkafka retries itself: not acknowledged within KAFKA_MESSAGE_TIMEOUT_MS, the
    // rows are purged and go back to the outbox.
    through_produce_errors(
        &app,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        "the rows to come back from a purge",
        || async {
            app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
                .await
                > 0
        },
    )
    .await;
    assert_eq!(
        max_attempts(&app).await,
        0,
        "retried by librdkafka: no attempt used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_refusing_produces_uses_attempts_and_loses_or_reorders_nothing() {
    let mut settings = with_relay(test_settings().await);
    settings.relay.max_attempts = 1_000;
    let app = spawn_app_with(settings).await;
    // A refusal librdkafka does not retry (fixable by an operator): each one is an attempt.
    through_produce_errors(
        &app,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        "two failed attempts to be recorded",
        || async { max_attempts(&app).await >= 2 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_oldest_row_of_a_key_is_in_backoff_its_younger_rows_wait() {
    let mut settings = with_relay(test_settings().await);

    // Long enough that the younger rows surely arrive while the oldest waits.
    settings.relay.backoff_base = Duration::from_secs(2);
    settings.relay.backoff_cap = Duration::from_secs(2);
    let app = spawn_app_with(settings).await;
    let broker = app.broker.clone().expect("embedded broker");
    // Exactly one attempt fails: one refused Produce request.
    broker.with_cluster(|c| {
        c.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 1],
        )
    });
    let oldest = app.insert_rows("9001", &app.topic, 1).await.remove(0);
    wait_until("the oldest row to be in backoff", DRAIN, || async {
        app.scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event WHERE event_id = '{oldest}' AND attempts = 1 \
             AND available_at > UTC_TIMESTAMP(6)"
        ))
        .await
            == 1
    })
    .await;
    app.insert_rows("9001", &app.topic, 20).await;
    app.insert_rows("9002", &app.topic, 20).await;
    app.wait_for_outbox_drained(DRAIN).await;
    // Not one younger row of 9001 went out before the oldest; the other key did not wait.
    let younger_first = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event y JOIN outbox_event o ON o.event_id = '{oldest}' \
             WHERE y.msg_key = '9001' AND y.id > o.id AND y.published_at < o.published_at"
        ))
        .await;
    assert_eq!(younger_first, 0);
    let other_key_first = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event y JOIN outbox_event o ON o.event_id = '{oldest}' \
             WHERE y.msg_key = '9002' AND y.published_at < o.published_at"
        ))
        .await;
    assert_eq!(other_key_first, 20, "another key is never held up");
    assert_eq!(
        app.scalar(&format!(
            "SELECT attempts FROM outbox_event WHERE event_id = '{oldest}'"
        ))
        .await,
        1
    );
    assert_eq!(app.outbox_count("DEAD").await, 0);
    assert_order(&app, 41).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_down_for_longer_than_every_attempt_dead_letters_nothing() {
    let broker = Arc::new(start_broker());
    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    let mut settings = with_relay(test_settings().await);
    settings.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    // Under the old policy 2 attempts with a 100 ms cap dead-lettered within seconds.
    settings.relay.max_attempts = 2;
    settings.relay.backoff_base = Duration::from_millis(50);
    settings.relay.backoff_cap = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;

    let campaign = app.open_campaign(20, 1).await;
    for u in 1..=10 {
        assert_eq!(
            app.join(campaign, u, 1).await.status,
            201,
            "accepted while Kafka is down"
        );
    }
    let ready = app.admin_get("/health/ready").await;
    assert_eq!(
        ready.status, 200,
        "readiness does not depend on Kafka: {ready:?}"
    );
    // Rows go back to the outbox each time Kafka does not answer in time...
    wait_until("rows to come back from a purge", DRAIN, || async {
        app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
            .await
            > 0
    })
    .await;
    let first_back = app
        .scalar("SELECT CAST(UNIX_TIMESTAMP(UTC_TIMESTAMP(6)) AS SIGNED)")
        .await;
    wait_until(
        "the outage to outlast several purges and every attempt",
        DRAIN,
        || async {
            app.scalar("SELECT CAST(UNIX_TIMESTAMP(UTC_TIMESTAMP(6)) AS SIGNED)")
                .await
                > first_back + 3
        },
    )
    .await;
    // ...without using an attempt or dead-lettering anything.
    assert_eq!(app.outbox_count("PUBLISHED").await, 0);
    assert_eq!(app.outbox_count("DEAD").await, 0);
    assert_eq!(max_attempts(&app).await, 0);

    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 10);
    assert_order(&app, 10).await;
}

/// Writes an outbox row by hand (the relay publishes whatever the outbox holds).
async fn insert_row(app: &TestApp, key: &str, topic: &str, payload: &str) -> String {
    let row = outbox_row(uuid::Uuid::now_v7(), topic, key, payload.into());
    outbox::table::insert(&app.db, std::slice::from_ref(&row))
        .await
        .expect("insert outbox row");
    row.event_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_row_is_dead_lettered_without_blocking_anyone_and_can_be_redriven() {
    let mut settings = with_relay(test_settings().await);
    settings.kafka.message_max_bytes = 1_000; // the poison row is larger; normal events are ~300 bytes
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(50, 1).await;

    let big = json!({"pad": "x".repeat(3_000)}).to_string();
    let poison = insert_row(&app, "999999", &app.topic, &big).await;
    let after_poison = insert_row(&app, "999999", &app.topic, "{\"small\":true}").await;
    let replies = join_all((1..=20).map(|u| app.join(campaign, u, 1))).await;
    assert!(replies.iter().all(|r| r.status == 201));
    app.wait_for_outbox_drained(DRAIN).await;

    assert_eq!(app.outbox_count("DEAD").await, 1);
    assert_eq!(
        app.outbox_count("PUBLISHED").await,
        21,
        "other keys, and the poison row's successor, went on"
    );
    let dlq = read_topic(
        &app.kafka_bootstrap,
        &dlq::relay_topic(&app.topic),
        1,
        DRAIN,
    )
    .await;
    assert_eq!(dlq.len(), 1);
    let dead = &dlq[0];
    assert_eq!(dead.key, "999999");
    assert_eq!(dead.event_id(), poison);
    assert_eq!(dead.payload, big, "the DLQ keeps the original value");
    assert_eq!(dead.headers[dlq::REASON], "non_retriable");
    assert_eq!(dead.headers[dlq::ATTEMPTS], "1");
    assert_eq!(dead.headers[dlq::ORIGINAL_TOPIC], app.topic);
    assert!(
        dead.headers[dlq::ERROR].contains("too large"),
        "{:?}",
        dead.headers
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&dead.headers[dlq::FAILED_AT]).is_ok());
    let main = read_topic(&app.kafka_bootstrap, &app.topic, 21, DRAIN).await;
    assert!(main.iter().any(|m| m.event_id() == after_poison));

    let list = app.admin_get("/api/v1/admin/outbox/dead").await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body["items"][0]["eventId"], json!(poison));
    assert_eq!(list.body["items"][0]["attempts"], json!(1));
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(
        (
            summary.body["dead"].clone(),
            summary.body["published"].clone()
        ),
        (json!(1), json!(21))
    );

    // The cause is removed (an operator shrinks the row), then the row is redriven.
    app.db
        .execute_unprepared(&format!(
            "UPDATE outbox_event SET payload = '{{\"fixed\":true}}' WHERE event_id = '{poison}'"
        ))
        .await
        .expect("fix the row");
    let redrive = |id: String| {
        app.send(
            app.client
                .post(app.url(&format!("/api/v1/admin/outbox/{id}/redrive")))
                .bearer_auth(ADMIN_TOKEN),
        )
    };
    let redriven = redrive(poison.clone()).await;
    assert_eq!(redriven.status, 200, "{redriven:?}");
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("DEAD").await, 0);
    let main = read_topic(&app.kafka_bootstrap, &app.topic, 22, DRAIN).await;
    assert!(
        main.iter().any(|m| m.event_id() == poison),
        "published after the redrive"
    );
    assert_eq!(
        redrive(poison.clone()).await.code(),
        "EVENT_NOT_FOUND",
        "only DEAD rows are redriven"
    );
    let unauthorized = app
        .send(app.client.get(app.url("/api/v1/admin/outbox")))
        .await;
    assert_eq!(unauthorized.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_attempts_go_to_the_dead_letter_topic() {
    let mut settings = with_relay(test_settings().await);
    settings.relay.max_attempts = 2;

    let app = spawn_app_with(settings).await;
    let broker = app.broker.clone().expect("embedded broker");
    // A broker refuses the produce for exactly two attempts of the relay (one request each);
    // the dead-letter produce that follows goes through.
    broker.with_cluster(|c| {
        c.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 2],
        )
    });
    let event = app.insert_rows("77", &app.topic, 1).await.remove(0);
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("DEAD").await, 1);
    assert_eq!(app.scalar("SELECT attempts FROM outbox_event").await, 2);
    let dlq = read_topic(
        &app.kafka_bootstrap,
        &dlq::relay_topic(&app.topic),
        1,
        DRAIN,
    )
    .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].event_id(), event);
    assert_eq!(dlq[0].headers[dlq::REASON], "attempts_exhausted");
    assert_eq!(dlq[0].headers[dlq::ATTEMPTS], "2");
    assert!(
        dlq[0].headers[dlq::ERROR].contains("uthoriz"),
        "{:?}",
        dlq[0].headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dead_row_of_a_campaign_is_redriven_in_one_call_and_published_in_order() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    // Dead rows of campaign 5555 (and one of another campaign), as an outage past
    // RELAY_MAX_RETRY_AGE would leave them.
    let dead = app
        .insert_rows_as("5555", &app.topic, 5, OutboxStatus::Dead)
        .await;
    let other = app
        .insert_rows_as("5556", &app.topic, 1, OutboxStatus::Dead)
        .await;
    app.db
        .execute_unprepared("UPDATE outbox_event SET attempts = 3, last_error = 'old outage'")
        .await
        .expect("dead rows");
    let redrive = |campaign: &str| {
        app.send(
            app.client
                .post(app.url(&format!(
                    "/api/v1/admin/outbox/redrive?campaignId={campaign}"
                )))
                .bearer_auth(ADMIN_TOKEN),
        )
    };
    let unauthorized = app
        .send(
            app.client
                .post(app.url("/api/v1/admin/outbox/redrive?campaignId=5555")),
        )
        .await;
    assert_eq!(unauthorized.status, 401);
    let reply = redrive("5555").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body,
        json!({"campaignId": 5555, "redriven": 5, "redrivenBy": "admin"})
    );
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 5);
    assert_eq!(
        app.outbox_count("DEAD").await,
        1,
        "other campaigns stay DEAD"
    );
    assert_eq!(
        app.scalar("SELECT MAX(attempts) FROM outbox_event WHERE status = 'PUBLISHED'")
            .await,
        0,
        "attempts reset"
    );
    let messages = assert_order(&app, 5).await;
    let published: Vec<&str> = messages.iter().map(|m| m.event_id()).collect();
    assert_eq!(
        published,
        dead.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(!published.contains(&other[0].as_str()));
    let none = redrive("5555").await;
    assert_eq!(none.body["redriven"], json!(0), "nothing left to redrive");
    let invalid = redrive("0").await;
    assert_eq!(invalid.status, 400, "{invalid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_worker_is_restarted_and_its_rows_are_still_published() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let campaign = app.open_campaign(30, 1).await;
    app.panic_relay_worker_at(&campaign.to_string());

    let replies = join_all((1..=30).map(|u| app.join(campaign, u, 1))).await;
    assert!(replies.iter().all(|r| r.status == 201));
    app.wait_for_outbox_drained(DRAIN).await;
    assert!(app.relay_worker_panicked(), "the fault fired");
    assert_eq!(app.outbox_count("PUBLISHED").await, 30);
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.body["relayWorkerRestarts"], json!(1), "{summary:?}");
    assert_order(&app, 30).await;
}
