//! Boundary-value sweep over every field of every endpoint (issue 8, "no client-caused 5xx";
//! docs/design.md §2.6 and §3). Each case is one request; the invariant checked for all of them:
//! - never a 5xx, and never a dropped connection;
//! - a refusal is a 4xx with the `{"code", "message"}` body and writes nothing: the rows the API
//!   writes (counts, stock, outbox statuses and attempts, last update) are unchanged, and every
//!   Redis key under the app's prefix `DUMP`s byte for byte as before;
//! - a valid boundary value (a name of exactly 200 characters, `totalStock` 10,000,000, a body of
//!   exactly the size limit) succeeds.
//!
//! The cases are tables (`create_cases`, `join_cases`, `read_cases`, `control_cases`,
//! `queue_cases`, `user_token_cases`, built from `values`); one runner (`runner::sweep`) sends them and reports
//! every failure together, each with its endpoint, field and value. A case names the status it
//! must get (a 2xx, a 4xx) or, where the contract fixes them, the exact status and code.

mod control_cases;
mod create_cases;
mod join_cases;
mod queue_cases;
mod read_cases;
pub(crate) mod runner;
mod user_token_cases;
mod values;

use std::collections::HashSet;

use firstcome::outbox::OutboxStatus;

use self::{
    control_cases::control_cases,
    create_cases::create_cases,
    join_cases::{join_cases, Users},
    queue_cases::queue_cases,
    read_cases::{
        admin_outbox_cases, campaign_read_cases, lifecycle_cases, participation_read_cases,
    },
    runner::{changed, ep, raw_http, snapshot, sweep},
    user_token_cases::user_token_cases,
};
use crate::spawn::{spawn_app, spawn_app_with, test_settings, TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn campaign_create_fields_at_and_past_every_boundary() {
    let settings = test_settings().await;
    let body_limit = settings.http.body_limit;
    let app = spawn_app_with(settings).await;
    let n = sweep(&app, create_cases(body_limit)).await;
    assert!(n > 200, "{n} cases");
    let names = read_back_every_campaign(&app).await;
    // Names come back as sent, less the surrounding whitespace, 4-byte characters included.
    let sent = [
        "a",
        &"x".repeat(200),
        &"😀".repeat(200),
        &"e\u{301}".repeat(100),
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 名前 اسم",
    ];
    for name in sent {
        assert!(names.contains(name), "{name} is stored as sent");
    }
}

/// Whatever the sweep created reads back: no row that a later list or get cannot decode. Lists
/// every campaign page by page, gets each one, and returns their names.
async fn read_back_every_campaign(app: &TestApp) -> HashSet<String> {
    let mut cursor = String::new();
    let mut names = HashSet::new();
    let mut listed = 0;
    loop {
        let page = app
            .get(&format!("/api/v1/campaigns?limit=100{cursor}"))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        for c in page.body["items"].as_array().expect("items") {
            let one = app.get(&format!("/api/v1/campaigns/{}", c["id"])).await;
            assert_eq!(one.status, 200, "{one:?}");
            names.insert(one.body["name"].as_str().expect("name").to_string());
            listed += 1;
        }
        match page.body["nextCursor"].as_i64() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed, app.scalar("SELECT COUNT(*) FROM campaign").await);
    names
}

#[tokio::test]
async fn campaign_reads_with_every_bad_id_limit_and_cursor() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    sweep(&app, campaign_read_cases(campaign)).await;
}

#[tokio::test]
async fn joins_on_both_paths_with_every_bad_field_value() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    let mut users = Users(1_000);
    for template in [
        "/api/v1/campaigns/{id}/participations",
        "/api/v1/campaigns/{id}/participations/sync",
    ] {
        let campaign = app.open_campaign(1_000, 5).await;
        let wide = app.open_campaign(10_000_000, 10_000_000).await;
        let join = ep("POST", template, false);
        cases.extend(join_cases(join, campaign, wide, &mut users));
    }
    sweep(&app, cases).await;
}

#[tokio::test]
async fn participation_reads_with_every_bad_id_limit_and_cursor() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
    sweep(&app, participation_read_cases(campaign)).await;
}

#[tokio::test]
async fn confirm_and_cancel_with_every_bad_id() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
    sweep(&app, lifecycle_cases(campaign)).await;
}

#[tokio::test]
async fn admin_outbox_endpoints_with_every_bad_parameter_and_token() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    let dead = app
        .insert_rows_as(&campaign.to_string(), &app.topic, 2, OutboxStatus::Dead)
        .await;
    sweep(&app, admin_outbox_cases(campaign, &dead)).await;
    assert_eq!(app.outbox_count("DEAD").await, 0, "the valid redrives ran");
}

#[tokio::test]
async fn campaign_controls_with_every_bad_delta_body_id_token_and_page() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(5, 1).await;
    assert_eq!(app.join(campaign, 7, 1).await.status, 201);
    let n = sweep(&app, control_cases(campaign)).await;
    assert!(n > 200, "{n} cases");
    // The valid controls ran, in order: the stock's four, one pause, one resume, the close.
    assert_eq!(
        app.scalar(&format!(
            "SELECT control_seq FROM campaign WHERE id = {campaign}"
        ))
        .await,
        7
    );
    assert_eq!(app.remaining_stock(campaign).await, 4);
}

#[tokio::test]
async fn waiting_room_endpoints_with_every_bad_user_ticket_id_and_token() {
    // One client sends every case: the waiting room's default rate limits would refuse it.
    let mut settings = test_settings().await;
    settings.rate_limits.user_per_second = Some(0);
    settings.rate_limits.ip_per_second = Some(0);
    let app = spawn_app_with(settings).await;
    let queued = app
        .open_campaign_with(5, 1, serde_json::json!({"admission": "QUEUE"}))
        .await;
    let open = app.open_campaign(5, 1).await;
    let first = app
        .post_json(
            &format!("/api/v1/campaigns/{queued}/queue"),
            &serde_json::json!({"userId": 7}),
            None,
        )
        .await;
    let ticket = first.body["ticket"].as_str().expect("ticket").to_string();
    let n = sweep(&app, queue_cases(queued, open, &ticket)).await;
    assert!(n > 80, "{n} cases");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM participation").await, 0);
}

/// A chunked POST of `path` written by hand; `token` adds the admin token.
fn chunked(path: &str, token: bool, chunks: &[u8]) -> Vec<u8> {
    let auth = if token {
        format!("Authorization: Bearer {ADMIN_TOKEN}\r\n")
    } else {
        String::new()
    };
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    r.extend_from_slice(chunks);
    r
}

/// `body` as one chunk and the last chunk.
fn chunk(body: &str) -> String {
    format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
}

/// Chunked requests a body limit of `limit` must refuse: over the limit (413) or with a broken
/// chunk size (any 4xx, `None`).
fn refused_chunked_requests(limit: usize, join: &str) -> Vec<(&'static str, Vec<u8>, Option<u16>)> {
    let over = |json: &str| format!("{json}{}", " ".repeat(limit + 1 - json.len()));
    let create = "/api/v1/campaigns";
    let valid_create = "{\"name\":\"c\",\"totalStock\":1}";
    let over_join = chunk(&over("{\"userId\":1}"));
    let over_create = chunk(&over(valid_create));
    let broken = b"zz\r\n{}\r\n0\r\n\r\n";
    vec![
        (
            "join, limit + 1 bytes",
            chunked(join, false, over_join.as_bytes()),
            Some(413),
        ),
        (
            "create, limit + 1 bytes",
            chunked(create, true, over_create.as_bytes()),
            Some(413),
        ),
        (
            "join, broken chunk size",
            chunked(join, false, broken),
            None,
        ),
        (
            "create, broken chunk size",
            chunked(create, true, broken),
            None,
        ),
    ]
}

#[tokio::test]
async fn chunked_bodies_past_the_limit_or_broken_are_refused_and_write_nothing() {
    let settings = test_settings().await;
    let limit = settings.http.body_limit;
    let app = spawn_app_with(settings).await;
    let campaign = app.open_campaign(5, 1).await;
    let before = snapshot(&app).await;
    let join = format!("/api/v1/campaigns/{campaign}/participations");
    let mut failures = Vec::new();
    for (what, request, status) in refused_chunked_requests(limit, &join) {
        let (got, body) = raw_http(&app, &request).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let ok = status.map_or((400..500).contains(&got), |s| s == got)
            && json["code"].as_str().is_some_and(|c| !c.is_empty());
        if !ok {
            failures.push(format!("{what}: {got} {body}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        changed(&before, &snapshot(&app).await),
        Vec::<String>::new(),
        "nothing written"
    );
    // The same chunked framing with a body within the limit is served normally.
    let request = chunked(&join, false, chunk("{\"userId\":1}").as_bytes());
    let (got, body) = raw_http(&app, &request).await;
    assert_eq!(got, 201, "{body}");
}

#[tokio::test]
async fn user_calls_with_every_authorization_under_user_auth_jwt() {
    let app = spawn_app_with(crate::jwt::with_jwt(test_settings().await)).await;
    let campaign = app
        .open_campaign_with(5, 1, serde_json::json!({"confirmWithinSeconds": 600}))
        .await;
    let own = format!("Bearer {}", crate::jwt::token(7));
    let joined = app
        .send(
            app.client
                .post(app.url(&format!("/api/v1/campaigns/{campaign}/participations")))
                .header("authorization", own)
                .json(&serde_json::json!({"userId": 7})),
        )
        .await;
    assert_eq!(joined.status, 201, "{joined:?}");
    let n = sweep(&app, user_token_cases(campaign)).await;
    assert!(n >= 48, "{n} cases");
}
