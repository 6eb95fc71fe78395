//! The console's files are served by the service itself, compiled in, under a strict
//! Content-Security-Policy (docs/design.md §20). The page in a real browser is
//! `scripts/console-check.sh`'s.

use crate::spawn::spawn_app;

#[tokio::test]
async fn the_console_and_its_assets_are_served_with_a_strict_policy() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        ("/console", "text/html", "/console/console.js"),
        (
            "/console/console.js",
            "text/javascript",
            "text/event-stream",
        ),
        ("/console/console.css", "text/css", "{"),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .send()
            .await
            .expect("the console answers");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.text().await.expect("a body");
        assert!(body.contains(needle), "{path}");
    }
    let page = app.get("/console").await;
    let html = page.body.as_str().unwrap_or_default().to_string();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no third party"
    );
}

#[tokio::test]
async fn the_console_shows_when_user_identity_is_off_from_the_ready_body() {
    // The page's badge is filled from `/health/ready`'s `identity` (a browser runs it in
    // `scripts/console-check.sh`); here, that the two sides name the same things.
    let app = spawn_app().await;
    let page = app.get("/console").await;
    let html = page.body.as_str().unwrap_or_default();
    assert!(
        html.contains(r#"id="identity""#),
        "the badge is on the page"
    );
    let script = app.get("/console/console.js").await;
    let script = script.body.as_str().unwrap_or_default();
    for needle in [
        "'/health/ready'",
        ".identity",
        "userAuth",
        "exposed",
        "$('identity')",
    ] {
        assert!(script.contains(needle), "the script reads {needle}");
    }
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.body["identity"]["userAuth"], "none", "{ready:?}");
    assert_eq!(ready.body["identity"]["exposed"], false, "{ready:?}");
}
