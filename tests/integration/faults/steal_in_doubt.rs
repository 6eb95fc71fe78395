//! A steal cut off by a MySQL outage (docs/design.md §18.1, §21): a dry bucket's join set a
//! sibling's units aside at its gate, and MySQL went silent as the transfer sent its COMMIT. The
//! units are back in a gate within 2 s of MySQL answering again, not after the reconciler's
//! `RESERVATION_TIMEOUT_MS` (15 s), and the sale then sells every unit.
//!
//! Before, the join kept the take on any error until the reconciler read MySQL: the units sat
//! in a row no gate could sell, and the dry bucket's users were answered SOLD_OUT with units
//! free (the proof's short run found it, seed 13 on 5efe27f, 2026-11-28).

use std::time::{Duration, Instant};

use firstcome::bucket;
use redis::AsyncCommands;
use serde_json::json;

use crate::{
    proxy::Proxy,
    spawn::{test_settings, TestApp},
    wait::wait_until,
};

/// The promise: units of a transfer in doubt are back this soon after MySQL answers again.
const BACK_WITHIN: Duration = Duration::from_secs(2);
/// How long MySQL stays silent: past the COMMIT's deadline (1 s here) and a settlement's first
/// tries after it.
const OUTAGE: Duration = Duration::from_secs(3);
/// Two buckets of three units each, nothing in the pool (`bucket::Deal`).
const STOCK: i64 = 6;
const BUCKETS: u16 = 2;

#[tokio::test]
async fn a_steal_cut_off_by_a_mysql_outage_gives_its_units_back_within_2s_of_mysql_answering() {
    let (app, proxy) = spawn_app_behind_a_proxy().await;
    let campaign = app
        .open_campaign_with(STOCK, 1, json!({ "buckets": BUCKETS }))
        .await;
    let mut homed_at_0 = (1..).filter(|&u| bucket::home(u, BUCKETS) == 0);

    // Bucket 0 sells its three units; the fourth user homed there must steal from bucket 1.
    for user in homed_at_0.by_ref().take(3) {
        assert_eq!(app.join(campaign, user, 1).await.status, 201);
    }
    let thief = homed_at_0.next().expect("a user");
    let at_commit = &app.hooks.steal;
    at_commit.arm();
    let (reply, ()) = tokio::join!(app.join(campaign, thief, 1), async {
        at_commit.wait_reached().await;
        proxy.black_hole();
        at_commit.release();
        tokio::time::sleep(OUTAGE).await;
    });
    assert_eq!(
        reply.status, 503,
        "the transfer's outcome was unknown: {reply:?}"
    );
    assert!(
        takes_open(&app, campaign, 1).await,
        "bucket 1 set units aside"
    );

    // The failover: every connection reset, and MySQL answers again at once.
    proxy.reset().await;
    proxy.resume();
    let answered_again = Instant::now();
    wait_until(
        "the units set aside for the transfer in doubt to be back in a gate",
        BACK_WITHIN,
        || every_unit_sellable(&app, campaign),
    )
    .await;
    tracing::info!(after = ?answered_again.elapsed(), "units back");

    // Every unit left is sold: bucket 0's users find bucket 1's units again.
    let mut sold = 3;
    for user in homed_at_0.take(20) {
        let reply = app.join(campaign, user, 1).await;
        match reply.status {
            201 => sold += 1,
            409 => assert_eq!(reply.code(), "SOLD_OUT", "{reply:?}"),
            _ => panic!("after the outage: {reply:?}"),
        }
        if sold == STOCK {
            break;
        }
    }
    assert_eq!(sold, STOCK, "the sale sells every unit");
    app.assert_outbox_matches_participations().await;
}

/// Whether bucket `bucket`'s gate records a take not settled yet.
async fn takes_open(app: &TestApp, campaign: i64, bucket: u16) -> bool {
    let takes = format!("{}{{c:{campaign}:{bucket}}}:takes", app.redis_prefix);
    let open: i64 = app.redis.clone().hlen(takes).await.expect("HLEN");
    open > 0
}

/// No take open, and the buckets' gates hold every unit MySQL has free (pool and rows).
async fn every_unit_sellable(app: &TestApp, campaign: i64) -> bool {
    let mut gates = 0;
    for b in 0..BUCKETS {
        if takes_open(app, campaign, b).await {
            return false;
        }
        let meta = format!("{}{{c:{campaign}:{b}}}:meta", app.redis_prefix);
        let stock: Option<i64> = app.redis.clone().hget(meta, "stock").await.expect("HGET");
        gates += stock.unwrap_or(0);
    }
    let free = app
        .scalar(&format!(
            "SELECT CAST(remaining_stock + (SELECT SUM(remaining_stock) FROM campaign_bucket \
             WHERE campaign_id = {campaign}) AS SIGNED) FROM campaign WHERE id = {campaign}"
        ))
        .await;
    gates == free && free == STOCK - 3
}

/// The app at production defaults but for short database deadlines (the outage outlasts them
/// quickly), its MySQL behind a proxy the test controls; the reconciler's
/// `RESERVATION_TIMEOUT_MS` stays 15 s, so only the settlement can give the units back in time.
async fn spawn_app_behind_a_proxy() -> (TestApp, Proxy) {
    let mut settings = test_settings().await;
    let (proxy, direct_url) = Proxy::in_front_of_mysql(&mut settings).await;
    settings.database.statement_timeout = Duration::from_millis(1_000);
    settings.database.acquire_timeout = Duration::from_millis(500);
    settings.database.connect_timeout = Duration::from_millis(1_000);
    (Proxy::spawn_app_behind(settings, &direct_url).await, proxy)
}
