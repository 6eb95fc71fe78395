//! A poll is checked before it moves the room (docs/design.md §16): the room's step refreshes the
//! ticket and admits whoever is due, so a poll refused for its token (missing, invalid, another
//! user's), its ticket (never issued, another campaign's) or its holder's rate limit must leave
//! every key of the campaign in Redis as it was.

use std::collections::BTreeMap;

use serde_json::json;

use super::{room_campaign, room_settings, SECRET};
use crate::{
    http::Reply,
    jwt::{hs256, token, with_jwt},
    spawn::{spawn_app_with, TestApp},
};

/// Every key of `campaign`'s hash tag (the gate's and the room's), with its contents.
pub(super) async fn campaign_keys(app: &TestApp, campaign: i64) -> BTreeMap<String, String> {
    let mut conn = app.redis.clone();
    let pattern = format!("{}{{c:{campaign}}}:*", app.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let read = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
            _ => redis::cmd("GET").arg(&key).clone(),
        };
        let mut value: Vec<String> = read.query_async(&mut conn).await.expect("read a key");
        if kind == "hash" || kind == "set" {
            // Their order is Redis's, not the contents'.
            let mut pairs: Vec<String> = match kind.as_str() {
                "hash" => value.chunks(2).map(|p| p.join("=")).collect(),
                _ => value,
            };
            pairs.sort();
            value = pairs;
        }
        out.insert(key, format!("{kind}: {}", value.join(" ")));
    }
    out
}

async fn enqueue_as(app: &TestApp, campaign: i64, user: i64) -> String {
    let reply = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/campaigns/{campaign}/queue")))
                .bearer_auth(token(user))
                .json(&json!({ "userId": user })),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    reply.body["ticket"].as_str().expect("ticket").to_string()
}

async fn poll_as(app: &TestApp, campaign: i64, ticket: &str, bearer: Option<&str>) -> Reply {
    let mut request = app
        .client
        .get(app.url(&format!("/api/v1/campaigns/{campaign}/queue/{ticket}")));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    app.send(request).await
}

#[tokio::test]
async fn a_poll_refused_for_its_token_ticket_or_rate_limit_changes_nothing_in_redis() {
    // USER_AUTH=jwt; each user's bucket holds one call and refills one a second.
    let mut settings = with_jwt(room_settings().await);
    settings.rate_limits.user_per_second = Some(1);
    settings.rate_limits.user_burst = Some(1);
    let app = spawn_app_with(settings).await;
    // One admission a second, stock 10: a step admits someone whenever it runs.
    let a = room_campaign(&app, "QUEUE", 10, 1, json!({})).await;
    let b = room_campaign(&app, "QUEUE", 10, 1, json!({})).await;
    let other = enqueue_as(&app, b, 3).await;
    let second = enqueue_as(&app, a, 2).await;
    let first = enqueue_as(&app, a, 1).await;
    assert_ne!(first, second);

    let before = campaign_keys(&app, a).await;
    assert!(
        before.keys().any(|k| k.ends_with(":qt")),
        "the room's keys are read: {before:#?}"
    );
    let refused = |reply: Reply, status: u16, code: &str| {
        assert_eq!((reply.status, reply.code()), (status, code), "{reply:?}");
    };
    // User 1's bucket was emptied by their queueing a moment ago.
    refused(
        poll_as(&app, a, &first, Some(&token(1))).await,
        429,
        "RATE_LIMITED",
    );
    refused(poll_as(&app, a, &first, None).await, 401, "UNAUTHENTICATED");
    let forged = hs256(b"another-secret-0123456789abcdef", &crate::jwt::claims(1));
    refused(
        poll_as(&app, a, &first, Some(&forged)).await,
        401,
        "UNAUTHENTICATED",
    );
    refused(
        poll_as(&app, a, &first, Some(SECRET)).await,
        401,
        "UNAUTHENTICATED",
    );
    refused(
        poll_as(&app, a, &first, Some(&token(2))).await,
        403,
        "USER_MISMATCH",
    );
    refused(
        poll_as(&app, a, "AAAAAAAAAAAAAAAAAAAAAA", Some(&token(1))).await,
        404,
        "TICKET_NOT_FOUND",
    );
    refused(
        poll_as(&app, a, &other, Some(&token(3))).await,
        404,
        "TICKET_NOT_FOUND",
    );
    assert_eq!(
        campaign_keys(&app, a).await,
        before,
        "a refused poll moved the room"
    );

    // The control: a poll that passes its checks does move it.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let polled = poll_as(&app, a, &second, Some(&token(2))).await;
    assert_eq!(polled.status, 200, "{polled:?}");
    assert_ne!(campaign_keys(&app, a).await, before);
}
