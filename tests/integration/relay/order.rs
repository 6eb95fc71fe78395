//! Per-key order with zero exceptions (docs/design.md §2.5) through the faults that used to break it: a
//! broker outage and produce errors with a queued backlog, a worker panic with younger rows
//! queued, a lease that expires while rows are queued, a paused former leader, and a late commit.
//! Every check reads the topic from its start and compares first deliveries with outbox order.

use std::time::Duration;

use firstcome::outbox;
use futures::future::join_all;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;

use crate::{
    db::outbox_row,
    kafka::{assert_first_deliveries_in_order, read_topic},
    spawn::{spawn_app_with, spawn_pair, test_settings, with_relay, TestApp},
    wait::wait_until,
};

pub(super) const DRAIN: Duration = Duration::from_secs(90);

/// Users `users` join the campaigns round-robin; every join must win.
async fn joins(app: &TestApp, campaigns: &[i64], users: std::ops::Range<i64>) {
    let replies =
        join_all(users.map(|u| app.join(campaigns[u as usize % campaigns.len()], u, 1))).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies.iter().find(|r| r.status != 201)
    );
}

async fn open_campaigns(app: &TestApp, n: usize) -> Vec<i64> {
    let mut campaigns = Vec::new();
    for _ in 0..n {
        campaigns.push(app.open_campaign(100_000, 1).await);
    }
    campaigns
}

/// Every row on the topic, first deliveries in outbox order per key, no DEAD row.
pub(super) async fn assert_all_published_in_order(app: &TestApp, total: usize) {
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(
        app.outbox_count("DEAD").await,
        0,
        "no row was dead-lettered"
    );
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, total, DRAIN).await;
    let distinct = assert_first_deliveries_in_order(&messages, &app.outbox_ids().await);
    assert_eq!(distinct, total, "every row reached the topic");
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(
        summary.body["relayOrderViolations"],
        json!(0),
        "{summary:?}"
    );
}

/// One worker for every key, small batches and queues: a backlog queues up behind the outage.
pub(super) fn one_worker_settings(
    mut s: firstcome::config::Settings,
) -> firstcome::config::Settings {
    s.relay.workers = 1;
    s.relay.batch_size = 16;
    s.relay.channel_capacity = 32;
    s.relay.max_in_flight = 64;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_with_a_queued_backlog_keeps_every_keys_order() {
    let app = spawn_app_with(one_worker_settings(with_relay(test_settings().await))).await;
    let broker = app.broker.clone().expect("embedded broker");
    let campaigns = open_campaigns(&app, 4).await;

    joins(&app, &campaigns, 1..201).await;
    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    joins(&app, &campaigns, 201..601).await;
    // Kafka did not answer in time: the worker purged, and rows went back to the outbox.
    wait_until("rows to come back from a purge", DRAIN, || async {
        app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
            .await
            > 0
    })
    .await;
    joins(&app, &campaigns, 601..801).await;
    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");
    joins(&app, &campaigns, 801..1001).await;

    assert_all_published_in_order(&app, 1_000).await;
    assert_eq!(
        app.scalar("SELECT MAX(attempts) FROM outbox_event").await,
        0,
        "no broker answered: no attempt was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produce_refusals_with_a_queued_backlog_keep_every_keys_order() {
    // Each refusal fails the producer's whole series (gap-less guarantee) and replaces it.
    let mut settings = one_worker_settings(with_relay(test_settings().await));

    settings.relay.max_attempts = 1_000;
    let app = spawn_app_with(settings).await;
    let broker = app.broker.clone().expect("embedded broker");
    let campaigns = open_campaigns(&app, 4).await;

    joins(&app, &campaigns, 1..201).await;
    broker.with_cluster(|c| {
        c.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 40],
        )
    });
    joins(&app, &campaigns, 201..601).await;
    wait_until("a broker's refusal to count an attempt", DRAIN, || async {
        app.scalar("SELECT MAX(attempts) FROM outbox_event").await > 0
    })
    .await;
    joins(&app, &campaigns, 601..801).await;
    broker.with_cluster(|c| c.clear_request_errors(RDKafkaApiKey::Produce));
    joins(&app, &campaigns, 801..1001).await;

    assert_all_published_in_order(&app, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_panic_with_younger_rows_queued_keeps_order() {
    let mut settings = with_relay(test_settings().await);
    settings.relay.workers = 1;
    settings.relay.batch_size = 8;
    let app = spawn_app_with(settings).await;
    app.panic_relay_worker_at("7001");

    // 100 rows a key; the worker gets them 8 at a time, so when it meets key 7001 and panics,
    // younger rows of 7001 are queued behind the crashed batch.
    for key in ["7001", "7002", "7003", "7004"] {
        app.insert_rows(key, &app.topic, 100).await;
    }
    assert_all_published_in_order(&app, 400).await;
    assert!(app.relay_worker_panicked(), "the fault fired");
    let summary = app.admin_get("/api/v1/admin/outbox").await;
    assert_eq!(summary.body["relayWorkerRestarts"], json!(1), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_queued_behind_a_lost_lease_are_dropped_unsent_and_order_holds() {
    let mut settings = with_relay(test_settings().await);
    settings.relay.workers = 1;
    settings.relay.batch_size = 8;
    settings.relay.channel_capacity = 8;
    settings.relay.max_in_flight = 4;
    // No purge during the test: rows in flight wait for the broker.
    settings.kafka.message_timeout = Duration::from_secs(120);
    let app = spawn_app_with(settings).await;
    let broker = app.broker.clone().expect("embedded broker");
    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    for key in ["8101", "8102", "8103"] {
        app.insert_rows(key, &app.topic, 40).await;
    }
    // Two claims of 8: 4 rows in flight, 8 queued for the worker, 4 in the claim loop's hands
    // waiting for room.
    wait_until("a backlog to queue up in the relay", DRAIN, || async {
        held_by(&app) == 16
    })
    .await;

    // Renewals stop until the shard leases have expired; the rest of the relay goes on.
    let pause = app.pause_relay_renewals().await;
    wait_until("the shard leases to expire", DRAIN, || async {
        app.scalar("SELECT COUNT(*) FROM relay_shard WHERE lease_until > UTC_TIMESTAMP(6)")
            .await
            == 0
    })
    .await;
    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");
    // The rows in flight are delivered; everything queued behind them is dropped unsent and
    // given back, since this instance no longer leads.
    wait_until("every queued row to be given back", DRAIN, || async {
        held_by(&app) == 0
    })
    .await;
    assert!(
        app.outbox_count("PUBLISHED").await <= 4,
        "only the rows already in flight were published after the lease ran out"
    );
    drop(pause);

    assert_all_published_in_order(&app, 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_former_leader_publishes_nothing_after_its_lease_and_order_holds() {
    let (a, b, broker) = spawn_pair().await;
    let owner = |app: &TestApp| app.relay.as_ref().expect("relay").owner.clone();
    wait_until("one instance to lead every shard", DRAIN, || async {
        a.scalar(
            "SELECT COUNT(DISTINCT owner) FROM relay_shard WHERE lease_until > UTC_TIMESTAMP(6)",
        )
        .await
            == 1
            && a.scalar("SELECT COUNT(*) FROM relay_shard WHERE owner IS NOT NULL")
                .await
                == a.settings_shards()
    })
    .await;
    let a_leads = a
        .scalar(&format!(
            "SELECT COUNT(*) FROM relay_shard WHERE owner = '{}'",
            owner(&a)
        ))
        .await
        > 0;
    let (leader, standby) = if a_leads { (&a, &b) } else { (&b, &a) };
    let standby_owner = owner(standby);

    for key in ["8201", "8202", "8203"] {
        leader.insert_rows(key, &leader.topic, 50).await;
    }
    leader.wait_for_outbox_drained(DRAIN).await;

    // The leader freezes: its claim loop claims rows and holds them, then its renewals stop and
    // its leases run out.
    let pause_claims = leader.pause_relay_claims().await;
    for key in ["8201", "8202", "8203"] {
        leader.insert_rows(key, &leader.topic, 50).await;
    }
    wait_until("the leader to hold claimed rows", DRAIN, || async {
        held_by(leader) > 0
    })
    .await;
    let pause_renewals = leader.pause_relay_renewals().await;
    // The standby takes every shard once the leases expire, then the rows once theirs do.
    wait_until("the standby to lead every shard", DRAIN, || async {
        standby
            .scalar(&format!(
                "SELECT COUNT(*) FROM relay_shard WHERE owner = '{standby_owner}'"
            ))
            .await
            == standby.settings_shards()
    })
    .await;
    standby.wait_for_outbox_drained(DRAIN).await;

    // The former leader wakes up with its claimed rows: it must send none of them.
    drop(pause_claims);
    drop(pause_renewals);
    for key in ["8201", "8202", "8203"] {
        standby.insert_rows(key, &standby.topic, 20).await;
    }
    standby.wait_for_outbox_drained(DRAIN).await;
    wait_until("the former leader to let its rows go", DRAIN, || async {
        held_by(leader) == 0
    })
    .await;

    let total = 360;
    let messages = read_topic(broker.bootstrap_servers(), &standby.topic, total, DRAIN).await;
    let distinct = assert_first_deliveries_in_order(&messages, &standby.outbox_ids().await);
    assert_eq!(distinct, total);
    assert_eq!(messages.len(), total, "no row was published by both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_commit_is_published_when_it_becomes_visible_never_skipped() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    // A transaction takes a lower id of key 8301 and stays open...
    let late = outbox_row(uuid::Uuid::now_v7(), &app.topic, "8301", "{}".into());
    let txn = app.db.begin().await.expect("begin");
    outbox::table::insert(&txn, std::slice::from_ref(&late))
        .await
        .expect("insert the late row");
    let late = late.event_id.to_string();
    // ...while higher ids of the same key commit and are published.
    app.insert_rows("8301", &app.topic, 3).await;
    wait_until("the committed rows to be published", DRAIN, || async {
        app.outbox_count("PUBLISHED").await == 3
    })
    .await;
    txn.commit().await.expect("the late commit");
    app.wait_for_outbox_drained(DRAIN).await;
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, 4, DRAIN).await;
    assert_eq!(messages.len(), 4);
    assert!(
        messages.iter().any(|m| m.event_id() == late),
        "the late commit was published, not skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_committed_row_another_transaction_holds_is_published_in_order_with_its_key() {
    // The rows are written first, with no relay running; then a transaction holds the oldest
    // row of key 8302 (as an admin's UPDATE or a long-running statement would), and a relay
    // starts on the same database.
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    let writer = spawn_app_with(settings.clone()).await;
    let held = writer.insert_rows("8302", &writer.topic, 1).await;
    writer.insert_rows("8302", &writer.topic, 2).await;
    writer.insert_rows("other", &writer.topic, 1).await;
    let holder = writer.db.begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "SELECT id FROM outbox_event WHERE event_id = '{}' FOR UPDATE",
            held[0]
        ))
        .await
        .expect("hold the oldest row");

    let mut relay = with_relay(settings);
    relay.migrate_on_start = false;
    let app = spawn_app_with(relay).await;
    // A claim reads without locking, so the held row is claimed and sent with its key, oldest
    // first (a claim that skipped it would send its two younger rows ahead of it); only its
    // PUBLISHED mark waits for the holder.
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, 4, DRAIN).await;
    let ids = app.outbox_ids().await;
    assert_eq!(assert_first_deliveries_in_order(&messages, &ids), 4);
    let of_8302: Vec<String> = messages
        .iter()
        .filter(|m| m.key == "8302")
        .map(|m| m.event_id().to_string())
        .collect();
    assert_eq!(
        of_8302.first(),
        Some(&held[0].to_string()),
        "the held row went first"
    );

    holder.commit().await.expect("let the row go");
    assert_all_published_in_order(&app, 4).await;
    writer.stop().await.expect("clean stop");
}

/// Rows `app`'s relay holds: claimed, their outcome not yet in MySQL.
fn held_by(app: &TestApp) -> usize {
    app.relay.as_ref().expect("relay").rows_held()
}
