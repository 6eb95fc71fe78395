//! docs/design.md §14: "markers of a campaign that has ended are dropped", for a campaign an
//! admin closed early too (§15: closed is ended, whatever `endsAt` says). A win cancelled after
//! the close, while Redis has lost the campaign's keys, leaves a `gate_return` marker no rebuild
//! will ever settle (nobody can join a closed campaign, so nothing loads its keys again): the
//! marker loop drops it, as it drops those of a campaign past its `endsAt`, instead of keeping it
//! for good in front of the markers that still matter.

use std::time::Duration;

use serde_json::json;

use crate::{spawn::spawn_app, spawn::ADMIN_TOKEN, wait::wait_until};

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
