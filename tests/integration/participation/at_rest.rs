//! A bucketed campaign at rest costs its buckets nothing (docs/design.md §21): the reconciler and
//! the drift audit read its buckets only while the campaign is marked busy, and every call that
//! may open a reservation in a bucket marks it first.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;

use crate::spawn::{spawn_app_with, test_settings, TestApp};

/// Reserves one unit for `user` in bucket `bucket` with `lua/reserve.lua` itself, stamped an
/// hour ago, as an instance that died before its transaction: nothing of the service's ran, so
/// nothing marked the campaign busy.
pub(super) async fn leak_a_reservation(
    app: &TestApp,
    campaign: i64,
    epoch: i64,
    bucket: u16,
    user: i64,
) {
    let base = format!("{}{{c:{campaign}:{bucket}}}:", app.redis_prefix);
    let script = concat!(
        include_str!("../../../lua/entry.lua"),
        include_str!("../../../lua/reserve.lua")
    );
    let at_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let reply: Vec<redis::Value> = redis::Script::new(script)
        .key(format!("{base}meta"))
        .key(format!("{base}users"))
        .key(format!("{base}pending"))
        .arg(user)
        .arg(1)
        .arg(at_ms)
        .arg(epoch)
        .invoke_async(&mut app.redis.clone())
        .await
        .expect("reserve");
    assert_eq!(reply[0], redis::Value::BulkString(b"OK".to_vec()));
}

/// A bucketed campaign of `stock` units open since an hour ago (so that a reservation stamped an
/// hour ago is one its gate takes), and its gate epoch (its creation time in µs).
pub(super) async fn bucketed_for_an_hour(app: &TestApp, stock: i64, buckets: u16) -> (i64, i64) {
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let campaign = app
        .open_campaign_with(stock, 1, json!({"buckets": buckets, "startsAt": hour_ago}))
        .await;
    let created = app.get(&format!("/api/v1/campaigns/{campaign}")).await;
    let epoch = chrono::DateTime::parse_from_rfc3339(
        created.body["createdAt"].as_str().expect("createdAt"),
    )
    .expect("a time")
    .timestamp_micros();
    (campaign, epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucketed_campaign_is_read_bucket_by_bucket_only_while_a_join_has_marked_it_busy() {
    // The app's own reconciler runs every tenth of a day: the test's passes are the only ones.
    let mut settings = test_settings().await;
    settings.redis.reservation_timeout = Duration::from_secs(24 * 3600);
    let app = spawn_app_with(settings).await;
    let buckets = 4u16;
    let (campaign, epoch) = bucketed_for_an_hour(&app, 20, buckets).await;
    let busy = format!("{}{{c:{campaign}}}:busy", app.redis_prefix);
    let mut redis = app.redis.clone();
    assert!(
        !redis.exists::<_, bool>(&busy).await.expect("EXISTS"),
        "created, not joined: at rest"
    );

    // At rest, the reconciler does not read the buckets: a reservation planted behind the
    // service's back (no join of the service's opened it, so nothing marked the campaign) stays.
    let user = 7;
    leak_a_reservation(
        &app,
        campaign,
        epoch,
        firstcome::bucket::home(user, buckets),
        user,
    )
    .await;
    assert_eq!(
        app.reconcile(Duration::from_secs(1)).await,
        0,
        "at rest: no bucket is read"
    );

    // A join marks the campaign busy for twice the reservation timeout and a margin…
    assert_eq!(app.join(campaign, 8, 1).await.status, 201);
    let ttl: i64 = redis.pttl(&busy).await.expect("PTTL");
    let lasts = 2 * 24 * 3600 * 1000 + 12_000;
    assert!(
        ttl > lasts - 60_000 && ttl <= lasts,
        "the mark's time to live: {ttl} ms"
    );
    // …and the next pass reads every bucket again: the old reservation is given back.
    assert_eq!(app.reconcile(Duration::from_secs(1)).await, 1);
    assert_eq!(
        app.join(campaign, user, 1).await.status,
        201,
        "its user joins again"
    );
}
