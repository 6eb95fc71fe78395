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
