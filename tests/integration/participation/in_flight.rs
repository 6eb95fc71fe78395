//! A SOLD_OUT is not answered while reservations in flight may still give their units back
//! (docs/design.md §6, `join/reserve.rs`): the proof run found joins refused
//! while MySQL's committed order had units free for the whole request, because another join's
//! reservation held them in the gate and then went back.

use std::time::Duration;

use redis::AsyncCommands;

use crate::{
    hooks::HoldPoint,
    spawn::{spawn_app, TestApp},
};

/// How often the gate has been asked (`firstcome_gate_duration_seconds` count).
fn gate_calls(app: &TestApp) -> u64 {
    let text = app.probe.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix("firstcome_gate_duration_seconds_count "))
        .map_or(0.0, |v| v.parse::<f64>().expect("a number")) as u64
}

/// User 99's reservation of the last unit, made in the gate `ago` before now, as a join does
/// between its reservation and its transaction (`lua/reserve.lua`: the stock, the user, the open
/// reservation, the campaign's latest reservation time); MySQL has the unit free. Returns what
/// gives it back.
async fn hold_last_unit_in_flight(app: &TestApp, campaign: i64, ago: Duration) -> GiveBack {
    let (meta, users) = app.gate_keys(campaign);
    let pending = meta.replace(":meta", ":pending");
    let mut redis = app.redis.clone();
    let now_ms =
        chrono::Utc::now().timestamp_millis() - i64::try_from(ago.as_millis()).expect("ms");
    let _: i64 = redis.hincr(&meta, "stock", -1).await.expect("HINCRBY");
    let _: i64 = redis.hset(&meta, "last_ms", now_ms).await.expect("HSET");
    let _: i64 = redis.sadd(&users, 99).await.expect("SADD");
    let _: i64 = redis
        .hset(&pending, 99, firstcome::gate::reservation_value(now_ms, 1))
        .await
        .expect("HSET");
    GiveBack {
        redis,
        meta,
        users,
        pending,
    }
}

struct GiveBack {
    redis: firstcome::gate::connection::RedisConn,
    meta: String,
    users: String,
    pending: String,
}

impl GiveBack {
    /// The reservation goes back, as a MySQL refusal of its win gives it back.
    async fn give_back(mut self) {
        let _: i64 = self.redis.hdel(&self.pending, 99).await.expect("HDEL");
        let _: i64 = self.redis.srem(&self.users, 99).await.expect("SREM");
        let _: i64 = self
            .redis
            .hincr(&self.meta, "stock", 1)
            .await
            .expect("HINCRBY");
    }
}

/// A campaign of 2 units, one sold (the gate loaded) and the last held in flight by user 99.
/// Returns the app, the campaign and what gives the unit back.
async fn a_unit_in_flight() -> (TestApp, i64, GiveBack) {
    let app = spawn_app().await;
    let campaign = app.open_campaign(2, 1).await;
    assert_eq!(
        app.join(campaign, 1, 1).await.status,
        201,
        "the gate is loaded"
    );
    let held = hold_last_unit_in_flight(&app, campaign, Duration::ZERO).await;
    (app, campaign, held)
}

/// Until a join refused while reservations are in flight waits at `hold` (armed); fails the
/// test when none does within 20 s (the join was answered without waiting).
async fn until_waiting(hold: &HoldPoint) {
    tokio::time::timeout(Duration::from_secs(20), hold.wait_reached())
        .await
        .expect("the refused join waits for the reservation in flight");
}

/// The last unit is held in the gate by another user's reservation, as a join between its
/// reservation and its transaction holds it; MySQL has the unit free. A join the gate refuses
/// then is asked again once that reservation settles: here it is given back, and the join wins
/// the unit instead of being told SOLD_OUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_refused_while_a_reservation_is_in_flight_wins_the_unit_it_gives_back() {
    let (app, campaign, held) = a_unit_in_flight().await;
    let hold = &app.hooks.in_flight_wait;
    hold.arm();
    // Once the gate has refused user 2 and the join waits, the reservation goes back (MySQL
    // refused it, say).
    let (reply, ()) = tokio::join!(app.join(campaign, 2, 1), async {
        until_waiting(hold).await;
        held.give_back().await;
        hold.release();
    });
    assert_eq!(reply.status, 201, "the unit given back is sold: {reply:?}");
    assert_eq!(app.remaining_stock(campaign).await, 0);
    app.assert_no_drift(campaign).await;
}

/// The same, with a reservation that stays in flight longer than a group commit under no load:
/// its win's transaction is slow (load, a MySQL stall). The join keeps asking while it is open,
/// past the six calls of the old 155 ms bound (a 30-minute proof run, seed 108, found the
/// SOLD_OUT that bound gave while 13 units were reserved and then went back), and wins the unit
/// once it goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_refused_while_a_slow_reservation_is_in_flight_waits_for_it_and_wins() {
    let (app, campaign, held) = a_unit_in_flight().await;
    let hold = &app.hooks.in_flight_wait;
    hold.arm();
    let (reply, ()) = tokio::join!(app.join(campaign, 2, 1), async {
        // Refused and waiting seven times, each time let go on (armed again first, so the
        // next refusal waits here too); the eighth time, the unit goes back.
        for _ in 1..8 {
            until_waiting(hold).await;
            hold.arm();
            hold.release();
        }
        until_waiting(hold).await;
        held.give_back().await;
        hold.release();
    });
    assert_eq!(reply.status, 201, "the unit given back is sold: {reply:?}");
    app.assert_no_drift(campaign).await;
}

/// A reservation that never settles (its instance died; the reconciler gives it back only after
/// `RESERVATION_TIMEOUT_MS`): while it is the campaign's latest, the join's wait is bounded and
/// it is answered SOLD_OUT; once the latest reservation is older than the wait's two seconds,
/// a refused join does not wait for it at all (a flood of refusals after a crash would
/// otherwise wait a second each until the reconciler).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_refused_while_a_leaked_reservation_holds_the_unit_is_answered_in_bounded_time() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(2, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let _held = hold_last_unit_in_flight(&app, campaign, Duration::ZERO).await;

    let reply = tokio::time::timeout(Duration::from_secs(10), app.join(campaign, 2, 1))
        .await
        .expect("a SOLD_OUT waits for reservations in flight only so long");
    assert_eq!(reply.status, 409, "{reply:?}");
    assert_eq!(reply.body["code"], "SOLD_OUT", "{reply:?}");

    let campaign = app.open_campaign(2, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let _held = hold_last_unit_in_flight(&app, campaign, Duration::from_secs(5)).await;
    let before = gate_calls(&app);
    let reply = app.join(campaign, 2, 1).await;
    assert_eq!(reply.code(), "SOLD_OUT", "{reply:?}");
    // Asked once, and once more after reading what MySQL owes the gate; waiting would ask 8
    // times or more.
    assert!(
        gate_calls(&app) - before <= 2,
        "no wait for a reservation 5 s old: asked {} times",
        gate_calls(&app) - before
    );
}

/// A unit MySQL has taken back (a cancel or an expiry committed with its `gate_return`
/// marker) reaches the gate only after the commit. A join the gate refuses meanwhile, with
/// nothing in flight, first gives the gate what MySQL owes it and asks again: it wins the unit
/// instead of being told SOLD_OUT (the proof run found such SOLD_OUTs after expiries, with every
/// kind of fault and without). The marker loop would give the unit within a quarter second; the
/// join here comes within milliseconds of the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_refused_while_a_return_is_on_its_way_to_the_gate_wins_the_unit() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let mut settings = crate::spawn::test_settings().await;
    settings.redis.sold_out_memo = Duration::ZERO;
    let app = crate::spawn::spawn_app_with(settings).await;
    let campaign = app.open_campaign(1, 1).await;
    let won = app.join(campaign, 1, 1).await;
    assert_eq!(won.status, 201, "{won:?}");
    let participation = won.body["participationId"].as_i64().expect("id");
    assert_eq!(app.redis_stock(campaign).await, Some(0));

    // The win is cancelled in MySQL; the gate's call after the commit has not happened yet.
    let txn = app.db.begin().await.expect("begin");
    for sql in [
        format!(
            "UPDATE participation SET status = 'CANCELLED', cancel_reason = 'USER', \
             cancelled_at = UTC_TIMESTAMP(6) WHERE id = {participation}"
        ),
        format!("UPDATE campaign SET remaining_stock = remaining_stock + 1 WHERE id = {campaign}"),
        format!(
            "INSERT INTO gate_return (participation_id, campaign_id, quantity, created_at) \
             VALUES ({participation}, {campaign}, 1, UTC_TIMESTAMP(6))"
        ),
    ] {
        txn.execute_unprepared(&sql).await.expect("the cancel");
    }
    txn.commit().await.expect("commit");

    let reply = app.join(campaign, 2, 1).await;
    assert_eq!(reply.status, 201, "the unit MySQL has is sold: {reply:?}");
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(app.redis_stock(campaign).await, Some(0));
}

/// The same for a resume: committed in MySQL with its `gate_control` marker, not yet in the
/// gate (its call failed while Redis hung; the marker loop gives it within a quarter second of
/// Redis answering again). A join the gate refuses CAMPAIGN_PAUSED meanwhile first gives the
/// gate what MySQL owes it, and wins (a 30-minute proof run found 8 such refusals right after
/// a Redis hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_refused_paused_while_a_resume_is_on_its_way_to_the_gate_wins() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(
        app.join(campaign, 1, 1).await.status,
        201,
        "the gate is loaded"
    );
    paused_at_the_gate_resumed_in_mysql(&app, campaign).await;

    let reply = app.join(campaign, 3, 1).await;
    assert_eq!(
        reply.status, 201,
        "the campaign is open in MySQL: {reply:?}"
    );
}

/// Pauses the campaign through the admin API (the gate has the pause), then commits a resume in
/// MySQL with its `gate_control` marker and no gate call, as a resume whose call failed leaves it.
async fn paused_at_the_gate_resumed_in_mysql(app: &TestApp, campaign: i64) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let paused = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/admin/campaigns/{campaign}/pause")))
                .bearer_auth(crate::spawn::ADMIN_TOKEN),
        )
        .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    let (meta, _) = app.gate_keys(campaign);
    let mut redis = app.redis.clone();
    let state: String = redis.hget(&meta, "state").await.expect("HGET");
    assert_eq!(state, "paused", "the gate has the pause");

    // The resume commits in MySQL; its gate call has not happened.
    let txn = app.db.begin().await.expect("begin");
    for sql in [
        format!(
            "UPDATE campaign SET paused = 0, control_seq = control_seq + 1 WHERE id = {campaign}"
        ),
        format!(
            "INSERT INTO gate_control (campaign_id, seq, kind, delta, created_at) \
             SELECT id, control_seq, 'RESUMED', 0, UTC_TIMESTAMP(6) FROM campaign WHERE id = {campaign}"
        ),
    ] {
        txn.execute_unprepared(&sql).await.expect("the resume");
    }
    txn.commit().await.expect("commit");
}

/// Found by a 30-minute proof run (seed 107): after a rebuild loaded a paused state, the first
/// join refused CAMPAIGN_PAUSED read the markers and applied the resume; joins refused while
/// that read ran answered CAMPAIGN_PAUSED at once (one read per 50 ms). A join refused while a
/// read is under way now waits for it and takes its answer. The first read is held; a second
/// join refused meanwhile wins with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_refused_paused_while_another_reads_the_owed_resume_waits_for_it_and_wins() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    paused_at_the_gate_resumed_in_mysql(&app, campaign).await;
    let hold = &app.hooks.owed_read;
    hold.arm();
    let app = &app;
    let (first, second) = tokio::join!(app.join(campaign, 2, 1), async {
        hold.wait_reached().await;
        // The first join's read is under way (held). The second is refused CAMPAIGN_PAUSED by
        // the gate meanwhile: it waits for that read (the old code answered within a few ms).
        let second = app.join(campaign, 3, 1);
        tokio::pin!(second);
        let early = tokio::time::timeout(Duration::from_millis(500), &mut second).await;
        assert!(
            early.is_err(),
            "answered before the read it should wait for: {early:?}"
        );
        hold.release();
        second.await
    });
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(
        second.status, 201,
        "the resume the read applied: {second:?}"
    );
}

/// Found by a 30-minute proof run (seed 113): an expiry committed in MySQL; before its own call
/// gave the gate the units, a join was refused SOLD_OUT and answered from the markers read of a
/// moment before (one read per campaign at a time, none within 50 ms of the last), and the
/// sold-out memo then refused two more joins for its whole window with 2–7 units free. A refusal
/// counts as confirmed only by a read that began after it: the read's own join is, a join
/// refused after the read began and waiting for it is not (the memo does not repeat its
/// SOLD_OUT; `join::service` records the memo only for a confirmed one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_marker_read_begun_after_a_refusal_confirms_it() {
    use firstcome::upkeep::loader::Owed;
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(1, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201, "sold out");
    let hold = &app.hooks.owed_read;
    hold.arm();
    let app = &app;
    let first_refused = std::time::Instant::now();
    let (first, second) = tokio::join!(app.probe.give_owed(campaign, first_refused), async {
        // The first refusal's read has begun and is held before its SELECT.
        hold.wait_reached().await;
        let second = app.probe.give_owed(campaign, std::time::Instant::now());
        tokio::pin!(second);
        let early = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
        assert!(
            early.is_err(),
            "answered before the read under way: {early:?}"
        );
        hold.release();
        second.await
    });
    assert_eq!(
        first,
        Ok(Owed::Read { fresh: true }),
        "its own read began after it"
    );
    assert_eq!(
        second,
        Ok(Owed::Read { fresh: false }),
        "a read begun before the refusal does not confirm it"
    );
}
