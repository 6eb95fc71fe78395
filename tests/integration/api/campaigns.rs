//! Campaign administration and listing.

use serde_json::json;

use crate::spawn::{spawn_app, ADMIN_TOKEN};

#[tokio::test]
async fn create_get_and_list_campaigns() {
    let app = spawn_app().await;
    let created = app
        .create_campaign(json!({"name": "  Launch  ", "totalStock": 3}))
        .await;
    assert_eq!(created["name"], json!("Launch"));
    assert_eq!(created["remainingStock"], json!(3));
    assert_eq!(created["acceptedCount"], json!(0));
    assert_eq!(created["perUserLimit"], json!(1));
    assert_eq!(created["rewardPoints"], json!(0), "no points unless asked");
    assert_eq!(created["state"], json!("OPEN"));
    let id = created["id"].as_i64().expect("id");

    let got = app.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created);

    for i in 0..4 {
        app.create_campaign(json!({"name": format!("c{i}"), "totalStock": 1}))
            .await;
    }
    let page1 = app.get("/api/v1/campaigns?limit=2").await;
    assert_eq!(page1.status, 200, "{page1:?}");
    let items = page1.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["id"].as_i64() > items[1]["id"].as_i64(),
        "newest first"
    );
    let cursor = page1.body["nextCursor"].as_i64().expect("a next page");

    let mut seen = 2;
    let mut next = Some(cursor);
    while let Some(c) = next {
        let page = app
            .get(&format!("/api/v1/campaigns?limit=2&cursor={c}"))
            .await;
        seen += page.body["items"].as_array().expect("items").len();
        next = page.body["nextCursor"].as_i64();
    }
    assert_eq!(seen, 5, "pagination visits every campaign once");

    let missing = app.get("/api/v1/campaigns/999999").await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "CAMPAIGN_NOT_FOUND")
    );
}

#[tokio::test]
async fn reward_points_are_stored_and_returned() {
    let app = spawn_app().await;
    for points in [0, 1_500, 1_000_000_000] {
        let created = app
            .create_campaign(json!({"name": "points", "totalStock": 5, "rewardPoints": points}))
            .await;
        assert_eq!(created["rewardPoints"], json!(points), "{created}");
        let id = created["id"].as_i64().expect("id");
        let got = app.get(&format!("/api/v1/campaigns/{id}")).await;
        assert_eq!(got.status, 200, "{got:?}");
        assert_eq!(got.body["rewardPoints"], json!(points));
        assert_eq!(
            app.scalar(&format!(
                "SELECT reward_points FROM campaign WHERE id = {id}"
            ))
            .await,
            points,
            "stored"
        );
    }
    let listed = app.get("/api/v1/campaigns").await;
    assert_eq!(
        listed.body["items"][0]["rewardPoints"],
        json!(1_000_000_000),
        "listed too: {listed:?}"
    );
}

#[tokio::test]
async fn creating_needs_the_admin_token() {
    let app = spawn_app().await;
    let body = json!({"name": "x", "totalStock": 1});
    let none = app.post_json("/api/v1/campaigns", &body, None).await;
    assert_eq!(
        (none.status, none.code()),
        (401, "UNAUTHORIZED"),
        "{none:?}"
    );
    let wrong = app
        .post_json("/api/v1/campaigns", &body, Some("not-the-token-at-all"))
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, "UNAUTHORIZED"),
        "{wrong:?}"
    );
    let prefix = app
        .post_json("/api/v1/campaigns", &body, Some(&ADMIN_TOKEN[..10]))
        .await;
    assert_eq!(prefix.status, 401);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM campaign").await,
        0,
        "nothing written"
    );
}
