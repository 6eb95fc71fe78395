//! The real binary as a child process, stopped by signals in the middle of a burst:
//! - SIGKILL (docs/design.md §2.1, §2.3): after a restart the sale still ends at exactly its stock, and
//!   every committed participation reaches Kafka;
//! - SIGTERM (§2.7): in-flight requests are answered, new connections refused, what the relay
//!   sent is delivered and marked, every lease is released, and the process exits 0 in time.
//!
//! The Kafka broker lives in the test, so it outlives the service (the runner is
//! `support/binary.rs`).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, StreamExt};
use serde_json::json;

use firstcome::kafka::EmbeddedBroker;
use sea_orm::DatabaseConnection;

use crate::{
    binary::{create_campaign, fixture, start, terminate, wait_for_exit, Service},
    db::scalar,
    drift::assert_no_drift_at,
    kafka::read_topic,
    wait::wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_no_event_and_the_sale_still_reaches_its_stock() {
    let (broker, db_url, prefix) = fixture().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let mut first = start(&db_url, &prefix, broker.bootstrap_servers()).await;
    let campaign = create_campaign(&client, &first, 200).await;
    let seen_won = burst_until_killed(&client, &mut first, campaign).await;
    drop(first);

    let second = start(&db_url, &prefix, broker.bootstrap_servers()).await;
    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    wait_for_leaked_reservations(&client, &second, campaign, &prefix).await;

    // Enough new users to sell whatever is left.
    let second_url = format!("{}/api/v1/campaigns/{campaign}/participations", second.base);
    let rest: Vec<_> = (1_001..=1_400)
        .map(|u| client.post(&second_url).json(&json!({"userId": u})).send())
        .collect();
    let replies = futures::future::join_all(rest).await;
    assert!(replies.iter().all(|r| r
        .as_ref()
        .is_ok_and(|r| r.status() == 201 || r.status() == 409)));

    assert_the_stock_sold_and_answered_wins_kept(&db, campaign, &seen_won).await;
    assert_every_event_reached_kafka(&db, &broker).await;
    assert_no_drift_at(&client, &second.base, campaign).await;
    drop(second);
}

/// A burst of 400 users; after 60 answers (one of them a win) the process is killed with
/// SIGKILL. Every 201 a client read in full before that is remembered: participation id to user.
async fn burst_until_killed(
    client: &reqwest::Client,
    first: &mut Service,
    campaign: i64,
) -> HashMap<i64, i64> {
    let url = format!("{}/api/v1/campaigns/{campaign}/participations", first.base);
    let mut burst: FuturesUnordered<_> = (1..=400i64)
        .map(|u| {
            let request = client.post(&url).json(&json!({"userId": u})).send();
            async move {
                let reply = request.await.ok()?;
                let status = reply.status().as_u16();
                let body: serde_json::Value = reply.json().await.ok()?;
                Some((u, status, body))
            }
        })
        .collect();
    let mut answered = 0;
    let mut killed = false;
    let mut seen_won = HashMap::new();
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(reply) = burst.next().await {
        let Some((user, status, body)) = reply else {
            continue;
        };
        answered += 1;
        *statuses.entry(status).or_insert(0) += 1;
        if status == 201 {
            assert_eq!(body["userId"], json!(user), "{body}");
            let id = body["participationId"].as_i64().expect("participationId");
            assert!(seen_won.insert(id, user).is_none(), "id {id} given twice");
        }
        // Refusals answer at once while wins wait for their (group) commit: kill once 60
        // answers include a win, so the kill lands with acknowledged wins and more in flight.
        if !killed && answered >= 60 && !seen_won.is_empty() {
            first.child.kill().expect("SIGKILL");
            first.child.wait().expect("reaped");
            killed = true;
        }
    }
    assert!(answered >= 60);
    assert!(killed, "the burst ended before the kill: {statuses:?}");
    assert!(
        !seen_won.is_empty(),
        "some wins were answered before the kill: {statuses:?}"
    );
    seen_won
}

/// The restarted instance serves the campaign, so its reconciler gives back what the killed
/// one left reserved; waits until no reservation is open.
async fn wait_for_leaked_reservations(
    client: &reqwest::Client,
    second: &Service,
    campaign: i64,
    prefix: &str,
) {
    let probe = client
        .get(format!("{}/api/v1/campaigns/{campaign}", second.base))
        .send()
        .await
        .expect("probe");
    assert_eq!(probe.status(), 200);
    let second_url = format!("{}/api/v1/campaigns/{campaign}/participations", second.base);
    let _ = client
        .post(&second_url)
        .json(&json!({"userId": 100_000}))
        .send()
        .await;
    let redis = redis::Client::open(crate::spawn::redis_url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let pending = format!("{prefix}{{c:{campaign}}}:pending");
    wait_until(
        "the leaked reservations to be given back",
        Duration::from_secs(30),
        || {
            let (mut redis, pending) = (redis.clone(), pending.clone());
            async move {
                redis::AsyncCommands::hlen::<_, i64>(&mut redis, pending)
                    .await
                    .expect("HLEN")
                    == 0
            }
        },
    )
    .await;
}

/// Exactly the stock was sold, to distinct users, and every win a client was told about before
/// the kill was committed: same id, same user.
async fn assert_the_stock_sold_and_answered_wins_kept(
    db: &DatabaseConnection,
    campaign: i64,
    seen_won: &HashMap<i64, i64>,
) {
    let accepted = scalar(
        db,
        &format!("SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"),
    )
    .await;
    assert_eq!(accepted, 200, "exactly the stock, after a crash mid-burst");
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            format!("SELECT id, user_id FROM participation WHERE campaign_id = {campaign}"),
        ),
    )
    .await
    .expect("participations");
    let in_mysql: HashMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index::<i64>(0).expect("id"),
                r.try_get_by_index::<i64>(1).expect("user_id"),
            )
        })
        .collect();
    for (id, user) in seen_won {
        assert_eq!(
            in_mysql.get(id),
            Some(user),
            "participation {id} of user {user} was answered 201 before the kill"
        );
    }
    assert_eq!(
        scalar(
            db,
            &format!(
                "SELECT COUNT(DISTINCT user_id) FROM participation WHERE campaign_id = {campaign}"
            )
        )
        .await,
        200
    );
    assert_eq!(
        scalar(
            db,
            &format!("SELECT remaining_stock FROM campaign WHERE id = {campaign}")
        )
        .await,
        0
    );
}

/// Every committed participation reaches Kafka, rows the killed relay held included, and a
/// duplicate carries the same bytes.
async fn assert_every_event_reached_kafka(db: &DatabaseConnection, broker: &EmbeddedBroker) {
    wait_until(
        "the outbox to drain",
        Duration::from_secs(60),
        || async move {
            scalar(
                db,
                "SELECT COUNT(*) FROM outbox_event WHERE status <> 'PUBLISHED'",
            )
            .await
                == 0
        },
    )
    .await;
    let messages = read_topic(
        broker.bootstrap_servers(),
        "campaign.participation.v1",
        200,
        Duration::from_secs(30),
    )
    .await;
    let published: HashSet<_> = messages.iter().map(|m| m.event_id().to_string()).collect();
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT event_id, payload FROM outbox_event",
        ),
    )
    .await
    .expect("outbox");
    assert_eq!(rows.len(), 200, "one event per participation");
    for row in rows {
        let event_id: String = row.try_get_by_index(0).expect("event id");
        assert!(
            published.contains(&event_id),
            "event {event_id} reached Kafka"
        );
        let payload: String = row.try_get_by_index(1).expect("payload");
        for copy in messages.iter().filter(|m| m.event_id() == event_id) {
            assert_eq!(copy.payload, payload, "a duplicate carries the same bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_requests_in_flight_answers_them_flushes_and_exits_zero() {
    let (broker, db_url, prefix) = fixture().await;
    // A new connection per request: one accepted before the signal is served, a later one is
    // refused (no kept-alive connection blurs the two).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut service = start(&db_url, &prefix, broker.bootstrap_servers()).await;
    let campaign = create_campaign(&client, &service, 1_000).await;
    // One win published before the burst: the relay runs, so the check that the topic and the
    // PUBLISHED rows agree compares something (a loaded machine may start the relay late).
    let first = first_win_published(&client, &service, &db_url, campaign).await;

    let (mut won, signalled) = burst_with_sigterm_after_thirty(&client, &service, campaign).await;
    won.insert(first);
    let refused = client
        .get(format!("{}/health/live", service.base))
        .send()
        .await;
    assert!(
        refused.as_ref().is_err_and(|e| e.is_connect()),
        "a new connection after SIGTERM is refused: {refused:?}"
    );

    // Exits 0 within SHUTDOWN_TIMEOUT_MS (20 s by default).
    let status = wait_for_exit(
        &mut service.child,
        signalled,
        Duration::from_secs(25),
        String::new,
    )
    .await;
    assert!(status.success(), "exit status {status:?}");

    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    assert_wins_answered_and_leases_released(&db, &won).await;
    assert_published_rows_are_exactly_the_topic(&db, &broker).await;
}

/// The user of one win, answered 201 and then published by the relay.
async fn first_win_published(
    client: &reqwest::Client,
    service: &Service,
    db_url: &str,
    campaign: i64,
) -> i64 {
    const USER: i64 = 1_000;
    let reply = client
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/participations",
            service.base
        ))
        .json(&json!({"userId": USER}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reply.status(), 201, "{reply:?}");
    let db = sea_orm::Database::connect(db_url).await.expect("db");
    wait_until("the first win published", Duration::from_secs(20), || {
        let db = &db;
        async move {
            scalar(
                db,
                "SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED'",
            )
            .await
                > 0
        }
    })
    .await;
    USER
}

/// 300 users at once; SIGTERM after the first 30 answers, with the rest in flight. Every answer
/// is a 201; returns the users who won and when the signal was sent.
async fn burst_with_sigterm_after_thirty(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
) -> (HashSet<i64>, Instant) {
    let url = format!(
        "{}/api/v1/campaigns/{campaign}/participations",
        service.base
    );
    let mut burst: FuturesUnordered<_> = (1..=300i64)
        .map(|u| {
            let request = client.post(&url).json(&json!({"userId": u})).send();
            async move { (u, request.await) }
        })
        .collect();
    let mut won = HashSet::new();
    let mut answered = 0;
    let mut signalled = None;
    while let Some((user, reply)) = burst.next().await {
        if let Ok(reply) = reply {
            answered += 1;
            assert_eq!(reply.status(), 201, "user {user}: {reply:?}");
            won.insert(user);
        }
        if answered == 30 && signalled.is_none() {
            terminate(&service.child);
            signalled = Some(Instant::now());
        }
    }
    (won, signalled.expect("SIGTERM was sent"))
}

/// Every win in MySQL was answered 201 (no request was cut off after it committed), and every
/// shard and row lease was released.
async fn assert_wins_answered_and_leases_released(db: &DatabaseConnection, won: &HashSet<i64>) {
    let column = |sql: &'static str| {
        let db = db.clone();
        async move {
            sea_orm::ConnectionTrait::query_all_raw(
                &db,
                sea_orm::Statement::from_string(sea_orm::DbBackend::MySql, sql),
            )
            .await
            .expect("query")
            .iter()
            .map(|r| r.try_get_by_index::<i64>(0).expect("int"))
            .collect::<Vec<i64>>()
        }
    };
    let winners: HashSet<i64> = column("SELECT user_id FROM participation")
        .await
        .into_iter()
        .collect();
    assert_eq!(&winners, won, "the winners in MySQL are exactly the 201s");
    assert_eq!(
        column("SELECT COUNT(*) FROM relay_shard WHERE owner IS NOT NULL").await,
        vec![0],
        "shard leases released"
    );
    assert_eq!(
        column("SELECT COUNT(*) FROM outbox_event WHERE lease_owner IS NOT NULL").await,
        vec![0],
        "no row carries a lease: only shards are leased"
    );
}

/// The producer was flushed and its acks recorded: whatever reached the topic is PUBLISHED in
/// MySQL, and every PUBLISHED row is on the topic.
async fn assert_published_rows_are_exactly_the_topic(
    db: &DatabaseConnection,
    broker: &EmbeddedBroker,
) {
    let published: HashSet<String> = sea_orm::ConnectionTrait::query_all_raw(
        db,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT event_id FROM outbox_event WHERE status = 'PUBLISHED'",
        ),
    )
    .await
    .expect("published")
    .iter()
    .map(|r| r.try_get_by_index::<String>(0).expect("event id"))
    .collect();
    assert!(!published.is_empty(), "the relay published the first win");
    let messages = read_topic(
        broker.bootstrap_servers(),
        "campaign.participation.v1",
        published.len(),
        Duration::from_secs(30),
    )
    .await;
    let on_topic: HashSet<String> = messages.iter().map(|m| m.event_id().to_string()).collect();
    assert_eq!(on_topic, published);
}

/// A clean stop says nothing alarming (issue 73 #6): with the embedded broker, the producers
/// used to report it going away after "Stopped." as an outage (six WARN lines, among them "Kafka
/// is unreachable; participations are kept in the outbox"). Now the stop ends the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_with_the_embedded_broker_ends_its_log_without_a_warning() {
    let (_broker, db_url, prefix) = fixture().await;
    let env = [
        ("KAFKA_BOOTSTRAP_SERVERS", None),
        ("RUST_LOG", Some("info")),
    ];
    // The log is read whole once the process has exited: the few lines of a short run fit the
    // pipe's buffer.
    let mut service = crate::binary::start_with(&db_url, &prefix, "", &env, true).await;
    let mut stdout = service.child.stdout.take().expect("piped stdout");
    let client = reqwest::Client::new();
    let campaign = create_campaign(&client, &service, 10).await;
    let joined = client
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/participations",
            service.base
        ))
        .json(&json!({"userId": 1}))
        .send()
        .await
        .expect("join");
    assert_eq!(joined.status(), 201);
    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    wait_until("the win published", Duration::from_secs(20), || async {
        scalar(
            &db,
            "SELECT COUNT(*) FROM outbox_event WHERE status = 'PUBLISHED'",
        )
        .await
            == 1
    })
    .await;

    terminate(&service.child);
    let status = wait_for_exit(
        &mut service.child,
        Instant::now(),
        Duration::from_secs(25),
        String::new,
    )
    .await;
    assert!(status.success(), "exit status {status:?}");
    let log = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut log).expect("the log");
        log
    })
    .await
    .expect("reader");
    let lines: Vec<String> = log.lines().map(String::from).collect();
    let stopped = lines
        .iter()
        .position(|l| l.contains("Stopped."))
        .expect("Stopped.");
    let after: Vec<&String> = lines[stopped + 1..]
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(after.is_empty(), "after Stopped.: {after:#?}");
}
