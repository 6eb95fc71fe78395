//! Live controls under load (docs/design.md §2.1, §15): stock added to a sold-out campaign while a
//! burst runs on two instances sells exactly the new total; withdrawals racing a burst never
//! oversell at any sampled instant and take only what was unsold at their commit; a pause
//! mid-burst stops the wins, a resume restores them and a close ends the sale; a gate rebuilt
//! after controls reads them all from MySQL. Every control's event is committed with it.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::{
    http::Reply,
    spawn::{two_instances, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// An admin control on `app`: `action` is `stock`, `pause`, `resume` or `close`.
async fn control(app: &TestApp, campaign: i64, action: &str, body: Value) -> Reply {
    let path = format!("/api/v1/admin/campaigns/{campaign}/{action}");
    app.post_json(&path, &body, Some(ADMIN_TOKEN)).await
}

/// Units held or confirmed, the remaining stock and the total, read in one statement (one
/// consistent snapshot).
async fn ledger(app: &TestApp, campaign: i64) -> (i64, i64, i64) {
    let row = app
        .scalar(&format!(
            "SELECT (SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM participation \
             WHERE campaign_id = {campaign} AND status IN ('HELD', 'CONFIRMED')) * 1000000000000 \
             + remaining_stock * 1000000 + total_stock FROM campaign WHERE id = {campaign}"
        ))
        .await;
    (
        row / 1_000_000_000_000,
        row / 1_000_000 % 1_000_000,
        row % 1_000_000,
    )
}

/// Joins one user at a time, alternating instances, until MySQL has no unit left and the gate
/// owes nothing; returns the wins. Units that reached the gate after the burst's last join are
/// sold here.
async fn sell_the_rest(a: &TestApp, b: &TestApp, campaign: i64, first_user: i64) -> i64 {
    let (mut user, mut wins) = (first_user, 0);
    loop {
        let owed = a
            .scalar(
                "SELECT (SELECT COUNT(*) FROM gate_control) + (SELECT COUNT(*) FROM gate_return)",
            )
            .await;
        if a.remaining_stock(campaign).await == 0 && owed == 0 {
            return wins;
        }
        let app = if user % 2 == 0 { a } else { b };
        if app.join(campaign, user, 1).await.status == 201 {
            wins += 1;
        }
        user += 1;
        assert!(user < first_user + 2_000, "the remaining units sell");
    }
}

/// Every control committed its one event: each `campaign_control` row has its outbox row, with
/// the same event id, type and totals (docs/design.md §2.2 for controls).
async fn assert_each_control_has_its_event(app: &TestApp, campaign: i64) {
    let controls = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM campaign_control WHERE campaign_id = {campaign}"
        ))
        .await;
    let matched = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM campaign_control k JOIN outbox_event o ON o.event_id = k.event_id \
             WHERE k.campaign_id = {campaign} AND o.aggregate_type = 'campaign' \
             AND o.msg_key = '{campaign}' \
             AND JSON_VALUE(o.payload, '$.controlSeq') = k.seq \
             AND JSON_VALUE(o.payload, '$.totalStock') = k.total_stock \
             AND JSON_VALUE(o.payload, '$.remainingStock') = k.remaining_stock"
        ))
        .await;
    let events = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM outbox_event WHERE aggregate_type = 'campaign' AND msg_key = '{campaign}'"
        ))
        .await;
    assert_eq!(matched, controls, "each control has its matching event");
    assert_eq!(events, controls, "and no event without its control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_added_to_a_sold_out_campaign_during_a_burst_on_two_instances_sells_exactly_the_new_total(
) {
    const STOCK: i64 = 50;
    const ADDED: i64 = 30;
    let (a, b) = two_instances().await;
    let campaign = a.open_campaign(STOCK, 1).await;
    let first = join_all((1..=200).map(|u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        async move { app.join(campaign, u, 1).await.status }
    }))
    .await;
    assert_eq!(first.iter().filter(|&&s| s == 201).count() as i64, STOCK);

    // The second wave is refused SOLD_OUT until the units land in its middle.
    let answered = Arc::new(AtomicUsize::new(0));
    let wave = (1_001..=1_600).map(|u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        let answered = answered.clone();
        async move {
            let reply = app.join(campaign, u, 1).await;
            answered.fetch_add(1, Ordering::Relaxed);
            reply
        }
    });
    let add = async {
        wait_until(
            "a third of the wave answered",
            Duration::from_secs(30),
            || async { answered.load(Ordering::Relaxed) >= 200 },
        )
        .await;
        control(&b, campaign, "stock", json!({"delta": ADDED})).await
    };
    let (replies, added) = tokio::join!(join_all(wave), add);
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.body["totalStock"], json!(STOCK + ADDED));
    assert_eq!(added.body["state"], json!("OPEN"), "sold out no more");
    for r in &replies {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "SOLD_OUT"),
            "{r:?}"
        );
    }
    let wave_wins = replies.iter().filter(|r| r.status == 201).count() as i64;
    let late = sell_the_rest(&a, &b, campaign, 5_000).await;
    assert_eq!(wave_wins + late, ADDED, "exactly the added units sold");
    let (active, remaining, total) = ledger(&a, campaign).await;
    assert_eq!(
        (active, remaining, total),
        (STOCK + ADDED, 0, STOCK + ADDED)
    );
    let users = a
        .scalar(&format!(
            "SELECT COUNT(DISTINCT user_id) - COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await;
    assert_eq!(users, 0, "nobody won twice");
    assert_eq!(a.redis_stock(campaign).await, Some(0));
    assert_each_control_has_its_event(&a, campaign).await;
    a.assert_no_drift(campaign).await;
    b.assert_no_drift(campaign).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withdrawals_racing_a_burst_never_oversell_and_take_only_what_was_unsold_at_their_commit() {
    const STOCK: i64 = 200;
    let (a, b) = two_instances().await;
    let campaign = a.open_campaign(STOCK, 1).await;

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (app, done) = (a.clone(), done.clone());
        tokio::spawn(async move {
            let (mut samples, mut broken) = (0, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let (active, remaining, total) = ledger(&app, campaign).await;
                samples += 1;
                if active > total || active + remaining != total || remaining < 0 {
                    broken.push((active, remaining, total));
                }
                let gate = app.redis_stock(campaign).await;
                if gate.is_some_and(|g| g > STOCK) {
                    broken.push((-1, gate.unwrap_or(0), total));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, broken)
        })
    };
    let wave = |users: std::ops::RangeInclusive<i64>| {
        users.map(|u| {
            let app = if u % 2 == 0 { a.clone() } else { b.clone() };
            async move { app.join(campaign, u, 1).await }
        })
    };
    // A first wave sells at most half the stock, and a first withdrawal, which nothing races
    // yet, must succeed; the rest of the burst then races the next withdrawals. (Racing from the
    // first join, a fast write path could sell all 200 units before any withdrawal committed,
    // and the test would check nothing.)
    let mut replies = join_all(wave(1..=100)).await;
    let first = control(&a, campaign, "stock", json!({"delta": -15})).await;
    assert_eq!(first.status, 200, "{first:?}");
    let first = first.body["totalStock"].as_i64().expect("total");
    // Withdrawals of 15 units from both instances, one after another, until one is refused.
    let withdraw = async {
        let mut taken = vec![first];
        for i in 1.. {
            let app = if i % 2 == 0 { &a } else { &b };
            let reply = control(app, campaign, "stock", json!({"delta": -15})).await;
            match reply.status {
                200 => taken.push(reply.body["totalStock"].as_i64().expect("total")),
                409 => {
                    assert_eq!(reply.code(), "STOCK_IN_USE", "{reply:?}");
                    let free = reply.body["freeStock"].as_i64().expect("freeStock");
                    assert!((0..15).contains(&free), "{reply:?}");
                    return (taken, Some(free));
                }
                _ => panic!("{reply:?}"),
            }
            if i >= 12 {
                return (taken, None);
            }
        }
        unreachable!()
    };
    let (rest, (taken, _refused)) = tokio::join!(join_all(wave(101..=400)), withdraw);
    replies.extend(rest);
    done.store(true, Ordering::Relaxed);
    let (samples, broken) = sampler.await.expect("sampler");
    assert!(
        broken.is_empty(),
        "{} of {samples} samples broke a bound (active, remaining, total): {broken:?}",
        broken.len()
    );

    let withdrawn = 15 * taken.len() as i64;
    assert!(withdrawn > 0, "at least one withdrawal succeeded");
    for r in &replies {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "SOLD_OUT"),
            "{r:?}"
        );
    }
    let late = sell_the_rest(&a, &b, campaign, 5_000).await;
    let wins = replies.iter().filter(|r| r.status == 201).count() as i64 + late;
    let (active, remaining, total) = ledger(&a, campaign).await;
    assert_eq!(
        total,
        STOCK - withdrawn,
        "each withdrawal moved the total once"
    );
    assert_eq!(
        (active, remaining),
        (wins, 0),
        "the wins are every unit left after the withdrawals"
    );
    assert_eq!(wins + withdrawn, STOCK, "no unit sold and withdrawn both");
    wait_until(
        "the gate to hold nothing",
        Duration::from_secs(5),
        || async { a.redis_stock(campaign).await == Some(0) },
    )
    .await;
    assert_each_control_has_its_event(&a, campaign).await;
    a.assert_no_drift(campaign).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pause_mid_burst_stops_the_wins_a_resume_restores_them_and_a_close_ends_the_sale() {
    const STOCK: i64 = 5_000;
    let (a, b) = two_instances().await;
    let campaign = a.open_campaign(STOCK, 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let next_user = Arc::new(AtomicUsize::new(1));
    // Eight clients join distinct users back to back, on both instances, until stopped.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (stop, next_user) = (stop.clone(), next_user.clone());
            tokio::spawn(async move {
                let mut replies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let user = next_user.fetch_add(1, Ordering::Relaxed) as i64;
                    let sent = std::time::Instant::now();
                    replies.push((sent, app.join(campaign, user, 1).await));
                }
                replies
            })
        })
        .collect();
    let wins = || async {
        a.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await
    };
    wait_until("the burst wins", Duration::from_secs(30), || async {
        wins().await >= 100
    })
    .await;

    let paused = control(&a, campaign, "pause", json!({})).await;
    let answered = std::time::Instant::now();
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.body["state"], json!("PAUSED"));
    wait_until(
        "joins refused for a while",
        Duration::from_secs(30),
        || async { next_user.load(Ordering::Relaxed) > 2_000 },
    )
    .await;
    let at_pause = wins().await;
    stop.store(true, Ordering::Relaxed);
    let replies: Vec<_> = join_all(clients)
        .await
        .into_iter()
        .flat_map(|r| r.expect("client"))
        .collect();
    // Every join sent after the pause's answer was refused CAMPAIGN_PAUSED on both instances:
    // the gate had it before the admin heard back.
    let after: Vec<_> = replies
        .iter()
        .filter(|(sent, _)| *sent > answered)
        .collect();
    assert!(after.len() > 100, "the burst went on after the pause");
    for (_, r) in &after {
        assert_eq!((r.status, r.code()), (422, "CAMPAIGN_PAUSED"), "{r:?}");
    }
    // No win committed later than the pause's commit plus the propagation bound (wins whose
    // reservation passed the gate before it may still commit just after).
    let late = a
        .scalar(&format!(
            "SELECT COUNT(*) FROM participation p JOIN campaign_control k \
             ON k.campaign_id = p.campaign_id AND k.kind = 'PAUSED' \
             WHERE p.campaign_id = {campaign} AND p.created_at > k.created_at + INTERVAL 1 SECOND"
        ))
        .await;
    assert_eq!(late, 0, "no win more than 1 s after the pause");
    assert_eq!(wins().await, at_pause, "and none since");

    let resumed = control(&b, campaign, "resume", json!({})).await;
    assert_eq!(
        (resumed.status, &resumed.body["state"]),
        (200, &json!("OPEN"))
    );
    let after_resume = join_all((100_001..=100_010).map(|u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        async move { app.join(campaign, u, 1).await.status }
    }))
    .await;
    assert!(after_resume.iter().all(|&s| s == 201), "{after_resume:?}");

    let closed = control(&a, campaign, "close", json!({})).await;
    assert_eq!(
        (closed.status, &closed.body["state"]),
        (200, &json!("ENDED"))
    );
    for app in [&a, &b] {
        let r = app.join(campaign, 200_000, 1).await;
        assert_eq!((r.status, r.code()), (422, "CAMPAIGN_ENDED"), "{r:?}");
    }
    let reopened = control(&b, campaign, "resume", json!({})).await;
    assert_eq!((reopened.status, reopened.code()), (409, "CAMPAIGN_ENDED"));
    assert_each_control_has_its_event(&a, campaign).await;
    let kinds = a
        .scalar(&format!(
            "SELECT COUNT(*) FROM campaign_control WHERE campaign_id = {campaign}"
        ))
        .await;
    assert_eq!(kinds, 3, "pause, resume, close: one control each");
    let (active, remaining, total) = ledger(&a, campaign).await;
    assert_eq!((active + remaining, total), (STOCK, STOCK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gate_rebuilt_after_controls_reads_their_stock_and_state_from_mysql() {
    let (a, b) = two_instances().await;
    let campaign = a.open_campaign(10, 1).await;
    assert!(join_all((1..=4).map(|u| a.join(campaign, u, 1)))
        .await
        .iter()
        .all(|r| r.status == 201));
    assert_eq!(
        control(&a, campaign, "stock", json!({"delta": 5}))
            .await
            .status,
        200
    );
    assert_eq!(
        control(&a, campaign, "stock", json!({"delta": -3}))
            .await
            .status,
        200
    );
    assert_eq!(control(&a, campaign, "pause", json!({})).await.status, 200);

    a.drop_gate_keys(campaign).await;
    let r = b.join(campaign, 50, 1).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "CAMPAIGN_PAUSED"),
        "rebuilt paused"
    );
    assert_eq!(a.redis_stock(campaign).await, Some(8), "10 − 4 + 5 − 3");

    assert_eq!(control(&b, campaign, "resume", json!({})).await.status, 200);
    // A control applied again (the marker loop racing the request) changes nothing.
    let wins = join_all((100..=120).map(|u| {
        let app = if u % 2 == 0 { a.clone() } else { b.clone() };
        async move { app.join(campaign, u, 1).await.status }
    }))
    .await;
    assert_eq!(wins.iter().filter(|&&s| s == 201).count(), 8);
    let (active, remaining, total) = ledger(&a, campaign).await;
    assert_eq!((active, remaining, total), (12, 0, 12));
    a.assert_no_drift(campaign).await;
}

/// Found by the proof run (issue 38): a pause acknowledged while Redis hung reached the gate
/// only after Redis came back, and joins kept winning for ~3.8 s after it, because MySQL's
/// guard checked the stock only. A pause or a close the gate has not received yet (here: made
/// in MySQL behind its back) refuses the join in MySQL, and the reservation goes back whole.
#[tokio::test]
async fn mysql_refuses_a_win_on_a_paused_or_closed_campaign_the_gate_does_not_know_of() {
    use sea_orm::ConnectionTrait;
    let (a, _b) = two_instances().await;
    let campaign = a.open_campaign(10, 1).await;
    assert_eq!(a.join(campaign, 1, 1).await.status, 201);
    let gate_before = a.redis_stock(campaign).await;
    for (column, code) in [
        ("paused = 1", "CAMPAIGN_PAUSED"),
        ("paused = 0, closed_at = UTC_TIMESTAMP(6)", "CAMPAIGN_ENDED"),
    ] {
        a.db.execute_unprepared(&format!(
            "UPDATE campaign SET {column} WHERE id = {campaign}"
        ))
        .await
        .expect("the campaign changed behind the gate's back");
        let refused = a.join(campaign, 2, 1).await;
        assert_eq!((refused.status, refused.code()), (422, code), "{refused:?}");
        assert_eq!(ledger(&a, campaign).await, (1, 9, 10), "no win was written");
        assert_eq!(
            a.redis_stock(campaign).await,
            gate_before,
            "the reservation went back"
        );
        assert!(
            !a.redis_has_user(campaign, 2).await,
            "the user may try again"
        );
    }
}

/// Found reading the proof run's refusals (issue 38): the pool runs READ COMMITTED, so the read
/// that explains a refused guard sees a newer state than the guard did. A join refused by a
/// pause that was resumed before that read was answered SOLD_OUT with the units free (and the
/// gate's stock was set from that read). The write is held between the refused guard and its
/// read while the campaign resumes; the join wins.
#[tokio::test]
async fn a_join_refused_by_a_pause_that_ends_before_the_refusal_is_read_wins() {
    use sea_orm::ConnectionTrait;
    let (a, _b) = two_instances().await;
    let campaign = a.open_campaign(10, 1).await;
    let set_paused = |paused: u8| {
        let db = a.db.clone();
        async move {
            db.execute_unprepared(&format!(
                "UPDATE campaign SET paused = {paused} WHERE id = {campaign}"
            ))
            .await
            .expect("the campaign changed behind the gate's back");
        }
    };
    set_paused(1).await;
    let hold = &a.hooks.refusal;
    hold.arm();
    let (joined, ()) = tokio::join!(a.join(campaign, 1, 1), async {
        hold.wait_reached().await;
        set_paused(0).await;
        hold.release();
    });
    assert_eq!(joined.status, 201, "{joined:?}");
    assert_eq!(ledger(&a, campaign).await, (1, 9, 10));
    a.assert_no_drift(campaign).await;
}
