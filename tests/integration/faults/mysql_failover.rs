//! A MySQL failover mid-sale at production defaults (docs/design.md §2.1, §18.1): MySQL stops
//! answering while a group-commit batch's COMMIT is on its way, stays silent 12 s, its
//! connections are then reset as in a failover, and it answers again at once. Every unit a request held while its commit's outcome
//! was unknown is back in the sale within 2 s of MySQL answering, not after
//! `RESERVATION_TIMEOUT_MS`, so the sale sells out at exactly its stock while users keep coming.
//!
//! Before, a join whose COMMIT went unanswered kept its reservation until the reconciler gave it
//! back (60 s by default then), and every later user was told SOLD_OUT: a campaign of 300
//! ended at 299.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use redis::AsyncCommands;
use tokio::sync::Notify;

use super::mysql_black_hole::burst;
use crate::{
    http::Reply,
    proxy::Proxy,
    spawn::{test_settings, TestApp},
    wait::wait_until,
};

const STOCK: i64 = 300;
/// The promise: units of a commit in doubt are back this soon after MySQL answers again.
const BACK_WITHIN: Duration = Duration::from_secs(2);
/// How long MySQL stays silent: past `DB_STATEMENT_TIMEOUT_MS` (5 s) twice.
const OUTAGE: Duration = Duration::from_secs(12);

#[tokio::test]
async fn after_a_mysql_failover_the_units_in_doubt_are_back_within_2s_and_the_sale_sells_out() {
    let (app, proxy) = spawn_app_behind_a_proxy().await;
    let campaign = app.open_campaign(STOCK, 1).await;
    let mut winners = HashSet::new();

    // 100 users win; then 200 more join, and MySQL stops answering just as a batch sends its
    // COMMIT (held there, then let go into the outage), so that batch's outcome is unknown.
    count_wins(
        join_all((1..=100).map(|u| app.join(campaign, u, 1))).await,
        &mut winners,
    );
    let at_commit = &app.hooks.commit;
    at_commit.arm();
    let nothing = Notify::new();
    let (during, ()) = tokio::join!(
        burst(&app, campaign, 101..=300, usize::MAX, &nothing),
        async {
            at_commit.wait_reached().await;
            proxy.black_hole();
            at_commit.release();
            // Longer than the COMMIT's deadline and a lookup's after it: whoever asks MySQL
            // during the outage learns nothing.
            tokio::time::sleep(OUTAGE).await;
        }
    );
    let during: Vec<Reply> = during.into_iter().map(|(_, reply)| reply).collect();
    // Every request answered (the service's deadline, not the client's); the 503s are the
    // unknown outcomes and the joins MySQL never heard of.
    for reply in &during {
        assert!(
            matches!(reply.status, 201 | 503),
            "during the outage: {reply:?}"
        );
    }

    // The failover: every connection reset, and MySQL answers again at once.
    proxy.reset().await;
    proxy.resume();
    let answered_again = std::time::Instant::now();
    wait_until(
        "every unit held by a commit in doubt to be back in the sale",
        BACK_WITHIN,
        || all_units_back(&app, campaign),
    )
    .await;
    let back_after = answered_again.elapsed();

    // The winners of the outage burst are those MySQL has; 600 more users take the rest.
    let replies = join_all((1_001..=1_600).map(|u| app.join(campaign, u, 1))).await;
    let sold = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await;
    let refused = replies.iter().filter(|r| r.code() == "SOLD_OUT").count();
    assert_eq!(
        sold, STOCK,
        "the sale sells out at exactly its stock (units back {back_after:?} after MySQL answered; \
         {refused} refused SOLD_OUT)"
    );
    for reply in &replies {
        assert!(
            matches!(reply.status, 201 | 409),
            "after the failover: {reply:?}"
        );
    }
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    app.assert_outbox_matches_participations().await;
    app.assert_no_drift(campaign).await;
}

/// The gate has no reservation open and the same stock as MySQL: nothing is withheld.
async fn all_units_back(app: &TestApp, campaign: i64) -> bool {
    let (meta, _) = app.gate_keys(campaign);
    let pending = meta.replace(":meta", ":pending");
    let mut redis = app.redis.clone();
    let open: i64 = redis.hlen(&pending).await.expect("HLEN");
    open == 0 && app.redis_stock(campaign).await == Some(app.remaining_stock(campaign).await)
}

fn count_wins(replies: Vec<Reply>, winners: &mut HashSet<i64>) {
    for reply in replies {
        assert_eq!(reply.status, 201, "before the outage: {reply:?}");
        let user = reply.body["userId"].as_i64().expect("userId");
        assert!(winners.insert(user), "user {user} won twice");
    }
}

/// The app at production defaults (every timeout as shipped), its MySQL behind a proxy the test
/// controls, the test's own connection direct, and a client that outwaits the service's deadline.
async fn spawn_app_behind_a_proxy() -> (TestApp, Proxy) {
    let mut settings = test_settings().await;
    let (proxy, direct_url) = Proxy::in_front_of_mysql(&mut settings).await;
    (Proxy::spawn_app_behind(settings, &direct_url).await, proxy)
}
