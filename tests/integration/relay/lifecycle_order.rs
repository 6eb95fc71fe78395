//! A win's later events in order through a broker outage (docs/design.md §2.5, §14): holds
//! confirmed and cancelled, refunds of wins confirmed at once, and new wins of the units that
//! came back, all while the broker is down and rows go back to the outbox from a purge. Every
//! event reaches the topic, first deliveries in outbox order per key with zero inversions, and
//! each confirmation or cancellation after its own acceptance.

use std::collections::HashMap;

use futures::future::join_all;
use serde_json::json;

use super::order::{assert_all_published_in_order, one_worker_settings, DRAIN};
use crate::{
    kafka::read_topic,
    spawn::{spawn_app_with, test_settings, with_relay, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// `users` join `campaign`, one unit each; every join must win.
pub(super) async fn wins(app: &TestApp, campaign: i64, users: std::ops::Range<i64>) {
    let replies = join_all(users.map(|u| app.join(campaign, u, 1))).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies.iter().find(|r| r.status != 201)
    );
}

/// `action` (confirm or cancel) on each user's win, with the admin token when `admin`; every
/// call must succeed.
async fn act(app: &TestApp, campaign: i64, users: std::ops::Range<i64>, action: &str, admin: bool) {
    let token = admin.then_some(ADMIN_TOKEN);
    let replies = join_all(users.map(|u| {
        let path = format!("/api/v1/campaigns/{campaign}/participations/{u}/{action}");
        async move { app.post_json(&path, &json!({}), token).await }
    }))
    .await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "{action}: {:?}",
        replies.iter().find(|r| r.status != 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wins_later_events_follow_it_in_order_through_a_broker_outage() {
    let app = spawn_app_with(one_worker_settings(with_relay(test_settings().await))).await;
    let broker = app.broker.clone().expect("embedded broker");
    let held = app
        .open_campaign_with(150, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let instant = app.open_campaign(150, 1).await;
    wins(&app, held, 1..101).await;
    wins(&app, instant, 1..101).await;

    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    act(&app, held, 1..31, "confirm", false).await;
    act(&app, held, 31..61, "cancel", false).await;
    act(&app, instant, 1..31, "cancel", true).await;
    wait_until("rows to come back from a purge", DRAIN, || async {
        app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
            .await
            > 0
    })
    .await;
    // The units that came back, sold to new users; more of the story of the first ones.
    wins(&app, held, 101..181).await;
    wins(&app, instant, 101..181).await;
    act(&app, held, 61..81, "confirm", false).await;
    act(&app, held, 1..11, "cancel", true).await;
    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");

    // 360 wins, 50 confirmations, 70 cancellations.
    let total = app.scalar("SELECT COUNT(*) FROM outbox_event").await;
    assert_eq!(total, 360 + 50 + 70);
    assert_all_published_in_order(&app, total as usize).await;
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, total as usize, DRAIN).await;
    assert_each_win_first(&messages);
    app.assert_no_drift(held).await;
    app.assert_no_drift(instant).await;
}

/// On each partition, a participation's first message is its acceptance, and every event of it
/// comes after its acceptance.
fn assert_each_win_first(messages: &[crate::kafka::Consumed]) {
    let mut sorted: Vec<_> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    let mut accepted: HashMap<i64, i64> = HashMap::new();
    let mut later = 0;
    for m in sorted {
        let event = m.json();
        let id = event["participationId"].as_i64().expect("participationId");
        match event["eventType"].as_str().expect("eventType") {
            "ParticipationAccepted" => {
                accepted.entry(id).or_insert(m.offset);
            }
            other => {
                assert!(
                    accepted.contains_key(&id),
                    "{other} of participation {id} (offset {}) before its acceptance",
                    m.offset
                );
                later += 1;
            }
        }
    }
    assert_eq!(accepted.len(), 360, "every win on the topic");
    assert!(later >= 120, "every later event on the topic: {later}");
}
