//! The monitoring set-up of docker compose (`ops/`) and the Operating section of
//! docs/operations.md name only metrics the service exports, and the pieces point at each other:
//! Prometheus scrapes the service's HTTP port, Grafana's dashboard uses the provisioned data
//! source.

use std::collections::BTreeSet;

use serde_json::Value;

/// Every metric family the service exports (`telemetry::metrics::tests` checks that each one is on
/// `/metrics` after a burst); histograms without their `_bucket`/`_sum`/`_count`.
const EXPORTED: &[&str] = firstcome::telemetry::metrics::NAMES;

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("ops/grafana/dashboards/firstcome.json"))
        .expect("the dashboard is JSON")
}

/// The `firstcome_` identifiers in a text (PromQL, Markdown), with the series suffixes of a
/// histogram stripped.
fn metric_names(text: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("firstcome_") {
        // Part of a longer identifier (e.g. `my_firstcome_x`) is not a name of ours.
        let starts_ident = rest[..at].chars().next_back().is_some_and(ident);
        let end = rest[at..]
            .find(|c: char| !ident(c))
            .map_or(rest.len(), |n| at + n);
        let name = &rest[at..end];
        // A bare prefix (`grep '^firstcome_'`) names no metric.
        if !starts_ident && name.len() > "firstcome_".len() {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        rest = &rest[end..];
    }
    names
}

/// Every PromQL `expr` of the dashboard, wherever it is nested.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(firstcome_relay_publish_lag_seconds_bucket[5m]))) \
         / sum(firstcome_outbox_rows{status=\"dead\"}) + my_firstcome_x + grep '^firstcome_'",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "firstcome_outbox_rows",
            "firstcome_relay_publish_lag_seconds"
        ]
    );
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let mut all = Vec::new();
    exprs(&dashboard(), &mut all);
    assert!(all.len() >= 20, "the dashboard has its queries: {all:?}");
    let queried: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<&String> = queried
        .iter()
        .filter(|n| !EXPORTED.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the service does not export: {unknown:?}"
    );
    // The panels the issue asks for are there.
    for wanted in [
        "firstcome_http_requests_total",
        "firstcome_http_request_duration_seconds",
        "firstcome_participation_outcomes_total",
        "firstcome_outbox_rows",
        "firstcome_outbox_oldest_due_age_seconds",
        "firstcome_relay_publish_lag_seconds",
        "firstcome_relay_dead_lettered_total",
        "firstcome_consumer_lag",
    ] {
        assert!(queried.contains(wanted), "no panel queries {wanted}");
    }
}

#[test]
fn prometheus_scrapes_the_service_and_grafana_reads_prometheus() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    assert_prometheus_scrapes_both_instances(services);
    assert_every_pulled_image_is_pinned(services);
    assert_mounted_configuration_exists(services);
    assert_grafana_uses_the_provisioned_data_source(services);
}

/// Prometheus scrapes both instances on their metrics listener (`METRICS_ADDR`), which
/// serves /metrics without a token: the public port listens on all interfaces, where /metrics
/// needs the admin token (docs/design.md §17), so a scrape there would be refused. The metrics
/// port is on the compose network only, never published.
fn assert_prometheus_scrapes_both_instances(services: &serde_yaml::Value) {
    let env = &services["firstcome"]["environment"];
    let addr = env["METRICS_ADDR"]
        .as_str()
        .expect("firstcome METRICS_ADDR, the listener Prometheus scrapes");
    let port = addr.strip_prefix("0.0.0.0:").unwrap_or_else(|| {
        panic!("the metrics listener must be on 0.0.0.0 in compose, not {addr}")
    });
    let published: Vec<&str> = services["firstcome"]["ports"]
        .as_sequence()
        .map(|ports| ports.iter().filter_map(serde_yaml::Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        published.iter().all(|p| !p.ends_with(&format!(":{port}"))),
        "the metrics port {port} is not published: {published:?}"
    );

    // firstcome-2 is firstcome with another host port, through a YAML merge key, which
    // serde_yaml leaves unresolved: only its presence is checked.
    assert!(
        services["firstcome-2"].is_mapping(),
        "compose runs a second instance"
    );
    let prometheus = yaml("ops/prometheus/prometheus.yml");
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .expect("targets")
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .collect();
    assert_eq!(
        targets,
        [format!("firstcome:{port}"), format!("firstcome-2:{port}")]
    );
}

/// Every pulled image is pinned (the service's own, firstcome:local, is built).
fn assert_every_pulled_image_is_pinned(services: &serde_yaml::Value) {
    for (name, service) in services.as_mapping().expect("services") {
        let Some(image) = service["image"].as_str() else {
            continue;
        };
        let tag = image.rsplit_once(':').map(|(_, t)| t);
        assert!(
            image == "firstcome:local"
                || tag.is_some_and(|t| t != "latest" && t.chars().any(|c| c.is_ascii_digit())),
            "{name:?} image is pinned to a version: {image}"
        );
    }
}

/// The configuration files Prometheus and Grafana mount exist.
fn assert_mounted_configuration_exists(services: &serde_yaml::Value) {
    for name in ["prometheus", "grafana"] {
        let service = &services[name];
        for volume in service["volumes"].as_sequence().expect("volumes") {
            let volume = volume.as_str().expect("volume");
            if let Some(local) = volume.strip_prefix("./") {
                let local = local.split(':').next().unwrap_or_default();
                let full = format!("{}/{local}", env!("CARGO_MANIFEST_DIR"));
                assert!(
                    std::path::Path::new(&full).exists(),
                    "{name} mounts {local}, which is missing"
                );
            }
        }
    }
}

/// Grafana's data source is Prometheus, its dashboards folder is mounted where the provider
/// reads, and every panel and query uses the provisioned data source.
fn assert_grafana_uses_the_provisioned_data_source(services: &serde_yaml::Value) {
    let datasources = yaml("ops/grafana/provisioning/datasources/prometheus.yml");
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    assert_eq!(source["url"].as_str(), Some("http://prometheus:9090"));
    let uid = source["uid"].as_str().expect("datasource uid");

    let dashboards = yaml("ops/grafana/provisioning/dashboards/firstcome.yml");
    let path = dashboards["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let mounted = services["grafana"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(serde_yaml::Value::as_str)
        .any(|v| v.starts_with("./ops/grafana/dashboards:") && v.contains(&format!(":{path}")));
    assert!(
        mounted,
        "the dashboards folder is mounted where the provider reads ({path})"
    );

    let dash = dashboard();
    let panels = dash["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], uid, "{}", panel["title"]);
        }
        assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
    }
}

#[test]
fn the_operating_section_documents_exactly_the_exported_metrics() {
    let doc = read("docs/operations.md");
    let start = doc.find("## Operating").expect("an Operating section");
    let end = doc[start + 1..]
        .find("\n## ")
        .map_or(doc.len(), |n| start + 1 + n);
    let named = metric_names(&doc[start..end]);
    let exported: BTreeSet<String> = EXPORTED.iter().map(|s| s.to_string()).collect();
    let unknown: Vec<_> = named.difference(&exported).collect();
    let missing: Vec<_> = exported.difference(&named).collect();
    assert!(
        unknown.is_empty(),
        "docs/operations.md names metrics not exported: {unknown:?}"
    );
    assert!(
        missing.is_empty(),
        "docs/operations.md does not document: {missing:?}"
    );
}
