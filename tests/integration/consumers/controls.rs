//! The consumers read a campaign's live controls among its wins (docs/design.md §4, §11): the
//! four control events, produced straight to the topic with the campaign's key, are counted by
//! stats (units added and withdrawn, the paused state after the latest pause or resume, the
//! close, controls applied) and move no points in rewards, yet get their inbox row in both; a
//! control that breaks the contract is poison for both; every message delivered again changes
//! nothing.

use chrono::{DateTime, Utc};
use firstcome::{
    db::time::precision,
    events::{
        accepted::{WinStatus, PARTICIPATION_ACCEPTED},
        control::{CampaignChanged, ControlKind},
        lifecycle::ParticipationMessage,
        ParticipationAccepted,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    consumer_helpers::{produce, with_consumers, Raw},
    spawn::{spawn_app_with, test_settings, TestApp},
};

/// Points per unit of the test's campaign.
const POINTS: i64 = 7;

/// The message the relay would send for a win.
fn win(campaign: i64, user: i64, quantity: i32, status: WinStatus, at: DateTime<Utc>) -> Raw {
    let e = ParticipationAccepted {
        event_id: Uuid::now_v7(),
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: at,
        campaign_id: campaign,
        participation_id: 100 + user,
        user_id: user,
        quantity,
        sequence: user,
        reward_points: POINTS,
        status,
        hold_expires_at: (status == WinStatus::Held).then(|| at + chrono::Duration::minutes(5)),
        purchase_id: None,
    };
    Raw {
        key: Some(e.key().into_bytes()),
        value: Some(e.json().into_bytes()),
        headers: e.message_headers(None),
    }
}

/// A control as the writer builds it (`seq` its `controlSeq`).
fn control(
    campaign: i64,
    seq: i64,
    kind: ControlKind,
    delta: Option<i64>,
    at: DateTime<Utc>,
) -> CampaignChanged {
    CampaignChanged {
        event_id: Uuid::now_v7(),
        event_type: kind.event_type().into(),
        occurred_at: at,
        campaign_id: campaign,
        control_seq: seq,
        changed_by: "ops".into(),
        delta,
        total_stock: 100,
        remaining_stock: 50,
    }
}

/// The message the relay would send for a control.
fn raw(c: &CampaignChanged) -> Raw {
    Raw {
        key: Some(c.key().into_bytes()),
        value: Some(c.json().into_bytes()),
        headers: c.message_headers(None),
    }
}

/// What the stats endpoint says of the campaign's wins and controls.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// acceptedCount, acceptedQuantity, confirmedCount, cancelledCount, expiredCount,
    /// activeQuantity, eventsApplied.
    wins: [i64; 7],
    /// stockAdded, stockWithdrawn, controlsApplied.
    controls: [i64; 3],
    paused: bool,
    closed_at: Option<DateTime<Utc>>,
}

async fn seen(app: &TestApp, campaign: i64) -> Seen {
    let stats = app
        .get(&format!("/api/v1/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats.status, 200, "{stats:?}");
    let b = &stats.body;
    let int = |f: &str| b[f].as_i64().unwrap_or_else(|| panic!("{f}: {b:?}"));
    Seen {
        wins: [
            "acceptedCount",
            "acceptedQuantity",
            "confirmedCount",
            "cancelledCount",
            "expiredCount",
            "activeQuantity",
            "eventsApplied",
        ]
        .map(int),
        controls: ["stockAdded", "stockWithdrawn", "controlsApplied"].map(int),
        paused: b["paused"]
            .as_bool()
            .unwrap_or_else(|| panic!("paused: {b:?}")),
        closed_at: b.get("closedAt").map(|t| {
            let t = t.as_str().unwrap_or_else(|| panic!("closedAt: {b:?}"));
            DateTime::parse_from_rfc3339(t).expect("RFC 3339").to_utc()
        }),
    }
}

/// Only user 1's win is final (CONFIRMED at acceptance): its grant is the only one, whatever
/// the controls around it.
async fn assert_rewards(app: &TestApp) {
    let grants = app
        .int_rows("SELECT user_id, points FROM reward_grant ORDER BY user_id")
        .await;
    assert_eq!(
        grants,
        [[Some(1), Some(2 * POINTS)]],
        "a control grants nothing"
    );
    let r = app.get("/api/v1/users/1/rewards").await;
    assert_eq!(r.body["points"], 2 * POINTS, "{r:?}");
    let daily = app
        .int_rows("SELECT accepted_count, accepted_quantity FROM campaign_daily_stats")
        .await;
    assert_eq!(daily, [[Some(2), Some(3)]], "wins per day only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controls_are_counted_by_stats_skipped_by_rewards_and_broken_ones_are_poison() {
    let app = spawn_app_with(with_consumers(test_settings().await)).await;
    let campaign = app
        .create_campaign(
            json!({"name": "controls", "totalStock": 100, "perUserLimit": 3,
            "rewardPoints": POINTS}),
        )
        .await["id"]
        .as_i64()
        .expect("id");
    let t0 = precision(Utc::now());
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let c = |seq, kind, delta| control(campaign, seq, kind, delta, at(seq));
    use ControlKind::{Closed, Paused, Resumed, StockChanged};

    // Wins and controls interleaved, as they commit; three broken controls among them.
    let broken = [
        CampaignChanged {
            delta: Some(3),
            ..c(3, Paused, None)
        },
        CampaignChanged {
            delta: Some(0),
            ..c(3, StockChanged, None)
        },
        CampaignChanged {
            control_seq: 0,
            ..c(3, Resumed, None)
        },
    ];
    let first = vec![
        win(campaign, 1, 2, WinStatus::Confirmed, at(0)),
        raw(&c(1, StockChanged, Some(5))),
        raw(&c(2, StockChanged, Some(-2))),
        raw(&broken[0]),
        raw(&c(3, Paused, None)),
        win(campaign, 2, 1, WinStatus::Held, at(3)),
        raw(&broken[1]),
        raw(&c(4, Resumed, None)),
        raw(&broken[2]),
        raw(&c(5, Paused, None)),
    ];
    produce(&app.kafka_bootstrap, &app.topic, &first).await;
    app.wait_for_both_consumers(7, 0, 3).await;
    let mut expected = Seen {
        wins: [2, 3, 1, 0, 0, 3, 7],
        controls: [5, 2, 5],
        // The last of the pauses and resumes was a pause.
        paused: true,
        closed_at: None,
    };
    assert_eq!(seen(&app, campaign).await, expected);
    assert_rewards(&app).await;

    // A later batch without a pause or resume leaves the stored state alone.
    let second = vec![raw(&c(6, StockChanged, Some(-1)))];
    produce(&app.kafka_bootstrap, &app.topic, &second).await;
    app.wait_for_both_consumers(8, 0, 3).await;
    expected.wins[6] = 8;
    expected.controls = [5, 3, 6];
    assert_eq!(seen(&app, campaign).await, expected);

    // A resume of the stored row, then the close.
    let third = vec![raw(&c(7, Resumed, None)), raw(&c(8, Closed, None))];
    produce(&app.kafka_bootstrap, &app.topic, &third).await;
    app.wait_for_both_consumers(10, 0, 3).await;
    expected.wins[6] = 10;
    expected.controls = [5, 3, 8];
    expected.paused = false;
    expected.closed_at = Some(at(8));
    assert_eq!(seen(&app, campaign).await, expected);
    assert_rewards(&app).await;

    // Every message again, as it was (a relay duplicate, a redelivery): nothing changes.
    let all: Vec<Raw> = [first, second, third].concat();
    produce(&app.kafka_bootstrap, &app.topic, &all).await;
    app.wait_for_both_consumers(10, 10, 6).await;
    assert_eq!(seen(&app, campaign).await, expected);
    assert_rewards(&app).await;
    app.stop().await.expect("clean stop");
}
