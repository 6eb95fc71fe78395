//! `REDIS_CLUSTER=true` against a real Redis Cluster of three masters on loopback
//! (scripts/redis-cluster.sh, which scripts/test.sh runs): guarantee 1 (exactly-N) with
//! campaigns whose keys live on different masters, and with one master losing its keys in the
//! middle of a sale (docs/design.md §2.1, §13).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::{stream, StreamExt};
use redis::AsyncCommands;

use crate::{
    http::{burst_users, winners, Reply},
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

/// `TEST_REDIS_CLUSTER_URL`: the cluster's seed nodes.
pub(crate) fn cluster_url() -> String {
    std::env::var("TEST_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis://127.0.0.1:22001,redis://127.0.0.1:22002,redis://127.0.0.1:22003".into()
    })
}

pub(crate) async fn spawn_cluster_app() -> TestApp {
    let mut settings = test_settings().await;
    settings.redis.url = firstcome::config::Secret::new(cluster_url());
    settings.redis.cluster = true;
    spawn_app_with(settings).await
}

/// The address (`host:port`) of the master that holds `key`, asked of the cluster itself.
async fn master_of(app: &TestApp, key: &str) -> String {
    let mut conn = app.redis.clone();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("CLUSTER KEYSLOT");
    // CLUSTER SLOTS: [[first, last, [host, port, id], replicas…], …]
    let ranges: Vec<(i64, i64, (String, i64))> = {
        let raw: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER SLOTS");
        raw.into_iter()
            .map(|range| {
                let redis::Value::Array(parts) = range else {
                    panic!("CLUSTER SLOTS entry: {range:?}")
                };
                let first: i64 = redis::from_redis_value(parts[0].clone()).expect("first slot");
                let last: i64 = redis::from_redis_value(parts[1].clone()).expect("last slot");
                let redis::Value::Array(master) = &parts[2] else {
                    panic!("CLUSTER SLOTS master: {:?}", parts[2])
                };
                let host: String = redis::from_redis_value(master[0].clone()).expect("host");
                let port: i64 = redis::from_redis_value(master[1].clone()).expect("port");
                (first, last, (host, port))
            })
            .collect()
    };
    let (_, _, (host, port)) = ranges
        .iter()
        .find(|(first, last, _)| (*first..=*last).contains(&slot))
        .unwrap_or_else(|| panic!("no master serves slot {slot}"));
    format!("{host}:{port}")
}

/// Opens campaigns until `masters` different masters hold one each; returns (campaign, master).
async fn campaigns_on_masters(app: &TestApp, masters: usize, stock: i64) -> Vec<(i64, String)> {
    let mut chosen: Vec<(i64, String)> = Vec::new();
    for _ in 0..40 {
        let campaign = app.open_campaign(stock, 1).await;
        let master = master_of(app, &app.gate_keys(campaign).0).await;
        if !chosen.iter().any(|(_, m)| *m == master) {
            chosen.push((campaign, master));
        }
        if chosen.len() == masters {
            return chosen;
        }
    }
    panic!("40 campaigns landed on fewer than {masters} masters: {chosen:?}");
}

async fn burst(app: &TestApp, campaign: i64, users: &[i64], concurrency: usize) -> Vec<Reply> {
    stream::iter(users.iter().map(|&u| app.join(campaign, u, 1)))
        .buffered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_holds_with_campaigns_on_every_master_of_the_cluster() {
    let app = spawn_cluster_app().await;
    let campaigns = campaigns_on_masters(&app, 3, 40).await;

    // Three bursts at once, one per master: 400 requests from 300 users each.
    let users = burst_users();
    let bursts = campaigns
        .iter()
        .map(|(campaign, _)| burst(&app, *campaign, &users, 64));
    let replies = futures::future::join_all(bursts).await;

    for ((campaign, master), replies) in campaigns.iter().zip(&replies) {
        let won = winners(replies, &users);
        assert_eq!(won.len(), 40, "campaign {campaign} on {master}");
        assert_eq!(app.remaining_stock(*campaign).await, 0);
        assert_eq!(
            app.redis_stock(*campaign).await,
            Some(0),
            "campaign {campaign}"
        );
        for user in &won {
            assert!(app.redis_has_user(*campaign, *user).await, "user {user}");
        }
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 120);
    app.assert_outbox_matches_participations().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_losing_its_keys_mid_sale_never_oversells_and_is_rebuilt() {
    let app = spawn_cluster_app().await;
    let campaigns = campaigns_on_masters(&app, 2, 150).await;
    let (hit, hit_master) = campaigns[0].clone();
    let (spared, _) = campaigns[1];
    let loads_before = app.gate_loads();

    let flusher = flush_the_master_once_fifty_are_sold(&app, hit, hit_master);
    // 400 distinct users per campaign, both campaigns at once.
    let users: Vec<i64> = (1..=400).collect();
    let (hit_replies, spared_replies) = tokio::join!(
        burst(&app, hit, &users, 32),
        burst(&app, spared, &users, 32)
    );
    let sold_at_flush = flusher.await.expect("flusher");
    assert!(
        sold_at_flush < 150,
        "the keys went in the middle of the sale ({sold_at_flush} of 150 sold)"
    );
    let hit_replies = asked_again(&app, hit, hit_replies, &users).await;

    for (campaign, replies) in [(hit, &hit_replies), (spared, &spared_replies)] {
        let won = winners(replies, &users);
        assert_eq!(
            won.len(),
            150,
            "campaign {campaign}: exactly the stock, no oversell"
        );
        assert_eq!(app.remaining_stock(campaign).await, 0);
        assert_eq!(
            app.redis_stock(campaign).await,
            Some(0),
            "campaign {campaign}"
        );
    }
    assert!(
        app.gate_loads() > loads_before,
        "the hit campaign's gate state was rebuilt from MySQL"
    );
    assert_the_winners_set_was_rebuilt(&app, hit, &hit_replies, &users, sold_at_flush).await;
    assert_mysql_holds_each_campaigns_stock(&app, hit, spared).await;
    app.assert_outbox_matches_participations().await;
}

/// The replies with each `503 DEPENDENCY_UNAVAILABLE` replaced by the user's join asked again: a
/// win in flight when the master lost its keys carried the lost gate's reservation, and its row's
/// gate generation moved on with the rebuild (docs/design.md §2.1): refused, nothing written, and
/// the user asks again.
async fn asked_again(
    app: &TestApp,
    campaign: i64,
    replies: Vec<Reply>,
    users: &[i64],
) -> Vec<Reply> {
    let mut answered = Vec::with_capacity(replies.len());
    for (reply, &user) in replies.into_iter().zip(users) {
        answered.push(match (reply.status, reply.code()) {
            (503, "DEPENDENCY_UNAVAILABLE") => app.join(campaign, user, 1).await,
            _ => reply,
        });
    }
    answered
}

/// Spawned: once 50 units of the hit campaign are sold, everything this test keeps on its
/// master goes (the hit campaign's keys: the other campaign lives elsewhere). Only this test's
/// keys: other tests share the cluster. Returns how many were sold right after the flush.
fn flush_the_master_once_fifty_are_sold(
    app: &TestApp,
    hit: i64,
    master: String,
) -> tokio::task::JoinHandle<i64> {
    let db = app.db.clone();
    let prefix = app.redis_prefix.clone();
    tokio::spawn(async move {
        let sold = || async {
            use sea_orm::ConnectionTrait;
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::MySql,
                    format!("SELECT COUNT(*) FROM participation WHERE campaign_id = {hit}"),
                ))
                .await
                .expect("count")
                .expect("a row");
            row.try_get_by_index::<i64>(0).expect("count")
        };
        wait_until(
            "50 units of the hit campaign to be sold",
            Duration::from_secs(60),
            || async { sold().await >= 50 },
        )
        .await;
        let mut node = redis::Client::open(format!("redis://{master}"))
            .expect("master url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the master");
        let keys: Vec<String> = node
            .scan_match::<_, String>(format!("{prefix}*"))
            .await
            .expect("SCAN")
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("SCAN items");
        assert!(!keys.is_empty(), "the hit campaign's keys are on {master}");
        // One DEL per hash tag (a slot): the campaign's keys at once, and whatever else of this
        // test's the master holds (the instances' heartbeats, a mailbox) beside them.
        let mut by_tag: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for key in keys {
            let tag = key
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'));
            let tag = tag.map_or_else(|| key.clone(), |(tag, _)| tag.to_string());
            by_tag.entry(tag).or_default().push(key);
        }
        for keys in by_tag.values() {
            let _: () = node.del(keys).await.expect("DEL");
        }
        sold().await
    })
}

/// Rebuilt: the winners set holds MySQL's winners again, at least all those sold before the
/// keys went (a win whose reservation was made before and committed after the rebuild is in
/// MySQL only; asking again, that user meets UNIQUE and gets ALREADY_PARTICIPATED).
async fn assert_the_winners_set_was_rebuilt(
    app: &TestApp,
    hit: i64,
    hit_replies: &[Reply],
    users: &[i64],
    sold_at_flush: i64,
) {
    let mut conn = app.redis.clone();
    let in_redis: HashSet<i64> = conn.smembers(app.gate_keys(hit).1).await.expect("SMEMBERS");
    let in_mysql: HashSet<i64> = winners(hit_replies, users);
    assert!(
        in_redis.is_subset(&in_mysql),
        "only winners are in the rebuilt set"
    );
    assert!(
        in_redis.len() as i64 >= sold_at_flush,
        "{} in the rebuilt set, {sold_at_flush} sold before the keys went",
        in_redis.len()
    );
}

/// MySQL holds exactly 150 participations for each campaign.
async fn assert_mysql_holds_each_campaigns_stock(app: &TestApp, hit: i64, spared: i64) {
    let per_campaign: HashMap<i64, i64> = [
        (
            hit,
            app.scalar(&format!(
                "SELECT COUNT(*) FROM participation WHERE campaign_id = {hit}"
            ))
            .await,
        ),
        (
            spared,
            app.scalar(&format!(
                "SELECT COUNT(*) FROM participation WHERE campaign_id = {spared}"
            ))
            .await,
        ),
    ]
    .into();
    assert_eq!(per_campaign, [(hit, 150), (spared, 150)].into());
}

/// Live controls on a cluster (docs/design.md §15): the control and release scripts touch only
/// keys of the campaign's own hash tag, so on every master a withdrawal, an addition and a pause
/// reach the gate, and the sale sells exactly the stock after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_controls_reach_the_gate_on_every_master_of_the_cluster() {
    let app = spawn_cluster_app().await;
    let campaigns = campaigns_on_masters(&app, 3, 40).await;
    let control = |campaign: i64, action: &'static str, body: serde_json::Value| {
        let app = &app;
        async move {
            let path = format!("/api/v1/admin/campaigns/{campaign}/{action}");
            let reply = app
                .post_json(&path, &body, Some(crate::spawn::ADMIN_TOKEN))
                .await;
            assert_eq!(reply.status, 200, "{action} on {campaign}: {reply:?}");
        }
    };
    let users = burst_users();
    for (campaign, master) in &campaigns {
        control(*campaign, "stock", serde_json::json!({"delta": -15})).await;
        control(*campaign, "stock", serde_json::json!({"delta": 5})).await;
        control(*campaign, "pause", serde_json::json!({})).await;
        let refused = app.join(*campaign, 1, 1).await;
        assert_eq!(
            (refused.status, refused.code()),
            (422, "CAMPAIGN_PAUSED"),
            "campaign {campaign} on {master}"
        );
        control(*campaign, "resume", serde_json::json!({})).await;
        let won = winners(&burst(&app, *campaign, &users, 64).await, &users);
        assert_eq!(
            won.len(),
            30,
            "40 − 15 + 5, campaign {campaign} on {master}"
        );
        assert_eq!(app.redis_stock(*campaign).await, Some(0));
        app.assert_no_drift(*campaign).await;
    }
}

/// A bucketed campaign on the cluster (docs/design.md §21): its 64 buckets' keys spread over
/// every master, each holding at least a sixth of them, and a burst sells exactly the stock, the
/// last units taken from buckets on other masters than the joins' own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_n_holds_with_one_campaigns_buckets_on_every_master() {
    let app = spawn_cluster_app().await;
    let buckets = 64;
    let campaign = app
        .open_campaign_with(200, 1, serde_json::json!({ "buckets": buckets }))
        .await;
    let mut per_master: HashMap<String, usize> = HashMap::new();
    for b in 0..buckets {
        let meta = format!("{}{{c:{campaign}:{b}}}:meta", app.redis_prefix);
        *per_master.entry(master_of(&app, &meta).await).or_default() += 1;
    }
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    assert!(
        per_master.values().all(|&n| n * 6 >= buckets),
        "{per_master:?}"
    );

    let users: Vec<i64> = (1..=800).collect();
    let replies = burst(&app, campaign, &users, 64).await;
    let won = winners(&replies, &users);
    assert_eq!(won.len(), 200, "exactly the stock");
    assert_eq!(
        app.scalar(&format!(
            "SELECT CAST(remaining_stock + (SELECT SUM(remaining_stock) FROM campaign_bucket \
             WHERE campaign_id = {campaign}) AS SIGNED) FROM campaign WHERE id = {campaign}"
        ))
        .await,
        0
    );
    app.assert_outbox_matches_participations().await;
}
