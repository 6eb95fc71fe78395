//! MySQL stops answering mid-burst (docs/design.md §2.9): the service reaches it through a TCP proxy
//! the test controls, which black-holes every connection (no RST, no FIN: the kernel would give
//! up after minutes), then resets them, then forwards again.
//!
//! Every request still gets an answer within `HTTP_REQUEST_TIMEOUT_MS`, the relay and the
//! reconciler carry on by themselves once MySQL is back, and the sale ends with exactly its
//! stock sold, nobody twice, and every win on the topic.

use std::{
    collections::HashSet,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use futures::future::join_all;
use redis::AsyncCommands;
use tokio::sync::Notify;

use crate::{
    http::Reply,
    kafka::read_topic,
    proxy::Proxy,
    spawn::{test_settings, with_relay, TestApp},
    wait::wait_until,
};

const STOCK: i64 = 100;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Joins for every user at once; `after` answers in, `on_answers` runs (once).
pub(super) async fn burst(
    app: &TestApp,
    campaign: i64,
    users: impl Iterator<Item = i64>,
    after: usize,
    on_answers: &Notify,
) -> Vec<(i64, Reply)> {
    let answered = AtomicUsize::new(0);
    let answered = &answered;
    join_all(users.map(|user| async move {
        let reply = app.join(campaign, user, 1).await;
        if answered.fetch_add(1, Ordering::SeqCst) + 1 == after {
            on_answers.notify_one();
        }
        (user, reply)
    }))
    .await
}

/// Every answer is a real one: a win, a refusal, or 503 with Retry-After (a request that hung
/// past the deadline would have failed the client's own timeout instead).
fn check_answers(replies: &[(i64, Reply)], winners: &mut HashSet<i64>) -> usize {
    let mut unavailable = 0;
    for (user, reply) in replies {
        match reply.status {
            201 => assert!(winners.insert(*user), "user {user} won twice"),
            409 => assert_eq!(reply.code(), "SOLD_OUT", "user {user}: {reply:?}"),
            503 => {
                assert!(
                    reply.headers.contains_key("retry-after"),
                    "503 without Retry-After: {reply:?}"
                );
                unavailable += 1;
            }
            other => panic!("user {user}: unexpected {other}: {reply:?}"),
        }
    }
    unavailable
}

#[tokio::test]
async fn mysql_black_holed_mid_burst_every_request_answers_and_the_service_recovers() {
    let (app, proxy) = spawn_app_behind_a_proxy().await;
    let campaign = app.open_campaign(STOCK, 1).await;
    let mut winners = HashSet::new();

    black_hole_mysql_mid_burst(&app, campaign, &proxy, &mut winners).await;
    while_black_holed_every_join_is_unavailable(&app, campaign, &mut winners).await;

    // The connections are reset, then MySQL answers again.
    proxy.reset().await;
    proxy.resume();

    wait_for_the_reconciler(&app, campaign).await;
    sell_what_is_left(&app, campaign, &mut winners).await;
    assert_exactly_the_stock_sold_and_on_the_topic(&app, campaign, &winners).await;
    app.assert_no_drift(campaign).await;
}

/// The app with its MySQL reached through a proxy the test controls, short database, request and
/// reservation deadlines, a direct connection for the test, and a client that waits longer than
/// the service's deadline.
async fn spawn_app_behind_a_proxy() -> (TestApp, Proxy) {
    let mut settings = with_relay(test_settings().await);
    let (proxy, direct_url) = Proxy::in_front_of_mysql(&mut settings).await;
    settings.database.statement_timeout = Duration::from_millis(1_000);
    settings.database.acquire_timeout = Duration::from_millis(500);
    settings.database.connect_timeout = Duration::from_millis(1_000);
    settings.http.request_timeout = REQUEST_TIMEOUT;
    settings.redis.reservation_timeout = Duration::from_millis(1_000);
    (Proxy::spawn_app_behind(settings, &direct_url).await, proxy)
}

/// Burst 1: MySQL black-holes after the first 10 answers, with the rest in flight; every answer
/// is a real one and some joins went through before the black hole.
async fn black_hole_mysql_mid_burst(
    app: &TestApp,
    campaign: i64,
    proxy: &Proxy,
    winners: &mut HashSet<i64>,
) {
    let black_hole = Notify::new();
    let (replies, ()) = tokio::join!(burst(app, campaign, 1..=60, 10, &black_hole), async {
        black_hole.notified().await;
        proxy.black_hole();
    });
    check_answers(&replies, winners);
    assert!(
        !winners.is_empty(),
        "some joins went through before the black hole"
    );
}

/// While it lasts, new requests are answered 503 within the deadline, not held.
async fn while_black_holed_every_join_is_unavailable(
    app: &TestApp,
    campaign: i64,
    winners: &mut HashSet<i64>,
) {
    let nothing = Notify::new();
    let during = burst(app, campaign, 1_001..=1_020, usize::MAX, &nothing).await;
    let unavailable = check_answers(&during, winners);
    assert_eq!(
        unavailable,
        during.len(),
        "MySQL is unreachable: {during:?}"
    );
}

/// Reservations whose transaction outcome the outage hid stay open until MySQL can say; the
/// reconciler settles them by itself (RESERVATION_TIMEOUT_MS is 1 s here).
async fn wait_for_the_reconciler(app: &TestApp, campaign: i64) {
    let (meta, _) = app.gate_keys(campaign);
    let pending = meta.replace(":meta", ":pending");
    wait_until(
        "the reconciler to close every open reservation",
        Duration::from_secs(30),
        || async {
            let mut redis = app.redis.clone();
            let open: i64 = redis.hlen(&pending).await.expect("HLEN");
            open == 0
        },
    )
    .await;
}

/// Burst 2, in rounds until the stock is gone, sells what is left; users of burst 1 who got 503
/// may try again.
async fn sell_what_is_left(app: &TestApp, campaign: i64, winners: &mut HashSet<i64>) {
    let nothing = Notify::new();
    let mut round = 0;
    while app.remaining_stock(campaign).await > 0 {
        round += 1;
        assert!(
            round <= 10,
            "the sale does not finish after MySQL came back"
        );
        let users = (1..=60).chain((0..100).map(|i| 10_000 * round + i));
        let replies = burst(app, campaign, users, usize::MAX, &nothing).await;
        for (user, reply) in &replies {
            if reply.code() == "ALREADY_PARTICIPATED" {
                // A winner, or one whose win committed while its answer was lost (503).
                assert!(*user <= 60, "{user}: {reply:?}");
                assert!(reply.body["participationId"].is_i64(), "{reply:?}");
            }
        }
        let fresh: Vec<(i64, Reply)> = replies
            .into_iter()
            .filter(|(_, r)| r.code() != "ALREADY_PARTICIPATED")
            .collect();
        check_answers(&fresh, winners);
    }
}

/// Exactly-N, nobody twice (UNIQUE holds it in MySQL; the count says none was lost), and the
/// relay resumed by itself: every win reaches the topic.
async fn assert_exactly_the_stock_sold_and_on_the_topic(
    app: &TestApp,
    campaign: i64,
    winners: &HashSet<i64>,
) {
    let sold = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await;
    assert_eq!(sold, STOCK, "exactly the stock is sold");
    assert!(winners.len() as i64 <= STOCK);
    app.assert_outbox_matches_participations().await;

    assert_eq!(app.redis_stock(campaign).await, Some(0));

    app.wait_for_outbox_drained(Duration::from_secs(60)).await;
    let events = read_topic(
        &app.kafka_bootstrap,
        &app.topic,
        STOCK as usize,
        Duration::from_secs(30),
    )
    .await;
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id()).collect();
    assert_eq!(ids.len() as i64, STOCK, "every win on the topic");
}
