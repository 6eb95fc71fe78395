//! Named admin tokens (`ADMIN_TOKENS`, with `ADMIN_TOKEN` as the one named `admin`): each token
//! acts as its name, which the service records on what it did (a redrive's answer here; the log
//! line in `operations::tracing`); anything else, a near miss included, is 401 and does nothing.

use firstcome::config::{NamedToken, Secret};
use serde_json::json;

use crate::spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN};

pub(super) const ALICE: &str = "Xk4Rp9Lm2Qv7Wt3Zn8Hb5Jc1Fd6Gs0a";
pub(super) const BOB: &str = "Mh3Tz8Qw5Lr1Vk9Pn4Jx7Cb2Fg6Ds0b";

/// An app with the admin tokens `alice` ([`ALICE`]) and `bob` ([`BOB`]) beside `ADMIN_TOKEN`.
pub(super) async fn spawn_with_named_tokens() -> TestApp {
    let mut settings = test_settings().await;
    settings.admin_tokens = [("alice", ALICE), ("bob", BOB)]
        .map(|(name, token)| NamedToken {
            name: name.into(),
            token: Secret::new(token),
        })
        .to_vec();
    spawn_app_with(settings).await
}

/// POST `path` with `token`; the status and, for a success, the body.
async fn post(app: &TestApp, path: &str, token: &str) -> crate::http::Reply {
    app.post_json(path, &json!({}), Some(token)).await
}

#[tokio::test]
async fn each_named_token_acts_as_its_name_and_near_misses_are_refused() {
    let app = spawn_with_named_tokens().await;
    let body = json!({"name": "named", "totalStock": 5});
    for token in [ALICE, BOB, ADMIN_TOKEN] {
        let created = app.post_json("/api/v1/campaigns", &body, Some(token)).await;
        assert_eq!(created.status, 201, "{created:?}");
    }
    let near_misses = [&ALICE[..ALICE.len() - 1], &format!("{BOB}x"), "alice", ""];
    for token in near_misses {
        let refused = app.post_json("/api/v1/campaigns", &body, Some(token)).await;
        assert_eq!(
            (refused.status, refused.code()),
            (401, "UNAUTHORIZED"),
            "{token:?}: {refused:?}"
        );
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 3);

    let campaign = app.open_campaign(5, 1).await;
    for (token, name) in [(ALICE, "alice"), (BOB, "bob"), (ADMIN_TOKEN, "admin")] {
        let path = format!("/api/v1/admin/outbox/redrive?campaignId={campaign}");
        let redriven = post(&app, &path, token).await;
        assert_eq!(redriven.status, 200, "{redriven:?}");
        assert_eq!(redriven.body["redrivenBy"], name, "{redriven:?}");
    }
    let refused = post(
        &app,
        &format!("/api/v1/admin/outbox/redrive?campaignId={campaign}"),
        "carol-token-0123456789",
    )
    .await;
    assert_eq!(refused.status, 401, "{refused:?}");

    // A refund by a named admin; a user's own token-less cancel of a confirmed win is refused.
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
    let cancel = format!("/api/v1/campaigns/{campaign}/participations/7/cancel");
    let user = app.post_json(&cancel, &json!({}), None).await;
    assert_eq!((user.status, user.code()), (409, "ALREADY_CONFIRMED"));
    let refund = post(&app, &cancel, BOB).await;
    assert_eq!(refund.status, 200, "{refund:?}");
    assert_eq!(refund.body["status"], "CANCELLED", "{refund:?}");
}

/// An admin call checks its token before it reads its body (docs/design.md §17): a caller
/// without the token learns nothing from the body's 400 messages, however wrong the body, and a
/// wrong token is still a counted guess. The admin's own wrong body is still told why.
#[tokio::test]
async fn an_admin_calls_token_is_checked_before_its_body_is_validated() {
    let app = spawn_with_named_tokens().await;
    let bodies = [
        json!({"name": "x", "totalStock": -1}),
        json!({"name": 5}),
        json!({"totalStock": 5, "buckets": 4096}),
    ];
    for body in &bodies {
        for token in [None, Some("not-an-admin-token-0123456789")] {
            let refused = app.post_json("/api/v1/campaigns", body, token).await;
            assert_eq!(
                (refused.status, refused.code()),
                (401, "UNAUTHORIZED"),
                "{token:?} {body}: {refused:?}"
            );
            assert!(
                !refused.body.to_string().contains("totalStock"),
                "nothing of the body's validation is told: {refused:?}"
            );
        }
        let told = app.post_json("/api/v1/campaigns", body, Some(ALICE)).await;
        assert_eq!(told.status, 400, "the admin is told why: {told:?}");
    }
    let group = app
        .post_json("/api/v1/groups", &json!({"name": 7}), None)
        .await;
    assert_eq!(group.status, 401, "{group:?}");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 0);
}
