//! Refused joins per campaign (docs/design.md §20): every instance counts what it refuses in
//! memory and adds it to MySQL about once a second, so `GET /api/v1/campaigns/{id}` shows the
//! refusals of every instance, split by the code each refused join was answered with.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::future::join_all;
use serde_json::json;

use super::campaign;
use crate::{
    http::Reply,
    spawn::{two_instances, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// How long the counts may take to show: a flush every half second, and a margin for a loaded
/// machine.
const CURRENT_WITHIN: Duration = Duration::from_secs(3);

/// The codes of the refused replies, counted.
fn refused_codes(replies: &[Reply]) -> BTreeMap<String, i64> {
    let mut codes = BTreeMap::new();
    for reply in replies.iter().filter(|r| r.status != 201) {
        *codes.entry(reply.code().to_string()).or_insert(0) += 1;
    }
    codes
}

async fn join_all_on(apps: &[Arc<TestApp>], campaign_id: i64, users: &[i64]) -> Vec<Reply> {
    join_all(users.iter().enumerate().map(|(i, &user)| {
        let app = apps[i % apps.len()].clone();
        async move { app.join(campaign_id, user, 1).await }
    }))
    .await
}

/// Waits until the campaign shows `expected` refusals by reason, and their sum as the count.
async fn wait_for_refusals(app: &TestApp, id: i64, expected: &BTreeMap<String, i64>) {
    let total: i64 = expected.values().sum();
    wait_until(
        &format!("campaign {id} to show {expected:?}"),
        CURRENT_WITHIN,
        || async {
            let c = campaign(app, id).await;
            let by: BTreeMap<String, i64> =
                serde_json::from_value(c["refusedByReason"].clone()).unwrap_or_default();
            c["refusedCount"] == total && by == *expected
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_two_instances_shows_every_refusal_by_reason_within_a_second_of_its_end() {
    let (a, b) = two_instances().await;
    let apps = [a.clone(), b.clone()];
    let stock = 40;
    let id = a.open_campaign(stock, 1).await;

    // 300 distinct users for 40 units, half on each instance.
    let users: Vec<i64> = (1..=300).collect();
    let first = join_all_on(&apps, id, &users).await;
    let winners: Vec<i64> = users
        .iter()
        .zip(&first)
        .filter(|(_, r)| r.status == 201)
        .map(|(u, _)| *u)
        .collect();
    assert_eq!(winners.len() as i64, stock);
    let mut expected = refused_codes(&first);
    assert_eq!(expected.values().sum::<i64>(), 300 - stock);
    wait_for_refusals(&a, id, &expected).await;

    // Every winner and 20 losers again: the duplicates are counted apart from the sold-out.
    let again: Vec<i64> = winners.iter().copied().chain(201..=220).collect();
    let second = join_all_on(&apps, id, &again).await;
    assert!(second.iter().all(|r| r.status == 409), "{second:?}");
    for (code, n) in refused_codes(&second) {
        *expected.entry(code).or_insert(0) += n;
    }
    assert!(expected["ALREADY_PARTICIPATED"] >= stock, "{expected:?}");
    wait_for_refusals(&b, id, &expected).await;
    let c = campaign(&b, id).await;
    assert_eq!(c["refusedCount"], 300 - stock + again.len() as i64);
    assert_eq!(c["stockUsageRate"], 1.0);
    // Both instances answer the same counts.
    assert_eq!(
        campaign(&a, id).await["refusedByReason"],
        c["refusedByReason"]
    );
}

#[tokio::test]
async fn paused_scheduled_and_ended_refusals_count_apart_and_unknown_or_malformed_joins_do_not() {
    let (a, _b) = two_instances().await;
    let open = a.open_campaign(10, 1).await;
    let later = a
        .create_campaign(json!({"name": "later", "totalStock": 5,
                                "startsAt": "2999-01-01T00:00:00Z"}))
        .await["id"]
        .as_i64()
        .expect("id");
    let paused = a.open_campaign(10, 1).await;
    let reply = a
        .post_json(
            &format!("/api/v1/admin/campaigns/{paused}/pause"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let closed = a.open_campaign(10, 1).await;
    let reply = a
        .post_json(
            &format!("/api/v1/admin/campaigns/{closed}/close"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    assert_eq!(a.join(later, 1, 1).await.code(), "CAMPAIGN_NOT_OPEN");
    assert_eq!(a.join(paused, 1, 1).await.code(), "CAMPAIGN_PAUSED");
    assert_eq!(a.join(paused, 2, 1).await.code(), "CAMPAIGN_PAUSED");
    assert_eq!(a.join(closed, 1, 1).await.code(), "CAMPAIGN_ENDED");
    // Not refusals: no such campaign, a malformed request, a quantity over the limit, a win.
    assert_eq!(a.join(999_999, 1, 1).await.code(), "CAMPAIGN_NOT_FOUND");
    assert_eq!(a.join(open, 1, 5).await.code(), "VALIDATION_FAILED");
    assert_eq!(a.join(open, 1, 1).await.status, 201);

    let one = |code: &str| BTreeMap::from([(code.to_string(), 1)]);
    wait_for_refusals(&a, later, &one("CAMPAIGN_NOT_OPEN")).await;
    wait_for_refusals(
        &a,
        paused,
        &BTreeMap::from([("CAMPAIGN_PAUSED".to_string(), 2)]),
    )
    .await;
    wait_for_refusals(&a, closed, &one("CAMPAIGN_ENDED")).await;
    wait_for_refusals(&a, open, &BTreeMap::new()).await;
    assert_eq!(
        a.scalar("SELECT COUNT(*) FROM campaign_refusal WHERE campaign_id = 999999")
            .await,
        0
    );
    assert_eq!(campaign(&a, open).await["stockUsageRate"], 0.1);
}
