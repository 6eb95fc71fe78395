//! A waiting-room ticket is its holder's secret (whoever has it polls it and is handed the
//! admission token): it never reaches a log line, an exported span or a metric label. The
//! request's path is logged and exported with the ticket replaced by `{ticket}`, and the query
//! string (where a client may put anything) is neither.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{common::v1::any_value::Value as Any, trace::v1::Span};
use serde_json::{json, Value};

use super::{collect_lines, collector::start_collector, WAIT};
use crate::{
    binary::{create_campaign_with, fixture, start_with, terminate},
    wait::wait_until,
};

/// The string value of a span's attribute `key`.
fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_reaches_no_log_line_span_or_metric_and_its_path_is_logged_redacted() {
    let collector = start_collector().await;
    let (broker, db_url, prefix) = fixture().await;
    let mut service = start_with(
        &db_url,
        &prefix,
        broker.bootstrap_servers(),
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                Some(collector.endpoint.as_str()),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", Some("100")),
            // Everything the service itself logs, each request's line included.
            ("RUST_LOG", Some("info,firstcome=debug")),
            ("LOG_FORMAT", Some("json")),
        ],
        true,
    )
    .await;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = collect_lines(service.child.stdout.take().expect("stdout"), lines.clone());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let campaign = create_campaign_with(
        &client,
        &service,
        &json!({"name": "room", "totalStock": 5, "admission": "QUEUE"}),
    )
    .await;
    let base = format!("{}/api/v1/campaigns/{campaign}/queue", service.base);
    let queued = client
        .post(&base)
        .json(&json!({"userId": 5}))
        .send()
        .await
        .expect("queue");
    assert_eq!(queued.status(), 202);
    let queued: Value = queued.json().await.expect("a ticket");
    let ticket = queued["ticket"].as_str().expect("ticket").to_string();
    // Never issued, but a client's secret all the same.
    let unknown = "Zz9Zz9Zz9Zz9Zz9Zz9Zz9Z";
    for (url, status) in [
        (format!("{base}/{ticket}"), 200),
        (
            format!("{base}/{ticket}?ticket={ticket}&token={ticket}"),
            200,
        ),
        (format!("{base}/{unknown}"), 404),
    ] {
        let polled = client.get(&url).send().await.expect("poll");
        assert_eq!(polled.status(), status, "{url}");
    }
    let metrics = client
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"route="/api/v1/campaigns/{id}/queue/{ticket}""#),
        "the poll's route label is its template"
    );
    let polls = format!("/api/v1/campaigns/{campaign}/queue/");
    let redacted = format!("{polls}{{ticket}}");
    wait_until("the polls' spans", WAIT, || async {
        let spans = collector.spans.lock().expect("spans");
        spans
            .iter()
            .filter(|s| attribute(s, "url.path").is_some_and(|p| p.starts_with(&polls)))
            .count()
            == 3
    })
    .await;

    terminate(&service.child);
    let status = tokio::task::spawn_blocking(move || service.child.wait())
        .await
        .expect("wait task")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
    reader.join().expect("log reader");

    let lines = lines.lock().expect("lines").clone();
    let spans = collector.spans.lock().expect("spans").clone();
    for secret in [ticket.as_str(), unknown] {
        assert!(!metrics.contains(secret), "a ticket in /metrics");
        for line in &lines {
            assert!(!line.contains(secret), "a ticket in a log line: {line}");
        }
        for span in &spans {
            assert!(
                !format!("{span:?}").contains(secret),
                "a ticket in an exported span: {span:#?}"
            );
        }
    }
    // The requests were exported and logged all the same, under the redacted path.
    let exported = spans
        .iter()
        .filter(|s| attribute(s, "url.path").as_deref() == Some(redacted.as_str()))
        .count();
    assert_eq!(exported, 3, "the polls' spans name their path");
    let logged = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["span"]["path"] == redacted.as_str())
        .count();
    assert!(logged >= 3, "the polls' lines name their path: {lines:#?}");
}
