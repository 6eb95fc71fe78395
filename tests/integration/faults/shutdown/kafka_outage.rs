//! The SIGTERM-while-Kafka-is-down run, as steps: wins applied, the broker hung or killed, a
//! backlog and a check that the service still answers, SIGTERM and the exit in time, what MySQL
//! holds, then the broker back and a restart that publishes and applies everything.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;
use serde_json::{json, Value};

use crate::{
    binary::{create_campaign, start_with, terminate, wait_for_exit, Service},
    consumer_helpers::Tables,
    db::scalar,
    spawn::create_database,
    wait::wait_until,
};

use super::children::{broker_process, collect_lines, count_lines, signal};

/// What happens to the broker before the service gets SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outage {
    /// SIGSTOP: connections stay open and nothing answers.
    Hung,
    /// Killed: connections are refused.
    Gone,
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(6);

/// The service with consumers on; `session` is the consumers' `session.timeout.ms`.
async fn start_service(db_url: &str, prefix: &str, bootstrap: &str, session: &str) -> Service {
    let properties = format!("session.timeout.ms={session}");
    start_with(
        db_url,
        prefix,
        bootstrap,
        &[
            ("SHUTDOWN_TIMEOUT_MS", Some("6000")),
            // Offsets are only committed at shutdown: whatever was applied is then left to the
            // last commit, which Kafka will not answer.
            ("CONSUMER_COMMIT_INTERVAL_MS", Some("3600000")),
            // When the group session ends, the consumers lose their partitions (a revoke); after
            // a restart, the dead member's partitions are handed on after it.
            ("KAFKA_PROPERTIES", Some(&properties)),
            ("RUST_LOG", Some("warn,firstcome::consumer=info")),
        ],
        true,
    )
    .await
}

async fn join(client: &reqwest::Client, service: &Service, campaign: i64, user: i64) -> u16 {
    client
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/participations",
            service.base
        ))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The consumers of a running service as `/health/ready` lists them (none while it does not
/// answer).
async fn ready_consumers(client: &reqwest::Client, service: &Service) -> Vec<Value> {
    let ready: Value = match client
        .get(format!("{}/health/ready", service.base))
        .bearer_auth(&service.token)
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    ready["consumers"].as_array().cloned().unwrap_or_default()
}

/// The consumers' counters of a running service, from `/health/ready`: (applied, duplicates)
/// summed over both.
async fn consumer_counters(client: &reqwest::Client, service: &Service) -> (u64, u64) {
    let consumers = ready_consumers(client, service).await;
    assert!(!consumers.is_empty(), "no consumers in /health/ready");
    let sum = |field: &str| {
        consumers
            .iter()
            .map(|c| c[field].as_u64().unwrap_or(0))
            .sum()
    };
    (sum("applied"), sum("duplicates"))
}

/// What a run does between the outage and SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Before {
    /// SIGTERM right away: the consumers still hold their partitions and applied offsets that
    /// were never committed, so the shutdown's last commit waits for Kafka.
    Sigterm,
    /// Wait until the consumers' group session ends (a revoke, run on an async worker), then check
    /// that the service still answers.
    SessionLost,
}

/// Shared by the three runs: `outage` is what happens to the broker, `before` what the run does
/// between the outage and SIGTERM.
pub async fn sigterm_while_kafka_is(outage: Outage, before: Before) {
    let (mut broker, bootstrap) = broker_process().await;
    let db_url = create_database().await;
    let prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    // 6 s: short enough to wait for its end; 10 s: the run is over before it ends.
    let session = if before == Before::SessionLost {
        "6000"
    } else {
        "10000"
    };
    let mut service = start_service(&db_url, &prefix, &bootstrap, session).await;
    let logs = collect_lines(&mut service.child);
    let campaign = create_campaign(&client, &service, 1_000).await;

    win_and_apply_the_first_fifty(&client, &service, campaign).await;
    match outage {
        Outage::Hung => signal(&broker, "STOP"),
        Outage::Gone => signal(&broker, "KILL"),
    }
    join_while_kafka_is_down(&client, &service, campaign, &logs, outage, before).await;
    sigterm_and_exit_in_time(&mut service, &logs, outage, before).await;

    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    assert_the_backlog_waits_and_leases_are_released(&db).await;

    // The broker back (the same one, or a new empty one), the service restarted.
    let bootstrap = match outage {
        Outage::Hung => {
            signal(&broker, "CONT");
            bootstrap
        }
        Outage::Gone => {
            let (fresh, bootstrap) = broker_process().await;
            broker = fresh;
            bootstrap
        }
    };
    let mut service = start_service(&db_url, &prefix, &bootstrap, session).await;
    let _logs = collect_lines(&mut service.child);
    assert_the_restart_publishes_and_applies_everything(&db, &client, &service, outage, before)
        .await;
    drop(broker);
}

/// 50 wins, published and applied by both consumers (nothing committed yet).
async fn win_and_apply_the_first_fifty(client: &reqwest::Client, service: &Service, campaign: i64) {
    for user in 1..=50 {
        assert_eq!(join(client, service, campaign, user).await, 201);
    }
    wait_until(
        "the consumers to apply the first wins",
        Duration::from_secs(60),
        // Each consumer on its own: one that lags would apply its share only after the outage.
        || async {
            let each: Vec<u64> = ready_consumers(client, service)
                .await
                .iter()
                .map(|c| c["applied"].as_u64().unwrap_or(0))
                .collect();
            each == [50, 50]
        },
    )
    .await;
}

/// With the broker down: a backlog of 50 wins the relay cannot deliver; with `SessionLost`, the
/// wait for both consumers' revoke; then 10 more joins, each after a `/health/live` that answers.
async fn join_while_kafka_is_down(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
    logs: &Mutex<Vec<String>>,
    outage: Outage,
    before: Before,
) {
    // A backlog the relay cannot deliver.
    for user in 51..=100 {
        assert_eq!(join(client, service, campaign, user).await, 201);
    }
    if before == Before::SessionLost {
        // The session ends without a coordinator: librdkafka revokes each consumer's partitions,
        // in a callback run on an async worker. The service still answers afterwards.
        wait_until(
            "both consumers to lose their partitions",
            Duration::from_secs(60),
            || std::future::ready(count_lines(logs, "Partitions revoked") >= 2),
        )
        .await;
    }
    for user in 101..=110 {
        let live = client
            .get(format!("{}/health/live", service.base))
            .send()
            .await;
        assert!(
            live.is_ok_and(|r| r.status() == 200),
            "/health/live answers while Kafka is {outage:?}"
        );
        assert_eq!(
            join(client, service, campaign, user).await,
            201,
            "joins win while Kafka is {outage:?}"
        );
    }
}

/// SIGTERM: the process exits 0 within `SHUTDOWN_TIMEOUT_MS` plus a second; with the broker hung
/// right away, both consumers' last commits are given up.
async fn sigterm_and_exit_in_time(
    service: &mut Service,
    logs: &Arc<Mutex<Vec<String>>>,
    outage: Outage,
    before: Before,
) {
    terminate(&service.child);
    let signalled = Instant::now();
    let status = wait_for_exit(
        &mut service.child,
        signalled,
        SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        || {
            let logs = logs.lock().expect("logs");
            format!(
                "Kafka {outage:?}; last log lines: {:?}",
                logs.iter().rev().take(20).collect::<Vec<_>>()
            )
        },
    )
    .await;
    assert!(status.success(), "exit status {status:?}");
    if (outage, before) == (Outage::Hung, Before::Sigterm) {
        // The case of the bug: the last commit never got an answer, and the process went on.
        assert_eq!(
            count_lines(logs, "without its last offset commit"),
            2,
            "both consumers' last commits were given up"
        );
    }
}

/// After the exit: every win is in MySQL, the backlog waits in the outbox, no lease is held.
async fn assert_the_backlog_waits_and_leases_are_released(db: &DatabaseConnection) {
    assert_eq!(scalar(db, "SELECT COUNT(*) FROM participation").await, 110);
    assert!(
        scalar(
            db,
            "SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'"
        )
        .await
            >= 50,
        "the backlog waits in the outbox"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM relay_shard WHERE owner IS NOT NULL"
        )
        .await,
        0,
        "shard leases released"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT COUNT(*) FROM outbox_event WHERE lease_owner IS NOT NULL"
        )
        .await,
        0,
        "no row carries a lease: only shards are leased"
    );
}

/// The restarted service publishes every row, and the consumers' tables equal MySQL's; after a
/// lost session, the uncommitted events are delivered again and skipped.
async fn assert_the_restart_publishes_and_applies_everything(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    service: &Service,
    outage: Outage,
    before: Before,
) {
    wait_until(
        "every outbox row published",
        Duration::from_secs(60),
        || async {
            scalar(
                db,
                "SELECT COUNT(*) FROM outbox_event WHERE status <> 'PUBLISHED'",
            )
            .await
                == 0
        },
    )
    .await;
    let tables = Tables(db);
    tables.wait_for_consumers(Duration::from_secs(90)).await;
    tables.assert_consumers_match_participations().await;
    if (outage, before) == (Outage::Hung, Before::SessionLost) {
        // The first 50 events were applied but their offsets never committed (the commit at the
        // revoke found no coordinator): the same broker delivers them again, and the inbox skips
        // them. (More duplicates are possible: rows purged at shutdown may still have reached the
        // stopped broker's socket, and are published again.) After a plain SIGTERM the given-up
        // commit may still be in the stopped broker's socket and land: no redelivery to count.
        let (applied, duplicates) = consumer_counters(client, service).await;
        assert_eq!(
            applied,
            2 * 60,
            "each consumer applies only the 60 events it had not applied before"
        );
        assert!(
            duplicates >= 2 * 50,
            "the 50 uncommitted events are delivered again and skipped: {duplicates}"
        );
    }
}
