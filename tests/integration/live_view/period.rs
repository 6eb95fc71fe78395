//! Statistics over a period (docs/design.md §20): the aggregate kept by the stats consumer and
//! the figures counted from `participation` agree day by day over a range that crosses midnight
//! UTC, wins, confirmations, cancellations, expiries and refused joins each on the day it
//! happened; a period is checked before it is read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use firstcome::events::{
    accepted::{WinStatus, PARTICIPATION_ACCEPTED},
    lifecycle::{
        CancelReason, ParticipationCancelled, ParticipationConfirmed, PARTICIPATION_CANCELLED,
        PARTICIPATION_CONFIRMED,
    },
    ParticipationAccepted,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    consumer_helpers::{produce, with_consumers, Raw},
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

/// What follows a win in the story of one user.
#[derive(Clone, Copy)]
enum Then {
    Confirmed,
    Cancelled(CancelReason),
    Nothing,
}

fn sql_time(at: DateTime<Utc>) -> String {
    format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.6f"))
}

/// One user's win at `won`, as the relay would publish it and as `participation` holds it, and
/// what follows at `then_at`.
async fn story(
    app: &TestApp,
    campaign: i64,
    user: i64,
    status: WinStatus,
    won: DateTime<Utc>,
    then: Then,
    then_at: DateTime<Utc>,
) -> Vec<Raw> {
    let held = status == WinStatus::Held;
    let hold_until = held.then(|| won + chrono::Duration::minutes(5));
    let win = ParticipationAccepted {
        event_id: Uuid::now_v7(),
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: won,
        campaign_id: campaign,
        participation_id: user,
        user_id: user,
        quantity: 2,
        sequence: user,
        reward_points: 0,
        status,
        hold_expires_at: hold_until,
        purchase_id: None,
    };
    let mut messages = vec![Raw::of(&win)];
    let (row_status, confirmed_at, cancelled_at, reason) = match then {
        Then::Confirmed => {
            messages.push(Raw::of(&ParticipationConfirmed {
                event_id: Uuid::now_v7(),
                event_type: PARTICIPATION_CONFIRMED.into(),
                occurred_at: then_at,
                campaign_id: campaign,
                participation_id: user,
                user_id: user,
                quantity: 2,
                reward_points: 0,
                purchase_id: None,
            }));
            ("CONFIRMED", sql_time(then_at), "NULL".into(), "NULL".into())
        }
        Then::Cancelled(reason) => {
            messages.push(Raw::of(&ParticipationCancelled {
                event_id: Uuid::now_v7(),
                event_type: PARTICIPATION_CANCELLED.into(),
                occurred_at: then_at,
                campaign_id: campaign,
                participation_id: user,
                user_id: user,
                quantity: 2,
                reason,
                previous_status: status,
                reward_points: 0,
                purchase_id: None,
            }));
            let row_status = match reason {
                CancelReason::Expired => "EXPIRED",
                _ => "CANCELLED",
            };
            (
                row_status,
                "NULL".into(),
                sql_time(then_at),
                format!("'{}'", reason.as_str()),
            )
        }
        Then::Nothing if held => ("HELD", "NULL".into(), "NULL".into(), "NULL".into()),
        Then::Nothing => ("CONFIRMED", "NULL".into(), "NULL".into(), "NULL".into()),
    };
    let hold = hold_until.map_or("NULL".into(), sql_time);
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO participation (id, campaign_id, user_id, quantity, sequence, created_at, \
             status, hold_expires_at, confirmed_at, cancelled_at, cancel_reason) VALUES \
             ({user}, {campaign}, {user}, 2, {user}, {}, '{row_status}', {hold}, {confirmed_at}, \
             {cancelled_at}, {reason})",
            sql_time(won)
        ))
        .await
        .expect("insert the participation");
    messages
}

fn row(
    date: &str,
    campaign: i64,
    won: [i64; 2],
    lifecycle: [i64; 3],
    refused: &[(&str, i64)],
) -> Value {
    json!({
        "date": date, "campaignId": campaign,
        "acceptedCount": won[0], "acceptedQuantity": won[1],
        "confirmedCount": lifecycle[0], "cancelledCount": lifecycle[1], "expiredCount": lifecycle[2],
        "refusedCount": refused.iter().map(|(_, n)| n).sum::<i64>(),
        "refusedByReason": refused.iter().map(|(r, n)| (r.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>(),
    })
}

use sea_orm::ConnectionTrait;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aggregate_and_the_raw_count_agree_day_by_day_across_midnight_utc() {
    let app = spawn_app_with(with_consumers(test_settings().await)).await;
    let campaign = app.open_campaign(100, 2).await;
    let midnight: DateTime<Utc> = "2026-11-21T00:00:00Z".parse().expect("a time");
    let before = midnight - chrono::Duration::milliseconds(500);
    let after = midnight + chrono::Duration::milliseconds(500);
    let stories = [
        (1, WinStatus::Held, before, Then::Confirmed, after),
        (
            2,
            WinStatus::Held,
            before,
            Then::Cancelled(CancelReason::Expired),
            after,
        ),
        (
            3,
            WinStatus::Confirmed,
            before,
            Then::Cancelled(CancelReason::Admin),
            after,
        ),
        (
            4,
            WinStatus::Held,
            after,
            Then::Cancelled(CancelReason::User),
            after,
        ),
        (5, WinStatus::Confirmed, after, Then::Nothing, after),
        (6, WinStatus::Confirmed, before, Then::Nothing, before),
        (7, WinStatus::Held, before, Then::Nothing, before),
    ];
    let mut messages = Vec::new();
    for (user, status, won, then, then_at) in stories {
        messages.extend(story(&app, campaign, user, status, won, then, then_at).await);
    }
    let events = messages.len() as i64;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO campaign_refusal (campaign_id, day, reason, refused_count) VALUES \
             ({campaign}, '2026-11-20', 'SOLD_OUT', 40), ({campaign}, '2026-11-21', 'SOLD_OUT', 7), \
             ({campaign}, '2026-11-21', 'ALREADY_PARTICIPATED', 3), ({campaign}, '2026-11-22', 'SOLD_OUT', 1)"
        ))
        .await
        .expect("insert refusals");
    produce(&app.kafka_bootstrap, &app.topic, &messages).await;
    wait_until(
        "the stats consumer to apply every event",
        Duration::from_secs(30),
        || async {
            app.scalar(&format!(
                "SELECT COALESCE(MAX(events_applied), 0) FROM campaign_stats WHERE campaign_id = {campaign}"
            ))
            .await
                == events
        },
    )
    .await;

    let period = "from=2026-11-20&to=2026-11-21";
    let aggregate = app
        .admin_get(&format!("/api/v1/admin/stats/daily?{period}"))
        .await;
    let counted = app
        .admin_get(&format!("/api/v1/admin/stats/raw?{period}"))
        .await;
    assert_eq!(aggregate.status, 200, "{aggregate:?}");
    assert_eq!(counted.status, 200, "{counted:?}");
    let expected = json!([
        // Users 1, 2, 3, 6, 7 won before midnight (2 units each); 3 and 6 were confirmed at once.
        row(
            "2026-11-20",
            campaign,
            [5, 10],
            [2, 0, 0],
            &[("SOLD_OUT", 40)]
        ),
        // After it: 4 and 5 won (5 confirmed at once), 1 was confirmed, 3 refunded, 4 cancelled,
        // 2 expired.
        row(
            "2026-11-21",
            campaign,
            [2, 4],
            [2, 2, 1],
            &[("ALREADY_PARTICIPATED", 3), ("SOLD_OUT", 7)]
        ),
    ]);
    assert_eq!(aggregate.body["campaigns"], expected, "{aggregate:?}");
    assert_eq!(counted.body["campaigns"], expected, "{counted:?}");
    assert_eq!(aggregate.body["from"], "2026-11-20");
    assert_eq!(aggregate.body["to"], "2026-11-21");
    assert_eq!(counted.body["source"], "raw");

    // One day is a period of one day.
    let one = app
        .admin_get("/api/v1/admin/stats/raw?date=2026-11-22")
        .await;
    assert_eq!(
        one.body["campaigns"],
        json!([row(
            "2026-11-22",
            campaign,
            [0, 0],
            [0, 0, 0],
            &[("SOLD_OUT", 1)]
        )])
    );
    for bad in [
        "from=2026-11-21&to=2026-11-20",
        "from=2025-11-20&to=2026-11-21",
        "date=2026-11-21&from=2026-11-21",
        "from=2026-13-01",
    ] {
        let reply = app
            .admin_get(&format!("/api/v1/admin/stats/daily?{bad}"))
            .await;
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
        assert_eq!(reply.code(), "VALIDATION_FAILED", "{bad}");
    }
    let year = app
        .admin_get("/api/v1/admin/stats/daily?from=2025-11-21&to=2026-11-21")
        .await;
    assert_eq!(year.status, 200, "366 days: {year:?}");
}
