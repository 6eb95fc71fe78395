//! Guessing at the admin tokens through the calls a user may make (issue 57, docs/design.md §17):
//! a bearer that is neither an admin token nor shaped like a JWT is a failed admin attempt on
//! every call that reads a bearer, counted and limited per client; a user's own JWT (valid or
//! expired) never spends, nor meets, another client's failed attempts at the same address.

use serde_json::json;

use crate::{
    http::Reply,
    jwt::{claims, hs256, now, token, with_jwt, JWT_SECRET},
    operations::metrics::exposition::{scrape, sum},
    spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
};

/// Failed admin attempts one client may make before the door shuts (refilled at 1 a minute).
const BURST: u32 = 3;

/// `USER_AUTH=jwt`, the admin door at [`BURST`], and a campaign user 1 won with its own token
/// (held, so that the user may cancel it).
async fn app_with_a_win() -> (TestApp, i64) {
    let mut s = with_jwt(test_settings().await);
    s.admin_door.burst = BURST;
    s.admin_door.per_minute = 1;
    let app = spawn_app_with(s).await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let joined = call(&app, "POST", &participations(campaign, ""), Some(&token(1))).await;
    assert_eq!(joined.status, 201, "{joined:?}");
    (app, campaign)
}

fn participations(campaign: i64, rest: &str) -> String {
    format!("/api/v1/campaigns/{campaign}/participations{rest}")
}

/// `method path` with `bearer`; a join carries user 1's body, another POST an empty one.
async fn call(app: &TestApp, method: &str, path: &str, bearer: Option<&str>) -> Reply {
    let mut req = app
        .client
        .request(method.parse().expect("a method"), app.url(path));
    if path.ends_with("/participations") {
        req = req.json(&json!({"userId": 1}));
    } else if method == "POST" {
        req = req.json(&json!({}));
    }
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    app.send(req).await
}

async fn failures(app: &TestApp) -> f64 {
    sum(
        &scrape(app).await,
        "firstcome_admin_auth_failures_total",
        &[],
    )
}

#[tokio::test]
async fn guesses_through_the_calls_a_user_may_make_are_counted_and_limited() {
    let (app, campaign) = app_with_a_win().await;
    let read = participations(campaign, "/1");
    let cancel = participations(campaign, "/1/cancel");
    let guesses = ["aaaaaaaaaaaaaaab", "0123456789abcdef", "passwordpassword"];
    for (i, guess) in guesses.iter().enumerate() {
        let (method, path) = if i % 2 == 0 {
            ("GET", &read)
        } else {
            ("POST", &cancel)
        };
        let refused = call(&app, method, path, Some(guess)).await;
        assert_eq!(refused.status, 401, "{guess}: {refused:?}");
    }
    assert_eq!(failures(&app).await, f64::from(BURST));
    // The door is shut: the next guess is not judged, on either call, nor is the right token.
    for (method, path, bearer) in [
        ("GET", &read, "passwordpassword"),
        ("POST", &cancel, "0123456789abcdef"),
        ("GET", &read, ADMIN_TOKEN),
    ] {
        let refused = call(&app, method, path, Some(bearer)).await;
        assert_eq!(
            (refused.status, refused.code()),
            (429, "RATE_LIMITED"),
            "{method} {path}: {refused:?}"
        );
        assert!(refused.headers.contains_key("retry-after"), "{refused:?}");
    }
    // And the win is untouched.
    let win = app.admin_get(&read).await;
    assert_eq!(
        win.status, 429,
        "the admin's address is the guesser's: {win:?}"
    );
}

#[tokio::test]
async fn a_user_with_a_jwt_is_not_locked_out_by_another_clients_guesses() {
    let (app, campaign) = app_with_a_win().await;
    let read = participations(campaign, "/1");
    // Another client guesses on the admin API until its door shuts; its address is the user's
    // too (both are 127.0.0.1, as behind one NAT).
    let outbox = "/api/v1/admin/outbox";
    for _ in 0..BURST {
        let guess = call(&app, "GET", outbox, Some("not-an-admin-token-0123456789")).await;
        assert_eq!(guess.status, 401, "{guess:?}");
    }
    let guess = call(&app, "GET", &read, Some("not-an-admin-token-0123456789")).await;
    assert_eq!(guess.status, 429, "{guess:?}");
    let before = failures(&app).await;
    // An expired token of the user: 401 for what it is, never the door's 429, never counted.
    let mut expired = claims(1);
    expired["exp"] = json!(now() - 3_600);
    let expired = hs256(JWT_SECRET.as_bytes(), &expired);
    let stale = call(&app, "GET", &read, Some(&expired)).await;
    assert_eq!((stale.status, stale.code()), (401, "UNAUTHENTICATED"));
    // The user's valid token reads the win and cancels it.
    let own = token(1);
    let win = call(&app, "GET", &read, Some(&own)).await;
    assert_eq!(win.status, 200, "{win:?}");
    let cancelled = call(
        &app,
        "POST",
        &participations(campaign, "/1/cancel"),
        Some(&own),
    )
    .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(
        failures(&app).await,
        before,
        "a user's token is no failed attempt"
    );
}
