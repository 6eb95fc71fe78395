//! The relay through faults injected on librdkafka's mock cluster: retriable produce errors and
//! an unreachable broker (DESIGN §2.3, §2.5), poison rows and exhausted attempts (dead letters,
//! redrive), a panicking worker.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{
    read_topic, spawn_app_with, test_settings, wait_until, with_relay, TestApp, ADMIN_TOKEN,
};

const DRAIN: Duration = Duration::from_secs(60);

/// Every key's messages in ascending outbox id.
async fn assert_order(app: &TestApp, expected: usize) -> Vec<crate::helpers::Consumed> {
    let ids = app.outbox_ids().await;
    let mut messages = read_topic(&app.kafka_bootstrap, &app.topic, expected, DRAIN).await;
    messages.sort_by_key(|m| (m.partition, m.offset));
    let mut last = std::collections::HashMap::new();
    for m in &messages {
        let id = ids[m.event_id()];
        if let Some(prev) = last.insert(m.key.clone(), id) {
            assert!(
                prev <= id,
                "key {}: outbox id {id} published after {prev}",
                m.key
            );
        }
    }
    let distinct: std::collections::HashSet<_> =
        messages.iter().map(|m| m.event_id().to_string()).collect();
    assert_eq!(distinct.len(), expected, "every row reached the topic");
    messages
}

async fn max_attempts(app: &TestApp) -> i64 {
    app.scalar("SELECT COALESCE(MAX(attempts), 0) FROM outbox_event")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retriable_produce_errors_delay_publication_without_losing_or_reordering() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let broker = app.broker.clone().expect("embedded broker");
    let campaigns = [
        app.open_campaign(100, 1).await,
        app.open_campaign(100, 1).await,
    ];
    // Every Produce request fails (retriably) until cleared: longer than librdkafka's own
    // retries (message.timeout.ms) and than the relay's first retries.
    broker.with_cluster(|c| {
        c.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 5_000],
        )
    });
    let replies = join_all((1..=60).map(|u| app.join(campaigns[u as usize % 2], u, 1))).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "participations do not wait for Kafka"
    );
    wait_until("two failed attempts to be recorded", DRAIN, || async {
        max_attempts(&app).await >= 2
    })
    .await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 0);
    let last_error = app
        .scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
        .await;
    assert!(last_error > 0, "the failure is recorded on the rows");

    broker.with_cluster(|c| c.clear_request_errors(RDKafkaApiKey::Produce));
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 60);
    assert_eq!(app.outbox_count("DEAD").await, 0);
    assert!(
        max_attempts(&app).await >= 3,
        "attempts are recorded: failures plus the success"
    );
    assert_order(&app, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_unreachable_at_startup_participations_are_accepted_and_published_later() {
    let broker = Arc::new(
        firstcome::kafka::EmbeddedBroker::start(
            &["campaign.participation.v1", "campaign.participation.v1.dlq"],
            4,
        )
        .expect("broker"),
    );
    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    let mut settings = with_relay(test_settings().await);
    settings.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    let app = spawn_app_with(settings).await;

    let campaign = app.open_campaign(20, 1).await;
    for u in 1..=10 {
        assert_eq!(
            app.join(campaign, u, 1).await.status,
            201,
            "accepted while Kafka is down"
        );
    }
    let ready = app.get("/health/ready").await;
    assert_eq!(
        ready.status, 200,
        "readiness does not depend on Kafka: {ready:?}"
    );
    wait_until("a failed attempt to be recorded", DRAIN, || async {
        max_attempts(&app).await >= 1
    })
    .await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 0);

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
    let event_id = uuid::Uuid::now_v7().to_string();
    let headers = json!({"event_id": event_id, "event_type": "ParticipationAccepted", "content-type": "application/json"});
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::MySql,
            "INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, msg_key, payload, \
             headers, status, attempts, available_at, created_at) VALUES (?, 'participation', '0', \
             'ParticipationAccepted', ?, ?, ?, ?, 'PENDING', 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            [
                event_id.clone().into(),
                topic.into(),
                key.into(),
                payload.into(),
                headers.to_string().into(),
            ],
        ))
        .await
        .expect("insert outbox row");
    event_id
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
        &format!("{}.dlq", app.topic),
        1,
        DRAIN,
    )
    .await;
    assert_eq!(dlq.len(), 1);
    let dead = &dlq[0];
    assert_eq!(dead.key, "999999");
    assert_eq!(dead.event_id(), poison);
    assert_eq!(dead.payload, big, "the DLQ keeps the original value");
    assert_eq!(dead.headers["dlq_reason"], "non_retriable");
    assert_eq!(dead.headers["dlq_attempts"], "1");
    assert_eq!(dead.headers["dlq_original_topic"], app.topic);
    assert!(
        dead.headers["dlq_error"].contains("too large"),
        "{:?}",
        dead.headers
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&dead.headers["dlq_failed_at"]).is_ok());
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
    // Produce to this topic keeps failing, retriably; its dead-letter topic works.
    broker
        .with_cluster(|c| {
            c.create_topic("blocked.v1", 1, 1)?;
            c.create_topic("blocked.v1.dlq", 1, 1)?;
            c.topic_error(
                "blocked.v1",
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            )
        })
        .expect("cluster")
        .expect("topic error");
    let event = insert_row(&app, "77", "blocked.v1", "{\"n\":1}").await;
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("DEAD").await, 1);
    assert_eq!(app.scalar("SELECT attempts FROM outbox_event").await, 2);
    let dlq = read_topic(&app.kafka_bootstrap, "blocked.v1.dlq", 1, DRAIN).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].event_id(), event);
    assert_eq!(dlq[0].headers["dlq_reason"], "attempts_exhausted");
    assert_eq!(dlq[0].headers["dlq_attempts"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_worker_is_restarted_and_its_rows_are_still_published() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let campaign = app.open_campaign(30, 1).await;
    let relay = app.relay.clone().expect("relay");
    *relay.faults.panic_on_key.lock().expect("lock") = Some(campaign.to_string());

    let replies = join_all((1..=30).map(|u| app.join(campaign, u, 1))).await;
    assert!(replies.iter().all(|r| r.status == 201));
    app.wait_for_outbox_drained(DRAIN).await;
    assert!(
        relay.faults.panic_on_key.lock().expect("lock").is_none(),
        "the fault fired"
    );
    assert_eq!(app.outbox_count("PUBLISHED").await, 30);
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.body["relayWorkerRestarts"], json!(1), "{summary:?}");
    assert_order(&app, 30).await;
}
