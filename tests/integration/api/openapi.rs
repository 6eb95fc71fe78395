//! The committed spec matches the code, and the docs are served.

use crate::spawn::spawn_app;

#[test]
fn committed_openapi_yaml_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = firstcome::api::openapi_yaml();
    assert!(
        committed == current,
        "openapi/openapi.yaml is out of date: run `cargo run -- openapi > openapi/openapi.yaml`"
    );
}

#[tokio::test]
async fn swagger_ui_and_the_spec_are_served() {
    let app = spawn_app().await;
    let docs = app.client.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.expect("html").contains("swagger"),
        "Swagger UI page"
    );
    let spec = app.get("/openapi.json").await;
    assert_eq!(spec.status, 200);
    assert!(
        spec.body["paths"]["/api/v1/campaigns/{id}/participations"].is_object(),
        "{}",
        spec.body
    );
    let live = app.get("/health/live").await;
    assert_eq!(live.status, 200);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body["status"], "ready");
}

/// `/docs` (1.9 MB of inline script, style and spec) is sent gzip-compressed to a client that
/// takes it, and under a Content-Security-Policy that runs only the page's own scripts, by hash
/// (issue 71 #7, docs/design.md §17): no inline script an injection adds, no other origin, no
/// frame around it.
#[tokio::test]
async fn the_docs_page_is_compressed_and_runs_only_its_own_scripts() {
    use std::io::Read;
    let app = spawn_app().await;
    let plain = app.client.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let policy = plain
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a Content-Security-Policy");
    let html = plain.text().await.expect("html");

    let packed = app
        .client
        .get(app.url("/docs"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .expect("docs");
    assert_eq!(
        packed
            .headers()
            .get("content-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"gzip"[..])
    );
    let bytes = packed.bytes().await.expect("body");
    assert!(
        bytes.len() * 3 < html.len(),
        "{} compressed bytes for {} bytes",
        bytes.len(),
        html.len()
    );
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut unpacked)
        .expect("gzip");
    assert_eq!(unpacked, html, "the same page");

    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("script-src");
    assert_eq!(
        script_src.matches("'sha256-").count(),
        html.matches("</script>").count(),
        "each of the page's scripts by its hash: {policy}"
    );
    assert!(!script_src.contains("unsafe"), "{policy}");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive}: {policy}");
    }
}
