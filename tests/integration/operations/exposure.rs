//! What the ops endpoints tell, and cost, to anyone (issue 57, docs/design.md §17): readiness
//! shows its status and each dependency's up or down to anyone and the details to an admin
//! token only, and pings its dependencies at most once a second however many ask; `/metrics` on
//! an address other hosts reach needs the admin token, or the separate `METRICS_ADDR` listener.

use futures::future::join_all;
use serde_json::Value;

use crate::{
    operations::metrics::exposition::{scrape, scrape_url, sum},
    spawn::{spawn_app, spawn_app_with, test_settings, TestApp},
};

/// The readiness checks run so far (`firstcome_readiness_checks_total`).
async fn checks(app: &TestApp) -> f64 {
    sum(&scrape(app).await, "firstcome_readiness_checks_total", &[])
}

#[tokio::test]
async fn readiness_details_are_an_admins_and_anyone_sees_up_or_down() {
    let app = spawn_app().await;
    let public = app.get("/health/ready").await;
    assert_eq!(public.status, 200, "{public:?}");
    let body = &public.body;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["mysql"], serde_json::json!({"ok": true}), "{body}");
    assert_eq!(body["redis"], serde_json::json!({"ok": true}), "{body}");
    for hidden in ["kafka", "relay", "consumers"] {
        assert!(
            body.get(hidden).is_none(),
            "{hidden} shown to anyone: {body}"
        );
    }
    let text = body.to_string();
    assert!(
        !text.contains("bootstrap") && !text.contains("owner"),
        "{text}"
    );

    let admin = app.admin_get("/health/ready").await;
    assert_eq!(admin.status, 200, "{admin:?}");
    for shown in ["kafka", "relay", "consumers"] {
        assert!(admin.body.get(shown).is_some(), "{shown}: {:?}", admin.body);
    }
    assert!(admin.body["kafka"]["bootstrapServers"].is_string());

    let wrong = app
        .send(
            app.client
                .get(app.url("/health/ready"))
                .bearer_auth("not-the-admin-token-0123456789"),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "UNAUTHORIZED"));
}

#[tokio::test]
async fn readiness_is_checked_at_most_once_a_second_under_100_concurrent_calls() {
    let app = spawn_app().await;
    let before = checks(&app).await;
    let started = std::time::Instant::now();
    let replies: Vec<Value> = join_all((0..100).map(|_| async {
        let reply = app.get("/health/ready").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(replies.iter().all(|b| b["status"] == "ready"));
    let runs = checks(&app).await - before;
    // One run per second begun, at most: the calls may straddle one boundary.
    let allowed = seconds.ceil() + 1.0;
    assert!(
        (1.0..=allowed).contains(&runs),
        "{runs} readiness checks for 100 calls in {seconds:.2} s"
    );
}

#[tokio::test]
async fn metrics_on_an_exposed_address_need_the_admin_token_or_metrics_addr() {
    let mut s = test_settings().await;
    s.http.addr = "0.0.0.0:0".parse().expect("an address");
    s.http.metrics_addr = Some("127.0.0.1:0".parse().expect("an address"));
    let app = spawn_app_with(s).await;
    let anonymous = app.get("/metrics").await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "UNAUTHORIZED"));
    let guess = app
        .send(
            app.client
                .get(app.url("/metrics"))
                .bearer_auth("metrics-guess-0123456789abc"),
        )
        .await;
    assert_eq!(guess.status, 401, "{guess:?}");
    let admin = app.admin_get("/metrics").await;
    assert_eq!(admin.status, 200, "{admin:?}");
    // The separate listener: the same figures, no token, nothing else served.
    let port = app.metrics_port.expect("METRICS_ADDR bound");
    let base = format!("http://127.0.0.1:{port}");
    let samples = scrape_url(&app.client, &format!("{base}/metrics")).await;
    assert_eq!(
        sum(&samples, "firstcome_admin_auth_failures_total", &[]),
        1.0,
        "the guess was a failed admin attempt"
    );
    let other = app
        .client
        .get(format!("{base}/api/v1/campaigns"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(other.status(), 404);
    // Loopback keeps today's default: open.
    let local = spawn_app().await;
    assert_eq!(local.get("/metrics").await.status, 200);
}
