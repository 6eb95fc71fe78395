//! A grouped campaign's live view shows its group (issue 73: "a drop is ten separate cards with
//! no group view"): the group's per-user limit and its campaigns side by side, each with its
//! stock, wins and, for a campaign with a waiting room, its queue, waitlist and offers.

use serde_json::{json, Value};

use super::stream::{app_with_interval, Watch};
use crate::{
    drops::support::{campaigns_in, group},
    waiting_room::enqueue,
};

#[tokio::test]
async fn a_grouped_campaigns_snapshot_shows_its_group_side_by_side() {
    let app = app_with_interval("100").await;
    let drop = group(&app, 2, 1).await;
    let plain = campaigns_in(&app, drop, 1, 5, 2).await[0];
    let roomed = app
        .open_campaign_with(
            3,
            1,
            json!({"groupId": drop, "admission": "QUEUE", "admissionRatePerSecond": 50,
                   "offerSeconds": 60}),
        )
        .await;
    for user in [1, 2] {
        assert_eq!(app.join(plain, user, 1).await.status, 201);
    }
    let queued = enqueue(&app, roomed, 10).await;
    assert_eq!(queued.status, 202, "{queued:?}");

    let mut watch = Watch::open(&app, plain).await;
    let snapshot = watch.next().await.expect("a snapshot");
    let g = &snapshot["group"];
    assert_eq!(g["groupId"], drop, "{snapshot}");
    assert_eq!(g["perUserLimit"], 2, "{g}");
    let campaigns = g["campaigns"].as_array().expect("campaigns");
    let ids: Vec<i64> = campaigns
        .iter()
        .map(|c| c["campaignId"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![plain, roomed],
        "the group's campaigns, oldest first"
    );
    let (a, b) = (&campaigns[0], &campaigns[1]);
    let figures = |c: &Value| {
        (
            c["state"].clone(),
            c["totalStock"].as_i64(),
            c["freeStock"].as_i64(),
            c["acceptedCount"].as_i64(),
        )
    };
    assert_eq!(
        figures(a),
        (json!("OPEN"), Some(5), Some(3), Some(2)),
        "{a}"
    );
    assert_eq!(
        figures(b),
        (json!("OPEN"), Some(3), Some(3), Some(0)),
        "{b}"
    );
    assert!(a["queueLength"].is_null(), "no room: {a}");
    assert!(a["waitlisted"].is_null(), "no room: {a}");
    assert!(b["queueLength"].as_i64().is_some(), "a room: {b}");
    assert_eq!(
        (b["waitlisted"].as_i64(), b["offersOpen"].as_i64()),
        (Some(0), Some(0)),
        "{b}"
    );

    let alone = app.open_campaign(1, 1).await;
    let mut watch = Watch::open(&app, alone).await;
    let snapshot = watch.next().await.expect("a snapshot");
    assert!(snapshot["group"].is_null(), "in no group: {snapshot}");
}
