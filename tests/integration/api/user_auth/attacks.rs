//! Each protected call against each attack, on an HS256 setup with an issuer and an audience:
//! the answer's status and code, and nothing written (the boundary sweep's snapshot of every row
//! the API writes and every Redis key of the app).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::{
    api::boundary_sweep::runner::{changed, snapshot},
    http::Reply,
    jwt::{claims, hs256, now, sign, token, unsigned, with_jwt, JWT_SECRET},
    spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// The victim: user 1, who holds a win. The attacker is user 2.
const VICTIM: i64 = 1;
const ATTACKER: i64 = 2;

/// `Authorization` values that must get 401 UNAUTHENTICATED, by name.
fn unauthenticated() -> Vec<(&'static str, Option<String>)> {
    let with = |key: &str, value: Value| {
        let mut c = claims(VICTIM);
        c[key] = value;
        c
    };
    let bearer = |t: String| Some(format!("Bearer {t}"));
    let mut no_exp = claims(VICTIM);
    no_exp.as_object_mut().expect("object").remove("exp");
    vec![
        ("no token", None),
        (
            "expired",
            bearer(hs256(
                JWT_SECRET.as_bytes(),
                &with("exp", json!(now() - 3_600)),
            )),
        ),
        ("without exp", bearer(hs256(JWT_SECRET.as_bytes(), &no_exp))),
        (
            "not yet valid",
            bearer(hs256(
                JWT_SECRET.as_bytes(),
                &with("nbf", json!(now() + 3_600)),
            )),
        ),
        (
            "wrong signature",
            bearer(hs256(
                b"another-secret-of-32-bytes-or-more!!",
                &claims(VICTIM),
            )),
        ),
        ("alg none", bearer(unsigned(&claims(VICTIM)))),
        (
            "HS512",
            bearer(sign(
                Algorithm::HS512,
                &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
                &claims(VICTIM),
            )),
        ),
        (
            "wrong issuer",
            bearer(hs256(
                JWT_SECRET.as_bytes(),
                &with("iss", json!("https://evil.test")),
            )),
        ),
        (
            "wrong audience",
            bearer(hs256(
                JWT_SECRET.as_bytes(),
                &with("aud", json!("another-service")),
            )),
        ),
        (
            "user claim 0",
            bearer(hs256(JWT_SECRET.as_bytes(), &with("sub", json!("0")))),
        ),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("two segments", Some("Bearer abc.def".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("basic scheme", Some(format!("Basic {}", token(VICTIM)))),
        ("the admin token", Some(format!("Bearer {ADMIN_TOKEN}"))),
        (
            "64 KiB",
            bearer(format!(
                "{}.{}.{}",
                "a".repeat(21_845),
                "b".repeat(21_845),
                "c".repeat(21_845)
            )),
        ),
    ]
}

/// One protected call for `user`, with `auth` as its `Authorization` header.
async fn call(app: &TestApp, campaign: i64, what: &str, user: i64, auth: Option<&str>) -> Reply {
    let (method, path, body) = match what {
        "join" => (
            "POST",
            format!("/api/v1/campaigns/{campaign}/participations"),
            Some(json!({"userId": user})),
        ),
        "join sync" => (
            "POST",
            format!("/api/v1/campaigns/{campaign}/participations/sync"),
            Some(json!({"userId": user})),
        ),
        "confirm" => (
            "POST",
            format!("/api/v1/campaigns/{campaign}/participations/{user}/confirm"),
            Some(json!({})),
        ),
        "cancel" => (
            "POST",
            format!("/api/v1/campaigns/{campaign}/participations/{user}/cancel"),
            Some(json!({})),
        ),
        "rewards" => ("GET", format!("/api/v1/users/{user}/rewards"), None),
        other => panic!("no call {other}"),
    };
    let mut req = app
        .client
        .request(method.parse().expect("method"), app.url(&path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    app.send(req).await
}

const CALLS: [&str; 5] = ["join", "join sync", "confirm", "cancel", "rewards"];

#[tokio::test]
async fn every_protected_call_refuses_each_attack_with_its_code_and_writes_nothing() {
    let app = spawn_app_with(with_jwt(test_settings().await)).await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let victim = format!("Bearer {}", token(VICTIM));
    let won = call(&app, campaign, "join", VICTIM, Some(&victim)).await;
    assert_eq!(
        (won.status, won.body["status"].clone()),
        (201, json!("HELD")),
        "{won:?}"
    );

    let mut failures = Vec::new();
    let before = snapshot(&app).await;
    let foreign = format!("Bearer {}", token(ATTACKER));
    for what in CALLS {
        let attacks = unauthenticated()
            .into_iter()
            .map(|(n, a)| (n, a, 401, "UNAUTHENTICATED"));
        let mismatch = [(
            "another user's token",
            Some(foreign.clone()),
            403,
            "USER_MISMATCH",
        )];
        for (name, auth, status, code) in attacks.chain(mismatch) {
            if what == "cancel" && name == "the admin token" {
                continue; // an admin's refund, not an attack: tested below
            }
            // The victim's win (confirm, cancel, a second join) and a fresh user's join.
            for user in [VICTIM, 3] {
                let reply = call(&app, campaign, what, user, auth.as_deref()).await;
                let after = snapshot(&app).await;
                let wrote = changed(&before, &after);
                if (reply.status, reply.code()) != (status, code) || !wrote.is_empty() {
                    failures.push(format!(
                        "{what} for user {user} with {name}: {} {} (changed: {wrote:?})",
                        reply.status, reply.body
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        !app.redis_has_user(campaign, 3).await,
        "nothing reserved for user 3"
    );

    rightful_users_still_can(&app, campaign, &victim).await;
}

/// After the attacks: the victim confirms, a new user joins and cancels, rewards read, and an
/// admin still refunds anyone's win.
async fn rightful_users_still_can(app: &TestApp, campaign: i64, victim: &str) {
    let victim = victim.to_string();
    let confirmed = call(app, campaign, "confirm", VICTIM, Some(&victim)).await;
    assert_eq!(
        (confirmed.status, confirmed.body["status"].clone()),
        (200, json!("CONFIRMED"))
    );
    let third = format!("Bearer {}", token(3));
    let joined = call(app, campaign, "join", 3, Some(&third)).await;
    assert_eq!(joined.status, 201, "{joined:?}");
    let cancelled = call(app, campaign, "cancel", 3, Some(&third)).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].clone()),
        (200, json!("CANCELLED"))
    );
    let rewards = call(app, campaign, "rewards", VICTIM, Some(&victim)).await;
    assert_eq!(rewards.status, 200, "{rewards:?}");
    // An admin still refunds anyone's win.
    let refund = app
        .post_json(
            &format!("/api/v1/campaigns/{campaign}/participations/{VICTIM}/cancel"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(
        (refund.status, refund.body["status"].clone()),
        (200, json!("CANCELLED"))
    );
}

#[tokio::test]
async fn another_users_token_never_cancels_or_wins_and_the_rightful_user_still_can() {
    let app = spawn_app_with(with_jwt(test_settings().await)).await;
    let campaign = app
        .open_campaign_with(1, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    let victim = format!("Bearer {}", token(VICTIM));
    let attacker = format!("Bearer {}", token(ATTACKER));
    assert_eq!(
        call(&app, campaign, "join", VICTIM, Some(&victim))
            .await
            .status,
        201
    );
    // Walking user ids with one's own token cancels nobody.
    for user in [VICTIM, 3, 4] {
        let reply = call(&app, campaign, "cancel", user, Some(&attacker)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (403, "USER_MISMATCH"),
            "{reply:?}"
        );
    }
    assert_eq!(
        app.redis_stock(campaign).await,
        Some(0),
        "the unit stays held"
    );
    // Joining as someone else wins nothing; joining as oneself meets the sold-out sale.
    let reply = call(&app, campaign, "join", 5, Some(&attacker)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "USER_MISMATCH"),
        "{reply:?}"
    );
    let reply = call(&app, campaign, "join", ATTACKER, Some(&attacker)).await;
    assert_eq!((reply.status, reply.code()), (409, "SOLD_OUT"), "{reply:?}");
    // The victim's own cancel works, and the unit goes to the next rightful user.
    let reply = call(&app, campaign, "cancel", VICTIM, Some(&victim)).await;
    assert_eq!(
        (reply.status, reply.body["status"].clone()),
        (200, json!("CANCELLED"))
    );
    // The instance's sold-out memo forgets the sale within SOLD_OUT_MEMO_MS; until then a
    // join is refused (and writes nothing).
    wait_until(
        "the returned unit to sell to its rightful user",
        Duration::from_secs(10),
        || async {
            call(&app, campaign, "join", ATTACKER, Some(&attacker))
                .await
                .status
                == 201
        },
    )
    .await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM participation WHERE campaign_id = {campaign}"
        ))
        .await,
        2
    );
}
