//! A campaign's live controls in order with its wins (docs/design.md §2.5, §15): joins
//! interleaved with units added, a pause (joins refused), a resume, units withdrawn and a close,
//! part of it while the broker is down and rows go back to the outbox from a purge. Every event
//! reaches the topic, first deliveries in outbox order with zero inversions, the controls numbered
//! 1, 2, … along the topic, and each control between exactly the wins that committed before it
//! and those after it, with the totals it left.

use std::collections::{BTreeSet, HashSet};

use firstcome::events::headers;
use futures::future::join_all;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

use super::{
    lifecycle_order::wins,
    order::{assert_all_published_in_order, one_worker_settings, DRAIN},
};
use crate::{
    kafka::{read_topic, Consumed},
    spawn::{spawn_app_with, test_settings, with_relay, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// `users` join `campaign` at once on both paths; every join gets `status` with `code`.
async fn refused(app: &TestApp, campaign: i64, users: std::ops::Range<i64>, want: (u16, &str)) {
    let replies = join_all(users.map(|u| app.join(campaign, u, 1))).await;
    let sync = app
        .post_json(
            &format!("/api/v1/campaigns/{campaign}/participations/sync"),
            &json!({"userId": 999_999}),
            None,
        )
        .await;
    for reply in replies.iter().chain([&sync]) {
        assert_eq!((reply.status, reply.code()), want, "{reply:?}");
    }
}

/// A control of the campaign that must succeed; its answer (the campaign).
async fn control(app: &TestApp, campaign: i64, path: &str, body: Value) -> Value {
    let path = format!("/api/v1/admin/campaigns/{campaign}/{path}");
    let reply = app.post_json(&path, &body, Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    reply.body
}

/// What the topic must tell of the campaign, in order.
#[derive(Debug)]
enum Step {
    /// These users' wins, in any order among themselves.
    Wins(std::ops::Range<i64>),
    /// A control: `eventType`, `delta`, `totalStock`, `remainingStock`.
    Control(&'static str, Option<i64>, i64, i64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controls_keep_their_place_among_the_wins_through_a_broker_outage() {
    let app = spawn_app_with(one_worker_settings(with_relay(test_settings().await))).await;
    let broker = app.broker.clone().expect("embedded broker");
    let campaign = app.open_campaign(50, 1).await;

    wins(&app, campaign, 1..21).await;
    control(&app, campaign, "stock", json!({"delta": 30})).await;
    wins(&app, campaign, 21..41).await;
    broker
        .with_cluster(|c| c.broker_down(1))
        .expect("cluster")
        .expect("broker down");
    let paused = control(&app, campaign, "pause", json!({})).await;
    assert_eq!(paused["state"], "PAUSED", "{paused}");
    refused(&app, campaign, 41..46, (422, "CAMPAIGN_PAUSED")).await;
    wait_until("rows to come back from a purge", DRAIN, || async {
        app.scalar("SELECT COUNT(*) FROM outbox_event WHERE last_error IS NOT NULL")
            .await
            > 0
    })
    .await;
    control(&app, campaign, "resume", json!({})).await;
    wins(&app, campaign, 41..61).await;
    let withdrawn = control(&app, campaign, "stock", json!({"delta": -10})).await;
    assert_eq!(
        (&withdrawn["totalStock"], &withdrawn["remainingStock"]),
        (&json!(70), &json!(10))
    );
    broker
        .with_cluster(|c| c.broker_up(1))
        .expect("cluster")
        .expect("broker up");
    wins(&app, campaign, 61..71).await;
    refused(&app, campaign, 71..73, (409, "SOLD_OUT")).await;
    app.assert_no_drift(campaign).await;
    control(&app, campaign, "close", json!({})).await;
    refused(&app, campaign, 73..75, (422, "CAMPAIGN_ENDED")).await;

    let story = [
        Step::Wins(1..21),
        Step::Control("CampaignStockChanged", Some(30), 80, 60),
        Step::Wins(21..41),
        Step::Control("CampaignPaused", None, 80, 40),
        Step::Control("CampaignResumed", None, 80, 40),
        Step::Wins(41..61),
        Step::Control("CampaignStockChanged", Some(-10), 70, 10),
        Step::Wins(61..71),
        Step::Control("CampaignClosed", None, 70, 0),
    ];
    let total = app.scalar("SELECT COUNT(*) FROM outbox_event").await;
    assert_eq!(total, 70 + 5, "70 wins and 5 controls");
    assert_all_published_in_order(&app, total as usize).await;
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, total as usize, DRAIN).await;
    let told = first_deliveries(&messages, campaign);
    assert_eq!(
        told.iter().map(|m| m.event_id()).collect::<Vec<_>>(),
        outbox_order(&app, campaign).await,
        "the topic tells the campaign's events in outbox order"
    );
    assert_story(&told, &story, campaign);
}

/// The campaign's messages, first deliveries only, in the order its partition holds them.
fn first_deliveries(messages: &[Consumed], campaign: i64) -> Vec<&Consumed> {
    let key = campaign.to_string();
    let mut mine: Vec<&Consumed> = messages.iter().filter(|m| m.key == key).collect();
    let partitions: HashSet<i32> = mine.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), 1, "one key, one partition");
    mine.sort_by_key(|m| m.offset);
    let mut seen = HashSet::new();
    mine.retain(|m| seen.insert(m.event_id().to_string()));
    mine
}

/// The campaign's event ids in outbox id order.
async fn outbox_order(app: &TestApp, campaign: i64) -> Vec<String> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT event_id FROM outbox_event WHERE msg_key = '{campaign}' ORDER BY id"),
        ))
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("event_id"))
        .collect()
}

/// Walks the topic's messages along `story`: each run of wins is exactly its users, each
/// control is the next one by number with the totals it left.
fn assert_story(told: &[&Consumed], story: &[Step], campaign: i64) {
    let mut at = 0;
    let mut control_seq = 0;
    for step in story {
        match step {
            Step::Wins(users) => {
                let n = users.clone().count();
                let run = &told[at..(at + n).min(told.len())];
                let got: BTreeSet<i64> = run
                    .iter()
                    .filter(|m| m.json()["eventType"] == "ParticipationAccepted")
                    .map(|m| m.json()["userId"].as_i64().expect("userId"))
                    .collect();
                let want: BTreeSet<i64> = users.clone().collect();
                assert_eq!(
                    got,
                    want,
                    "messages {at}..{}: the wins of {users:?}",
                    at + n
                );
                at += n;
            }
            Step::Control(event_type, delta, total, remaining) => {
                control_seq += 1;
                let m = told.get(at).expect("a control message");
                let event = m.json();
                let mut want = json!({
                    "eventId": m.event_id(),
                    "eventType": event_type,
                    "occurredAt": event["occurredAt"],
                    "campaignId": campaign,
                    "controlSeq": control_seq,
                    "changedBy": "admin",
                    "totalStock": total,
                    "remainingStock": remaining,
                });
                if let Some(d) = delta {
                    want["delta"] = json!(d);
                }
                assert_eq!(event, want, "message {at}");
                assert!(event["occurredAt"].is_string(), "{event}");
                assert_eq!(
                    m.headers.get(headers::EVENT_TYPE).map(String::as_str),
                    Some(*event_type)
                );
                at += 1;
            }
        }
    }
    assert_eq!(at, told.len(), "nothing else on the campaign's key");
}
