//! The redelivery test's traffic: wins over four campaigns, then their lifecycle (docs/design.md
//! §14) through the API and the expiry sweeper, so the topic holds every event type and every
//! reason; and what the rewards consumer must have granted for it, event by event.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

use crate::{kafka::Consumed, spawn::TestApp, wait::wait_until};

/// The campaigns: stock, per-user limit, points per unit, confirmation window (s). The first
/// sells out; the second holds its wins for ten minutes; the last holds them for one second, so
/// the sweeper expires them all.
const CAMPAIGNS: [(i64, i64, i64, i64); 4] = [
    (100, 3, 7, 0),
    (150, 2, 1_000, 600),
    (300, 4, 3, 0),
    (40, 1, 5, 1),
];
const USERS: i64 = 60;

/// A lifecycle request and the status it must get: (campaign, user, action, admin, status).
type Act = (i64, i64, &'static str, bool, u16);

/// Wins over [`CAMPAIGNS`], then their lifecycle: confirmations, cancellations by users and by
/// an admin (of held and of confirmed wins, refunds), refused cancellations, expiries. Returns
/// how many events the relay published: one per outbox row, as many as `participation` implies.
pub async fn win_and_change_wins_over_four_campaigns(app: &TestApp) -> i64 {
    let mut winners = Vec::new();
    for (stock, limit, points, window) in CAMPAIGNS {
        let c = app
            .create_campaign(json!({"name": "redelivery", "totalStock": stock,
                "perUserLimit": limit, "rewardPoints": points, "confirmWithinSeconds": window}))
            .await;
        let id = c["id"].as_i64().expect("id");
        let replies = futures::future::join_all(
            (1..=USERS).map(|user| app.join(id, user, (user % limit + 1) as i32)),
        )
        .await;
        assert!(
            replies.iter().all(|r| matches!(r.status, 201 | 409)),
            "{replies:?}"
        );
        let won = (1..=USERS).zip(&replies).filter(|(_, r)| r.status == 201);
        winners.push((id, won.map(|(user, _)| user).collect::<Vec<_>>()));
    }
    let [sold_out, held, plain, expiring] = [0, 1, 2, 3].map(|i| &winners[i]);
    // Confirmed wins first: the refunds of confirmed holds come after their confirmations.
    act(app, first_acts(sold_out, held, plain)).await;
    act(app, second_acts(held)).await;
    let expiring = expiring.0;
    wait_until(
        "every one-second hold to expire",
        Duration::from_secs(30),
        || async move {
            app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {expiring} AND status = 'HELD'"
        ))
            .await
                == 0
        },
    )
    .await;
    app.wait_for_outbox_drained(Duration::from_secs(30)).await;
    let events = app.scalar("SELECT COUNT(*) FROM outbox_event").await;
    assert_eq!(
        events,
        app.participation_events().await,
        "one event per change"
    );
    assert!(
        events > 200,
        "enough events to spread over batches: {events}"
    );
    events
}

/// Refunds and refused user cancellations of final wins; confirmations and user cancellations
/// of holds.
fn first_acts(
    (sold_out, sold_out_winners): &(i64, Vec<i64>),
    (held, held_winners): &(i64, Vec<i64>),
    (plain, plain_winners): &(i64, Vec<i64>),
) -> Vec<Act> {
    let mut acts = Vec::new();
    for &user in sold_out_winners {
        match user % 4 {
            0 => acts.push((*sold_out, user, "cancel", true, 200)),
            1 => acts.push((*sold_out, user, "cancel", false, 409)),
            _ => {}
        }
    }
    for &user in held_winners {
        match user % 3 {
            0 => acts.push((*held, user, "confirm", false, 200)),
            1 => acts.push((*held, user, "cancel", false, 200)),
            _ => {}
        }
    }
    acts.extend(
        plain_winners
            .iter()
            .filter(|&&user| user % 5 == 0)
            .map(|&user| (*plain, user, "cancel", true, 200)),
    );
    acts
}

/// Refunds of holds confirmed in the first step, and an admin's cancellations of holds.
fn second_acts((held, held_winners): &(i64, Vec<i64>)) -> Vec<Act> {
    held_winners
        .iter()
        .filter(|&&user| matches!(user % 6, 0 | 2))
        .map(|&user| (*held, user, "cancel", true, 200))
        .collect()
}

/// Sends `acts` concurrently and checks each answer.
async fn act(app: &TestApp, acts: Vec<Act>) {
    let replies =
        futures::future::join_all(acts.iter().map(|&(campaign, user, action, admin, _)| {
            app.act_on_win(campaign, user, action, admin)
        }))
        .await;
    for (&(campaign, user, action, admin, status), reply) in acts.iter().zip(&replies) {
        assert_eq!(
            reply.status, status,
            "{action} (admin: {admin}) of user {user} in campaign {campaign}: {reply:?}"
        );
    }
}

/// What kind of event `v` is, for the coverage check: its type, and its status or reason.
fn kind(v: &Value) -> String {
    let field = |f: &str| v[f].as_str().unwrap_or("").to_string();
    match field("eventType").as_str() {
        "ParticipationAccepted" => format!("accepted {}", field("status")),
        "ParticipationCancelled" => {
            format!(
                "cancelled {} from {}",
                field("reason"),
                field("previousStatus")
            )
        }
        other => other.to_string(),
    }
}

/// The points an event moves (docs/design.md §11, §14), `None` when it moves none: a win final
/// at once and a confirmation grant, a refund of a confirmed win takes back; a held win, and a
/// hold cancelled or expired, move nothing.
fn expected_grant(v: &Value) -> Option<i64> {
    let points = v["rewardPoints"].as_i64().expect("rewardPoints")
        * v["quantity"].as_i64().expect("quantity");
    match kind(v).as_str() {
        "accepted CONFIRMED" | "ParticipationConfirmed" => Some(points),
        "cancelled ADMIN from CONFIRMED" => Some(-points),
        _ => None,
    }
}

/// One grant per granting event and none for the others, each grant the event it names (points
/// times quantity, negative for a refund). The traffic covered every kind of event.
pub async fn assert_one_grant_per_granting_event(app: &TestApp, published: &[Consumed]) {
    let kinds: BTreeSet<String> = published.iter().map(|m| kind(&m.json())).collect();
    let all = [
        "accepted CONFIRMED",
        "accepted HELD",
        "ParticipationConfirmed",
        "cancelled USER from HELD",
        "cancelled ADMIN from HELD",
        "cancelled ADMIN from CONFIRMED",
        "cancelled EXPIRED from HELD",
    ];
    assert_eq!(
        kinds,
        all.map(String::from).into(),
        "every kind of event, no other"
    );
    let expected: BTreeMap<String, i64> = published
        .iter()
        .filter_map(|m| expected_grant(&m.json()).map(|p| (m.event_id().to_string(), p)))
        .collect();
    assert!(expected.values().any(|p| *p > 0) && expected.values().any(|p| *p < 0));
    assert!(
        expected.len() < published.len(),
        "some events grant nothing"
    );
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT event_id, points FROM reward_grant",
        ))
        .await
        .expect("grants");
    let grants: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| {
            let id: String = r.try_get_by_index(0).expect("event_id");
            (id, r.try_get_by_index(1).expect("points"))
        })
        .collect();
    assert_eq!(rows.len(), expected.len(), "one grant per granting event");
    assert_eq!(grants, expected, "each grant is its event's points");
}
