//! The stats and rewards consumers end to end (docs/design.md §2.8, §3, §11): wins through the relay and
//! the embedded broker into both consumers, the stats and rewards endpoints, and `CONSUMERS`.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::{
    consumer_helpers::with_consumers,
    spawn::{spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

const APPLIED: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_several_campaigns_is_applied_once_and_both_stats_endpoints_agree() {
    let app = spawn_app_with(with_consumers(with_relay(test_settings().await))).await;
    let campaigns = burst_over_three_campaigns(&app).await;
    app.wait_for_outbox_drained(APPLIED).await;
    app.wait_for_consumers(APPLIED).await;
    app.assert_consumers_match_participations().await;

    assert_campaign_stats_match_the_table(&app, &campaigns).await;
    assert_daily_aggregate_and_raw_agree(&app).await;
    assert_rewards_of_a_winner_and_of_nobody(&app).await;

    let ready = app.admin_get("/health/ready").await;
    let names: Vec<&str> = ready.body["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["stats", "rewards"]);
    app.stop().await.expect("clean stop");
}

/// Three campaigns (one without points), then 3 × 50 requests at once: users overlap across
/// campaigns (rewards add up per user), quantities vary. Returns each campaign's id and stock.
async fn burst_over_three_campaigns(app: &TestApp) -> Vec<(i64, i64)> {
    let mut campaigns = Vec::new();
    for (stock, points) in [(40, 7), (25, 0), (60, 1_000)] {
        let c = app
            .create_campaign(json!({"name": "c", "totalStock": stock, "perUserLimit": 3, "rewardPoints": points}))
            .await;
        campaigns.push((c["id"].as_i64().expect("id"), stock));
    }
    let replies = join_all(campaigns.iter().flat_map(|(id, _)| {
        (1..=50i64).map(move |user| async move { app.join(*id, user, (user % 3 + 1) as i32).await })
    }))
    .await;
    assert!(
        replies.iter().all(|r| matches!(r.status, 201 | 409)),
        "{replies:?}"
    );
    campaigns
}

/// The campaign endpoint reports what the table holds, and a sold-out time once sold out.
async fn assert_campaign_stats_match_the_table(app: &TestApp, campaigns: &[(i64, i64)]) {
    for (id, stock) in campaigns {
        let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await;
        assert_eq!(stats.status, 200, "{stats:?}");
        let quantity = app
            .scalar(&format!("SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM participation WHERE campaign_id = {id}"))
            .await;
        let count = app
            .scalar(&format!(
                "SELECT COUNT(*) FROM participation WHERE campaign_id = {id}"
            ))
            .await;
        assert_eq!(stats.body["acceptedQuantity"], json!(quantity));
        assert_eq!(stats.body["acceptedCount"], json!(count));
        assert_eq!(stats.body["eventsApplied"], json!(count));
        assert!(
            stats.body["lagMs"].as_i64().is_some_and(|l| l >= 0),
            "{stats:?}"
        );
        let sold_out = quantity == *stock;
        assert_eq!(stats.body["soldOutAt"].is_string(), sold_out, "{stats:?}");
        if sold_out {
            assert_eq!(stats.body["soldOutAt"], stats.body["lastAcceptedAt"]);
        }
    }
}

/// Daily figures: the aggregate and the raw table agree, for today and for an empty day; the
/// endpoint lists the three campaigns, needs the admin token and refuses a bad date.
async fn assert_daily_aggregate_and_raw_agree(app: &TestApp) {
    let today = chrono::Utc::now().date_naive();
    for date in [today, today - chrono::Duration::days(1)] {
        let daily = app
            .admin_get(&format!("/api/v1/admin/stats/daily?date={date}"))
            .await;
        let raw = app
            .admin_get(&format!("/api/v1/admin/stats/raw?date={date}"))
            .await;
        assert_eq!(daily.status, 200, "{daily:?}");
        assert_eq!(raw.status, 200, "{raw:?}");
        assert_eq!(daily.body["campaigns"], raw.body["campaigns"], "{date}");
        assert_eq!(daily.body["source"], "aggregate");
        assert_eq!(raw.body["source"], "raw");
        assert!(daily.body["queryTimeMs"].as_f64().is_some());
    }
    let daily = app.admin_get("/api/v1/admin/stats/daily").await;
    assert_eq!(daily.body["campaigns"].as_array().map(Vec::len), Some(3));
    assert_eq!(app.get("/api/v1/admin/stats/daily").await.status, 401);
    assert_eq!(
        app.admin_get("/api/v1/admin/stats/raw?date=2026-13-01")
            .await
            .status,
        400
    );
}

/// A winner's points: the sum of rewardPoints × quantity over their wins, one grant each;
/// nobody's are empty; a bad user or an unknown campaign is refused.
async fn assert_rewards_of_a_winner_and_of_nobody(app: &TestApp) {
    let user = app.get("/api/v1/users/3/rewards").await;
    assert_eq!(user.status, 200);
    let expected = app
        .scalar("SELECT CAST(COALESCE(SUM(p.quantity * c.reward_points), 0) AS SIGNED) FROM participation p \
                 JOIN campaign c ON c.id = p.campaign_id WHERE p.user_id = 3")
        .await;
    assert_eq!(user.body["points"], json!(expected));
    let grants = app
        .scalar("SELECT COUNT(*) FROM participation WHERE user_id = 3")
        .await;
    assert_eq!(
        user.body["grants"].as_array().map(Vec::len),
        Some(grants as usize)
    );
    let nobody = app.get("/api/v1/users/999999/rewards").await;
    assert_eq!(
        nobody.body,
        json!({"userId": 999999, "points": 0, "grants": []})
    );
    assert_eq!(app.get("/api/v1/users/0/rewards").await.status, 400);
    assert_eq!(app.get("/api/v1/campaigns/999999/stats").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_without_wins_has_empty_stats_and_consumers_can_be_turned_off() {
    let mut settings = with_consumers(with_relay(test_settings().await));
    settings.consumers.enabled = Vec::new();
    let app = spawn_app_with(settings).await;
    let id = app.open_campaign(5, 1).await;
    assert_eq!(app.join(id, 1, 1).await.status, 201);
    app.wait_for_outbox_drained(APPLIED).await;
    let stats = app.get(&format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(stats.status, 200);
    assert_eq!(
        stats.body["eventsApplied"], 0,
        "no consumer runs: {stats:?}"
    );
    assert!(stats.body["soldOutAt"].is_null());
    // No stats row: the controls' figures read as none applied.
    for (field, none) in [
        ("stockAdded", json!(0)),
        ("stockWithdrawn", json!(0)),
        ("paused", json!(false)),
        ("controlsApplied", json!(0)),
    ] {
        assert_eq!(stats.body[field], none, "{field}: {stats:?}");
    }
    assert!(stats.body.get("closedAt").is_none(), "{stats:?}");
    let ready = app.admin_get("/health/ready").await;
    assert_eq!(ready.body["consumers"], json!([]));
    // Nothing applies the published win, however long one waits for the relay's next rounds.
    wait_until("the relay to publish", APPLIED, || async {
        app.outbox_count("PUBLISHED").await == 1
    })
    .await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM consumer_inbox").await, 0);
    app.stop().await.expect("clean stop");
}

/// The classic group protocol is the default with an external Kafka (KIP-848 needs Kafka 4.0+):
/// its eager rebalance (revoke everything, assign everything) must also leave every partition
/// applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_on_the_classic_group_protocol_apply_every_win_once() {
    let mut settings = with_consumers(with_relay(test_settings().await));
    settings.consumers.group_protocol = Some(firstcome::config::GroupProtocol::Classic);
    let app = spawn_app_with(settings).await;
    let campaigns = [
        app.open_campaign(10, 1).await,
        app.open_campaign(10, 1).await,
    ];
    for (n, id) in campaigns.iter().cycle().take(16).enumerate() {
        assert_eq!(app.join(*id, n as i64 + 1, 1).await.status, 201);
    }
    app.wait_for_outbox_drained(APPLIED).await;
    app.wait_for_consumers(APPLIED).await;
    app.assert_consumers_match_participations().await;
    app.stop().await.expect("clean stop");
}
