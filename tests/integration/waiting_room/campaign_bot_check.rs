//! Each campaign's choice of the bot check (docs/design.md §16 "Bots at the door"): a campaign
//! asks for it at its door (its room's queue, an `OPEN` campaign's joins) where the service has
//! none configured, one that says no is never asked, and the live switch reaches every
//! instance's door within about a second, in both directions. Switched on, a ticket given
//! without the check wins nothing at the join.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    bot_check::{queue, solved},
    join_with, poll_until, room_campaign, room_settings,
};
use crate::{
    http::Reply,
    spawn::{spawn_app_with, spawn_pair_with, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// Sets `campaign`'s own choice through the live control, on `app`.
async fn switch(app: &TestApp, campaign: i64, required: Value) -> Reply {
    let reply = app
        .post_json(
            &format!("/api/v1/admin/campaigns/{campaign}/bot-check"),
            &json!({ "required": required }),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
}

async fn join(app: &TestApp, campaign: i64, user: i64, bot_check: Option<&str>) -> Reply {
    let mut body = json!({ "userId": user });
    if let Some(b) = bot_check {
        body["botCheck"] = json!(b);
    }
    let path = format!("/api/v1/campaigns/{campaign}/participations");
    app.post_json(&path, &body, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_asks_for_the_check_where_the_service_has_none_and_one_that_does_not_is_never_asked(
) {
    // BOT_CHECK=off: the proof of work is there for the campaigns that ask.
    let app = spawn_app_with(room_settings().await).await;
    let asking = room_campaign(&app, "QUEUE", 5, 100, json!({"botCheck": true})).await;
    let plain = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let open = app
        .open_campaign_with(5, 1, json!({"botCheck": true}))
        .await;

    let refused = queue(&app, asking, 1, None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "{refused:?}"
    );
    let answer = solved(&app, asking).await;
    assert_eq!(queue(&app, asking, 1, Some(&answer)).await.status, 202);

    let challenge = app
        .get(&format!("/api/v1/campaigns/{plain}/bot-check"))
        .await;
    assert_eq!(challenge.status, 404, "{challenge:?}");
    assert_eq!(queue(&app, plain, 1, None).await.status, 202);

    let refused = join(&app, open, 1, None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "{refused:?}"
    );
    assert_eq!(app.remaining_stock(open).await, 5, "nothing sold");
    let answer = solved(&app, open).await;
    assert_eq!(join(&app, open, 1, Some(&answer)).await.status, 201);
    let created = app.get(&format!("/api/v1/campaigns/{open}")).await;
    assert_eq!(created.body["botCheck"], json!(true), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_switch_reaches_every_instances_door_within_a_second_both_ways() {
    let settings = room_settings().await;
    let (a, b, _broker) = spawn_pair_with(|s| {
        s.waiting_room = settings.waiting_room.clone();
        s.rate_limits = settings.rate_limits.clone();
    })
    .await;
    let campaign = room_campaign(&a, "QUEUE", 10, 100, json!({})).await;
    let early = queue(&b, campaign, 1, None).await;
    assert_eq!(early.status, 202, "{early:?}");

    let answer = switch(&a, campaign, json!(true)).await;
    assert_eq!(answer.body["botCheck"], json!(true), "{answer:?}");
    let mut user = 100;
    wait_until(
        "b's door to ask for the check",
        Duration::from_secs(3),
        || {
            user += 1;
            let b = &b;
            async move { queue(b, campaign, user, None).await.status == 403 }
        },
    )
    .await;
    // The ticket given before the switch, without the check, wins nothing now.
    let ticket = early.body["ticket"].as_str().expect("ticket").to_string();
    let admitted = poll_until(&b, campaign, &ticket, &["ADMITTED"]).await;
    let token = admitted.body["admissionToken"].as_str().expect("token");
    let refused = join_with(&b, campaign, 1, Some(token)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "{refused:?}"
    );

    let answer = switch(&a, campaign, Value::Null).await;
    assert!(answer.body.get("botCheck").is_none(), "{answer:?}");
    let mut user = 200;
    wait_until("b's door to stop asking", Duration::from_secs(3), || {
        user += 1;
        let b = &b;
        async move { queue(b, campaign, user, None).await.status == 202 }
    })
    .await;
    assert_eq!(join_with(&b, campaign, 1, Some(token)).await.status, 201);
}
