//! The bot check at the room's door (docs/design.md §16 "Bots at the door"): a ticket only for a
//! client that solved the campaign's proof-of-work challenge, each solution once, and nothing
//! written for one that did not (no room key moves); the admission token carries the pass, so a
//! token whose ticket was issued without the check wins nothing once it is on; an `OPEN`
//! campaign's join needs it with `BOT_CHECK_ON_JOIN`; a captcha provider's token goes through
//! its `siteverify` call (a local server speaking the documented API), closed or open when the
//! provider does not answer in time. Every decision is counted.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use firstcome::{bot_check::pow::solve, config::BotCheckMode, waiting_room::AdmissionSigner};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::{join_with, poll_until, polls::campaign_keys, room_campaign, room_settings, SECRET};
use crate::{
    http::Reply,
    operations::metrics::exposition::{scrape, sum},
    spawn::{spawn_app_with, TestApp},
    wait::wait_until,
};

/// Test settings with the proof of work on, at a cost that solves in milliseconds.
pub(super) async fn pow_settings() -> firstcome::config::Settings {
    let mut s = room_settings().await;
    s.bot_check.mode = BotCheckMode::Pow;
    s.bot_check.cost = 10;
    s
}

pub(super) async fn queue(
    app: &TestApp,
    campaign: i64,
    user: i64,
    bot_check: Option<&str>,
) -> Reply {
    let mut body = json!({"userId": user});
    if let Some(b) = bot_check {
        body["botCheck"] = json!(b);
    }
    app.post_json(&format!("/api/v1/campaigns/{campaign}/queue"), &body, None)
        .await
}

/// A solution of a challenge `campaign`'s endpoint gave.
pub(super) async fn solved(app: &TestApp, campaign: i64) -> String {
    let reply = app
        .get(&format!("/api/v1/campaigns/{campaign}/bot-check"))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let challenge: altcha::Challenge = serde_json::from_value(reply.body).expect("ALTCHA's JSON");
    solve(&challenge).expect("solved")
}

/// A challenge signed with the service's key (derived from `ADMISSION_SECRET`) but made here.
fn made_here(campaign: i64, cost: u32, expires_at: i64) -> String {
    let key: String = AdmissionSigner::new(SECRET.as_bytes())
        .bot_check_key()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let challenge = altcha::create_challenge(altcha::CreateChallengeOptions {
        cost,
        key_prefix: "00".into(),
        expires_at: Some(expires_at),
        data: Some([("campaignId".to_string(), json!(campaign))].into()),
        hmac_signature_secret: Some(key),
        ..Default::default()
    })
    .expect("challenge");
    solve(&challenge).expect("solved")
}

fn bot_checks(samples: &[crate::operations::metrics::exposition::Sample], reason: &str) -> f64 {
    sum(samples, "firstcome_bot_checks_total", &[("reason", reason)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_goes_only_to_a_client_that_solved_the_challenge_once_and_a_refusal_writes_nothing(
) {
    let app = spawn_app_with(pow_settings().await).await;
    let a = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let b = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let before = campaign_keys(&app, a).await;
    let refused = |r: Reply, why: &str| {
        assert_eq!(
            (r.status, r.code()),
            (403, "BOT_CHECK_FAILED"),
            "{why}: {r:?}"
        );
    };
    refused(queue(&app, a, 1, None).await, "no answer");
    refused(
        queue(&app, a, 1, Some("bm90IGEgcGF5bG9hZA==")).await,
        "junk",
    );
    refused(
        queue(&app, a, 1, Some(&solved(&app, b).await)).await,
        "another campaign's",
    );
    let now = chrono::Utc::now().timestamp();
    refused(
        queue(&app, a, 1, Some(&made_here(a, 10, now - 1))).await,
        "expired",
    );
    refused(
        queue(&app, a, 1, Some(&made_here(a, 1, now + 60))).await,
        "cheaper than set",
    );
    assert_eq!(
        campaign_keys(&app, a).await,
        before,
        "a refused client moved nothing"
    );

    let answer = solved(&app, a).await;
    let queued = queue(&app, a, 1, Some(&answer)).await;
    assert_eq!(queued.status, 202, "{queued:?}");
    refused(
        queue(&app, a, 2, Some(&answer)).await,
        "the same solution again",
    );
    let ticket = queued.body["ticket"].as_str().expect("ticket").to_string();
    let admitted = poll_until(&app, a, &ticket, &["ADMITTED"]).await;
    let token = admitted.body["admissionToken"].as_str().expect("token");
    assert_eq!(join_with(&app, a, 1, Some(token)).await.status, 201);

    let samples = scrape(&app).await;
    assert_eq!(bot_checks(&samples, "passed"), 1.0);
    assert_eq!(bot_checks(&samples, "missing"), 1.0);
    assert_eq!(bot_checks(&samples, "invalid"), 3.0);
    assert_eq!(bot_checks(&samples, "expired"), 1.0);
    assert_eq!(bot_checks(&samples, "reused"), 1.0);
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(refused_count), 0) AS SIGNED) FROM campaign_refusal \
         WHERE campaign_id = {a} AND reason = 'BOT_CHECK_FAILED'"
    );
    wait_until(
        "every refusal counted against the campaign",
        Duration::from_secs(10),
        || async { app.scalar(&sql).await == 6 },
    )
    .await;
}

/// The signature of the challenge inside a client's answer (its spent mark's name).
fn signature_of(answer: &str) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let payload: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(answer).expect("base64")).expect("JSON");
    payload["challenge"]["signature"]
        .as_str()
        .expect("signed")
        .to_string()
}

/// `answer` with another (wrong) counter: the same challenge, a solution that is not one.
fn wrong_solution(answer: &str) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let mut payload: serde_json::Value =
        serde_json::from_slice(&STANDARD.decode(answer).expect("base64")).expect("JSON");
    let counter = payload["solution"]["counter"].as_u64().expect("counter");
    payload["solution"]["counter"] = json!(counter + 1);
    STANDARD.encode(payload.to_string())
}

/// A challenge buys one derivation (docs/design.md §16): the first verification spends it, right
/// or wrong, so a thousand wrong solutions to one challenge cost one derivation and are refused
/// as reused; the spent mark lives until the challenge's own expiry, not the verifying
/// instance's `BOT_CHECK_CHALLENGE_TTL_MS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_buys_one_verification_and_stays_spent_until_it_expires() {
    let mut settings = pow_settings().await;
    settings.bot_check.challenge_ttl = Duration::from_secs(2);
    let app = spawn_app_with(settings).await;
    let campaign = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let now = chrono::Utc::now().timestamp();
    let answer = made_here(campaign, 10, now + 300);
    let wrong = wrong_solution(&answer);
    for _ in 0..20 {
        let r = queue(&app, campaign, 1, Some(&wrong)).await;
        assert_eq!((r.status, r.code()), (403, "BOT_CHECK_FAILED"), "{r:?}");
    }
    let right_too_late = queue(&app, campaign, 1, Some(&answer)).await;
    assert_eq!(
        right_too_late.status, 403,
        "spent by the first try: {right_too_late:?}"
    );
    let samples = scrape(&app).await;
    assert_eq!(
        (
            bot_checks(&samples, "invalid"),
            bot_checks(&samples, "reused")
        ),
        (1.0, 20.0),
        "one derivation, then every try reused"
    );

    let fresh = made_here(campaign, 10, now + 300);
    assert_eq!(queue(&app, campaign, 2, Some(&fresh)).await.status, 202);
    let mut conn = app.redis.clone();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}bot:{}", app.redis_prefix, signature_of(&fresh)))
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        ttl > 250_000,
        "spent until the challenge expires (~300 s), not for this instance's 2 s: {ttl} ms"
    );
}

/// The cheap refusals come before the check's work: no challenge, and no verification, for a
/// campaign that does not exist or has no room to queue in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_without_a_room_gets_no_challenge_and_no_verification() {
    let app = spawn_app_with(pow_settings().await).await;
    let open = app.open_campaign(3, 1).await;
    let room = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let answer = solved(&app, room).await;
    for (id, status, code) in [
        (999_999, 404, "CAMPAIGN_NOT_FOUND"),
        (open, 422, "NO_WAITING_ROOM"),
    ] {
        let challenge = app.get(&format!("/api/v1/campaigns/{id}/bot-check")).await;
        assert_eq!(
            (challenge.status, challenge.code()),
            (status, code),
            "{challenge:?}"
        );
        let queued = queue(&app, id, 1, Some(&answer)).await;
        assert_eq!((queued.status, queued.code()), (status, code), "{queued:?}");
    }
    let samples = scrape(&app).await;
    for reason in ["passed", "invalid", "reused", "expired", "missing"] {
        assert_eq!(
            bot_checks(&samples, reason),
            0.0,
            "no verification: {reason}"
        );
    }
}

/// The admission token carries the pass: a ticket issued while the check was off (another
/// instance, or before a restart with it on) wins nothing where the check is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_ticket_was_issued_without_the_check_wins_nothing_where_it_is_on() {
    let settings = room_settings().await;
    let mut with_check = settings.clone();
    with_check.bot_check.mode = BotCheckMode::Pow;
    with_check.migrate_on_start = false;
    let open_door = spawn_app_with(settings).await;
    let checked = spawn_app_with(with_check).await;
    let campaign = room_campaign(&open_door, "QUEUE", 5, 100, json!({})).await;
    let queued = queue(&open_door, campaign, 1, None).await;
    assert_eq!(queued.status, 202, "{queued:?}");
    let ticket = queued.body["ticket"].as_str().expect("ticket").to_string();
    let admitted = poll_until(&open_door, campaign, &ticket, &["ADMITTED"]).await;
    let token = admitted.body["admissionToken"].as_str().expect("token");

    let refused = join_with(&checked, campaign, 1, Some(token)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "{refused:?}"
    );
    assert_eq!(checked.remaining_stock(campaign).await, 5, "nothing taken");
    assert_eq!(
        join_with(&open_door, campaign, 1, Some(token)).await.status,
        201
    );
}

/// Both join paths: the synchronous baseline passes the same check as the outbox path (it is
/// there to compare designs, not to be a side door).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_campaigns_join_needs_the_check_with_bot_check_on_join() {
    let mut settings = pow_settings().await;
    settings.bot_check.on_join = true;
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(6, 1).await;
    for (path, first) in [("participations", 1), ("participations/sync", 11)] {
        let join = |user: i64, bot: Option<String>| {
            let mut body = json!({"userId": user});
            if let Some(b) = bot {
                body["botCheck"] = json!(b);
            }
            let path = format!("/api/v1/campaigns/{campaign}/{path}");
            let app = &app;
            async move { app.post_json(&path, &body, None).await }
        };
        let stock = app.remaining_stock(campaign).await;
        for bot in [None, Some("junk".to_string())] {
            let refused = join(first, bot).await;
            assert_eq!(
                (refused.status, refused.code()),
                (403, "BOT_CHECK_FAILED"),
                "{path}: {refused:?}"
            );
        }
        assert_eq!(
            app.remaining_stock(campaign).await,
            stock,
            "{path}: nothing sold"
        );
        let answer = solved(&app, campaign).await;
        let won = join(first, Some(answer.clone())).await;
        assert_eq!(won.status, 201, "{path}: {won:?}");
        let again = join(first + 1, Some(answer)).await;
        assert_eq!(
            again.code(),
            "BOT_CHECK_FAILED",
            "{path}: each solution once: {again:?}"
        );
        assert_eq!(app.remaining_stock(campaign).await, stock - 1, "{path}");
    }
}

/// A stand-in for a captcha provider's `siteverify` (Turnstile's and hCaptcha's documented
/// API): a form POST with `secret` and `response`; `good` passes once (then
/// `timeout-or-duplicate`), `slow` answers after `delay`, anything else is refused.
async fn siteverify_server(delay: Duration) -> String {
    siteverify_server_counting(delay, Arc::default()).await
}

/// The calls a stand-in provider received, and those of token `held` it holds unanswered until
/// the test gives `release` a permit each (the most it held at once in `most`).
struct Calls {
    total: AtomicUsize,
    held: AtomicUsize,
    most: AtomicUsize,
    /// Held calls answered so far.
    answered: AtomicUsize,
    release: tokio::sync::Semaphore,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            total: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

/// [`siteverify_server`], counting the calls it receives in `calls`.
async fn siteverify_server_counting(delay: Duration, calls: Arc<Calls>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let used = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let used = used.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                let form = read_form(&mut stream).await;
                calls.total.fetch_add(1, Ordering::SeqCst);
                let field = |name: &str| {
                    form.split('&')
                        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                        .unwrap_or("")
                        .to_string()
                };
                let response = field("response");
                let answer = if field("secret") != "provider-secret" {
                    json!({"success": false, "error-codes": ["invalid-input-secret"]})
                } else if response == "slow" {
                    tokio::time::sleep(delay).await;
                    json!({"success": true})
                } else if response == "held" {
                    let now = calls.held.fetch_add(1, Ordering::SeqCst) + 1;
                    calls.most.fetch_max(now, Ordering::SeqCst);
                    calls.release.acquire().await.expect("open").forget();
                    calls.held.fetch_sub(1, Ordering::SeqCst);
                    calls.answered.fetch_add(1, Ordering::SeqCst);
                    json!({"success": true})
                } else if response == "good" {
                    let mut used = used.lock().expect("lock");
                    if used.contains(&response) {
                        json!({"success": false, "error-codes": ["timeout-or-duplicate"]})
                    } else {
                        used.push(response.clone());
                        json!({"success": true, "challenge_ts": "2026-11-27T00:00:00Z"})
                    }
                } else {
                    json!({"success": false, "error-codes": ["invalid-input-response"]})
                };
                // Turnstile's documented limit: a longer token is refused with a 400 and the
                // usual JSON; `broken` meets a provider in trouble (a 500 without it).
                let (status, body) = if response.len() > 2_048 {
                    (
                        "400 Bad Request",
                        json!({"success": false, "error-codes": ["invalid-input-response"]})
                            .to_string(),
                    )
                } else if response == "broken" {
                    ("500 Internal Server Error", "upstream trouble".to_string())
                } else {
                    ("200 OK", answer.to_string())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/siteverify")
}

/// The form body of one HTTP/1.1 request.
async fn read_form(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return body.to_string();
            }
        }
    }
    String::new()
}

/// `BOT_CHECK=turnstile` against the stand-in at `url`, a 300 ms deadline.
async fn captcha_settings(url: &str) -> firstcome::config::Settings {
    let mut s = room_settings().await;
    s.bot_check.mode = BotCheckMode::Turnstile;
    s.bot_check.siteverify_url = Some(url.parse().expect("url"));
    s.bot_check.siteverify_secret = firstcome::config::Secret::new("provider-secret");
    s.bot_check.siteverify_timeout = Duration::from_millis(300);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captcha_token_is_checked_with_the_providers_siteverify_closed_or_open_when_it_is_late() {
    let url = siteverify_server(Duration::from_secs(2)).await;
    let settings = captcha_settings(&url).await;
    let mut failing_open = settings.clone();
    failing_open.bot_check.fail_open = true;
    failing_open.migrate_on_start = false;
    let closed = spawn_app_with(settings).await;
    let campaign = room_campaign(&closed, "QUEUE", 5, 100, json!({})).await;
    let before = campaign_keys(&closed, campaign).await;
    let bad = queue(&closed, campaign, 1, Some("forged")).await;
    assert_eq!(
        (bad.status, bad.code()),
        (403, "BOT_CHECK_FAILED"),
        "{bad:?}"
    );
    let late = queue(&closed, campaign, 1, Some("slow")).await;
    assert_eq!(
        (late.status, late.code()),
        (503, "DEPENDENCY_UNAVAILABLE"),
        "{late:?}"
    );
    assert_eq!(
        campaign_keys(&closed, campaign).await,
        before,
        "nothing written"
    );
    assert_eq!(queue(&closed, campaign, 1, Some("good")).await.status, 202);
    let replayed = queue(&closed, campaign, 2, Some("good")).await;
    assert_eq!(
        replayed.code(),
        "BOT_CHECK_FAILED",
        "the provider's single use: {replayed:?}"
    );

    // A token the provider refuses with a 400 is the client's refusal, not an outage.
    let long = "x".repeat(3_000);
    let refused = queue(&closed, campaign, 4, Some(&long)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "{refused:?}"
    );
    let down = queue(&closed, campaign, 4, Some("broken")).await;
    assert_eq!(down.status, 503, "a 5xx is an outage: {down:?}");

    let open = spawn_app_with(failing_open).await;
    assert_eq!(
        queue(&open, campaign, 3, Some("slow")).await.status,
        202,
        "let through"
    );
    let refused = queue(&open, campaign, 5, Some(&long)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "BOT_CHECK_FAILED"),
        "fail-open lets no refusal through: {refused:?}"
    );
    assert_eq!(
        queue(&open, campaign, 5, Some("broken")).await.status,
        202,
        "a 5xx is an outage, let through"
    );
    let samples = scrape(&open).await;
    assert_eq!(bot_checks(&samples, "let_through"), 2.0);
    let samples = scrape(&closed).await;
    assert_eq!(bot_checks(&samples, "unavailable"), 2.0);
    assert_eq!(bot_checks(&samples, "reused"), 1.0);
}

/// The provider's calls are bounded (`BOT_CHECK_SITEVERIFY_MAX_IN_FLIGHT`): twelve checks at
/// once with room for two keep at most two calls at the provider, which answers a call only when
/// the test lets it; each check past the cap waits for a call to end (within its deadline) and
/// then makes its own, so all twelve pass, two at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siteverify_calls_in_flight_are_capped() {
    const CHECKS: usize = 12;
    let calls = Arc::new(Calls::default());
    let url = siteverify_server_counting(Duration::from_secs(2), calls.clone()).await;
    let mut settings = captcha_settings(&url).await;
    settings.bot_check.siteverify_max_in_flight = 2;
    settings.bot_check.siteverify_timeout = Duration::from_secs(30);
    let app = Arc::new(spawn_app_with(settings).await);
    let campaign = room_campaign(&app, "QUEUE", 5, 100, json!({})).await;
    let checks = tokio::spawn({
        let app = app.clone();
        async move {
            futures::future::join_all(
                (1..=CHECKS as i64).map(|user| queue(&app, campaign, user, Some("held"))),
            )
            .await
        }
    });
    for released in 0..CHECKS {
        // The provider holds two calls (fewer only once fewer are left), then one is let go.
        let expected = 2.min(CHECKS - released);
        wait_until(
            &format!("the provider to have answered {released} and hold {expected} calls"),
            Duration::from_secs(20),
            || async {
                calls.answered.load(Ordering::SeqCst) == released
                    && calls.held.load(Ordering::SeqCst) == expected
            },
        )
        .await;
        calls.release.add_permits(1);
    }
    for r in checks.await.expect("checks") {
        assert_eq!(r.status, 202, "{r:?}");
    }
    assert_eq!(calls.total.load(Ordering::SeqCst), CHECKS);
    assert_eq!(
        calls.most.load(Ordering::SeqCst),
        2,
        "at most 2 provider calls at once"
    );
}
