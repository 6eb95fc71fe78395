//! Creating groups and their campaigns over HTTP.

use redis::AsyncCommands;
use serde_json::json;

use crate::{
    http::Reply,
    spawn::{TestApp, ADMIN_TOKEN},
};

/// A group of `limit` units per user (and `buckets` per campaign).
pub async fn group(app: &TestApp, limit: i32, buckets: u16) -> i64 {
    let created = app
        .post_json(
            "/api/v1/groups",
            &json!({"name": "sneaker", "perUserLimit": limit, "buckets": buckets}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    created.body["id"].as_i64().expect("id")
}

/// `n` open campaigns of `stock` units each in `group`, a user taking up to `per_user` of each.
pub async fn campaigns_in(
    app: &TestApp,
    group: i64,
    n: usize,
    stock: i64,
    per_user: i32,
) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(
            app.open_campaign_with(stock, per_user, json!({"groupId": group}))
                .await,
        );
    }
    ids
}

/// Units `user` holds in `group` as MySQL's guard has them.
pub async fn holding(app: &TestApp, group: i64, user: i64) -> i64 {
    app.scalar(&format!(
        "SELECT COALESCE((SELECT units FROM group_holding WHERE group_id = {group} \
         AND user_id = {user}), 0)"
    ))
    .await
}

/// The user's units won across `campaigns`, from the participations.
pub async fn units_won(app: &TestApp, campaigns: &[i64], user: i64) -> i64 {
    let ids: Vec<String> = campaigns.iter().map(i64::to_string).collect();
    app.scalar(&format!(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM participation \
         WHERE user_id = {user} AND campaign_id IN ({})",
        ids.join(", ")
    ))
    .await
}

/// The body's error code, asserting the status.
pub fn refused_with(reply: &crate::http::Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{reply:?}");
    reply.code().to_string()
}

/// A grouped campaign's key `suffix` (`meta`, `users`, `held`) in the group's slot.
pub fn grouped_key(app: &TestApp, group: i64, campaign: i64, suffix: &str) -> String {
    format!("{}{{g:{group}}}:{campaign}:{suffix}", app.redis_prefix)
}

/// The gate's stock of an unbucketed grouped campaign.
pub async fn grouped_stock(app: &TestApp, group: i64, campaign: i64) -> Option<i64> {
    let mut conn = app.redis.clone();
    conn.hget(grouped_key(app, group, campaign, "meta"), "stock")
        .await
        .expect("HGET")
}

/// Whether the gate of an unbucketed grouped campaign knows `user` (winners set, units held).
pub async fn gate_knows(app: &TestApp, group: i64, campaign: i64, user: i64) -> (bool, bool) {
    let mut conn = app.redis.clone();
    let member: bool = conn
        .sismember(grouped_key(app, group, campaign, "users"), user)
        .await
        .expect("SISMEMBER");
    let held: bool = conn
        .hexists(grouped_key(app, group, campaign, "held"), user)
        .await
        .expect("HEXISTS");
    (member, held)
}

/// Joins this instance refused for their group's limit, `GATE` or `MYSQL`.
pub fn group_refusals(app: &TestApp, by: &str) -> u64 {
    let series = format!("firstcome_group_limit_refused_total{{reason=\"{by}\"}} ");
    app.probe
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// `user` buys `items` ((campaign, quantity)) in `group`, with `key` as its Idempotency-Key.
pub async fn buy(
    app: &TestApp,
    group: i64,
    user: i64,
    items: &[(i64, i32)],
    key: Option<&str>,
) -> Reply {
    let body = json!({
        "userId": user,
        "items": items
            .iter()
            .map(|&(c, q)| json!({"campaignId": c, "quantity": q}))
            .collect::<Vec<_>>(),
    });
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/groups/{group}/purchases")))
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    app.send(req).await
}

/// A campaign's free units at an unbucketed grouped gate, and whether `user` has a reservation
/// or a win there.
pub async fn gate_of(
    app: &TestApp,
    group: i64,
    campaign: i64,
    user: i64,
) -> (Option<i64>, bool, bool) {
    let mut conn = app.redis.clone();
    let pending: bool = conn
        .hexists(grouped_key(app, group, campaign, "pending"), user)
        .await
        .expect("HEXISTS");
    let (member, _) = gate_knows(app, group, campaign, user).await;
    (grouped_stock(app, group, campaign).await, member, pending)
}
