//! The stats consumer and the write path share a hot campaign's row without waiting for each
//! other (docs/design.md §11): the consumer reads the campaign's stock without a lock, so a win's
//! transaction holding the row does not hold up the statistics, and the consumer's commit never
//! holds up the next win.

use chrono::Utc;
use firstcome::events::{
    accepted::{WinStatus, PARTICIPATION_ACCEPTED},
    ParticipationAccepted,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    consumer_helpers::{produce, with_consumers, Raw},
    spawn::{spawn_app_with, test_settings},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stats_consumer_sells_a_campaign_out_while_a_win_holds_its_row() {
    let app = spawn_app_with(with_consumers(test_settings().await)).await;
    let campaign = app
        .create_campaign(json!({"name": "hot", "totalStock": 2, "perUserLimit": 1}))
        .await["id"]
        .as_i64()
        .expect("id");
    // What a participation transaction holds while it commits: the campaign row, locked.
    let writer = app.lock_campaign(campaign).await;

    let wins: Vec<Raw> = (1..=2)
        .map(|user| {
            Raw::of(&ParticipationAccepted {
                event_id: Uuid::now_v7(),
                event_type: PARTICIPATION_ACCEPTED.into(),
                occurred_at: Utc::now(),
                campaign_id: campaign,
                participation_id: 100 + user,
                user_id: user,
                quantity: 1,
                sequence: user,
                reward_points: 0,
                status: WinStatus::Confirmed,
                hold_expires_at: None,
                purchase_id: None,
            })
        })
        .collect();
    produce(&app.kafka_bootstrap, &app.topic, &wins).await;
    // Applied while the row is still locked; a consumer that locked it too would wait for the
    // writer until this wait gives up.
    app.wait_for_both_consumers(2, 0, 0).await;
    let stats = app
        .get(&format!("/api/v1/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats.status, 200, "{stats:?}");
    assert_eq!(stats.body["activeQuantity"], json!(2), "{stats:?}");
    assert_eq!(
        stats.body["soldOutAt"], stats.body["lastAcceptedAt"],
        "sold out at the win that took the last unit: {stats:?}"
    );
    writer.rollback().await.expect("rollback");
    app.stop().await.expect("clean stop");
}
