//! The `gate_return` marker loop (docs/design.md §14) neither keeps a marker for good nor leaves
//! one behind.
//!
//! "Markers of a campaign that has ended are dropped", for a campaign an admin closed early too (§15: closed is ended, whatever `endsAt` says). A win cancelled after
//! the close, while Redis has lost the campaign's keys, leaves a `gate_return` marker no rebuild
//! will ever settle (nobody can join a closed campaign, so nothing loads its keys again): the
//! marker loop drops it, as it drops those of a campaign past its `endsAt`, instead of keeping it
//! for good in front of the markers that still matter.

use std::time::Duration;

use serde_json::json;

use redis::AsyncCommands;

use crate::{
    proxy::Proxy,
    spawn::{spawn_app, spawn_app_with, test_settings, ADMIN_TOKEN},
    wait::wait_until,
};

#[tokio::test]
async fn a_return_marker_of_a_campaign_closed_early_is_dropped_once_its_keys_are_gone() {
    let app = spawn_app().await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
    let closed = app
        .post_json(
            &format!("/api/v1/admin/campaigns/{campaign}/close"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");

    app.drop_gate_keys(campaign).await;
    let cancelled = app.act_on_win(campaign, 7, "cancel", false).await;
    assert_eq!(cancelled.body["status"], "CANCELLED", "{cancelled:?}");
    let markers = format!("SELECT COUNT(*) FROM gate_return WHERE campaign_id = {campaign}");
    wait_until(
        "the closed campaign's return marker to be dropped",
        Duration::from_secs(5),
        || async { app.scalar(&markers).await == 0 },
    )
    .await;
    assert_eq!(
        app.remaining_stock(campaign).await,
        5,
        "MySQL has the unit back"
    );
}

/// More markers than one sweep reads wait for a campaign whose keys Redis lost (kept on purpose:
/// a rebuild may need them); a marker of another, live campaign behind them, left by a crash
/// between a cancel's commit and the gate, still reaches the gate, once, and its unit sells.
/// Read always from the oldest, the sweep would never get to it, and the drift audit, which
/// counts marker units, would read 0 while the unit stayed unsold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_marker_behind_more_waiting_markers_than_a_sweep_reads_reaches_the_gate_once() {
    const WAITING: i64 = 300;
    let app = spawn_app().await;
    let window = json!({"confirmWithinSeconds": 600});
    let lost = app.open_campaign_with(WAITING, 1, window.clone()).await;
    let joins = futures::future::join_all((1..=WAITING).map(|u| app.join(lost, u, 1))).await;
    assert!(joins.iter().all(|r| r.status == 201));
    app.drop_gate_keys(lost).await;
    for user in 1..=WAITING {
        let path = format!("/api/v1/campaigns/{lost}/participations/{user}/cancel");
        assert_eq!(app.post_json(&path, &json!({}), None).await.status, 200);
    }
    let waiting = format!("SELECT COUNT(*) FROM gate_return WHERE campaign_id = {lost}");
    assert_eq!(
        app.scalar(&waiting).await,
        WAITING,
        "each waits for the keys"
    );

    let live = app.open_campaign_with(1, 1, window).await;
    assert_eq!(app.join(live, 1, 1).await.status, 201);
    let path = format!("/api/v1/campaigns/{live}/participations/1/cancel");
    assert_eq!(app.post_json(&path, &json!({}), None).await.status, 200);
    // The gate has the unit and no marker of the campaign is left.
    let back = || async {
        app.redis_stock(live).await == Some(1)
            && app
                .scalar(&format!(
                    "SELECT COUNT(*) FROM gate_return WHERE campaign_id = {live}"
                ))
                .await
                == 0
    };
    wait_until("the cancel's own return", Duration::from_secs(5), back).await;
    // As a crash between the commit and the gate leaves it: the unit back in MySQL, its marker
    // written, the gate without it.
    let id = app
        .scalar(&format!(
            "SELECT id FROM participation WHERE campaign_id = {live}"
        ))
        .await;
    let (meta, _) = app.gate_keys(live);
    let returned = meta.replace(":meta", ":returned");
    let mut redis = app.redis.clone();
    let _: i64 = redis.hincr(&meta, "stock", -1).await.expect("HINCRBY");
    let _: i64 = redis.srem(&returned, id).await.expect("SREM");
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!(
            "INSERT INTO gate_return (participation_id, campaign_id, quantity, created_at) \
             VALUES ({id}, {live}, 1, UTC_TIMESTAMP(6))"
        ),
    )
    .await
    .expect("plant the marker");

    wait_until(
        "the marker behind the waiting ones",
        Duration::from_secs(10),
        back,
    )
    .await;
    assert_eq!(app.scalar(&waiting).await, WAITING, "those still wait");
    assert_eq!(app.join(live, 2, 1).await.status, 201, "the unit sells");
    assert_eq!(app.join(live, 3, 1).await.code(), "SOLD_OUT", "once");
}

/// A return is on sale when it answers (docs/design.md §18.1), or its answer says it is not:
/// a cancel and a stock addition committed while Redis cannot be reached answer `gate: PENDING`
/// (reachable, `UPDATED`), and their markers put both units on sale once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_return_that_cannot_reach_the_gate_says_so_and_sells_once_redis_answers() {
    let mut settings = test_settings().await;
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    settings.redis.timeout = Duration::from_millis(300);
    let app = spawn_app_with(settings).await;
    let campaign = app
        .open_campaign_with(2, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    for user in [1, 2] {
        assert_eq!(app.join(campaign, user, 1).await.status, 201);
    }
    let reached = app.act_on_win(campaign, 1, "cancel", true).await;
    assert_eq!(reached.body["gate"], "UPDATED", "{reached:?}");
    assert_eq!(app.join(campaign, 3, 1).await.status, 201, "sold again");

    proxy.black_hole();
    let cancelled = app.act_on_win(campaign, 2, "cancel", true).await;
    assert_eq!(cancelled.status, 200, "committed: {cancelled:?}");
    assert_eq!(cancelled.body["gate"], "PENDING", "{cancelled:?}");
    let path = format!("/api/v1/admin/campaigns/{campaign}/stock");
    let added = app
        .post_json(&path, &json!({"delta": 1}), Some(ADMIN_TOKEN))
        .await;
    assert_eq!(added.status, 200, "committed: {added:?}");
    assert_eq!(added.body["gate"], "PENDING", "{added:?}");
    proxy.resume();

    let next_user = std::sync::atomic::AtomicI64::new(10);
    let won = std::sync::atomic::AtomicI64::new(0);
    wait_until(
        "the two units to be sold after Redis answers",
        Duration::from_secs(10),
        || async {
            let user = next_user.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if app.join(campaign, user, 1).await.status == 201 {
                won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            won.load(std::sync::atomic::Ordering::Relaxed) == 2
        },
    )
    .await;
    assert_eq!(app.join(campaign, 99, 1).await.code(), "SOLD_OUT");
    app.assert_no_drift(campaign).await;
}
