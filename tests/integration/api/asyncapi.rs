//! The committed AsyncAPI document matches the code.

#[test]
fn committed_asyncapi_yaml_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/asyncapi.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = firstcome::events::asyncapi::asyncapi_yaml(firstcome::config::DEFAULT_TOPIC);
    assert!(
        committed == current,
        "docs/asyncapi.yaml is out of date: run `cargo run -- asyncapi > docs/asyncapi.yaml`"
    );
}
