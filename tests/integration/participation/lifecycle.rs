//! A win after its acceptance (docs/design.md §14): held wins, confirm, cancel and refund, expiry,
//! and the units coming back to the sale exactly once, in MySQL and in the gate.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    http::Reply,
    spawn::{spawn_app, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// POST `…/participations/{user}/{action}`, with the admin token when `admin`.
async fn act(app: &TestApp, campaign: i64, user: i64, action: &str, admin: bool) -> Reply {
    let path = format!("/api/v1/campaigns/{campaign}/participations/{user}/{action}");
    let token = admin.then_some(ADMIN_TOKEN);
    app.post_json(&path, &json!({}), token).await
}

fn status(reply: &Reply) -> (u16, String) {
    let value = match reply.status {
        200 | 201 => reply.body["status"].as_str().unwrap_or(""),
        _ => reply.code(),
    };
    (reply.status, value.to_string())
}

fn is(status_code: u16, value: &str) -> (u16, String) {
    (status_code, value.to_string())
}

/// A campaign of `stock` units, open now, whose wins are held `window` seconds.
async fn campaign_with_window(app: &TestApp, stock: i64, window: i64) -> i64 {
    app.open_campaign_with(stock, 1, json!({"confirmWithinSeconds": window}))
        .await
}

async fn events_of(app: &TestApp, event_type: &str) -> i64 {
    app.scalar(&format!(
        "SELECT COUNT(*) FROM outbox_event WHERE event_type = '{event_type}'"
    ))
    .await
}

#[tokio::test]
async fn without_a_window_a_win_is_confirmed_at_once_and_only_an_admin_refunds_it() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(1, 1).await;
    let won = app.join(campaign, 1, 1).await;
    assert_eq!(status(&won), is(201, "CONFIRMED"));
    assert!(won.body.get("holdExpiresAt").is_none(), "{won:?}");
    assert_eq!(
        status(&act(&app, campaign, 1, "confirm", false).await),
        is(200, "CONFIRMED")
    );
    let by_user = act(&app, campaign, 1, "cancel", false).await;
    assert_eq!(status(&by_user), is(409, "ALREADY_CONFIRMED"));
    assert_eq!(app.remaining_stock(campaign).await, 0);

    let refund = act(&app, campaign, 1, "cancel", true).await;
    assert_eq!(status(&refund), is(200, "CANCELLED"));
    assert_eq!(
        app.remaining_stock(campaign).await,
        1,
        "the unit is back in MySQL"
    );
    wait_until(
        "the unit back in the gate",
        Duration::from_secs(5),
        || async { app.redis_stock(campaign).await == Some(1) },
    )
    .await;
    assert_eq!(
        status(&act(&app, campaign, 1, "cancel", true).await),
        is(200, "CANCELLED")
    );
    assert_eq!(events_of(&app, "ParticipationCancelled").await, 1, "once");

    let again = app.join(campaign, 1, 1).await;
    assert_eq!(
        status(&again),
        is(409, "ALREADY_PARTICIPATED"),
        "the user stays refused"
    );
    assert_eq!(
        status(&app.join(campaign, 2, 1).await),
        is(201, "CONFIRMED")
    );
    assert_eq!(status(&app.join(campaign, 3, 1).await), is(409, "SOLD_OUT"));
    let wrong_token = app
        .post_json(
            &format!("/api/v1/campaigns/{campaign}/participations/2/cancel"),
            &json!({}),
            Some("not-the-token"),
        )
        .await;
    assert_eq!(status(&wrong_token), is(401, "UNAUTHORIZED"));
}

#[tokio::test]
async fn a_held_win_is_confirmed_or_cancelled_once_and_each_answer_is_stable() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 2, 600).await;
    let held = app.join(campaign, 1, 1).await;
    assert_eq!(status(&held), is(201, "HELD"));
    assert!(held.body["holdExpiresAt"].is_string(), "{held:?}");
    assert_eq!(status(&app.join(campaign, 2, 1).await), is(201, "HELD"));

    assert_eq!(
        status(&act(&app, campaign, 1, "confirm", false).await),
        is(200, "CONFIRMED")
    );
    assert_eq!(
        status(&act(&app, campaign, 1, "confirm", false).await),
        is(200, "CONFIRMED")
    );
    assert_eq!(
        status(&act(&app, campaign, 2, "cancel", false).await),
        is(200, "CANCELLED")
    );
    assert_eq!(
        status(&act(&app, campaign, 2, "cancel", false).await),
        is(200, "CANCELLED")
    );
    let late = act(&app, campaign, 2, "confirm", false).await;
    assert_eq!(status(&late), is(409, "PARTICIPATION_CANCELLED"));
    let nobody = act(&app, campaign, 9, "confirm", false).await;
    assert_eq!(status(&nobody), is(404, "PARTICIPATION_NOT_FOUND"));

    let read = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/1"))
        .await;
    assert_eq!(status(&read), is(200, "CONFIRMED"));
    assert!(
        read.body.get("holdExpiresAt").is_none(),
        "shown only while held"
    );
    assert_eq!(events_of(&app, "ParticipationConfirmed").await, 1);
    assert_eq!(events_of(&app, "ParticipationCancelled").await, 1);
    assert_eq!(app.remaining_stock(campaign).await, 1);
    let campaign_now = app.get(&format!("/api/v1/campaigns/{campaign}")).await;
    assert_eq!(
        campaign_now.body["state"], "OPEN",
        "a returned unit reopens the sale"
    );
}

/// Nobody confirms: every hold expires (the sweeper), every unit comes back, and a second wave
/// of users buys exactly the stock again; the first wave stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_holds_return_their_units_and_a_second_wave_buys_them_all() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 5, 1).await;
    for user in 1..=5 {
        assert_eq!(status(&app.join(campaign, user, 1).await), is(201, "HELD"));
    }
    assert_eq!(status(&app.join(campaign, 6, 1).await), is(409, "SOLD_OUT"));
    wait_until("every hold to expire", Duration::from_secs(10), || async {
        app.scalar("SELECT COUNT(*) FROM participation WHERE status = 'EXPIRED'")
            .await
            == 5
    })
    .await;
    assert_eq!(app.remaining_stock(campaign).await, 5);
    wait_until(
        "the units back in the gate",
        Duration::from_secs(5),
        || async { app.redis_stock(campaign).await == Some(5) },
    )
    .await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM gate_return").await, 0);
    let expired_confirm = act(&app, campaign, 1, "confirm", false).await;
    assert_eq!(status(&expired_confirm), is(409, "HOLD_EXPIRED"));

    for user in 6..=10 {
        assert_eq!(status(&app.join(campaign, user, 1).await), is(201, "HELD"));
    }
    assert_eq!(
        status(&app.join(campaign, 11, 1).await),
        is(409, "SOLD_OUT")
    );
    assert_eq!(
        status(&app.join(campaign, 1, 1).await),
        is(409, "ALREADY_PARTICIPATED")
    );
    assert_eq!(app.remaining_stock(campaign).await, 0);
    assert_eq!(
        events_of(&app, "ParticipationCancelled").await,
        5,
        "one per hold"
    );
    app.assert_no_drift(campaign).await;
}

/// A confirm at the deadline races the sweeper: each win ends confirmed or expired, never both,
/// and the confirm's answer says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_at_the_deadline_and_the_sweeper_agree_on_one_outcome() {
    let app = spawn_app().await;
    let users: Vec<i64> = (1..=30).collect();
    let campaign = campaign_with_window(&app, users.len() as i64, 1).await;
    for &user in &users {
        assert_eq!(status(&app.join(campaign, user, 1).await), is(201, "HELD"));
    }
    // Confirms spread over the second around the deadline.
    let confirms = users.iter().map(|&user| {
        let app = &app;
        async move {
            let wait = Duration::from_millis(700 + 20 * (user as u64 % 30));
            tokio::time::sleep(wait).await;
            (
                user,
                status(&act(app, campaign, user, "confirm", false).await),
            )
        }
    });
    let answers = futures::future::join_all(confirms).await;
    wait_until("no hold left", Duration::from_secs(10), || async {
        app.scalar("SELECT COUNT(*) FROM participation WHERE status = 'HELD'")
            .await
            == 0
    })
    .await;
    for (user, answer) in answers {
        let stored = app
            .get(&format!(
                "/api/v1/campaigns/{campaign}/participations/{user}"
            ))
            .await;
        let expected = match answer {
            (200, s) if s == "CONFIRMED" => "CONFIRMED",
            (409, s) if s == "HOLD_EXPIRED" => "EXPIRED",
            other => panic!("user {user}: unexpected answer {other:?}"),
        };
        assert_eq!(stored.body["status"], expected, "user {user}");
    }
    let confirmed = app
        .scalar("SELECT COUNT(*) FROM participation WHERE status = 'CONFIRMED'")
        .await;
    assert_eq!(events_of(&app, "ParticipationConfirmed").await, confirmed);
    let expired = users.len() as i64 - confirmed;
    assert_eq!(events_of(&app, "ParticipationCancelled").await, expired);
    assert_eq!(app.remaining_stock(campaign).await, expired);
    app.assert_no_drift(campaign).await;
}

/// A confirm that gets the campaign's row only after the hold's deadline (held here, as a busy
/// group commit holds it) does not confirm late: the deadline is checked again when the confirm
/// writes, so the win expires, the answer is HOLD_EXPIRED, and no `ParticipationConfirmed`
/// occurs past the deadline (§14; the proof run saw one 151 ms late, checked only at the row's
/// lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_that_waits_past_the_deadline_for_the_campaign_row_expires_the_win() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 1, 1).await;
    assert_eq!(status(&app.join(campaign, 1, 1).await), is(201, "HELD"));
    let blocker = app.lock_campaign(campaign).await;
    let release = async {
        let waiting = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                       WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' \
                       AND INFO LIKE 'SELECT id FROM campaign WHERE id = % FOR UPDATE'";
        wait_until(
            "the confirm to wait for the campaign row",
            Duration::from_secs(20),
            || async { app.scalar(waiting).await == 1 },
        )
        .await;
        let past = format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign} \
             AND hold_expires_at < UTC_TIMESTAMP(6)"
        );
        wait_until(
            "the hold's deadline to pass",
            Duration::from_secs(20),
            || async { app.scalar(&past).await == 1 },
        )
        .await;
        blocker.commit().await.expect("release the campaign row");
    };
    let (answer, ()) = tokio::join!(act(&app, campaign, 1, "confirm", false), release);
    assert_eq!(status(&answer), is(409, "HOLD_EXPIRED"));
    let stored = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/1"))
        .await;
    assert_eq!(stored.body["status"], "EXPIRED");
    assert_eq!(events_of(&app, "ParticipationConfirmed").await, 0);
    assert_eq!(events_of(&app, "ParticipationCancelled").await, 1);
    assert_eq!(app.remaining_stock(campaign).await, 1);
    app.assert_no_drift(campaign).await;
}

/// A `gate_return` marker for `user`'s win, as a crash right after its closing commit leaves it.
async fn plant_return_marker(app: &TestApp, campaign: i64, user: i64) {
    let sql = format!(
        "INSERT INTO gate_return (participation_id, campaign_id, quantity, created_at) \
         SELECT id, campaign_id, quantity, UTC_TIMESTAMP(6) FROM participation \
         WHERE campaign_id = {campaign} AND user_id = {user}"
    );
    app.db
        .execute_unprepared(&sql)
        .await
        .expect("plant a marker");
}

/// Waits until the marker loop has settled every `gate_return` marker.
async fn wait_for_markers_settled(app: &TestApp) {
    wait_until("the markers settled", Duration::from_secs(5), || async {
        app.scalar("SELECT COUNT(*) FROM gate_return").await == 0
    })
    .await;
}

/// The gate loses the campaign between cancellations: the rebuild counts only held and confirmed
/// units as sold, keeps the cancelled user refused, and a late replay of a marker adds nothing.
#[tokio::test]
async fn a_rebuild_after_returns_neither_resells_a_held_unit_nor_lets_a_cancelled_user_back() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 3, 600).await;
    for user in 1..=3 {
        assert_eq!(status(&app.join(campaign, user, 1).await), is(201, "HELD"));
    }
    assert_eq!(
        status(&act(&app, campaign, 1, "cancel", false).await),
        is(200, "CANCELLED")
    );
    app.drop_gate_keys(campaign).await;
    // A marker for the unit already back (as a crash right after the commit would leave it).
    plant_return_marker(&app, campaign, 1).await;
    assert_eq!(
        status(&app.join(campaign, 1, 1).await),
        is(409, "ALREADY_PARTICIPATED")
    );
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(1),
        "rebuilt: 3 - 2 held"
    );
    wait_for_markers_settled(&app).await;
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(1),
        "the replay added nothing"
    );
    assert_eq!(status(&app.join(campaign, 4, 1).await), is(201, "HELD"));
    assert_eq!(status(&app.join(campaign, 5, 1).await), is(409, "SOLD_OUT"));
    app.assert_no_drift(campaign).await;
}

/// An instance that committed a cancellation and died before telling the gate leaves the units
/// in MySQL and a `gate_return` marker: the instances still running give the gate the units,
/// exactly once, and the next user buys them.
#[tokio::test]
async fn units_of_a_win_closed_by_an_instance_that_died_before_the_gate_come_back_once() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 1, 600).await;
    assert_eq!(status(&app.join(campaign, 1, 1).await), is(201, "HELD"));
    assert_eq!(app.redis_stock(campaign).await, Some(0));
    // What the dead instance committed: the state change, the stock, the marker.
    for sql in [
        format!("UPDATE participation SET status = 'CANCELLED', cancel_reason = 'USER', cancelled_at = UTC_TIMESTAMP(6) WHERE campaign_id = {campaign}"),
        format!("UPDATE campaign SET remaining_stock = remaining_stock + 1 WHERE id = {campaign}"),
    ] {
        app.db.execute_unprepared(&sql).await.expect("the dead instance's commit");
    }
    plant_return_marker(&app, campaign, 1).await;
    wait_for_markers_settled(&app).await;
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(1),
        "the unit is back, once"
    );
    assert_eq!(status(&app.join(campaign, 2, 1).await), is(201, "HELD"));
    assert_eq!(status(&app.join(campaign, 3, 1).await), is(409, "SOLD_OUT"));
    assert_eq!(
        status(&app.join(campaign, 1, 1).await),
        is(409, "ALREADY_PARTICIPATED")
    );
    app.assert_no_drift(campaign).await;
}

/// A cancel answered again while the call that closed the win is between its commit and its
/// gate call: the repeated answer comes only once the gate has the unit, so nobody is told
/// SOLD_OUT after it while MySQL has the unit free (the proof run saw it: a repeated cancel
/// answered 75 ms before the first call's gate call ran).
#[tokio::test]
async fn a_repeated_cancel_answers_only_once_the_gate_has_the_units() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 1, 600).await;
    assert_eq!(status(&app.join(campaign, 1, 1).await), is(201, "HELD"));
    // The first cancel's commit (its marker aside: the marker loop would give the unit back
    // later, which is not what this answer may wait for).
    for sql in [
        format!("UPDATE participation SET status = 'CANCELLED', cancel_reason = 'USER', cancelled_at = UTC_TIMESTAMP(6) WHERE campaign_id = {campaign}"),
        format!("UPDATE campaign SET remaining_stock = remaining_stock + 1 WHERE id = {campaign}"),
    ] {
        app.db.execute_unprepared(&sql).await.expect("the first cancel's commit");
    }
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(0),
        "not in the gate yet"
    );
    assert_eq!(
        status(&act(&app, campaign, 1, "cancel", false).await),
        is(200, "CANCELLED")
    );
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(1),
        "back before the answer"
    );
    assert_eq!(status(&app.join(campaign, 2, 1).await), is(201, "HELD"));
    assert_eq!(status(&app.join(campaign, 3, 1).await), is(409, "SOLD_OUT"));
    app.assert_no_drift(campaign).await;
}

/// The synchronous baseline writes the same states: a held win, confirmed like any other.
#[tokio::test]
async fn the_sync_path_holds_a_win_of_a_campaign_with_a_window() {
    let app = spawn_app().await;
    let campaign = campaign_with_window(&app, 1, 600).await;
    let path = format!("/api/v1/campaigns/{campaign}/participations/sync");
    let held = app.post_json(&path, &json!({"userId": 4}), None).await;
    assert_eq!(status(&held), is(201, "HELD"));
    assert!(held.body["holdExpiresAt"].is_string(), "{held:?}");
    assert_eq!(
        status(&act(&app, campaign, 4, "confirm", false).await),
        is(200, "CONFIRMED")
    );
}

/// A returned unit is on sale when its cancel answers (design §18.1): after a SOLD_OUT filled
/// the instance's sold-out memo (and, bucketed, its search's memo), the winner cancels, and a
/// join sent right after the answer wins the unit — ten times in a row, unbucketed and over 4
/// buckets. It used to be told SOLD_OUT from the memo for up to `SOLD_OUT_MEMO_MS` (0 of 10).
#[tokio::test]
async fn a_cancelled_unit_is_on_sale_when_the_cancel_answers() {
    let app = spawn_app().await;
    for buckets in [1, 4] {
        for round in 0..10 {
            let stock = i64::from(buckets);
            let campaign = app
                .open_campaign_with(
                    stock,
                    1,
                    json!({"confirmWithinSeconds": 600, "buckets": buckets}),
                )
                .await;
            for user in 1..=stock {
                assert_eq!(status(&app.join(campaign, user, 1).await), is(201, "HELD"));
            }
            let refused = app.join(campaign, 100, 1).await;
            assert_eq!(status(&refused), is(409, "SOLD_OUT"), "{buckets} buckets");
            let cancel = act(&app, campaign, 1, "cancel", false).await;
            assert_eq!(status(&cancel), is(200, "CANCELLED"));
            assert_eq!(cancel.body["gate"], "UPDATED", "{cancel:?}");
            let next = app.join(campaign, 101, 1).await;
            assert_eq!(
                status(&next),
                is(201, "HELD"),
                "round {round}, {buckets} buckets: a join after the cancel's answer"
            );
        }
    }
}
