//! The drift audit (docs/design.md §14): `firstcome_gate_drift_units{campaign}` reads 0 after
//! ordinary traffic, shows a drift planted in Redis, and the audit repairs it once it has seen
//! it twice with nothing in flight, so the units the gate had lost are sold again.

use std::time::Duration;

use firstcome::{bucket, upkeep::drift::AUDIT_EVERY};
use futures::future::join_all;
use redis::AsyncCommands;
use serde_json::json;

use crate::{
    drift::drift_in,
    http::winners,
    spawn::{spawn_app, TestApp},
    wait::wait_until,
};

/// Long enough for three audits: a drift is measured by the first, proven by the second, and
/// the repair measured by the third.
fn three_audits() -> Duration {
    AUDIT_EVERY * 3 + Duration::from_secs(2)
}

/// The campaign's drift as `/metrics` reports it, `None` while it has no series.
async fn drift_gauge(app: &TestApp, campaign: i64) -> Option<i64> {
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    drift_in(
        reply.body.as_str().expect("the exposition is text"),
        campaign,
    )
}

#[tokio::test]
async fn after_joins_and_a_cancel_the_gate_shows_no_drift() {
    let app = spawn_app().await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    for user in 1..=3 {
        assert_eq!(app.join(campaign, user, 1).await.status, 201);
    }
    let cancel = format!("/api/v1/campaigns/{campaign}/participations/1/cancel");
    assert_eq!(app.post_json(&cancel, &json!({}), None).await.status, 200);
    wait_until(
        "the cancelled unit back in the gate",
        three_audits(),
        || async { app.redis_stock(campaign).await == Some(3) },
    )
    .await;
    assert_eq!(app.remaining_stock(campaign).await, 3);

    wait_until(
        "the audit to report the campaign",
        three_audits(),
        || async { drift_gauge(&app, campaign).await.is_some() },
    )
    .await;
    assert_eq!(drift_gauge(&app, campaign).await, Some(0));
}

#[tokio::test]
async fn a_drift_planted_in_redis_is_shown_repaired_and_its_units_sold_again() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    assert_eq!(app.redis_stock(campaign).await, Some(4));

    // Two units lost from the gate: MySQL still has 4 to sell.
    let (meta, _) = app.gate_keys(campaign);
    let mut redis = app.redis.clone();
    let _: i64 = redis.hincr(&meta, "stock", -2).await.expect("HINCRBY");

    wait_until("the audit to show the drift", three_audits(), || async {
        drift_gauge(&app, campaign).await == Some(-2)
    })
    .await;
    wait_until("the audit to repair the drift", three_audits(), || async {
        drift_gauge(&app, campaign).await == Some(0)
    })
    .await;
    assert_eq!(app.redis_stock(campaign).await, Some(4));

    let users: Vec<i64> = (100..110).collect();
    let replies = join_all(users.iter().map(|&u| app.join(campaign, u, 1))).await;
    assert_eq!(
        winners(&replies, &users).len(),
        4,
        "exactly the stock sells"
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
}

/// A bucketed campaign (docs/design.md §21) is audited bucket by bucket: a drift planted in one
/// bucket's gate is shown in the campaign's gauge, repaired against that bucket's row, and its
/// units sold again; the other buckets show none.
#[tokio::test]
async fn a_drift_planted_in_one_buckets_gate_is_repaired_against_its_row() {
    let app = spawn_app().await;
    let campaign = app.open_campaign_with(32, 1, json!({"buckets": 4})).await;
    // A bucketed campaign is audited while it is busy (src/gate/activity.rs): a first win, in
    // another bucket than the one the drift is planted in.
    let first = (1..).find(|&u| bucket::home(u, 4) != 2).expect("a user");
    assert_eq!(app.join(campaign, first, 1).await.status, 201);
    wait_until(
        "the audit to report the campaign",
        three_audits(),
        || async { drift_gauge(&app, campaign).await == Some(0) },
    )
    .await;
    // Bucket 2 (6 units dealt at creation, a quarter of the even share three times) loses 3.
    let meta = format!("{}{{c:{campaign}:2}}:meta", app.redis_prefix);
    let mut redis = app.redis.clone();
    let _: i64 = redis.hincr(&meta, "stock", -3).await.expect("HINCRBY");

    wait_until("the audit to show the drift", three_audits(), || async {
        drift_gauge(&app, campaign).await == Some(-3)
    })
    .await;
    wait_until("the audit to repair the drift", three_audits(), || async {
        drift_gauge(&app, campaign).await == Some(0)
    })
    .await;
    let stock: Option<i64> = redis.hget(&meta, "stock").await.expect("HGET");
    assert_eq!(
        stock,
        Some(6),
        "bucket 2's gate holds its row's units again"
    );

    let users: Vec<i64> = (100..300).collect();
    let replies = join_all(users.iter().map(|&u| app.join(campaign, u, 1))).await;
    assert_eq!(
        winners(&replies, &users).len(),
        31,
        "exactly the stock sells (the first user's unit aside)"
    );
}
