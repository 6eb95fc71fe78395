//! Live campaign controls as an admin sees them (docs/design.md §3, §15): units added and
//! withdrawn, pause, resume and close, each recorded once with the name of the admin token that
//! asked, its event id and the totals it left, in an audit trail read page by page; what is
//! already so writes nothing; a withdrawal takes unsold units only (409 STOCK_IN_USE with
//! `freeStock`); an ended campaign refuses every control but close. Joins on both paths are
//! refused while paused (CAMPAIGN_PAUSED) and after the close (CAMPAIGN_ENDED), while held wins
//! are still confirmed and cancelled.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

use super::{
    admin_tokens::{spawn_with_named_tokens, ALICE, BOB},
    boundary_sweep::runner::{changed, snapshot},
};
use crate::{
    http::Reply,
    spawn::{TestApp, ADMIN_TOKEN},
};

const STOCK: i64 = 10;

/// POST control `path` (`stock`, `pause`, …) of the campaign with `token`.
async fn control(app: &TestApp, campaign: i64, path: &str, body: Value, token: &str) -> Reply {
    let path = format!("/api/v1/admin/campaigns/{campaign}/{path}");
    app.post_json(&path, &body, Some(token)).await
}

/// A control that must change the campaign: 200 and the campaign as it left it.
async fn changes(app: &TestApp, campaign: i64, path: &str, body: Value, token: &str) -> Value {
    let reply = control(app, campaign, path, body, token).await;
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    reply.body
}

/// A control that must change nothing, in MySQL or Redis: `status` with `code` (none on a 200),
/// and for a 200 the campaign as it was.
async fn writes_nothing(
    app: &TestApp,
    campaign: i64,
    path: &str,
    body: Value,
    token: &str,
    want: (u16, &str),
) -> Reply {
    let before = snapshot(app).await;
    let reply = control(app, campaign, path, body.clone(), token).await;
    assert_eq!(
        (reply.status, reply.code()),
        want,
        "{path} {body}: {reply:?}"
    );
    assert_eq!(
        changed(&before, &snapshot(app).await),
        Vec::<String>::new(),
        "{path} {body} wrote"
    );
    reply
}

/// A join on the outbox path and on the sync path by `user`: both answer `want`.
async fn joins_answer(app: &TestApp, campaign: i64, user: i64, want: (u16, &str)) {
    let outbox = app.join(campaign, user, 1).await;
    let sync = app
        .post_json(
            &format!("/api/v1/campaigns/{campaign}/participations/sync"),
            &json!({"userId": user}),
            None,
        )
        .await;
    for reply in [outbox, sync] {
        assert_eq!((reply.status, reply.code()), want, "{reply:?}");
    }
}

/// `(state, paused, controlCount, closedAt)` of the campaign as GET shows it.
async fn shown(app: &TestApp, campaign: i64) -> (String, bool, i64, Option<String>) {
    let c = app.get(&format!("/api/v1/campaigns/{campaign}")).await.body;
    (
        c["state"].as_str().expect("state").into(),
        c["paused"].as_bool().expect("paused"),
        c["controlCount"].as_i64().expect("controlCount"),
        c["closedAt"].as_str().map(String::from),
    )
}

fn totals(c: &Value) -> (i64, i64) {
    (
        c["totalStock"].as_i64().expect("totalStock"),
        c["remainingStock"].as_i64().expect("remainingStock"),
    )
}

#[tokio::test]
async fn each_control_is_recorded_once_with_its_admin_and_an_ended_campaign_refuses_all_but_close()
{
    let app = spawn_with_named_tokens().await;
    let campaign = app
        .open_campaign_with(STOCK, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    for user in 1..=4 {
        let won = app.join(campaign, user, 1).await;
        assert_eq!(
            (won.status, won.body["status"].as_str()),
            (201, Some("HELD"))
        );
    }

    let added = changes(&app, campaign, "stock", json!({"delta": 5}), ALICE).await;
    assert_eq!(totals(&added), (15, 11), "{added}");
    assert_eq!(added["controlCount"], 1);
    let withdrawn = changes(&app, campaign, "stock", json!({"delta": -3}), BOB).await;
    assert_eq!(totals(&withdrawn), (12, 8), "{withdrawn}");

    let paused = changes(&app, campaign, "pause", json!({}), ALICE).await;
    assert_eq!(
        (&paused["state"], &paused["paused"], &paused["controlCount"]),
        (&json!("PAUSED"), &json!(true), &json!(3))
    );
    assert_eq!(
        shown(&app, campaign).await,
        ("PAUSED".into(), true, 3, None)
    );
    let again = writes_nothing(&app, campaign, "pause", json!({}), BOB, (200, "")).await;
    assert_eq!(again.body["controlCount"], 3, "{again:?}");
    joins_answer(&app, campaign, 50, (422, "CAMPAIGN_PAUSED")).await;
    // A held win is still confirmed, and cancelled, while the sale is paused.
    assert_eq!(
        app.act_on_win(campaign, 1, "confirm", false).await.body["status"],
        "CONFIRMED"
    );
    assert_eq!(
        app.act_on_win(campaign, 2, "cancel", false).await.body["status"],
        "CANCELLED"
    );
    assert_eq!(
        app.remaining_stock(campaign).await,
        9,
        "the cancelled unit is back"
    );

    let resumed = changes(&app, campaign, "resume", json!({}), BOB).await;
    assert_eq!(
        (
            &resumed["state"],
            &resumed["paused"],
            &resumed["controlCount"]
        ),
        (&json!("OPEN"), &json!(false), &json!(4))
    );
    writes_nothing(&app, campaign, "resume", json!({}), ALICE, (200, "")).await;
    assert_eq!(app.join(campaign, 5, 1).await.status, 201, "open again");

    // Withdrawing more than is unsold: refused with what could be withdrawn.
    let in_use = writes_nothing(
        &app,
        campaign,
        "stock",
        json!({"delta": -9}),
        BOB,
        (409, "STOCK_IN_USE"),
    )
    .await;
    assert_eq!(in_use.body["freeStock"], 8, "{in_use:?}");

    let closed = changes(&app, campaign, "close", json!({}), ALICE).await;
    assert_eq!(
        (&closed["state"], &closed["paused"], &closed["controlCount"]),
        (&json!("ENDED"), &json!(false), &json!(5))
    );
    let closed_at = closed["closedAt"].as_str().expect("closedAt").to_string();
    let again = writes_nothing(&app, campaign, "close", json!({}), BOB, (200, "")).await;
    assert_eq!(
        again.body["closedAt"],
        closed_at.as_str(),
        "the first close stays"
    );
    assert_eq!(
        shown(&app, campaign).await,
        ("ENDED".into(), false, 5, Some(closed_at))
    );
    for (path, body) in [
        ("pause", json!({})),
        ("resume", json!({})),
        ("stock", json!({"delta": 1})),
        ("stock", json!({"delta": -1})),
    ] {
        writes_nothing(&app, campaign, path, body, BOB, (409, "CAMPAIGN_ENDED")).await;
    }
    joins_answer(&app, campaign, 51, (422, "CAMPAIGN_ENDED")).await;
    // Held wins are still confirmed and cancelled once the sale has ended.
    assert_eq!(
        app.act_on_win(campaign, 3, "confirm", false).await.body["status"],
        "CONFIRMED"
    );
    assert_eq!(
        app.act_on_win(campaign, 4, "cancel", false).await.body["status"],
        "CANCELLED"
    );
    assert_eq!(
        app.act_on_win(campaign, 5, "cancel", false).await.body["status"],
        "CANCELLED"
    );

    let trail = [
        (
            "STOCK_CHANGED",
            "CampaignStockChanged",
            Some(5),
            15,
            11,
            "alice",
        ),
        (
            "STOCK_CHANGED",
            "CampaignStockChanged",
            Some(-3),
            12,
            8,
            "bob",
        ),
        ("PAUSED", "CampaignPaused", None, 12, 8, "alice"),
        ("RESUMED", "CampaignResumed", None, 12, 9, "bob"),
        ("CLOSED", "CampaignClosed", None, 12, 8, "alice"),
    ];
    let events = event_ids(&app, campaign).await;
    assert_eq!(
        events.len(),
        trail.len(),
        "one event per control that changed something"
    );
    let items = read_trail(&app, campaign, 2).await;
    assert_eq!(items.len(), trail.len(), "{items:#?}");
    for (n, (item, (kind, event_type, delta, total, remaining, by))) in
        items.iter().zip(trail).enumerate()
    {
        let mut want = json!({
            "seq": n + 1,
            "kind": kind,
            "eventType": event_type,
            "eventId": events[n],
            "totalStock": total,
            "remainingStock": remaining,
            "changedBy": by,
            "at": item["at"],
        });
        if let Some(d) = delta {
            want["delta"] = json!(d);
        }
        assert_eq!(item, &want, "control {}", n + 1);
        assert!(item["at"].is_string(), "{item}");
    }
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM campaign_control WHERE campaign_id = {campaign}"
        ))
        .await,
        5
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM gate_control").await,
        0,
        "every control reached the gate at once"
    );
}

/// The event ids of the campaign's control events, in outbox order.
async fn event_ids(app: &TestApp, campaign: i64) -> Vec<String> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT event_id FROM outbox_event WHERE aggregate_type = 'campaign' \
                 AND aggregate_id = '{campaign}' AND msg_key = '{campaign}' ORDER BY id"
            ),
        ))
        .await
        .expect("outbox");
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("event_id"))
        .collect()
}

/// The whole audit trail, `limit` items a page, following `nextCursor`; each page but the last
/// is full and names the cursor of its last item.
async fn read_trail(app: &TestApp, campaign: i64, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .admin_get(&format!(
                "/api/v1/admin/campaigns/{campaign}/events?limit={limit}{cursor}"
            ))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        let got = page.body["items"].as_array().expect("items").clone();
        items.extend(got.iter().cloned());
        match page.body["nextCursor"].as_i64() {
            Some(next) => {
                assert_eq!(got.len(), limit, "a page with a next one is full");
                assert_eq!(Some(next), got.last().and_then(|i| i["seq"].as_i64()));
                cursor = format!("&cursor={next}");
            }
            None => break,
        }
    }
    items
}

#[tokio::test]
async fn the_trail_pages_by_limit_and_cursor_and_needs_an_admin_token_and_a_campaign() {
    let app = spawn_with_named_tokens().await;
    let campaign = app.open_campaign(STOCK, 1).await;
    for delta in 1..=4 {
        changes(
            &app,
            campaign,
            "stock",
            json!({"delta": delta}),
            ADMIN_TOKEN,
        )
        .await;
    }
    let all = read_trail(&app, campaign, 50).await;
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|i| i["changedBy"] == "admin"), "{all:#?}");
    assert_eq!(read_trail(&app, campaign, 1).await, all);
    assert_eq!(read_trail(&app, campaign, 2).await, all);
    assert_eq!(
        read_trail(&app, campaign, 4).await,
        all,
        "an exact last page"
    );
    let deltas: Vec<i64> = all
        .iter()
        .map(|i| i["delta"].as_i64().expect("delta"))
        .collect();
    assert_eq!(deltas, [1, 2, 3, 4]);
    let past = app
        .admin_get(&format!(
            "/api/v1/admin/campaigns/{campaign}/events?cursor=4"
        ))
        .await;
    assert_eq!(past.body, json!({"items": []}), "{past:?}");
    let other = app.open_campaign(STOCK, 1).await;
    let empty = app
        .admin_get(&format!("/api/v1/admin/campaigns/{other}/events"))
        .await;
    assert_eq!((empty.status, &empty.body), (200, &json!({"items": []})));

    let unknown = other + 1;
    let before = snapshot(&app).await;
    let events = format!("/api/v1/admin/campaigns/{unknown}/events");
    let missing = app.admin_get(&events).await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "CAMPAIGN_NOT_FOUND")
    );
    for (path, body) in [
        ("stock", json!({"delta": 1})),
        ("pause", json!({})),
        ("resume", json!({})),
        ("close", json!({})),
    ] {
        let reply = control(&app, unknown, path, body.clone(), ALICE).await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "CAMPAIGN_NOT_FOUND"),
            "{path}"
        );
        for token in [None, Some("alice"), Some(&ALICE[1..])] {
            let path = format!("/api/v1/admin/campaigns/{campaign}/{path}");
            let reply = app.post_json(&path, &body, token).await;
            assert_eq!(
                (reply.status, reply.code()),
                (401, "UNAUTHORIZED"),
                "{path} {token:?}"
            );
        }
    }
    let anonymous = app
        .get(&format!("/api/v1/admin/campaigns/{campaign}/events"))
        .await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "UNAUTHORIZED"));
    assert_eq!(
        changed(&before, &snapshot(&app).await),
        Vec::<String>::new()
    );
}

/// A control sent with `Idempotency-Key` and retried (its answer lost) is applied once: the retry
/// answers the campaign as it is and writes nothing; the key with another control of the same
/// campaign is 422 IDEMPOTENCY_KEY_REUSED; the same key is free on another campaign; an
/// unreadable key is 400.
#[tokio::test]
async fn a_control_retried_with_its_idempotency_key_is_applied_once() {
    let app = spawn_with_named_tokens().await;
    let campaign = app.open_campaign(10, 1).await;
    let other = app.open_campaign(10, 1).await;
    let keyed = |campaign: i64, path: &'static str, body: Value, key: &'static str| {
        let app = &app;
        async move {
            let url = app.url(&format!("/api/v1/admin/campaigns/{campaign}/{path}"));
            app.send(
                app.client
                    .post(url)
                    .bearer_auth(ALICE)
                    .header("Idempotency-Key", key)
                    .json(&body),
            )
            .await
        }
    };
    let first = keyed(campaign, "stock", json!({"delta": 5}), "add-5").await;
    assert_eq!((first.status, totals(&first.body)), (200, (15, 15)));
    let before = snapshot(&app).await;
    let retry = keyed(campaign, "stock", json!({"delta": 5}), "add-5").await;
    assert_eq!((retry.status, totals(&retry.body)), (200, (15, 15)));
    assert_eq!(
        changed(&before, &snapshot(&app).await),
        Vec::<String>::new()
    );

    for (path, body) in [("stock", json!({"delta": 6})), ("pause", json!({}))] {
        let reused = keyed(campaign, path, body, "add-5").await;
        assert_eq!(
            (reused.status, reused.code()),
            (422, "IDEMPOTENCY_KEY_REUSED"),
            "{path}: {reused:?}"
        );
    }
    assert_eq!(
        changed(&before, &snapshot(&app).await),
        Vec::<String>::new()
    );

    let elsewhere = keyed(other, "stock", json!({"delta": 5}), "add-5").await;
    assert_eq!((elsewhere.status, totals(&elsewhere.body)), (200, (15, 15)));

    let paused = keyed(campaign, "pause", json!({}), "pause-1").await;
    assert_eq!(paused.status, 200);
    let resumed = changes(&app, campaign, "resume", json!({}), ALICE).await;
    assert_eq!(resumed["state"], json!("OPEN"));
    // A retry of the pause after a resume answers the campaign as it is now: the pause it
    // stands for was applied, and is not applied again.
    let late_retry = keyed(campaign, "pause", json!({}), "pause-1").await;
    assert_eq!(
        (late_retry.status, &late_retry.body["state"]),
        (200, &json!("OPEN"))
    );

    let url = app.url(&format!("/api/v1/admin/campaigns/{campaign}/pause"));
    let unreadable = app
        .send(app.client.post(url).bearer_auth(ALICE).header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(b"\xff").expect("bytes"),
        ))
        .await;
    assert_eq!(
        (unreadable.status, unreadable.code()),
        (400, "VALIDATION_FAILED")
    );
}

/// Found by the proof run (issue 38): a control's answer was read after its commit, so a
/// control committed just after it showed through (`controlCount` one ahead, the totals of
/// both). Concurrent stock changes on two instances, each of its own size: every answer's
/// `controlCount` names the audit row of its own change, and its totals are that row's.
#[tokio::test]
async fn each_controls_answer_is_the_campaign_as_that_control_left_it() {
    let (a, b) = crate::spawn::two_instances().await;
    let campaign = a.open_campaign(1_000, 1).await;
    let deltas: Vec<i64> = (1..=24).collect();
    let answers = futures::future::join_all(deltas.iter().map(|&delta| {
        let app = if delta % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let body = changes(
                &app,
                campaign,
                "stock",
                json!({ "delta": delta }),
                ADMIN_TOKEN,
            )
            .await;
            (delta, body)
        }
    }))
    .await;
    let trail = read_trail(&a, campaign, 100).await;
    for (delta, answer) in answers {
        let seq = answer["controlCount"].as_i64().expect("controlCount");
        let row = trail
            .iter()
            .find(|row| row["seq"].as_i64() == Some(seq))
            .unwrap_or_else(|| panic!("no control {seq} in the trail"));
        assert_eq!(
            row["delta"].as_i64(),
            Some(delta),
            "answer {answer} names control {row}"
        );
        assert_eq!(answer["totalStock"], row["totalStock"], "{answer} vs {row}");
    }
}

/// Found by the proof run (issue 38): a control that changed nothing (a resume of a running
/// campaign) read its answer after its transaction, so a pause committed in between showed
/// through: "resumed", with the campaign paused. The resume is held after its decision until a
/// pause has committed; its answer is still the running campaign it decided on.
#[tokio::test]
async fn a_control_that_changed_nothing_answers_the_campaign_it_decided_on() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(STOCK, 1).await;
    let hold = &app.hooks.kept_control;
    hold.arm();
    let (resumed, paused) = tokio::join!(
        control(&app, campaign, "resume", json!({}), ADMIN_TOKEN),
        async {
            hold.wait_reached().await;
            let paused = changes(&app, campaign, "pause", json!({}), ADMIN_TOKEN).await;
            hold.release();
            paused
        }
    );
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(resumed.status, 200, "{resumed:?}");
    assert_eq!(resumed.body["paused"], false, "{:?}", resumed.body);
    assert_eq!(
        resumed.body["controlCount"].as_i64(),
        paused["controlCount"].as_i64().map(|n| n - 1),
        "the resume answers the campaign before the pause: {:?}",
        resumed.body
    );
}

/// Found by the proof run (seed 144): two resumes at once; the first committed and its call to
/// the gate was still on its way when the second found the campaign running and answered so, and
/// a join sent after that answer was refused CAMPAIGN_PAUSED (a refused join reads what MySQL
/// owes the gate, but at most once every 50 ms: one refused just before had read it). A control
/// that changed nothing now gives the gate the controls its answer reports before it answers.
/// The first resume is held after its commit, before its gate call; a join refused just before
/// it makes the next one's read wait; the second's answer is followed by a join that wins.
#[tokio::test]
async fn a_control_that_changed_nothing_answers_once_the_gate_has_what_it_reports() {
    let app = crate::spawn::spawn_app().await;
    let campaign = app.open_campaign(STOCK, 1).await;
    // A win first, so the gate holds the campaign's state (an unloaded one reads MySQL).
    assert_eq!(app.join(campaign, 2, 1).await.status, 201);
    changes(&app, campaign, "pause", json!({}), ADMIN_TOKEN).await;
    let hold = &app.hooks.gate_control;
    hold.arm();
    let refused = app.join(campaign, 3, 1).await;
    assert_eq!(refused.code(), "CAMPAIGN_PAUSED", "{refused:?}");
    let (first, (second, joined)) = tokio::join!(
        control(&app, campaign, "resume", json!({}), ADMIN_TOKEN),
        async {
            hold.wait_reached().await;
            let second = control(&app, campaign, "resume", json!({}), ADMIN_TOKEN).await;
            let joined = app.join(campaign, 1, 1).await;
            hold.release();
            (second, joined)
        }
    );
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.body["paused"], false, "{:?}", second.body);
    assert_eq!(
        second.body["controlCount"], first.body["controlCount"],
        "the second resume reports the first: {second:?}"
    );
    assert!(
        second.body.get("gate").is_none(),
        "the gate had it before the answer: {second:?}"
    );
    assert_eq!(
        joined.status, 201,
        "a join after a resume's answer meets a running campaign: {joined:?}"
    );
}
