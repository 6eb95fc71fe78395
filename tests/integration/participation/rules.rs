//! The rules of the outbox participation path under concurrency: Exactly-N (docs/design.md §2.1) and
//! the atomic event (§2.2).

use futures::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    http::{burst_users, winners},
    spawn::{spawn_app, spawn_app_with, test_settings},
    wait::wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_wins_under_a_concurrent_burst() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(50, 1).await;

    let users = burst_users();
    let replies = join_all(users.iter().map(|&u| app.join(campaign, u, 1))).await;
    let winners = winners(&replies, &users);
    assert_eq!(winners.len(), 50, "exactly the stock is accepted");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 50);
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT user_id) FROM participation")
            .await,
        50
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM outbox_event").await, 50);
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    // FCFS sequences handed out by the gate are distinct.
    assert_eq!(
        app.scalar("SELECT COUNT(DISTINCT sequence) FROM participation")
            .await,
        50
    );
    app.assert_outbox_matches_participations().await;

    let status = app.get(&format!("/api/v1/campaigns/{campaign}")).await;
    assert_eq!(status.body["remainingStock"], json!(0));
    assert_eq!(status.body["acceptedCount"], json!(50));
    assert_eq!(status.body["state"], json!("SOLD_OUT"));
}

#[tokio::test]
async fn quantity_and_the_per_user_limit() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 3).await;

    let first = app.join(campaign, 1, 3).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["quantity"], json!(3));
    assert_eq!(first.body["sequence"], json!(1));

    // Over the limit: a validation error, nothing reserved.
    let over = app.join(campaign, 2, 4).await;
    assert_eq!(
        (over.status, over.code()),
        (400, "VALIDATION_FAILED"),
        "{over:?}"
    );
    assert!(!app.redis_has_user(campaign, 2).await);

    // A second participation of the same user, even within the limit, is refused with its id.
    let again = app.join(campaign, 1, 1).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "ALREADY_PARTICIPATED"),
        "{again:?}"
    );
    assert_eq!(again.body["participationId"], first.body["participationId"]);

    assert_eq!(app.join(campaign, 3, 3).await.status, 201);
    assert_eq!(app.join(campaign, 4, 3).await.status, 201);
    // One unit left: asking for two is SOLD_OUT, asking for one wins.
    let two = app.join(campaign, 5, 2).await;
    assert_eq!((two.status, two.code()), (409, "SOLD_OUT"), "{two:?}");
    assert!(
        !app.redis_has_user(campaign, 5).await,
        "a refused user can try again"
    );
    assert_eq!(app.join(campaign, 5, 1).await.status, 201);
    assert_eq!(app.join(campaign, 6, 1).await.code(), "SOLD_OUT");

    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(
        app.scalar("SELECT CAST(SUM(quantity) AS SIGNED) FROM participation")
            .await,
        10
    );
    app.assert_outbox_matches_participations().await;
}

#[tokio::test]
async fn the_window_is_enforced() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let later = app
        .create_campaign(
            json!({"name": "later", "totalStock": 5, "startsAt": now + chrono::Duration::hours(1)}),
        )
        .await;
    let reply = app.join(later["id"].as_i64().expect("id"), 1, 1).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "CAMPAIGN_NOT_OPEN"),
        "{reply:?}"
    );
    assert_eq!(later["state"], json!("SCHEDULED"));

    let over = app
        .create_campaign(json!({
            "name": "over", "totalStock": 5,
            "startsAt": now - chrono::Duration::hours(2), "endsAt": now - chrono::Duration::hours(1)
        }))
        .await;
    let reply = app.join(over["id"].as_i64().expect("id"), 1, 1).await;
    assert_eq!(
        (reply.status, reply.code()),
        (422, "CAMPAIGN_ENDED"),
        "{reply:?}"
    );
    assert_eq!(over["state"], json!("ENDED"));

    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM outbox_event").await, 0);
    assert_eq!(
        app.scalar("SELECT CAST(SUM(remaining_stock) AS SIGNED) FROM campaign")
            .await,
        10
    );
}

#[tokio::test]
async fn a_participation_can_be_looked_up() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    let won = app.join(campaign, 42, 1).await;
    assert_eq!(won.status, 201);

    let found = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/42"))
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    for field in [
        "participationId",
        "campaignId",
        "userId",
        "quantity",
        "sequence",
        "eventId",
        "acceptedAt",
    ] {
        assert_eq!(found.body[field], won.body[field], "{field}");
    }
    assert!(won.body["eventId"].is_string(), "{won:?}");
    // The win keeps its event id once the outbox row is gone (cleanup after the retention).
    app.db
        .execute_unprepared("DELETE FROM outbox_event")
        .await
        .expect("clean the outbox");
    let later = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/42"))
        .await;
    assert_eq!(later.body["eventId"], won.body["eventId"], "{later:?}");
    let missing = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/43"))
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "PARTICIPATION_NOT_FOUND")
    );
}

#[tokio::test]
async fn after_a_sell_out_winners_still_hear_already_participated_and_released_stock_returns() {
    let mut settings = crate::spawn::test_settings().await;
    settings.redis.sold_out_memo = std::time::Duration::from_secs(2);
    let app = crate::spawn::spawn_app_with(settings).await;
    let campaign = app.open_campaign(2, 1).await;
    let winner = app.join(campaign, 1, 1).await;
    assert_eq!(app.join(campaign, 2, 1).await.status, 201);
    // Sold out: this instance now answers non-winners without asking Redis...
    assert_eq!(app.join(campaign, 3, 1).await.code(), "SOLD_OUT");
    // ...but a winner asking again still learns that they won.
    let again = app.join(campaign, 1, 1).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "ALREADY_PARTICIPATED"),
        "{again:?}"
    );
    assert_eq!(
        again.body["participationId"],
        winner.body["participationId"]
    );

    // A unit comes back, in MySQL and in Redis (as when a reservation is released after its
    // transaction failed). Within the memo's time this instance still refuses; after it, the unit
    // is sold.
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!("UPDATE campaign SET total_stock = total_stock + 1, remaining_stock = remaining_stock + 1 WHERE id = {campaign}"),
    )
    .await
    .expect("return a unit");
    let (meta, _) = app.gate_keys(campaign);
    let mut redis = app.redis.clone();
    let _: i64 = redis::AsyncCommands::hincr(&mut redis, &meta, "stock", 1)
        .await
        .expect("HINCRBY");
    assert_eq!(
        app.join(campaign, 4, 1).await.code(),
        "SOLD_OUT",
        "answered from the memo"
    );
    crate::wait::wait_until(
        "the memo to expire and user 5 to win",
        std::time::Duration::from_secs(10),
        || async {
            match app.join(campaign, 5, 1).await.status {
                201 => true,
                409 => false,
                other => panic!("unexpected status {other}"),
            }
        },
    )
    .await;
}

/// A join the gate let through just before `endsAt` that reaches MySQL after it is not written
/// (§2.1): user 1's batch is held at its COMMIT, user 2 passes the gate before the end and queues
/// behind it, the window ends, the hold is let go. User 1 wins; user 2 is answered CAMPAIGN_ENDED
/// with nothing written and its unit back at the gate, so no win carries an `acceptedAt` past
/// the end.
#[tokio::test]
async fn a_win_reaching_mysql_after_the_campaign_ended_is_not_written() {
    let mut settings = test_settings().await;
    // User 2 waits in its campaign's queue past the end: longer than the default 2 s allows.
    settings.database.acquire_timeout = std::time::Duration::from_secs(30);
    let app = spawn_app_with(settings).await;
    let (campaign, ends_at) = app.campaign_ending_soon(5).await;
    let hold = &app.hooks.commit;
    hold.arm();
    let (first, (second, ())) = tokio::join!(app.join(campaign, 1, 1), async {
        hold.wait_reached().await;
        tokio::join!(app.join(campaign, 2, 1), async {
            wait_until(
                "user 2 to pass the gate and queue",
                std::time::Duration::from_secs(10),
                || async { app.probe.group_commit_queued(campaign) == 1 },
            )
            .await;
            crate::wait::sleep_past(ends_at).await;
            hold.release();
        })
    });
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(second.code(), "CAMPAIGN_ENDED", "{second:?}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 1);
    assert_eq!(app.remaining_stock(campaign).await, 4);
    assert_eq!(app.redis_stock(campaign).await, Some(4));
}
