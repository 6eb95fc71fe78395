//! The gate rebuild (docs/design.md §2.9, issue 8): a campaign with many past winners loses its Redis
//! keys while a burst arrives. One rebuild per instance, every request answered (no 503 from a
//! stampede of rebuilds), past winners still refused, no oversell.

use std::{collections::HashSet, time::Duration};

use futures::future::join_all;
use sea_orm::ConnectionTrait;

use crate::{
    http::Reply,
    spawn::{spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

const PAST_WINNERS: i64 = 100_000;
const NEW_STOCK: i64 = 50;

/// Writes `PAST_WINNERS` participations (users 1..=PAST_WINNERS) straight into MySQL, as a
/// campaign that has already sold that many would have them, and takes their stock.
async fn fill_past_winners(app: &TestApp, campaign: i64) {
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL \
                  SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL \
                  SELECT 8 UNION ALL SELECT 9)";
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at) \
             SELECT {campaign}, n + 1, 1, n + 1, UTC_TIMESTAMP(6) FROM \
             (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n \
              FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f) s"
        ))
        .await
        .expect("insert past winners");
    app.db
        .execute_unprepared(&format!(
            "UPDATE campaign SET remaining_stock = remaining_stock - {PAST_WINNERS}, \
             accepted_count = {PAST_WINNERS} WHERE id = {campaign}"
        ))
        .await
        .expect("take their stock");
}

#[tokio::test]
async fn a_campaign_with_100k_winners_rebuilds_once_under_a_burst_and_never_oversells() {
    let mut settings = test_settings().await;
    // "Within a few seconds": a request still waiting after this answers 503, which fails below.
    settings.http.request_timeout = Duration::from_secs(5);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(PAST_WINNERS + NEW_STOCK, 1).await;
    fill_past_winners(&app, campaign).await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        PAST_WINNERS
    );

    // The keys go (eviction, a Redis restart) and 300 requests arrive at once: 100 past winners
    // spread over the whole range, 200 new users for 50 units.
    app.drop_gate_keys(campaign).await;
    let loads_before = app.gate_loads();
    let past: Vec<i64> = (0..100)
        .map(|i| 1 + i * (PAST_WINNERS / 100) + i % 7)
        .collect();
    let new: Vec<i64> = (0..200).map(|i| PAST_WINNERS + 1_000 + i).collect();
    let asks: Vec<i64> = past
        .iter()
        .zip(new.chunks(2))
        .flat_map(|(p, n)| std::iter::once(*p).chain(n.iter().copied()))
        .collect();
    assert_eq!(asks.len(), 300);
    let app = &app;
    let replies: Vec<(i64, Reply)> = join_all(
        asks.iter()
            .map(|&user| async move { (user, app.join(campaign, user, 1).await) }),
    )
    .await;

    assert_eq!(
        app.gate_loads() - loads_before,
        1,
        "one rebuild for the whole burst"
    );
    let past: HashSet<i64> = past.into_iter().collect();
    let mut won = HashSet::new();
    for (user, reply) in &replies {
        match (past.contains(user), reply.status, reply.code()) {
            (true, 409, "ALREADY_PARTICIPATED") => {}
            (false, 201, _) => assert!(won.insert(*user), "user {user} won twice"),
            (false, 409, "SOLD_OUT") => {}
            other => panic!("user {user}: unexpected answer {other:?}: {reply:?}"),
        }
    }
    assert_eq!(won.len() as i64, NEW_STOCK, "exactly the new stock is sold");
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        PAST_WINNERS + NEW_STOCK
    );
    let accepted = app.get(&format!("/api/v1/campaigns/{campaign}")).await;
    assert_eq!(
        accepted.body["acceptedCount"].as_i64(),
        Some(PAST_WINNERS + NEW_STOCK),
        "{accepted:?}"
    );
    app.assert_no_drift(campaign).await;
}

/// Found by the proof run (issue 38): a return that commits after a rebuild's MySQL snapshot,
/// while the keys are missing, finds no state to give its units to; the rebuilt gate then
/// refused them (SOLD_OUT with a unit free in MySQL) until the marker loop ran, about a second
/// later. The rebuild is held after its snapshot while a refund commits; the join that started
/// the rebuild wins the refunded unit.
///
/// The hold is inside the snapshot, between its read of the stock and its read of the returned
/// wins: when those were two READ COMMITTED statements, the refund was in the second and not in
/// the first, so the gate counted it returned and never got its unit (the proof run's drift
/// repairs, a join refused SOLD_OUT here).
#[tokio::test]
async fn a_unit_returned_while_the_gate_is_rebuilt_is_sold_by_the_rebuilt_gate() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(1, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    app.drop_gate_keys(campaign).await;
    let hold = &app.hooks.rebuild;
    hold.arm();
    let refund_path = format!("/api/v1/campaigns/{campaign}/participations/1/cancel");
    let (joined, refunded) = tokio::join!(app.join(campaign, 2, 1), async {
        hold.wait_reached().await;
        let refunded = app
            .post_json(
                &refund_path,
                &serde_json::json!({}),
                Some(crate::spawn::ADMIN_TOKEN),
            )
            .await;
        hold.release();
        refunded
    });
    assert_eq!(refunded.status, 200, "{refunded:?}");
    assert_eq!(
        joined.status, 201,
        "the refunded unit is sold by the rebuilt gate: {joined:?}"
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
}

/// Found by the proof run (issue 38): Redis was restarted and then flushed while a rebuild was
/// adding a campaign's 97,000 past winners to the winners set, a page at a time. The flush took
/// the pages added before it, the rebuild wrote the campaign's state after the last page, and the
/// gate served a winners set missing 24,541 past winners (each reserved again, and only MySQL's
/// UNIQUE stopped them). A rebuild registers a token that a flush takes with the keys, and its
/// load writes nothing without it: the rebuild starts again.
#[tokio::test]
async fn a_flush_while_the_gate_is_rebuilt_starts_the_rebuild_again() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    for user in 1..=3 {
        assert_eq!(app.join(campaign, user, 1).await.status, 201);
    }
    app.flush_gate_keys(campaign).await;
    let loads_before = app.gate_loads();
    let hold = &app.hooks.rebuild_load;
    hold.arm();
    let (joined, ()) = tokio::join!(app.join(campaign, 4, 1), async {
        hold.wait_reached().await;
        app.flush_gate_keys(campaign).await;
        hold.release();
    });
    assert_eq!(joined.status, 201, "{joined:?}");
    assert_eq!(
        app.gate_loads() - loads_before,
        2,
        "the rebuild started again"
    );
    for user in 1..=4 {
        assert!(
            app.redis_has_user(campaign, user).await,
            "past winner {user} is in the gate's winners set"
        );
    }
    assert_eq!(app.redis_stock(campaign).await, Some(6));
    app.assert_no_drift(campaign).await;
}

/// A Redis that forgot the gate's scripts (restarted, failed over to a replica that never saw
/// them, `SCRIPT FLUSH`) answers the reservation NOSCRIPT: the gate loads the script and sends
/// the reservation again, and the join is decided as if nothing happened (docs/design.md §2.9).
#[tokio::test]
async fn a_join_after_redis_forgot_the_gates_scripts_loads_them_and_is_decided() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(2, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let mut redis = app.redis.clone();
    let flushed: String = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("SCRIPT FLUSH");
    assert_eq!(flushed, "OK");
    let joined = app.join(campaign, 2, 1).await;
    assert_eq!(joined.status, 201, "{joined:?}");
    let again = app.join(campaign, 2, 1).await;
    assert_eq!(again.code(), "ALREADY_PARTICIPATED", "{again:?}");
    let sold_out = app.join(campaign, 3, 1).await;
    assert_eq!(sold_out.code(), "SOLD_OUT", "{sold_out:?}");
}

/// Found by the proof on 2026-11-26 (seeds 13 and 21 under load): Redis was flushed while two
/// wins were in flight; the rebuild read MySQL's winners before they committed, and the gate
/// ended without those users (a second join of theirs would pass the gate, and only MySQL's
/// UNIQUE would stop it). A rebuild now raises the row's gate generation before it reads
/// (docs/design.md §2.1): a win that already waits for the row's lock commits first, and the
/// rebuild reads it; one that comes after is refused and its user may join again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_win_committed_after_the_rebuild_read_mysql_keeps_its_user_refused() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    // User 2's win waits on the campaign row the test holds, its reservation made.
    let blocker = app.lock_campaign(campaign).await;
    let in_flight = app.spawn_join(campaign, 2, 1);
    app.wait_for_blocked_stock_updates(1).await;
    app.flush_gate_keys(campaign).await;
    // User 3's join rebuilds the gate: the rebuild waits for the row, behind user 2's win.
    let rebuilt_by = app.spawn_join(campaign, 3, 1);
    wait_for_generation_raise(&app).await;
    blocker.commit().await.expect("release the row");
    let late = in_flight.await.expect("join task");
    assert_eq!(rebuilt_by.await.expect("join task").status, 201);
    let again = app.join(campaign, 2, 1).await;
    if late.status == 201 {
        // It committed before the rebuild read MySQL: the rebuilt gate refuses user 2.
        assert_eq!(again.code(), "ALREADY_PARTICIPATED", "{again:?}");
    } else {
        // Refused after the rebuild read MySQL: nothing was written, user 2 joins again.
        assert_eq!(late.code(), "DEPENDENCY_UNAVAILABLE", "{late:?}");
        assert_eq!(again.status, 201, "{again:?}");
    }
    assert_distinct_sequences(&app, campaign, 3).await;
}

/// Found by the proof's short run in CI (stop 76, a 64-bucket burst): a sequence handed out
/// twice. A win was in flight across a flush: its reservation, made by the gate Redis lost,
/// carried a sequence the rebuilt gate handed out again (it starts above MySQL's highest, and
/// the late win was not there yet); both committed. The rebuild now raises the row's gate
/// generation first, and the late win, whose reservation carries the one before, is refused
/// (docs/design.md §2.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_win_in_flight_across_a_flush_never_shares_its_sequence_with_the_rebuilt_gates() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    // User 1's batch holds the campaign's row right before its COMMIT; user 2's win, its
    // reservation made, queues behind it.
    let held = &app.hooks.commit;
    held.arm();
    let first = app.spawn_join(campaign, 1, 1);
    held.wait_reached().await;
    let late = app.spawn_join(campaign, 2, 1);
    app.wait_for_queued_wins(campaign, 1).await;
    app.flush_gate_keys(campaign).await;
    // User 3's join rebuilds the gate. Before, the rebuild read MySQL at once (no win yet) and
    // user 3's reservation took sequence 1 again; now it waits for the row to raise the
    // generation.
    let rebuilt_by = app.spawn_join(campaign, 3, 1);
    wait_until(
        "user 3 to queue behind the held batch, or its rebuild to wait for the row",
        Duration::from_secs(20),
        || async {
            app.probe.group_commit_queued(campaign) == 2 || generation_raises_waiting(&app).await
        },
    )
    .await;
    held.release();
    assert_eq!(first.await.expect("join task").status, 201);
    let late = late.await.expect("join task");
    assert_eq!(rebuilt_by.await.expect("join task").status, 201);
    if late.status != 201 {
        // Refused after the rebuild read MySQL: nothing was written, user 2 joins again.
        assert_eq!(late.code(), "DEPENDENCY_UNAVAILABLE", "{late:?}");
        let again = app.join(campaign, 2, 1).await;
        assert_eq!(again.status, 201, "user 2 joins again: {again:?}");
    }
    assert_distinct_sequences(&app, campaign, 3).await;
    assert_eq!(app.remaining_stock(campaign).await, 7);
}

/// A rebuild that raised the row's gate generation and died before it loaded anything (its
/// instance killed) leaves the live gate a generation behind: its wins would all be refused. The
/// first refusal raises the live gate to the row's generation (`lua/release.lua`), and the sale
/// goes on.
#[tokio::test]
async fn a_rebuild_that_died_after_raising_the_generation_stops_no_more_than_one_join() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    app.db
        .execute_unprepared(&format!(
            "UPDATE campaign SET gate_gen = gate_gen + 1 WHERE id = {campaign}"
        ))
        .await
        .expect("a rebuild's raise");
    let refused = app.join(campaign, 2, 1).await;
    assert_eq!(refused.code(), "DEPENDENCY_UNAVAILABLE", "{refused:?}");
    for user in [2, 3] {
        let joined = app.join(campaign, user, 1).await;
        assert_eq!(joined.status, 201, "user {user}: {joined:?}");
    }
    assert_eq!(app.remaining_stock(campaign).await, 7);
    assert_eq!(app.redis_stock(campaign).await, Some(7));
    assert_distinct_sequences(&app, campaign, 3).await;
}

/// Two instances rebuild one gate at once (the creation's priming racing the first joins, or
/// both meeting a flushed gate): the second waits for the first to load it instead of raising the
/// row's gate generation under it, which refused the wins of the gate the first loaded (a 503 in
/// `participation::buckets::no_sold_out_is_answered_before_a_later_join_wins_the_last_units`,
/// a burst on two instances with no fault at all).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_waits_for_one_under_way_instead_of_fencing_the_gate_it_loads() {
    use redis::AsyncCommands;
    let (a, b, _broker) = crate::spawn::spawn_pair().await;
    let campaign = a.open_campaign(10, 1).await;
    assert_eq!(a.join(campaign, 1, 1).await.status, 201);
    let generation = format!("SELECT gate_gen FROM campaign WHERE id = {campaign}");
    let before = a.scalar(&generation).await;
    a.flush_gate_keys(campaign).await;
    // A's rebuild holds right before its load, its generation raised and MySQL read.
    let hold = &a.hooks.rebuild_load;
    hold.arm();
    let first = a.spawn_join(campaign, 2, 1);
    hold.wait_reached().await;
    // B meets the same missing gate and registers its rebuild beside A's.
    let second = b.spawn_join(campaign, 3, 1);
    let building = format!("{}{{c:{campaign}}}:building", a.redis_prefix);
    wait_until("B's rebuild beside A's", Duration::from_secs(10), || {
        let mut redis = a.redis.clone();
        let building = building.clone();
        async move { redis.scard::<_, i64>(building).await.unwrap_or(0) == 2 }
    })
    .await;
    hold.release();
    for (user, join) in [(2, first), (3, second)] {
        let reply = join.await.expect("join task");
        assert_eq!(reply.status, 201, "user {user}: {reply:?}");
    }
    assert_eq!(
        a.scalar(&generation).await,
        before + 1,
        "one rebuild raised the generation"
    );
    assert_distinct_sequences(&a, campaign, 3).await;
}

/// Whether a rebuild's raise of the campaign's gate generation waits for the row's lock.
async fn generation_raises_waiting(app: &TestApp) -> bool {
    app.scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' \
         AND INFO LIKE 'UPDATE campaign SET gate_gen = gate_gen + 1%'",
    )
    .await
        > 0
}

async fn wait_for_generation_raise(app: &TestApp) {
    wait_until(
        "the rebuild to wait for the campaign's row",
        Duration::from_secs(20),
        || generation_raises_waiting(app),
    )
    .await;
}

/// The campaign has `wins` participations, their sequences all different.
async fn assert_distinct_sequences(app: &TestApp, campaign: i64, wins: i64) {
    let (all, distinct) = (
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        app.scalar(&format!(
            "SELECT COUNT(DISTINCT sequence) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
    );
    assert_eq!(all, wins);
    assert_eq!(distinct, wins, "a sequence was handed out twice");
}
