//! `Idempotency-Key` on join (docs/design.md §3): a retry with the key that wrote a win answers
//! that win (201, the same body), also when it overtakes its first request whose answer the client
//! gave up on; the same key with another quantity is refused; another key, or none, is
//! ALREADY_PARTICIPATED as before. Both paths.

use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{json, Value};

use crate::{
    http::Reply,
    spawn::{spawn_app, spawn_app_with, test_settings, TestApp},
    wait::wait_until,
};

/// A join on `path` ("" for the outbox path, "/sync" for the baseline) with an optional key.
async fn join_with_key(
    app: &TestApp,
    path: &str,
    campaign: i64,
    body: Value,
    key: Option<&str>,
) -> Reply {
    let url = app.url(&format!(
        "/api/v1/campaigns/{campaign}/participations{path}"
    ));
    let mut req = app.client.post(url).json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    app.send(req).await
}

/// The fields of a win's answer that a replay must repeat (the sync path keeps no event id, so
/// its replay carries none).
fn win_of(reply: &Reply, path: &str) -> Value {
    assert_eq!(reply.status, 201, "{reply:?}");
    let b = &reply.body;
    let event_id = match path {
        "" => b["eventId"].clone(),
        _ => Value::Null,
    };
    json!([
        b["participationId"],
        b["sequence"],
        event_id,
        b["acceptedAt"],
        b["quantity"]
    ])
}

async fn retries_answer_the_original_win(path: &str) {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 3).await;
    let body = json!({"userId": 7, "quantity": 2});
    let first = join_with_key(&app, path, campaign, body.clone(), Some("order-7:a")).await;
    let again = join_with_key(&app, path, campaign, body.clone(), Some("order-7:a")).await;
    assert_eq!(
        win_of(&again, path),
        win_of(&first, path),
        "the replay is the original win"
    );

    let other_key = join_with_key(&app, path, campaign, body.clone(), Some("order-7:b")).await;
    assert_eq!(
        (other_key.status, other_key.code()),
        (409, "ALREADY_PARTICIPATED")
    );
    assert_eq!(
        other_key.body["participationId"],
        first.body["participationId"]
    );
    let no_key = join_with_key(&app, path, campaign, body, None).await;
    assert_eq!(
        (no_key.status, no_key.code()),
        (409, "ALREADY_PARTICIPATED")
    );

    let reused = json!({"userId": 7, "quantity": 1});
    let reused = join_with_key(&app, path, campaign, reused, Some("order-7:a")).await;
    assert_eq!(
        (reused.status, reused.code()),
        (422, "IDEMPOTENCY_KEY_REUSED"),
        "{reused:?}"
    );

    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 1);
    assert_eq!(app.remaining_stock(campaign).await, 3, "one win of 2 units");
}

#[tokio::test]
async fn a_retry_with_its_key_answers_the_original_win_and_a_reused_key_is_refused() {
    retries_answer_the_original_win("").await;
}

#[tokio::test]
async fn the_sync_path_replays_the_same_way() {
    retries_answer_the_original_win("/sync").await;
}

/// The first request's transaction waits on a lock the test holds, so its client gives up; a
/// retry while it is still in flight cannot answer a win that is not written yet (409 without a
/// participation id, after looking for a moment); once the first request commits, the retry
/// answers its win.
///
/// Ordered by the gate, not by the clock: the retry goes once the first request holds its
/// reservation, and the first request's lock wait is longer than any run's (a full suite on two
/// cores once kept the lock past the default five seconds, and the first request gave up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_the_client_gave_up_answers_the_win_once_it_is_written() {
    let mut settings = test_settings().await;
    settings.database.statement_timeout = Duration::from_secs(120);
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(5, 1).await;
    let body = json!({"userId": 11, "quantity": 1});
    let lock = app.db.begin().await.expect("begin");
    lock.execute_unprepared(&format!(
        "SELECT id FROM campaign WHERE id = {campaign} FOR UPDATE"
    ))
    .await
    .expect("lock the campaign row");

    let url = app.url(&format!("/api/v1/campaigns/{campaign}/participations"));
    let gave_up = app
        .client
        .post(&url)
        .timeout(Duration::from_millis(300))
        .header("Idempotency-Key", "retry-me")
        .json(&body)
        .send()
        .await;
    assert!(
        gave_up.is_err_and(|e| e.is_timeout()),
        "the first answer is lost"
    );
    wait_until(
        "the first request to hold its reservation",
        Duration::from_secs(30),
        || async { app.redis_has_user(campaign, 11).await },
    )
    .await;

    let in_flight = join_with_key(&app, "", campaign, body.clone(), Some("retry-me")).await;
    assert_eq!(
        (in_flight.status, in_flight.code()),
        (409, "ALREADY_PARTICIPATED")
    );
    assert!(
        in_flight.body.get("participationId").is_none(),
        "{in_flight:?}"
    );

    lock.commit().await.expect("release the lock");
    wait_until(
        "the first request to commit",
        Duration::from_secs(10),
        || async { app.scalar("SELECT COUNT(*) FROM participation").await == 1 },
    )
    .await;
    let replay = join_with_key(&app, "", campaign, body, Some("retry-me")).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    let id = app.scalar("SELECT id FROM participation").await;
    assert_eq!(replay.body["participationId"], json!(id));
    assert_eq!(app.remaining_stock(campaign).await, 4);
}

#[tokio::test]
async fn keys_outside_1_to_128_visible_ascii_characters_are_refused() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    for key in ["", "has space", "tab\there", &"k".repeat(129), "é"] {
        let reply = join_with_key(&app, "", campaign, json!({"userId": 3}), Some(key)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "VALIDATION_FAILED"),
            "key {key:?}: {reply:?}"
        );
    }
    let longest = "~".repeat(128);
    let reply = join_with_key(&app, "", campaign, json!({"userId": 3}), Some(&longest)).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 1);
}

/// A retry answers the original body, status included: a win accepted `HELD` is answered `HELD`
/// with its deadline however it ended since (confirmed, cancelled, expired); a read of the win
/// shows what became of it. Before, the retry carried the win's state at the time it was read
/// (the proof found a retry answered `EXPIRED` for a win accepted `HELD`).
#[tokio::test]
async fn a_retry_answers_the_win_as_it_was_accepted_whatever_became_of_it_since() {
    let app = spawn_app().await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let body = json!({"userId": 9, "quantity": 1});
    let first = join_with_key(&app, "", campaign, body.clone(), Some("hold-9")).await;
    assert_eq!(first.body["status"], "HELD", "{first:?}");
    assert!(first.body["holdExpiresAt"].is_string(), "{first:?}");

    let cancelled = app.act_on_win(campaign, 9, "cancel", false).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let again = join_with_key(&app, "", campaign, body, Some("hold-9")).await;
    assert_eq!(win_of(&again, ""), win_of(&first, ""));
    assert_eq!(
        (&again.body["status"], &again.body["holdExpiresAt"]),
        (&first.body["status"], &first.body["holdExpiresAt"]),
        "the retry is the original answer: {again:?}"
    );
    let read = app
        .get(&format!("/api/v1/campaigns/{campaign}/participations/9"))
        .await;
    assert_eq!(read.body["status"], "CANCELLED", "{read:?}");
}
