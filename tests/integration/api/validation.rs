//! Bad input gets the documented 4xx JSON error and writes nothing (docs/design.md §2.6).

use serde_json::{json, Value};

use crate::{
    http::Reply,
    spawn::{spawn_app, TestApp, ADMIN_TOKEN},
};

async fn raw_post(app: &TestApp, path: &str, body: &'static str) -> Reply {
    app.send(
        app.client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!((reply.status, reply.code()), (status, code), "{reply:?}");
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{reply:?}"
    );
}

#[tokio::test]
async fn bad_participation_requests_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 2).await;
    let path = format!("/api/v1/campaigns/{campaign}/participations");
    let path: &'static str = Box::leak(path.into_boxed_str());

    assert_error(
        &raw_post(&app, path, "{\"userId\": 1,").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &raw_post(&app, path, "not json").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &raw_post(&app, path, "{\"userId\": \"abc\"}").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &raw_post(&app, path, "{\"userId\": 1.5}").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(&raw_post(&app, path, "{}").await, 400, "VALIDATION_FAILED");
    assert_error(
        &raw_post(&app, path, "{\"userId\": 1, \"extra\": true}").await,
        400,
        "VALIDATION_FAILED",
    );
    for (user, quantity) in [(0, 1), (-5, 1), (1, 0), (1, -1), (1, 3)] {
        let reply = app.join(campaign, user, quantity).await;
        assert_error(&reply, 400, "VALIDATION_FAILED");
    }
    assert_error(
        &raw_post(&app, path, "{\"userId\": 99999999999999999999}").await,
        400,
        "VALIDATION_FAILED",
    );
    let no_type = app
        .send(app.client.post(app.url(path)).body("{\"userId\": 1}"))
        .await;
    assert_eq!(no_type.status / 100, 4, "{no_type:?}");
    assert!(no_type.code() == "VALIDATION_FAILED", "{no_type:?}");

    for bad_id in ["0", "-1", "abc"] {
        let reply = app
            .post_json(
                &format!("/api/v1/campaigns/{bad_id}/participations"),
                &json!({"userId": 1}),
                None,
            )
            .await;
        assert_error(&reply, 400, "VALIDATION_FAILED");
    }
    assert_error(&app.join(987_654, 1, 1).await, 404, "CAMPAIGN_NOT_FOUND");

    let huge = format!("{{\"userId\": 1, \"pad\": \"{}\"}}", "x".repeat(64 * 1024));
    let reply = app
        .send(
            app.client
                .post(app.url(path))
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");

    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM outbox_event").await, 0);
    assert_eq!(app.remaining_stock(campaign).await, 5);
    assert_eq!(
        app.redis_stock(campaign).await.unwrap_or(5),
        5,
        "no reservation leaked"
    );
    for user in [0, 1, -5] {
        assert!(!app.redis_has_user(campaign, user).await);
    }
}

#[tokio::test]
async fn bad_campaigns_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let bad: Vec<Value> = vec![
        json!({"name": "x", "totalStock": 0}),
        json!({"name": "x", "totalStock": -1}),
        json!({"name": "x", "totalStock": 10_000_001}),
        json!({"name": "", "totalStock": 1}),
        json!({"name": "   ", "totalStock": 1}),
        json!({"name": "x".repeat(201), "totalStock": 1}),
        json!({"name": "x", "totalStock": 1, "perUserLimit": 0}),
        json!({"name": "x", "totalStock": 1, "perUserLimit": 2}),
        json!({"name": "x", "totalStock": 1, "startsAt": "yesterday"}),
        json!({"name": "x", "totalStock": 1, "startsAt": now, "endsAt": now - chrono::Duration::seconds(1)}),
        json!({"totalStock": 1}),
        json!({"name": "x", "totalStock": 1, "rewardPoints": -1}),
        json!({"name": "x", "totalStock": 1, "rewardPoints": 1_000_000_001}),
        json!({"name": "x", "totalStock": 1, "rewardPoints": 1.5}),
        json!({"name": "x", "totalStock": 1, "rewardPoints": "10"}),
    ];
    for body in bad {
        let reply = app
            .post_json("/api/v1/campaigns", &body, Some(ADMIN_TOKEN))
            .await;
        assert_error(&reply, 400, "VALIDATION_FAILED");
    }
    assert_error(
        &app.get("/api/v1/campaigns?limit=0").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &app.get("/api/v1/campaigns?limit=1000").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(
        &app.get("/api/v1/campaigns/abc").await,
        400,
        "VALIDATION_FAILED",
    );
    assert_error(&app.get("/no/such/route").await, 404, "NOT_FOUND");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM campaign").await, 0);
}

#[tokio::test]
async fn campaign_dates_outside_what_mysql_stores_are_refused_not_a_5xx() {
    let app = spawn_app().await;
    let create = |field: &'static str, value: &'static str| {
        let body = json!({"name": "dates", "totalStock": 5, field: value});
        let app = &app;
        async move {
            app.post_json("/api/v1/campaigns", &body, Some(ADMIN_TOKEN))
                .await
        }
    };
    // Valid RFC 3339 for the framework, but a year MySQL's DATETIME cannot hold.
    for (field, value) in [
        ("startsAt", "-0001-01-01T00:00:00Z"),
        ("startsAt", "+10000-01-01T00:00:00Z"),
        ("startsAt", "0999-12-31T23:59:59Z"),
        ("endsAt", "+10000-01-01T00:00:00Z"),
        ("endsAt", "-0001-01-01T00:00:00Z"),
    ] {
        let reply = create(field, value).await;
        assert_error(&reply, 400, "VALIDATION_FAILED");
        assert!(
            reply.body["message"].as_str().unwrap_or("").contains(field),
            "the message names the field: {reply:?}"
        );
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM campaign").await,
        0,
        "nothing written"
    );
    // The edges themselves are fine.
    assert_eq!(create("endsAt", "9999-12-31T23:59:59Z").await.status, 201);
    assert_eq!(create("startsAt", "1000-01-01T00:00:00Z").await.status, 201);
}

/// A value MySQL refuses to store (here a name outside the character set of a table left latin1,
/// as on a server whose default is latin1: MySQL error 1366) is the request's fault: 400, not
/// 503 DEPENDENCY_UNAVAILABLE (issue 71), and nothing is written.
#[tokio::test]
async fn a_value_mysql_cannot_store_is_a_400_not_an_outage() {
    let app = spawn_app().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        "ALTER TABLE campaign_group CONVERT TO CHARACTER SET latin1",
    )
    .await
    .expect("a latin1 table");
    let refused = app
        .post_json(
            "/api/v1/groups",
            &json!({"name": "\u{200b}", "perUserLimit": 1}),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_error(&refused, 400, "VALIDATION_FAILED");
    let stored = app.scalar("SELECT COUNT(*) FROM campaign_group").await;
    assert_eq!(stored, 0, "nothing written");
}
