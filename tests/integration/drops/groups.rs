//! Groups (docs/design.md §22): a user's units across a group's campaigns never pass its limit,
//! whatever mix of campaigns and instances the joins take, on one Redis or a cluster, with
//! buckets or without; a refused join writes nothing; MySQL refuses what the gate did not see.

use futures::future::join_all;
use redis::AsyncCommands;
use serde_json::json;

use super::support::{
    campaigns_in, gate_knows, group, group_refusals, grouped_key, grouped_stock, holding,
    refused_with, units_won,
};
use crate::{
    http::Reply,
    operations::redis_cluster::spawn_cluster_app,
    spawn::{spawn_app, two_instances, TestApp, ADMIN_TOKEN},
};

/// Every user joins every campaign at once, over `apps` in turn; returns the replies by user.
async fn everyone_joins_everything(
    apps: &[&TestApp],
    campaigns: &[i64],
    users: &[i64],
) -> Vec<(i64, Reply)> {
    let mut calls = Vec::new();
    for &user in users {
        for (i, &campaign) in campaigns.iter().enumerate() {
            let app = apps[(user as usize + i) % apps.len()];
            calls.push(async move { (user, app.join(campaign, user, 1).await) });
        }
    }
    join_all(calls).await
}

/// Each user won exactly `limit` units (stock is ample), every other join was refused
/// GROUP_LIMIT_REACHED, and MySQL's guard, the participations and the gate agree.
async fn assert_limit_held(
    app: &TestApp,
    group_id: i64,
    campaigns: &[i64],
    users: &[i64],
    replies: &[(i64, Reply)],
    limit: i64,
) {
    for (user, reply) in replies {
        assert!(
            reply.status == 201 || (reply.status == 409 && reply.code() == "GROUP_LIMIT_REACHED"),
            "user {user}: {reply:?}"
        );
    }
    for &user in users {
        let wins = replies
            .iter()
            .filter(|(u, r)| *u == user && r.status == 201)
            .count() as i64;
        assert_eq!(wins, limit, "user {user} won {wins} joins");
        assert_eq!(units_won(app, campaigns, user).await, limit, "user {user}");
        assert_eq!(holding(app, group_id, user).await, limit, "user {user}");
    }
    for &campaign in campaigns {
        app.assert_no_drift(campaign).await;
    }
    app.assert_outbox_matches_participations().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_units_across_a_group_never_pass_its_limit_on_two_instances() {
    let (a, b) = two_instances().await;
    let group_id = group(&a, 2, 1).await;
    let campaigns = campaigns_in(&a, group_id, 4, 1_000, 1).await;
    let users: Vec<i64> = (1..=150).collect();
    let replies = everyone_joins_everything(&[&a, &b], &campaigns, &users).await;
    assert_limit_held(&a, group_id, &campaigns, &users, &replies, 2).await;
    // The gate refused them all in its atomic step; MySQL's guard had nothing left to refuse.
    let refused = replies.iter().filter(|(_, r)| r.status == 409).count() as u64;
    assert_eq!(
        group_refusals(&a, "GATE") + group_refusals(&b, "GATE"),
        refused
    );
    assert_eq!(group_refusals(&a, "MYSQL") + group_refusals(&b, "MYSQL"), 0);
    let sold: i64 = a
        .scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id IN ({})",
            campaigns
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await;
    assert_eq!(sold, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucketed_groups_limit_holds_on_the_redis_cluster() {
    let app = spawn_cluster_app().await;
    let group_id = group(&app, 1, 8).await;
    let campaigns = campaigns_in(&app, group_id, 3, 500, 1).await;
    let created = app
        .get(&format!("/api/v1/campaigns/{}", campaigns[0]))
        .await;
    assert_eq!(
        created.body["buckets"],
        json!(8),
        "a group's campaigns take its buckets"
    );
    assert_eq!(created.body["groupId"], json!(group_id));
    let users: Vec<i64> = (1..=120).collect();
    let replies = everyone_joins_everything(&[&app], &campaigns, &users).await;
    assert_limit_held(&app, group_id, &campaigns, &users, &replies, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_limit_counts_units_and_a_refused_join_writes_nothing() {
    let app = spawn_app().await;
    let group_id = group(&app, 3, 1).await;
    let c = campaigns_in(&app, group_id, 3, 10, 2).await;
    assert_eq!(app.join(c[0], 7, 2).await.status, 201);
    let refused = app.join(c[1], 7, 2).await;
    assert_eq!(refused_with(&refused, 409), "GROUP_LIMIT_REACHED");
    assert_eq!(app.remaining_stock(c[1]).await, 10, "nothing written");
    assert_eq!(
        grouped_stock(&app, group_id, c[1]).await,
        Some(10),
        "the units are back at the gate"
    );
    assert_eq!(
        gate_knows(&app, group_id, c[1], 7).await,
        (false, false),
        "the user is forgotten by the gate"
    );
    assert_eq!(gate_knows(&app, group_id, c[0], 7).await, (true, true));
    assert_eq!(app.join(c[1], 7, 1).await.status, 201);
    let third = app.join(c[2], 7, 1).await;
    assert_eq!(refused_with(&third, 409), "GROUP_LIMIT_REACHED");
    assert_eq!(holding(&app, group_id, 7).await, 3);
    // Another user is not held back by the first.
    assert_eq!(app.join(c[2], 8, 2).await.status, 201);
}

/// The gate lost a win's units (a state no script makes; the closest real case is a join on a
/// campaign list read before a new campaign joined the group): MySQL's guard refuses the win
/// that would pass the limit, and the reservation goes back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_a_win_past_the_group_limit_that_the_gate_did_not_see() {
    let app = spawn_app().await;
    let group_id = group(&app, 1, 1).await;
    let c = campaigns_in(&app, group_id, 2, 5, 1).await;
    assert_eq!(app.join(c[0], 9, 1).await.status, 201);
    let held = grouped_key(&app, group_id, c[0], "held");
    let mut conn = app.redis.clone();
    let removed: i64 = conn.hdel(&held, 9).await.expect("HDEL");
    assert_eq!(removed, 1, "the gate kept the win's units in {held}");

    let refused = app.join(c[1], 9, 1).await;
    assert_eq!(refused_with(&refused, 409), "GROUP_LIMIT_REACHED");
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {}",
            c[1]
        ))
        .await,
        0
    );
    assert_eq!(app.remaining_stock(c[1]).await, 5);
    assert_eq!(grouped_stock(&app, group_id, c[1]).await, Some(5));
    assert_eq!(group_refusals(&app, "MYSQL"), 1);
    assert_eq!(holding(&app, group_id, 9).await, 1);
    app.assert_no_drift(c[1]).await;
}

/// A group's keys lost (a flush, a failover) are rebuilt from MySQL with the units each user
/// holds: the limit holds across the rebuild, and one join loads every sibling it must read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_gate_knows_the_units_held_in_the_other_campaigns() {
    let app = spawn_app().await;
    let group_id = group(&app, 1, 1).await;
    let c = campaigns_in(&app, group_id, 5, 5, 1).await;
    assert_eq!(app.join(c[0], 11, 1).await.status, 201);
    let mut conn = app.redis.clone();
    let keys: Vec<String> = conn
        .keys(format!("{}{{g:{group_id}}}:*", app.redis_prefix))
        .await
        .expect("KEYS");
    assert!(!keys.is_empty());
    let _: i64 = conn.del(&keys).await.expect("DEL");

    let refused = app.join(c[1], 11, 1).await;
    assert_eq!(refused_with(&refused, 409), "GROUP_LIMIT_REACHED");
    let held: Option<i64> = conn
        .hget(
            format!("{}{{g:{group_id}}}:{}:held", app.redis_prefix, c[0]),
            11,
        )
        .await
        .expect("HGET");
    assert_eq!(held, Some(1), "the rebuild read the win's units from MySQL");
    assert_eq!(app.join(c[1], 12, 1).await.status, 201);
}

#[tokio::test]
async fn a_group_is_created_by_an_admin_and_lists_its_campaigns() {
    let app = spawn_app().await;
    let no_token = app
        .post_json(
            "/api/v1/groups",
            &json!({"name": "g", "perUserLimit": 1}),
            None,
        )
        .await;
    assert_eq!(no_token.status, 401, "{no_token:?}");
    for bad in [
        json!({"name": " ", "perUserLimit": 1}),
        json!({"name": "g", "perUserLimit": 0}),
        json!({"name": "g", "perUserLimit": 1, "buckets": 0}),
        json!({"name": "g"}),
    ] {
        let reply = app
            .post_json("/api/v1/groups", &bad, Some(ADMIN_TOKEN))
            .await;
        assert_eq!(refused_with(&reply, 400), "VALIDATION_FAILED", "{bad}");
    }
    let group_id = group(&app, 2, 4).await;
    let unknown = app
        .post_json(
            "/api/v1/campaigns",
            &json!({"name": "x", "totalStock": 5, "groupId": group_id + 1000}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(refused_with(&unknown, 400), "VALIDATION_FAILED");
    let other_buckets = app
        .post_json(
            "/api/v1/campaigns",
            &json!({"name": "x", "totalStock": 5, "groupId": group_id, "buckets": 2}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(refused_with(&other_buckets, 400), "VALIDATION_FAILED");
    let c = campaigns_in(&app, group_id, 2, 5, 1).await;
    let read = app.get(&format!("/api/v1/groups/{group_id}")).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["campaignIds"], json!(c));
    assert_eq!(read.body["perUserLimit"], json!(2));
    assert_eq!(read.body["buckets"], json!(4));
    let missing = app
        .get(&format!("/api/v1/groups/{}", group_id + 1000))
        .await;
    assert_eq!(refused_with(&missing, 404), "GROUP_NOT_FOUND");
    let sync = app
        .post_json(
            &format!("/api/v1/campaigns/{}/participations/sync", c[0]),
            &json!({"userId": 1}),
            None,
        )
        .await;
    assert_eq!(refused_with(&sync, 400), "VALIDATION_FAILED");
}

/// A user the group's limit refuses holds an admission they cannot use: it is spent by the
/// refusal, so the unit goes to the next in line at once, not when the token would expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_the_group_limit_refuses_frees_its_unit_for_the_next_in_line() {
    use crate::waiting_room::{enqueue, join_with, poll, poll_until};
    let app = spawn_app().await;
    let group_id = group(&app, 1, 1).await;
    let open = campaigns_in(&app, group_id, 1, 5, 1).await[0];
    let queued = app
        .open_campaign_with(
            1,
            1,
            json!({"groupId": group_id, "admission": "QUEUE", "admissionRatePerSecond": 50}),
        )
        .await;
    assert_eq!(app.join(open, 1, 1).await.status, 201);
    let first = enqueue(&app, queued, 1).await;
    let second = enqueue(&app, queued, 2).await;
    let ticket = |r: &crate::http::Reply| r.body["ticket"].as_str().expect("ticket").to_string();
    let (first, second) = (ticket(&first), ticket(&second));
    let admitted = poll_until(&app, queued, &first, &["ADMITTED"]).await;
    let token = admitted.body["admissionToken"].as_str().expect("token");
    let refused = join_with(&app, queued, 1, Some(token)).await;
    assert_eq!(refused_with(&refused, 409), "GROUP_LIMIT_REACHED");
    assert_eq!(
        poll(&app, queued, &first).await.body["state"],
        json!("EXPIRED")
    );
    let next = poll(&app, queued, &second).await;
    assert_eq!(next.body["state"], json!("ADMITTED"), "{next:?}");
    let token = next.body["admissionToken"].as_str().expect("token");
    assert_eq!(join_with(&app, queued, 2, Some(token)).await.status, 201);
}
