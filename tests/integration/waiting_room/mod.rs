//! The waiting room (docs/design.md §16): the room's Redis step forced through its
//! interleavings at chosen instants (`room_steps`: FIFO at the rate, slots bounded by the stock,
//! abandoned tickets, lapsed admissions, a token at the instant it expires), and the service
//! end to end over HTTP (`tokens`: every refused token writes nothing; `sale`: exactly-N on two
//! instances with sold-out reaching every waiting ticket, the raffle's draw; `rate_limits`: the
//! per-user and per-IP buckets, shared by instances, with an honest `Retry-After`; `polls`: a
//! poll refused for its token, ticket or rate limit moves nothing in Redis; `bot_check` the check at
//! the door, `campaign_bot_check` each campaign's choice of it and its live switch).

mod bot_check;
mod campaign_bot_check;
mod polls;
mod rate_limits;
mod room_steps;
mod sale;
mod solver;
mod tokens;

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    http::Reply,
    spawn::{test_settings, TestApp},
    wait::wait_until,
};

/// `ADMISSION_SECRET` of these tests (fixed: the raffle's draw is then the same every run).
const SECRET: &str = "waiting-room-test-secret-0123456789abcdef";

/// Test settings with the shared admission secret, and no rate limits: every client of a test
/// is 127.0.0.1, and a sale of many users from one address would meet the per-IP default
/// (`rate_limits` tests the limits).
async fn room_settings() -> firstcome::config::Settings {
    let mut s = test_settings().await;
    s.waiting_room.secret = Some(firstcome::config::Secret::new(SECRET));
    s.rate_limits.user_per_second = Some(0);
    s.rate_limits.ip_per_second = Some(0);
    s
}

/// A campaign with a waiting room: `admission` (`QUEUE` or `RAFFLE`), `stock` units, `rate`
/// admissions a second, and `extra` fields of the create request.
async fn room_campaign(app: &TestApp, admission: &str, stock: i64, rate: i32, extra: Value) -> i64 {
    app.open_campaign_with(
        stock,
        1,
        json!({"admission": admission, "admissionRatePerSecond": rate})
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.extend(extra.as_object().cloned().unwrap_or_default());
                Value::Object(o)
            })
            .unwrap_or_default(),
    )
    .await
}

pub(crate) async fn enqueue(app: &TestApp, campaign: i64, user: i64) -> Reply {
    app.post_json(
        &format!("/api/v1/campaigns/{campaign}/queue"),
        &json!({"userId": user}),
        None,
    )
    .await
}

pub(crate) async fn poll(app: &TestApp, campaign: i64, ticket: &str) -> Reply {
    app.get(&format!("/api/v1/campaigns/{campaign}/queue/{ticket}"))
        .await
}

/// Polls `ticket` (on `app`) until its state is one of `states`; the last answer.
pub(crate) async fn poll_until(
    app: &TestApp,
    campaign: i64,
    ticket: &str,
    states: &[&str],
) -> Reply {
    let last = std::sync::Mutex::new(None);
    wait_until("the ticket's state", Duration::from_secs(20), || async {
        let reply = poll(app, campaign, ticket).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let done = states.contains(&reply.body["state"].as_str().unwrap_or(""));
        *last.lock().expect("lock") = Some(reply);
        done
    })
    .await;
    last.into_inner().expect("lock").expect("polled")
}

/// Queues `user` and waits for their admission token.
async fn admission_token(app: &TestApp, campaign: i64, user: i64) -> String {
    let queued = enqueue(app, campaign, user).await;
    assert_eq!(queued.status, 202, "{queued:?}");
    let ticket = queued.body["ticket"].as_str().expect("ticket").to_string();
    let admitted = poll_until(app, campaign, &ticket, &["ADMITTED"]).await;
    admitted.body["admissionToken"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A join on the outbox path carrying `token`.
pub(crate) async fn join_with(
    app: &TestApp,
    campaign: i64,
    user: i64,
    token: Option<&str>,
) -> Reply {
    let mut body = json!({"userId": user});
    if let Some(t) = token {
        body["admissionToken"] = json!(t);
    }
    app.post_json(
        &format!("/api/v1/campaigns/{campaign}/participations"),
        &body,
        None,
    )
    .await
}
