//! The reads of participations under each `USER_AUTH` (docs/design.md §3): with `jwt`, a user's
//! participation is that user's (or an admin's) to read, and the list, which names every winner,
//! an admin's only; with `none`, both stay public.

use serde_json::json;

use crate::{
    http::Reply,
    jwt::{claims, hs256, now, token, with_jwt, JWT_SECRET},
    spawn::{spawn_app, spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
};

/// GET `path` with `auth` as its `Authorization` header.
async fn read(app: &TestApp, path: &str, auth: Option<&str>) -> Reply {
    let mut req = app.client.get(app.url(path));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    app.send(req).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An app with `USER_AUTH=jwt` and a campaign that user 1 joined with its own token; the
/// campaign and that token's `Authorization` value.
async fn app_with_a_win() -> (TestApp, i64, String) {
    let app = spawn_app_with(with_jwt(test_settings().await)).await;
    let campaign = app.open_campaign(5, 1).await;
    let own = bearer(&token(1));
    let joined = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/campaigns/{campaign}/participations")))
                .header("authorization", &own)
                .json(&json!({"userId": 1})),
        )
        .await;
    assert_eq!(joined.status, 201, "{joined:?}");
    (app, campaign, own)
}

#[tokio::test]
async fn under_jwt_a_users_participation_is_read_with_that_users_token_or_an_admins() {
    let (app, campaign, own) = app_with_a_win().await;
    let path = format!("/api/v1/campaigns/{campaign}/participations/1");

    let mut expired = claims(1);
    expired["exp"] = json!(now() - 3_600);
    let expired = bearer(&hs256(JWT_SECRET.as_bytes(), &expired));
    for (name, auth, status, code) in [
        ("no token", None, 401, "UNAUTHENTICATED"),
        ("an expired token", Some(expired), 401, "UNAUTHENTICATED"),
        (
            "a forged token",
            Some(bearer("not.a.jwt")),
            401,
            "UNAUTHENTICATED",
        ),
        (
            "another user's token",
            Some(bearer(&token(2))),
            403,
            "USER_MISMATCH",
        ),
    ] {
        let reply = read(&app, &path, auth.as_deref()).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{name}: {reply:?}"
        );
        assert!(
            reply.body.get("participationId").is_none(),
            "{name}: {reply:?}"
        );
    }
    for (name, auth) in [
        ("the user's own token", own),
        ("an admin token", bearer(ADMIN_TOKEN)),
    ] {
        let reply = read(&app, &path, Some(&auth)).await;
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
        assert_eq!(reply.body["userId"], 1, "{name}: {reply:?}");
        assert_eq!(reply.body["campaignId"], campaign, "{name}: {reply:?}");
    }
    // A user without a win learns only that, and only with their own token.
    let none_yet = format!("/api/v1/campaigns/{campaign}/participations/3");
    let reply = read(&app, &none_yet, Some(&bearer(&token(3)))).await;
    assert_eq!(
        (reply.status, reply.code()),
        (404, "PARTICIPATION_NOT_FOUND")
    );
    let reply = read(&app, &none_yet, Some(&bearer(&token(1)))).await;
    assert_eq!((reply.status, reply.code()), (403, "USER_MISMATCH"));
}

#[tokio::test]
async fn under_jwt_the_list_of_participations_is_for_admins_only() {
    let (app, campaign, own) = app_with_a_win().await;
    let path = format!("/api/v1/campaigns/{campaign}/participations");

    for (name, auth) in [
        ("no token", None),
        ("a user's valid token", Some(own)),
        (
            "a wrong admin token",
            Some(bearer("not-the-admin-token-0123456789")),
        ),
    ] {
        let reply = read(&app, &path, auth.as_deref()).await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, "UNAUTHORIZED"),
            "{name}: {reply:?}"
        );
        assert!(reply.body.get("items").is_none(), "{name}: {reply:?}");
    }
    let reply = read(&app, &path, Some(&bearer(ADMIN_TOKEN))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let users: Vec<i64> = reply.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["userId"].as_i64())
        .collect();
    assert_eq!(users, [1]);
}

#[tokio::test]
async fn under_none_both_reads_stay_public() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 1, 1).await.status, 201);
    let one = format!("/api/v1/campaigns/{campaign}/participations/1");
    let list = format!("/api/v1/campaigns/{campaign}/participations");
    // Whatever comes along: with `none` nobody's token is looked at.
    for auth in [
        None,
        Some(bearer(&token(2))),
        Some(bearer("anything-at-all")),
    ] {
        let reply = read(&app, &one, auth.as_deref()).await;
        assert_eq!(
            (reply.status, reply.body["userId"].clone()),
            (200, json!(1)),
            "{auth:?}"
        );
        let reply = read(&app, &list, auth.as_deref()).await;
        assert_eq!(reply.status, 200, "{auth:?}: {reply:?}");
        assert_eq!(reply.body["items"][0]["userId"], 1, "{auth:?}: {reply:?}");
    }
}

/// Under `jwt` no answer about a purchase id tells a caller it is not for whether it exists
/// (docs/design.md §17): without a valid token every call answers 401 before anything is looked
/// up, and another user's valid token gets 404, as for an id that does not exist. (It answered
/// 401 for one that exists and 404 for one that does not, and 403 to another user.)
#[tokio::test]
async fn under_jwt_a_purchase_id_answers_alike_whether_it_exists_or_not_to_a_caller_it_is_not_for()
{
    let app = spawn_app_with(with_jwt(test_settings().await)).await;
    let g = crate::drops::support::group(&app, 10, 1).await;
    let held = json!({"groupId": g, "confirmWithinSeconds": 600});
    let c = app.open_campaign_with(5, 1, held).await;
    let own = bearer(&token(1));
    let bought = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/groups/{g}/purchases")))
                .header("authorization", &own)
                .json(&json!({"userId": 1, "items": [{"campaignId": c}]})),
        )
        .await;
    assert_eq!(bought.status, 201, "{bought:?}");
    let id = bought.body["purchaseId"].as_i64().expect("purchaseId");
    let other = bearer(&token(2));
    for suffix in ["", "/confirm", "/cancel"] {
        for purchase in [id, id + 1_000] {
            let path = format!("/api/v1/groups/{g}/purchases/{purchase}{suffix}");
            let ask = |auth: Option<&str>| {
                let mut req = match suffix {
                    "" => app.client.get(app.url(&path)),
                    _ => app.client.post(app.url(&path)).json(&json!({})),
                };
                if let Some(auth) = auth {
                    req = req.header("authorization", auth);
                }
                app.send(req)
            };
            let anonymous = ask(None).await;
            assert_eq!(
                (anonymous.status, anonymous.code()),
                (401, "UNAUTHENTICATED"),
                "{path} without a token: {anonymous:?}"
            );
            let foreign = ask(Some(&other)).await;
            assert_eq!(
                (foreign.status, foreign.code()),
                (404, "PURCHASE_NOT_FOUND"),
                "{path} with another user's token: {foreign:?}"
            );
        }
    }
    let path = format!("/api/v1/groups/{g}/purchases/{id}");
    assert_eq!(read(&app, &path, Some(&own)).await.status, 200);
    assert_eq!(
        read(&app, &path, Some(&bearer(ADMIN_TOKEN))).await.status,
        200
    );
}
