//! docs/design.md §14, units come back across a crash: the real binary expires a hold, commits,
//! and is killed with SIGKILL before it gives the unit to the gate (the test hook
//! `FIRSTCOME_TEST_CRASH_AT=before-gate-return` stops it exactly there). Another instance gives
//! the gate that unit from the durable `gate_return` marker, exactly once, expires the other holds
//! nobody confirmed, and a second wave of users buys every unit; the gate shows no drift.

use std::{os::unix::process::ExitStatusExt, time::Duration};

use redis::{aio::MultiplexedConnection, AsyncCommands};
use serde_json::json;

use crate::{
    binary::{create_campaign_with, fixture, start, start_with, wait_for_exit, Service},
    db::scalar,
    drift::assert_no_drift_at,
    wait::wait_until,
};

const STOCK: i64 = 20;
/// Long enough for the first wave to join before any hold expires; the second wave's holds
/// expire too, after the test has counted its wins.
const WINDOW_SECONDS: i64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_expired_by_an_instance_killed_before_the_gate_returns_once_and_sells_again() {
    let (broker, db_url, prefix) = fixture().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    // One connection for the test: the waits below poll the gate's stock.
    let redis = redis::Client::open(crate::spawn::redis_url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let crash = [("FIRSTCOME_TEST_CRASH_AT", Some("before-gate-return"))];
    let mut first = start_with(&db_url, &prefix, broker.bootstrap_servers(), &crash, false).await;
    let campaign = create_with_window(&client, &first).await;
    let first_wave = join_wave(&client, &first, campaign, 1..=STOCK).await;
    assert_eq!(first_wave, [STOCK, 0], "the first wave holds every unit");

    // Its sweeper expires the first hold past its deadline, commits, and dies before the gate.
    let since = std::time::Instant::now();
    let status = wait_for_exit(&mut first.child, since, Duration::from_secs(30), || {
        "the instance reached no crash point".into()
    })
    .await;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    let count = |sql: String| {
        let db = db.clone();
        async move { scalar(&db, &sql).await }
    };
    let marker = format!("SELECT COUNT(*) FROM gate_return WHERE campaign_id = {campaign}");
    assert_eq!(count(marker.clone()).await, 1, "the commit left its marker");
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign} AND status = 'EXPIRED'"
        ))
        .await,
        1,
        "one hold expired before the kill"
    );
    assert_eq!(
        gate_stock(&redis, &prefix, campaign).await,
        Some(0),
        "the gate lacks that unit"
    );

    let second = start(&db_url, &prefix, broker.bootstrap_servers()).await;
    wait_until("every hold expired and returned", Duration::from_secs(30), || {
        let (count, marker, prefix, redis) = (&count, marker.clone(), prefix.clone(), &redis);
        async move {
            count(format!(
                "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign} AND status = 'EXPIRED'"
            ))
            .await
                == STOCK
                && count(marker).await == 0
                && gate_stock(redis, &prefix, campaign).await == Some(STOCK)
        }
    })
    .await;
    assert_eq!(
        count(format!(
            "SELECT remaining_stock FROM campaign WHERE id = {campaign}"
        ))
        .await,
        STOCK
    );

    // Every unit once more, to new users only; the first wave stays refused.
    let second_wave = join_wave(&client, &second, campaign, 1_001..=1_000 + 2 * STOCK).await;
    assert_eq!(second_wave, [STOCK, STOCK], "exactly the stock sells again");
    assert_eq!(gate_stock(&redis, &prefix, campaign).await, Some(0));
    let again = join_wave(&client, &second, campaign, 1..=3).await;
    assert_eq!(again, [0, 3], "a user whose hold expired stays refused");
    assert_no_drift_at(&client, &second.base, campaign).await;
    drop(second);
}

/// A campaign of [`STOCK`] units, one per user, held for [`WINDOW_SECONDS`].
async fn create_with_window(client: &reqwest::Client, service: &Service) -> i64 {
    let body = json!({"name": "crash between commit and gate", "totalStock": STOCK,
        "confirmWithinSeconds": WINDOW_SECONDS});
    create_campaign_with(client, service, &body).await
}

/// `users` join at once; returns [wins (201, HELD), refusals (409)]. Anything else fails.
async fn join_wave(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
    users: std::ops::RangeInclusive<i64>,
) -> [i64; 2] {
    let (wins, refused) = crate::binary::join_wave(client, service, campaign, users).await;
    for win in &wins {
        assert_eq!(win["status"], "HELD", "{win}");
    }
    [wins.len() as i64, refused.len() as i64]
}

/// The gate's stock for the campaign, straight from Redis.
async fn gate_stock(redis: &MultiplexedConnection, prefix: &str, campaign: i64) -> Option<i64> {
    redis
        .clone()
        .hget(format!("{prefix}{{c:{campaign}}}:meta"), "stock")
        .await
        .expect("HGET")
}
