//! A campaign's creation, idempotent and bounded (issue 71 #5, docs/design.md §17, §21): a retry
//! with its `Idempotency-Key` answers the campaign the key made instead of making a second; the
//! same key with another request is refused; keys are each admin token's own; bucketed campaigns
//! open at once are capped in buckets by `CAMPAIGN_BUCKETS_MAX_TOTAL`.

use serde_json::{json, Value};

use super::admin_tokens::{spawn_with_named_tokens, ALICE, BOB};
use crate::{
    http::Reply,
    spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
};

async fn create(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut req = app
        .client
        .post(app.url("/api/v1/campaigns"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    app.send(req).await
}

#[tokio::test]
async fn a_creation_retried_with_its_key_makes_one_campaign() {
    let app = spawn_with_named_tokens().await;
    let body = json!({"name": "once", "totalStock": 50, "buckets": 4});
    let first = create(&app, ALICE, Some("create-1"), &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = create(&app, ALICE, Some("create-1"), &body).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(
        again.body["id"], first.body["id"],
        "the campaign the key made"
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 1);

    let other = json!({"name": "once", "totalStock": 51, "buckets": 4});
    let reused = create(&app, ALICE, Some("create-1"), &other).await;
    assert_eq!(
        (reused.status, reused.code()),
        (422, "IDEMPOTENCY_KEY_REUSED"),
        "{reused:?}"
    );
    // Another admin's key of the same text is their own.
    let bobs = create(&app, BOB, Some("create-1"), &body).await;
    assert_eq!(bobs.status, 201, "{bobs:?}");
    assert_ne!(bobs.body["id"], first.body["id"]);
    // Without a key every call creates.
    for _ in 0..2 {
        assert_eq!(create(&app, ALICE, None, &body).await.status, 201);
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 4);
}

/// The cap is judged where creations serialize (the one row of `bucket_budget`): six creations
/// of 4 buckets at once under a cap of 8 make exactly two campaigns, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bucketed_creations_never_fit_more_than_the_cap() {
    let mut settings = test_settings().await;
    settings.database.buckets_max_total = 8;
    let app = spawn_app_with(settings).await;
    let body = json!({"name": "b", "totalStock": 40, "buckets": 4});
    let answers =
        futures::future::join_all((0..6).map(|_| create(&app, ADMIN_TOKEN, None, &body))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers.iter().filter(|a| a.status == 400).count();
    assert_eq!((created, refused), (2, 4), "{answers:?}");
    assert_eq!(
        app.scalar("SELECT CAST(COALESCE(SUM(buckets), 0) AS SIGNED) FROM campaign")
            .await,
        8
    );
}

#[tokio::test]
async fn two_creations_with_one_key_at_once_make_one_campaign() {
    let app = spawn_with_named_tokens().await;
    let body = json!({"name": "race", "totalStock": 5});
    let (a, b) = tokio::join!(
        create(&app, ALICE, Some("same"), &body),
        create(&app, ALICE, Some("same"), &body)
    );
    assert_eq!((a.status, b.status), (201, 201), "{a:?} {b:?}");
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 1);
}

#[tokio::test]
async fn bucketed_campaigns_open_at_once_are_capped_in_buckets() {
    let mut settings = test_settings().await;
    settings.database.buckets_max_total = 100;
    let app = spawn_app_with(settings).await;
    let bucketed = json!({"name": "b", "totalStock": 500, "buckets": 64});
    let first = create(&app, ADMIN_TOKEN, None, &bucketed).await;
    assert_eq!(first.status, 201, "{first:?}");
    let refused = create(&app, ADMIN_TOKEN, None, &bucketed).await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "VALIDATION_FAILED"),
        "{refused:?}"
    );
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("CAMPAIGN_BUCKETS_MAX_TOTAL")),
        "{refused:?}"
    );
    let small = json!({"name": "s", "totalStock": 500, "buckets": 36});
    assert_eq!(
        create(&app, ADMIN_TOKEN, None, &small).await.status,
        201,
        "64 + 36 fit"
    );
    let plain = json!({"name": "p", "totalStock": 500});
    assert_eq!(
        create(&app, ADMIN_TOKEN, None, &plain).await.status,
        201,
        "unbucketed: not counted"
    );

    // A closed campaign's buckets are free again.
    let id = first.body["id"].as_i64().expect("id");
    let closed = app
        .post_json(
            &format!("/api/v1/admin/campaigns/{id}/close"),
            &json!({}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(closed.status, 200, "{closed:?}");
    assert_eq!(create(&app, ADMIN_TOKEN, None, &bucketed).await.status, 201);
}
