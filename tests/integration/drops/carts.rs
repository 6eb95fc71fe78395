//! Carts (docs/design.md §22): every item won or none — a cart whose last item is sold out leaves
//! no reservation and no row; two carts racing for the last units of two campaigns, in opposite
//! orders, never deadlock and never sell both halves; a purchase is held, confirmed, cancelled
//! and expired as a whole; its events name it; a retry with its key answers it again.

use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use super::support::{buy, campaigns_in, gate_of, group, holding, refused_with};
use crate::{
    operations::redis_cluster::spawn_cluster_app,
    spawn::{spawn_app, two_instances, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.scalar(sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_whose_last_item_is_sold_out_leaves_no_reservation_and_no_row() {
    let app = spawn_app().await;
    let g = group(&app, 10, 1).await;
    let a = app.open_campaign_with(5, 2, json!({"groupId": g})).await;
    let b = app.open_campaign_with(1, 1, json!({"groupId": g})).await;
    assert_eq!(buy(&app, g, 1, &[(b, 1)], None).await.status, 201);

    let refused = buy(&app, g, 2, &[(a, 2), (b, 1)], None).await;
    assert_eq!(refused_with(&refused, 409), "SOLD_OUT");
    assert_eq!(
        refused.body["campaignId"],
        json!(b),
        "the refusal names the item"
    );
    assert_eq!(
        gate_of(&app, g, a, 2).await,
        (Some(5), false, false),
        "nothing reserved"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM participation WHERE user_id = 2").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM purchase WHERE user_id = 2").await,
        0
    );
    assert_eq!(app.remaining_stock(a).await, 5);
    assert_eq!(holding(&app, g, 2).await, 0);

    let bought = buy(&app, g, 2, &[(a, 2)], None).await;
    assert_eq!(bought.status, 201, "{bought:?}");
    app.assert_no_drift(a).await;
    app.assert_no_drift(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_carts_in_opposite_orders_never_deadlock_and_never_sell_both_halves() {
    let (one, two) = two_instances().await;
    let g = group(&one, 4, 1).await;
    // The last unit of two campaigns, raced for by carts naming them in opposite orders.
    for round in 0..12 {
        let c = campaigns_in(&one, g, 2, 1, 1).await;
        let (x, y) = (1_000 + 2 * round, 1_001 + 2 * round);
        let (forward, backward) = ([(c[0], 1), (c[1], 1)], [(c[1], 1), (c[0], 1)]);
        let (rx, ry) = tokio::join!(
            buy(&one, g, x, &forward, None),
            buy(&two, g, y, &backward, None),
        );
        let won = [&rx, &ry].iter().filter(|r| r.status == 201).count();
        assert_eq!(won, 1, "round {round}: {rx:?} {ry:?}");
        for loser in [&rx, &ry].into_iter().filter(|r| r.status != 201) {
            assert_eq!(refused_with(loser, 409), "SOLD_OUT");
        }
        let mut winners = Vec::new();
        for campaign in &c {
            let sql = format!("SELECT user_id FROM participation WHERE campaign_id = {campaign}");
            winners.push(one.scalar(&sql).await);
        }
        assert_eq!(
            winners[0], winners[1],
            "round {round}: both halves to one buyer"
        );
    }
    // Plenty of stock: every cart commits, none a deadlock victim answered 503.
    let c = campaigns_in(&one, g, 2, 200, 1).await;
    let carts = join_all((0..80).map(|u| {
        let (app, items) = match u % 2 {
            0 => (&one, vec![(c[0], 1), (c[1], 1)]),
            _ => (&two, vec![(c[1], 1), (c[0], 1)]),
        };
        async move { buy(app, g, 5_000 + u, &items, None).await }
    }))
    .await;
    for reply in &carts {
        assert_eq!(reply.status, 201, "{reply:?}");
    }
    one.assert_outbox_matches_participations().await;
}

/// A retry of a purchase's key answers it as it was accepted (every item `HELD`), also after it
/// was cancelled: the retry stands for the original answer (docs/design.md §22). Before, it
/// carried the items' state when read (the proof found one answered `EXPIRED`).
#[tokio::test]
async fn a_retry_of_a_purchase_answers_it_as_accepted_after_it_was_cancelled() {
    let app = spawn_app().await;
    let g = group(&app, 10, 1).await;
    let window = json!({"groupId": g, "confirmWithinSeconds": 600});
    let a = app.open_campaign_with(5, 1, window.clone()).await;
    let b = app.open_campaign_with(5, 1, window).await;

    let first = buy(&app, g, 7, &[(a, 1), (b, 1)], Some("cart-7")).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(app.act_on_win(a, 7, "cancel", false).await.status, 200);
    let again = buy(&app, g, 7, &[(a, 1), (b, 1)], Some("cart-7")).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body, first.body, "the retry is the original answer");
    let id = first.body["purchaseId"].as_i64().expect("purchaseId");
    let read = app.get(&format!("/api/v1/groups/{g}/purchases/{id}")).await;
    assert!(every_item(&read, "CANCELLED"), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_is_held_confirmed_and_cancelled_as_a_whole_and_its_events_name_it() {
    let app = spawn_app().await;
    let g = group(&app, 10, 1).await;
    let held = json!({"groupId": g, "confirmWithinSeconds": 600});
    let a = app.open_campaign_with(5, 1, held.clone()).await;
    let b = app
        .open_campaign_with(5, 1, json!({"groupId": g, "confirmWithinSeconds": 60}))
        .await;

    let first = buy(&app, g, 7, &[(a, 1), (b, 1)], None).await;
    assert_eq!(first.status, 201, "{first:?}");
    let id = first.body["purchaseId"].as_i64().expect("purchaseId");
    let items = first.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["status"] == "HELD"));
    assert_eq!(
        items[0]["holdExpiresAt"], items[1]["holdExpiresAt"],
        "one deadline, the earliest"
    );
    let payloads: i64 = count(
        &app,
        &format!("SELECT COUNT(*) FROM outbox_event WHERE payload LIKE '%\"purchaseId\":{id}%'"),
    )
    .await;
    assert_eq!(payloads, 2, "each item's event names the purchase");

    let confirmed = app
        .post_json(
            &format!("/api/v1/groups/{g}/purchases/{id}/confirm"),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert!(every_item(&confirmed, "CONFIRMED"), "{confirmed:?}");

    // A second purchase, cancelled through one of its items: the whole purchase goes.
    let second = buy(&app, g, 8, &[(a, 1), (b, 1)], None).await;
    let id2 = second.body["purchaseId"].as_i64().expect("purchaseId");
    assert_eq!(app.act_on_win(b, 8, "cancel", false).await.status, 200);
    let read = app
        .get(&format!("/api/v1/groups/{g}/purchases/{id2}"))
        .await;
    assert!(every_item(&read, "CANCELLED"), "{read:?}");
    assert_eq!(app.remaining_stock(a).await, 4);
    assert_eq!(app.remaining_stock(b).await, 4);
    app.assert_no_drift(a).await;
    app.assert_no_drift(b).await;
    // A refund is an admin's: the user's cancel of a confirmed purchase is refused whole.
    let user = app
        .post_json(
            &format!("/api/v1/groups/{g}/purchases/{id}/cancel"),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(refused_with(&user, 409), "ALREADY_CONFIRMED");
    let refund = app
        .post_json(
            &format!("/api/v1/groups/{g}/purchases/{id}/cancel"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(refund.status, 200, "{refund:?}");
    assert_eq!(
        refund.body["gate"], "UPDATED",
        "the units are on sale: {refund:?}"
    );
    assert_eq!(app.remaining_stock(a).await, 5);

    // Every event of an item names its purchase: accepted, confirmed and refunded (the first);
    // accepted and cancelled (the second).
    let named = |purchase: i64, event_type: &'static str| {
        let app = &app;
        async move {
            count(
                app,
                &format!(
                    "SELECT COUNT(*) FROM outbox_event WHERE event_type = '{event_type}' \
                     AND payload LIKE '%\"purchaseId\":{purchase}%'"
                ),
            )
            .await
        }
    };
    assert_eq!(named(id, "ParticipationConfirmed").await, 2);
    assert_eq!(named(id, "ParticipationCancelled").await, 2);
    assert_eq!(named(id2, "ParticipationAccepted").await, 2);
    assert_eq!(named(id2, "ParticipationCancelled").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchases_hold_expires_whole_and_its_units_go_back() {
    let app = spawn_app().await;
    let g = group(&app, 10, 1).await;
    let a = app
        .open_campaign_with(3, 1, json!({"groupId": g, "confirmWithinSeconds": 1}))
        .await;
    let b = app.open_campaign_with(3, 1, json!({"groupId": g})).await;
    let bought = buy(&app, g, 9, &[(a, 1), (b, 1)], None).await;
    let id = bought.body["purchaseId"].as_i64().expect("purchaseId");
    assert!(every_item(&bought, "HELD"), "{bought:?}");
    wait_until("the purchase expired", Duration::from_secs(20), || async {
        count(
            &app,
            &format!(
            "SELECT COUNT(*) FROM participation WHERE purchase_id = {id} AND status = 'EXPIRED'"
        ),
        )
        .await
            == 2
    })
    .await;
    let late = app
        .post_json(
            &format!("/api/v1/groups/{g}/purchases/{id}/confirm"),
            &json!({}),
            None,
        )
        .await;
    assert_eq!(refused_with(&late, 409), "HOLD_EXPIRED");
    wait_until(
        "the units are back at the gate",
        Duration::from_secs(10),
        || async {
            gate_of(&app, g, a, 9).await.0 == Some(3) && gate_of(&app, g, b, 9).await.0 == Some(3)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_purchase_answers_the_one_its_key_wrote_and_the_group_limit_counts_every_item() {
    let app = spawn_app().await;
    let g = group(&app, 2, 1).await;
    let c = campaigns_in(&app, g, 3, 5, 1).await;
    let over = buy(&app, g, 4, &[(c[0], 1), (c[1], 1), (c[2], 1)], None).await;
    assert_eq!(refused_with(&over, 409), "GROUP_LIMIT_REACHED");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM participation WHERE user_id = 4").await,
        0
    );

    let first = buy(&app, g, 4, &[(c[0], 1), (c[1], 1)], Some("cart-1")).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = buy(&app, g, 4, &[(c[1], 1), (c[0], 1)], Some("cart-1")).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.body["purchaseId"], first.body["purchaseId"]);
    let other = buy(&app, g, 4, &[(c[2], 1)], Some("cart-1")).await;
    assert_eq!(refused_with(&other, 422), "IDEMPOTENCY_KEY_REUSED");
    let past_limit = buy(&app, g, 4, &[(c[2], 1)], None).await;
    assert_eq!(refused_with(&past_limit, 409), "GROUP_LIMIT_REACHED");
    for bad in [
        json!({"userId": 4, "items": []}),
        json!({"userId": 4, "items": [{"campaignId": c[0]}, {"campaignId": c[0]}]}),
        json!({"userId": 4, "items": [{"campaignId": 999_999}]}),
    ] {
        let reply = app
            .post_json(&format!("/api/v1/groups/{g}/purchases"), &bad, None)
            .await;
        assert_eq!(refused_with(&reply, 400), "VALIDATION_FAILED", "{bad}");
    }
    let missing = buy(&app, g + 1000, 4, &[(c[0], 1)], None).await;
    assert_eq!(refused_with(&missing, 404), "GROUP_NOT_FOUND");
}

/// The refused counts of §20 see drops: a join past the group's limit counts
/// `GROUP_LIMIT_REACHED` on its campaign, a refused purchase counts once against the item its
/// refusal names (not against the others), and a malformed purchase counts nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_purchase_counts_once_against_the_item_it_names() {
    let app = spawn_app().await;
    let g = group(&app, 2, 1).await;
    let c = campaigns_in(&app, g, 3, 5, 1).await;
    let sold = app.open_campaign_with(1, 1, json!({"groupId": g})).await;
    let bought = buy(&app, g, 1, &[(sold, 1), (c[2], 1)], None).await;
    assert_eq!(bought.status, 201, "{bought:?}");

    let limited = app.join(c[0], 1, 1).await;
    assert_eq!(refused_with(&limited, 409), "GROUP_LIMIT_REACHED");
    let gone = buy(&app, g, 2, &[(c[1], 1), (sold, 1)], None).await;
    assert_eq!(refused_with(&gone, 409), "SOLD_OUT");
    let malformed = buy(&app, g, 2, &[(c[2], 2)], None).await;
    assert_eq!(refused_with(&malformed, 400), "VALIDATION_FAILED");

    let by_reason = |id: i64| {
        let app = &app;
        async move { app.get(&format!("/api/v1/campaigns/{id}")).await.body["refusedByReason"].clone() }
    };
    wait_until(
        "the refusals to be counted",
        Duration::from_secs(3),
        || async {
            by_reason(c[0]).await == json!({"GROUP_LIMIT_REACHED": 1})
                && by_reason(sold).await == json!({"SOLD_OUT": 1})
        },
    )
    .await;
    assert_eq!(
        by_reason(c[1]).await,
        json!({}),
        "the item the refusal did not name"
    );
    assert_eq!(by_reason(c[2]).await, json!({}), "a malformed purchase");
}

/// A bucketed group on the cluster: a cart's items live in the user's home bucket of each
/// campaign; a dry one takes units from the pool and the siblings, so exactly the stock sells.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn carts_of_a_bucketed_group_sell_exactly_the_stock_on_the_cluster() {
    let app = spawn_cluster_app().await;
    let g = group(&app, 2, 4).await;
    let c = campaigns_in(&app, g, 2, 12, 1).await;
    let items = [(c[0], 1), (c[1], 1)];
    let carts = join_all((1..=20).map(|u| buy(&app, g, u, &items, None))).await;
    let won = carts.iter().filter(|r| r.status == 201).count();
    for reply in carts.iter().filter(|r| r.status != 201) {
        assert_eq!(refused_with(reply, 409), "SOLD_OUT");
    }
    assert_eq!(won, 12, "exactly the stock");
    for &campaign in &c {
        assert_eq!(
            count(
                &app,
                &format!("SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}")
            )
            .await,
            12
        );
    }
    app.assert_outbox_matches_participations().await;
}

/// Whether every item of a purchase's answer is in `status`.
fn every_item(purchase: &crate::http::Reply, status: &str) -> bool {
    (purchase.body["items"].as_array().expect("items").iter()).all(|i| i["status"] == status)
}
