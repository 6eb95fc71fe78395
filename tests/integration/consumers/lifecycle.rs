//! The consumers follow a win's lifecycle (docs/design.md §11, §14): wins, then their
//! confirmations and cancellations, produced straight to the topic with the campaign's key, are
//! counted by stats and granted (or taken back) by rewards exactly; every message delivered
//! again changes nothing; an unknown `eventType` among them still goes to the dead-letter topics.

use chrono::Utc;
use firstcome::events::{
    accepted::{WinStatus, PARTICIPATION_ACCEPTED},
    headers,
    lifecycle::{
        CancelReason, ParticipationCancelled, ParticipationConfirmed, PARTICIPATION_CANCELLED,
        PARTICIPATION_CONFIRMED,
    },
    ParticipationAccepted,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    consumer_helpers::{produce, with_consumers, Raw},
    spawn::{spawn_app_with, test_settings, TestApp},
};

/// Points per unit of the test's campaign.
const POINTS: i64 = 7;

/// What happens to each user's win: (user, units, status at acceptance, what follows).
const STORIES: [(i64, i32, WinStatus, Later); 5] = [
    (1, 2, WinStatus::Held, Later::Confirmed),
    (
        2,
        1,
        WinStatus::Held,
        Later::Cancelled(CancelReason::Expired),
    ),
    (
        3,
        3,
        WinStatus::Confirmed,
        Later::Cancelled(CancelReason::Admin),
    ),
    (4, 1, WinStatus::Held, Later::Cancelled(CancelReason::User)),
    (5, 2, WinStatus::Confirmed, Later::Nothing),
];

#[derive(Debug, Clone, Copy)]
enum Later {
    Confirmed,
    Cancelled(CancelReason),
    Nothing,
}

/// The wins of [`STORIES`] in `campaign`, then what follows each, with an unknown event type
/// in the middle of the later events.
fn messages(campaign: i64) -> (Vec<Raw>, Vec<Raw>) {
    let now = Utc::now();
    let mut wins = Vec::new();
    let mut later = Vec::new();
    for (user, quantity, status, next) in STORIES {
        let win = ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: now,
            campaign_id: campaign,
            participation_id: 100 + user,
            user_id: user,
            quantity,
            sequence: user,
            reward_points: POINTS,
            status,
            hold_expires_at: (status == WinStatus::Held)
                .then(|| now + chrono::Duration::minutes(5)),
            purchase_id: None,
        };
        wins.push(Raw::of(&win));
        match next {
            Later::Confirmed => later.push(Raw::of(&ParticipationConfirmed {
                event_id: Uuid::now_v7(),
                event_type: PARTICIPATION_CONFIRMED.into(),
                occurred_at: now,
                campaign_id: campaign,
                participation_id: win.participation_id,
                user_id: user,
                quantity,
                reward_points: POINTS,
                purchase_id: None,
            })),
            Later::Cancelled(reason) => later.push(Raw::of(&ParticipationCancelled {
                event_id: Uuid::now_v7(),
                event_type: PARTICIPATION_CANCELLED.into(),
                occurred_at: now,
                campaign_id: campaign,
                participation_id: win.participation_id,
                user_id: user,
                quantity,
                reason,
                previous_status: status,
                reward_points: POINTS,
                purchase_id: None,
            })),
            Later::Nothing => {}
        }
        if user == 2 {
            later.push(unknown_type(campaign));
        }
    }
    (wins, later)
}

/// A well-formed event of a type no consumer knows: poison.
fn unknown_type(campaign: i64) -> Raw {
    let id = Uuid::now_v7();
    let value = json!({
        "eventId": id, "eventType": "ParticipationRefunded", "occurredAt": Utc::now(),
        "campaignId": campaign, "participationId": 1, "userId": 1, "quantity": 1,
    });
    Raw {
        key: Some(campaign.to_string().into_bytes()),
        value: Some(value.to_string().into_bytes()),
        headers: headers::build(id, "ParticipationRefunded", None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wins_later_events_are_counted_and_granted_once_and_unknown_types_are_poison() {
    let app = spawn_app_with(with_consumers(test_settings().await)).await;
    let campaign = app
        .create_campaign(
            json!({"name": "lifecycle", "totalStock": 100, "perUserLimit": 3,
            "rewardPoints": POINTS}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let (wins, later) = messages(campaign);
    // The wins first, applied on their own: the later events then come in batches without a
    // win, which must leave the win times alone.
    produce(&app.kafka_bootstrap, &app.topic, &wins).await;
    app.wait_for_both_consumers(5, 0, 0).await;
    produce(&app.kafka_bootstrap, &app.topic, &later).await;
    app.wait_for_both_consumers(9, 0, 1).await;
    let refund = refund_id(&later);
    assert_stats(&app, campaign).await;
    assert_rewards(&app, &refund).await;

    // Every message again, as it was (a relay duplicate, a redelivery): nothing changes.
    let all: Vec<Raw> = wins.iter().chain(&later).cloned().collect();
    produce(&app.kafka_bootstrap, &app.topic, &all).await;
    app.wait_for_both_consumers(9, 9, 2).await;
    assert_stats(&app, campaign).await;
    assert_rewards(&app, &refund).await;
    app.stop().await.expect("clean stop");
}

/// The event id of the admin's refund (user 3's cancellation).
fn refund_id(later: &[Raw]) -> String {
    later
        .iter()
        .find(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(m.value.as_deref().unwrap_or_default()).expect("JSON");
            v["eventType"] == PARTICIPATION_CANCELLED && v["userId"] == 3
        })
        .map(|m| m.headers[headers::EVENT_ID].clone())
        .expect("user 3's cancellation")
}

/// 5 wins (9 units): 3 confirmed (one at acceptance, one later, one refunded later), 2 cancelled
/// (the user's hold, the admin's refund), 1 expired; 4 units still held or confirmed.
async fn assert_stats(app: &TestApp, campaign: i64) {
    let stats = app
        .get(&format!("/api/v1/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats.status, 200, "{stats:?}");
    let figures: Vec<i64> = [
        "acceptedCount",
        "acceptedQuantity",
        "confirmedCount",
        "cancelledCount",
        "expiredCount",
        "activeQuantity",
        "eventsApplied",
    ]
    .iter()
    .map(|f| {
        stats.body[f]
            .as_i64()
            .unwrap_or_else(|| panic!("{f}: {stats:?}"))
    })
    .collect();
    assert_eq!(figures, [5, 9, 3, 2, 1, 4, 9], "{:?}", stats.body);
    assert!(
        stats.body["firstAcceptedAt"].is_string(),
        "{:?}",
        stats.body
    );
    assert!(stats.body["lastAcceptedAt"].is_string(), "{:?}", stats.body);
    assert!(stats.body.get("soldOutAt").is_none(), "{:?}", stats.body);
    let daily = app
        .int_rows("SELECT accepted_count, accepted_quantity FROM campaign_daily_stats")
        .await;
    assert_eq!(daily, [[Some(5), Some(9)]], "wins per day only");
}

/// Points once a win is final: user 1 on its confirmation, 5 at acceptance; user 3's refund
/// takes back what its acceptance granted. Held wins that ended (users 2 and 4) moved nothing.
async fn assert_rewards(app: &TestApp, refund_id: &str) {
    let grants = app
        .int_rows("SELECT user_id, points FROM reward_grant ORDER BY user_id, points")
        .await;
    let expected: Vec<Vec<Option<i64>>> = [(1, 14), (3, -21), (3, 21), (5, 14)]
        .iter()
        .map(|(u, p)| vec![Some(*u), Some(*p)])
        .collect();
    assert_eq!(grants, expected);
    for (user, points, grant_count) in [(1, 14, 1), (2, 0, 0), (3, 0, 2), (4, 0, 0), (5, 14, 1)] {
        let r = app.get(&format!("/api/v1/users/{user}/rewards")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["points"], points, "user {user}: {:?}", r.body);
        let grants = r.body["grants"].as_array().expect("grants");
        assert_eq!(grants.len(), grant_count, "user {user}: {:?}", r.body);
    }
    // The refund's grant is keyed by the cancelling event.
    let taken_back = app
        .scalar(&format!(
            "SELECT points FROM reward_grant WHERE event_id = '{refund_id}'"
        ))
        .await;
    assert_eq!(taken_back, -21);
}
