//! Dependencies failing under load, and instances sharing them (docs/design.md §2.1, §2.9):
//! - Redis stops answering mid-burst (black hole), then drops every connection (reset), then
//!   comes back: every request is answered in bounded time, and the sale still ends at exactly
//!   its stock with Redis agreeing with MySQL;
//! - two instances on one database and one Redis prefix sell one campaign out together.
//!
//! Redis is reached through a `Proxy` the test controls; the test's own assertions read Redis
//! directly.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{future::join_all, StreamExt};
use redis::AsyncCommands;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    drops::support::{buy, gate_of, group},
    http::{burst_users, winners, Reply},
    proxy::Proxy,
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

/// One answer the burst got, with how long it took.
#[derive(Debug)]
struct Answer {
    user: i64,
    reply: Reply,
    started: Instant,
    elapsed: Duration,
}

/// `workers` clients, each sending one request for a fresh user at a time until `stop`.
fn start_burst(
    app: &TestApp,
    campaign: i64,
    workers: usize,
    stop: CancellationToken,
) -> (
    mpsc::UnboundedReceiver<Answer>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let next_user = Arc::new(AtomicI64::new(1));
    let url = app.url(&format!("/api/v1/campaigns/{campaign}/participations"));
    let handles = (0..workers)
        .map(|_| {
            let (client, url, tx, stop, next_user) = (
                app.client.clone(),
                url.clone(),
                tx.clone(),
                stop.clone(),
                next_user.clone(),
            );
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let user = next_user.fetch_add(1, Ordering::SeqCst);
                    let started = Instant::now();
                    let resp = client
                        .post(&url)
                        .json(&json!({"userId": user}))
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("user {user}: no answer: {e}"));
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.expect("body read");
                    let body = serde_json::from_str(&text).unwrap_or(json!(text));
                    let answer = Answer {
                        user,
                        reply: Reply {
                            status,
                            body,
                            headers,
                        },
                        started,
                        elapsed: started.elapsed(),
                    };
                    if tx.send(answer).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    (rx, handles)
}

/// Collects answers into `all` until `count` of the ones received from now on satisfy `wanted`.
async fn collect_until(
    what: &str,
    rx: &mut mpsc::UnboundedReceiver<Answer>,
    all: &mut Vec<Answer>,
    count: usize,
    wanted: impl Fn(&Answer) -> bool,
) {
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen < count {
        let answer = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {count} answers: {what}"))
            .expect("the burst runs until stopped");
        if wanted(&answer) {
            seen += 1;
        }
        all.push(answer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_hanging_then_dropping_connections_mid_burst_never_hangs_a_request_and_the_sale_recovers(
) {
    let mut settings = test_settings().await;
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    let request_timeout = Duration::from_secs(2);
    settings.http.request_timeout = request_timeout;
    settings.redis.timeout = Duration::from_millis(300);
    // The reconciler gives back reservations older than this, checking every tenth of it.
    settings.redis.reservation_timeout = Duration::from_secs(3);
    let app = spawn_app_with(settings).await;
    let stock = 150;
    let campaign = app.open_campaign(stock, 1).await;

    let all = burst_through_the_redis_outage(&app, campaign, &proxy).await;
    let (mut won, unavailable) = check_every_answer(&all, request_timeout);
    wait_for_the_reconciler_to_restore_the_stock(&app, campaign).await;
    sell_the_rest(&app, campaign, stock, &unavailable, &mut won).await;
    assert_exactly_the_stock_sold_everywhere(&app, campaign, stock, &won).await;
    app.assert_no_drift(campaign).await;
}

/// 16 clients keep asking, each for a new user, while Redis goes through its outage; returns
/// every answer. Every phase ends on what the answers show, not on time.
async fn burst_through_the_redis_outage(
    app: &TestApp,
    campaign: i64,
    proxy: &Proxy,
) -> Vec<Answer> {
    let stop = CancellationToken::new();
    let (mut rx, workers) = start_burst(app, campaign, 16, stop.clone());
    let mut all = Vec::new();
    // healthy: 20 wins;
    collect_until("wins before the outage", &mut rx, &mut all, 20, |a| {
        a.reply.status == 201
    })
    .await;
    // Redis stops answering (connections stay open): 503s;
    proxy.black_hole();
    let black_hole_at = Instant::now();
    collect_until("refusals in the black hole", &mut rx, &mut all, 5, |a| {
        a.started > black_hole_at && a.reply.status == 503
    })
    .await;
    // its connections are reset (replies Redis had sent are lost) while it still does not
    // answer new connections: 503s;
    proxy.reset().await;
    let reset_at = Instant::now();
    collect_until("refusals after the reset", &mut rx, &mut all, 5, |a| {
        a.started > reset_at && a.reply.status == 503
    })
    .await;
    // Redis is back: the service reconnects by itself and sells again.
    proxy.resume();
    let resumed_at = Instant::now();
    collect_until("wins after Redis came back", &mut rx, &mut all, 10, |a| {
        a.started > resumed_at && a.reply.status == 201
    })
    .await;
    stop.cancel();
    for worker in workers {
        worker.await.expect("burst worker");
    }
    while let Some(answer) = rx.recv().await {
        all.push(answer);
    }
    all
}

/// Every request was answered in bounded time, with a documented answer; returns the users who
/// won and those answered 503.
fn check_every_answer(all: &[Answer], request_timeout: Duration) -> (HashSet<i64>, Vec<i64>) {
    let mut won: HashSet<i64> = HashSet::new();
    let mut unavailable = Vec::new();
    for a in all {
        assert!(
            a.elapsed <= request_timeout + Duration::from_millis(1_500),
            "user {}: answered after {:?} (HTTP_REQUEST_TIMEOUT_MS is {request_timeout:?}): {:?}",
            a.user,
            a.elapsed,
            a.reply
        );
        match (a.reply.status, a.reply.code()) {
            (201, _) => assert!(won.insert(a.user), "user {} won twice", a.user),
            // No 409: every user of the burst is new and stock remains, so a refusal here
            // would be a timeout passed off as the gate's decision.
            (503, "DEPENDENCY_UNAVAILABLE") => unavailable.push(a.user),
            (503, "SERVICE_BUSY") => {
                assert!(
                    a.reply.headers.contains_key("retry-after"),
                    "SERVICE_BUSY carries Retry-After: {:?}",
                    a.reply
                );
                unavailable.push(a.user);
            }
            _ => panic!("user {}: unexpected answer {:?}", a.user, a.reply),
        }
    }
    (won, unavailable)
}

/// A reservation call that times out while Redis hangs: Redis runs the queued script when it
/// resumes, after the join was answered 503, and nothing would settle the reservation until
/// the reconciler (far past this test). The service undoes exactly that reservation once Redis
/// answers, and the unit is sold again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_redis_makes_after_its_call_timed_out_is_undone_at_once() {
    let (proxy, app, campaign) = one_unit_left_behind_a_proxy(|s| {
        s.redis.timeout = Duration::from_millis(300);
    })
    .await;

    proxy.black_hole();
    let timed_out = app.join(campaign, 2, 1).await;
    assert_eq!(timed_out.status, 503, "Redis did not answer: {timed_out:?}");
    proxy.resume();

    wait_until(
        "the late reservation to be undone",
        Duration::from_secs(10),
        || async { open_reservations(&app, campaign).await == 0 },
    )
    .await;
    assert_eq!(app.redis_stock(campaign).await, Some(1), "the unit is back");
    assert_eq!(app.join(campaign, 3, 1).await.status, 201, "and sold");
    assert_eq!(
        app.join(campaign, 2, 1).await.code(),
        "SOLD_OUT",
        "user 2 holds nothing: refused for the stock only"
    );
    app.assert_no_drift(campaign).await;
}

/// The same for a cart (a proof run, seed 146: a cart sent into a Redis hang was answered 503,
/// Redis then ran its queued script, and the user was refused `ALREADY_PARTICIPATED` in one of
/// its campaigns for the next 11 s, until the reconciler): every item's late reservation is
/// undone once Redis answers, and the user can buy again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_carts_reservations_redis_makes_after_its_call_timed_out_are_undone_at_once() {
    let mut settings = test_settings().await;
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    settings.redis.reservation_timeout = Duration::from_secs(600);
    settings.redis.timeout = Duration::from_millis(300);
    let app = spawn_app_with(settings).await;
    let g = group(&app, 10, 1).await;
    let a = app.open_campaign_with(2, 1, json!({"groupId": g})).await;
    let b = app.open_campaign_with(2, 1, json!({"groupId": g})).await;
    let loaded = buy(&app, g, 1, &[(a, 1), (b, 1)], None).await;
    assert_eq!(loaded.status, 201, "the gate is loaded: {loaded:?}");

    proxy.black_hole();
    let timed_out = buy(&app, g, 2, &[(a, 1), (b, 1)], None).await;
    assert_eq!(timed_out.status, 503, "Redis did not answer: {timed_out:?}");
    proxy.resume();

    for campaign in [a, b] {
        wait_until(
            "the cart's late reservation to be undone",
            Duration::from_secs(10),
            || async { gate_of(&app, g, campaign, 2).await == (Some(1), false, false) },
        )
        .await;
    }
    let again = buy(&app, g, 2, &[(a, 1), (b, 1)], None).await;
    assert_eq!(again.status, 201, "user 2 holds nothing: {again:?}");
    app.assert_no_drift(a).await;
    app.assert_no_drift(b).await;
}

/// An app whose Redis is behind a proxy the test can black-hole, `tweak`ed, with the reconciler
/// far past the test (it would give reservations back after RESERVATION_TIMEOUT_MS); a campaign
/// of 2 units, one sold (so the gate is loaded), one left.
async fn one_unit_left_behind_a_proxy(
    tweak: impl FnOnce(&mut firstcome::config::Settings),
) -> (Proxy, TestApp, i64) {
    let mut settings = test_settings().await;
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    settings.redis.reservation_timeout = Duration::from_secs(600);
    tweak(&mut settings);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(2, 1).await;
    assert_eq!(
        app.join(campaign, 1, 1).await.status,
        201,
        "the gate is loaded"
    );
    (proxy, app, campaign)
}

/// How many reservations of the campaign are open in Redis.
async fn open_reservations(app: &TestApp, campaign: i64) -> i64 {
    let (meta, _) = app.gate_keys(campaign);
    let pending = meta.replace(":meta", ":pending");
    let mut redis = app.redis.clone();
    redis.hlen::<_, i64>(pending).await.expect("HLEN")
}

/// Reservations whose replies the reset lost, and wins whose reservation could not be closed,
/// are left open; the reconciler settles them once they are RESERVATION_TIMEOUT_MS old, and
/// Redis then holds MySQL's stock (some of it left: the outage came before the sell-out).
async fn wait_for_the_reconciler_to_restore_the_stock(app: &TestApp, campaign: i64) {
    wait_until(
        "the reconciler to settle every open reservation",
        Duration::from_secs(30),
        || async { open_reservations(app, campaign).await == 0 },
    )
    .await;
    let remaining = app.remaining_stock(campaign).await;
    assert!(remaining > 0, "the outage came before the sell-out");
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(remaining),
        "after the reconciler, Redis holds MySQL's stock"
    );
}

/// The sale continues to its end: the users refused in the outage try again, with enough new
/// users to sell every unit left (32 at a time). Adds the new wins (and late commits) to `won`.
async fn sell_the_rest(
    app: &TestApp,
    campaign: i64,
    stock: i64,
    unavailable: &[i64],
    won: &mut HashSet<i64>,
) {
    let fresh = 10_000..10_000 + stock;
    let rest: Vec<i64> = unavailable.iter().copied().chain(fresh).collect();
    let replies: Vec<Reply> = futures::stream::iter(rest.iter().map(|&u| app.join(campaign, u, 1)))
        .buffered(32)
        .collect()
        .await;
    // A retried user is ALREADY_PARTICIPATED only if the refused attempt committed after all
    // (its answer was the HTTP timeout, not the gate's): MySQL then holds that win.
    let mut committed_late = HashSet::new();
    for (user, reply) in rest.iter().zip(&replies) {
        if reply.code() == "ALREADY_PARTICIPATED" {
            assert!(unavailable.contains(user), "user {user}: {reply:?}");
            committed_late.insert(*user);
        }
    }
    for user in winners(&replies, &rest) {
        assert!(won.insert(user), "user {user} won twice");
    }
    assert!(won.is_disjoint(&committed_late));
    won.extend(committed_late);
}

/// Exactly the stock was sold, the wins in MySQL are exactly the 201s (and late commits), and
/// MySQL, Redis and the outbox agree with nothing left open.
async fn assert_exactly_the_stock_sold_everywhere(
    app: &TestApp,
    campaign: i64,
    stock: i64,
    won: &HashSet<i64>,
) {
    assert_eq!(won.len() as i64, stock, "exactly the stock was sold");
    let rows = mysql_winners(app, campaign).await;
    assert_eq!(rows.len() as i64, stock, "one row per unit");
    let in_mysql: HashSet<i64> = rows.into_iter().collect();
    assert_eq!(
        &in_mysql, won,
        "the wins in MySQL are exactly the 201s (and late commits)"
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    assert_eq!(
        open_reservations(app, campaign).await,
        0,
        "no reservation left open"
    );
    app.assert_outbox_matches_participations().await;
}

/// The user ids of a campaign's participations in MySQL, one per row.
async fn mysql_winners(app: &TestApp, campaign: i64) -> Vec<i64> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    app.db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT user_id FROM participation WHERE campaign_id = {campaign}"),
        ))
        .await
        .expect("participations")
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0).expect("user_id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_and_redis_sell_exactly_the_stock_together() {
    let settings = test_settings().await;
    let a = spawn_app_with(settings.clone()).await;
    // Same database (already migrated by `a`), same Redis prefix: a second replica.
    let mut second = settings;
    second.migrate_on_start = false;
    let b = spawn_app_with(second).await;
    assert_eq!(a.redis_prefix, b.redis_prefix);

    let stock = 100;
    let campaign = a.open_campaign(stock, 1).await;
    // Each instance sells before the burst: both serve the campaign (b never saw it created).
    assert_eq!(a.join(campaign, 1, 1).await.status, 201);
    assert_eq!(b.join(campaign, 2, 1).await.status, 201);

    // 300 more users at once, 100 of them twice; each user's second request goes to the other
    // instance than its first.
    let users: Vec<i64> = burst_users().into_iter().map(|u| u + 2).collect();
    let mut asked = HashSet::new();
    let replies = join_all(users.iter().map(|&u| {
        let first_time = asked.insert(u);
        let app = if (u % 2 == 0) == first_time { &a } else { &b };
        app.join(campaign, u, 1)
    }))
    .await;
    let mut won = winners(&replies, &users);
    assert!(won.insert(1) && won.insert(2), "nobody twice");
    assert_eq!(
        won.len() as i64,
        stock,
        "exactly the stock, across both instances"
    );

    let in_mysql = mysql_winners(&a, campaign).await;
    assert_eq!(in_mysql.len() as i64, stock, "one row per win");
    assert_eq!(
        in_mysql.into_iter().collect::<HashSet<_>>(),
        won,
        "the wins in MySQL are exactly the 201s"
    );
    assert_eq!(a.remaining_stock(campaign).await, 0);
    assert_eq!(a.redis_stock(campaign).await, Some(0));
    a.assert_outbox_matches_participations().await;
    // Both instances refuse what is left, whoever asks.
    for app in [&a, &b] {
        assert_eq!(
            app.join(campaign, 1, 1).await.code(),
            "ALREADY_PARTICIPATED"
        );
        assert_eq!(app.join(campaign, 100_000, 1).await.code(), "SOLD_OUT");
    }
    a.assert_no_drift(campaign).await;
}

/// Priming at creation fails while Redis does not answer, and the keys under the new campaign's
/// id still hold an earlier campaign's state (ids start again after a database reset): the
/// first request must not be served from that stale state.
#[tokio::test]
async fn a_campaign_created_while_redis_hangs_is_not_served_from_stale_keys() {
    let mut settings = test_settings().await;
    let proxy = Proxy::in_front_of_redis(&mut settings).await;
    settings.redis.timeout = Duration::from_millis(300);
    let app = spawn_app_with(settings).await;

    proxy.black_hole();
    let created = app
        .create_campaign(json!({"name": "primed late", "totalStock": 5}))
        .await;
    let campaign = created["id"].as_i64().expect("id");
    // An earlier campaign with this id, sold out, with user 42 among its winners.
    app.plant_stale_gate_state(campaign, 42, Some(1)).await;
    // The connection drops with the priming commands still held: they never reach Redis.
    proxy.reset().await;
    proxy.resume();
    // The app's connection was up before the black hole (its heartbeat), so the first command
    // after the reset finds it broken and the next one reconnects: wait for a heartbeat written
    // after the reset, so the join's own gate call is not that first command.
    let resumed = chrono::Utc::now().timestamp_millis();
    let writers = format!("{}writers", app.redis_prefix);
    wait_until(
        "the app's heartbeat reaches Redis again",
        Duration::from_secs(10),
        || {
            let (mut conn, writers) = (app.redis.clone(), writers.clone());
            async move {
                let beats: HashMap<String, i64> = conn.hgetall(&writers).await.expect("HGETALL");
                beats.values().any(|&at| at > resumed)
            }
        },
    )
    .await;

    let won = app.join(campaign, 42, 1).await;
    assert_eq!(won.status, 201, "{won:?}");
    assert_eq!(won.body["sequence"], json!(1), "a fresh sequence: {won:?}");
    assert_eq!(app.redis_stock(campaign).await, Some(4));
    app.assert_outbox_matches_participations().await;
    app.assert_no_drift(campaign).await;
}

/// A join cut off while its reservation is on its way to Redis (here its request deadline
/// passes while Redis is slow to answer; a client hanging up does the same) must still settle
/// that reservation: commit the win or give the units back. Left open, the units stay out of
/// the gate until the reconciler gives them back (`RESERVATION_TIMEOUT_MS`), and the gate
/// refuses joins SOLD_OUT meanwhile although MySQL has the units: the proof run's unjustified
/// refusals after an instance resumed from a SIGSTOP served the requests its clients had
/// given up on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_cut_off_while_its_reservation_is_in_flight_still_settles_it() {
    let (proxy, app, campaign) = one_unit_left_behind_a_proxy(|s| {
        s.http.request_timeout = Duration::from_secs(1);
        // Redis answers within its deadline: only the request is cut off.
        s.redis.timeout = Duration::from_secs(8);
    })
    .await;

    // The reservation's script waits in the proxy while the request's deadline passes.
    proxy.black_hole();
    let cut = app.join(campaign, 2, 1).await;
    assert_eq!(cut.status, 503, "the request deadline: {cut:?}");
    proxy.resume();

    // Redis runs the script now, after the request was answered: the reservation is settled
    // (here committed: MySQL has the unit), not left open with the unit out of the sale. "No
    // reservation open" also holds before the held script reaches Redis, so first the script's
    // own mark: the gate's sequence counts its reservation (the first join's was 1).
    let (meta, _) = app.gate_keys(campaign);
    wait_until(
        "the cut-off join's reservation to reach Redis and settle",
        Duration::from_secs(10),
        || async {
            let seq: Option<i64> = (app.redis.clone()).hget(&meta, "seq").await.expect("HGET");
            seq == Some(2) && open_reservations(&app, campaign).await == 0
        },
    )
    .await;
    let remaining = app.remaining_stock(campaign).await;
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(remaining),
        "the gate holds MySQL's stock"
    );
    let again = app.join(campaign, 3, 1).await;
    if remaining == 0 {
        assert_eq!(again.code(), "SOLD_OUT", "{again:?}");
        assert_eq!(
            app.join(campaign, 2, 1).await.code(),
            "ALREADY_PARTICIPATED"
        );
    } else {
        assert_eq!(again.status, 201, "the unit is sold again: {again:?}");
    }
    app.assert_no_drift(campaign).await;
}
