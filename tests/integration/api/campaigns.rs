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

/// Public reads are answered from the instance's copy for `PUBLIC_READ_CACHE_MS` (issue 71 #6,
/// docs/design.md §17): a flood of reads of one campaign, group or statistics costs MySQL one
/// read per period, so within it a read shows the figures of the first.
#[tokio::test]
async fn public_reads_are_served_from_a_brief_copy_per_instance() {
    let mut settings = crate::spawn::test_settings().await;
    settings.http.public_read_cache = std::time::Duration::from_secs(60);
    let app = crate::spawn::spawn_app_with(settings).await;
    let id = app.open_campaign(5, 1).await;
    let path = format!("/api/v1/campaigns/{id}");
    let first = app.get(&path).await;
    assert_eq!(first.body["remainingStock"], json!(5), "{first:?}");
    let stats = app.get(&format!("{path}/stats")).await;
    assert_eq!(stats.status, 200, "{stats:?}");
    assert_eq!(app.join(id, 1, 1).await.status, 201);
    let again = app.get(&path).await;
    assert_eq!(again.body, first.body, "the copy, not MySQL");
    assert_eq!(app.get(&format!("{path}/stats")).await.body, stats.body);
    // A missing campaign's 404 is kept too (a flood of unknown ids costs no more).
    let missing = app.get("/api/v1/campaigns/999999").await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "CAMPAIGN_NOT_FOUND")
    );

    // An instance without the copy reads MySQL every time.
    let mut settings = crate::spawn::test_settings().await;
    settings.http.public_read_cache = std::time::Duration::ZERO;
    let fresh = crate::spawn::spawn_app_with(settings).await;
    let id = fresh.open_campaign(5, 1).await;
    let path = format!("/api/v1/campaigns/{id}");
    assert_eq!(fresh.get(&path).await.body["remainingStock"], json!(5));
    assert_eq!(fresh.join(id, 1, 1).await.status, 201);
    assert_eq!(fresh.get(&path).await.body["remainingStock"], json!(4));
}
