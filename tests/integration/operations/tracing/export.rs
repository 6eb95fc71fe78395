//! The export test's steps: two joins (one in the caller's trace, one without a `traceparent`),
//! the wait for both consumers, the ids Kafka carried, SIGTERM, and what the collector holds
//! after the shutdown flush: the request's server span, its publish and apply spans, and the
//! new trace of the request without a `traceparent`.

use std::time::Duration;

use firstcome::{kafka::EmbeddedBroker, telemetry::trace::TraceContext};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use serde_json::{json, Value};

use crate::{
    binary::{terminate, Service},
    kafka::{read_topic, Consumed},
    wait::wait_until,
};

use super::{carried, collector::hex, CALLER, WAIT};

/// User 7 joins in the caller's trace, user 8 without a `traceparent`; both win. Returns the
/// event id of the second.
pub async fn join_with_and_without_a_traceparent(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
) -> String {
    let url = format!(
        "{}/api/v1/campaigns/{campaign}/participations",
        service.base
    );
    let reply = client
        .post(&url)
        .header("traceparent", CALLER)
        .json(&json!({"userId": 7}))
        .send()
        .await
        .expect("join");
    assert_eq!(reply.status(), 201);
    let fresh = client
        .post(&url)
        .json(&json!({"userId": 8}))
        .send()
        .await
        .expect("join");
    assert_eq!(fresh.status(), 201);
    let fresh: Value = fresh.json().await.expect("body");
    fresh["eventId"].as_str().expect("eventId").to_string()
}

/// Both events published and applied by both consumers.
pub async fn wait_until_both_consumers_applied_both(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
) {
    let base = service.base.clone();
    wait_until("both events applied by both consumers", WAIT, || {
        let client = client.clone();
        let base = base.clone();
        async move {
            let get = |path: String| {
                let client = client.clone();
                async move {
                    match client.get(path).send().await {
                        Ok(r) => r.json::<Value>().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    }
                }
            };
            let stats = get(format!("{base}/api/v1/campaigns/{campaign}/stats")).await;
            let seven = get(format!("{base}/api/v1/users/7/rewards")).await;
            let eight = get(format!("{base}/api/v1/users/8/rewards")).await;
            stats["eventsApplied"] == json!(2)
                && seven["grants"].as_array().is_some_and(|g| g.len() == 1)
                && eight["grants"].as_array().is_some_and(|g| g.len() == 1)
        }
    })
    .await;
}

/// The trace contexts the two messages carry: (the caller's request, the fresh one).
pub async fn carried_contexts(
    broker: &EmbeddedBroker,
    fresh_id: &str,
) -> (TraceContext, TraceContext) {
    let messages = read_topic(
        broker.bootstrap_servers(),
        firstcome::config::DEFAULT_TOPIC,
        2,
        WAIT,
    )
    .await;
    let (fresh_msg, continued): (Vec<&Consumed>, Vec<&Consumed>) =
        messages.iter().partition(|m| m.event_id() == fresh_id);
    (carried(continued[0]), carried(fresh_msg[0]))
}

/// SIGTERM, then waits (bounded) until the process has exited.
pub async fn sigterm_and_wait_for_exit(service: &mut Service) {
    terminate(&service.child);
    let deadline = std::time::Instant::now() + WAIT;
    while service.child.try_wait().expect("status").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The exported spans of `trace`.
fn of_trace<'a>(spans: &'a [Span], trace: &TraceContext) -> Vec<&'a Span> {
    let id = format!("{:032x}", trace.trace_id());
    spans
        .iter()
        .filter(|s| hex(&s.trace_id) == id)
        .collect::<Vec<_>>()
}

/// In the caller's trace: the server span with the message's span id, a child of the caller's
/// span, named by route template; under it one publish span and two apply spans.
pub fn assert_the_request_span_and_its_children(
    spans: &[Span],
    server: &TraceContext,
    campaign: i64,
) {
    let caller = TraceContext::parse(CALLER).expect("valid");
    let in_trace = of_trace(spans, &caller);
    let server_span = in_trace
        .iter()
        .find(|s| hex(&s.span_id) == format!("{:016x}", server.span_id()))
        .unwrap_or_else(|| panic!("no exported span with the message's span id: {in_trace:#?}"));
    assert_eq!(server_span.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&server_span.parent_span_id),
        format!("{:016x}", caller.span_id()),
        "the server span's parent is the caller's span"
    );
    // Named by method and route template (poem-openapi's, e.g. `:param0`), never by the id.
    assert!(
        server_span.name.starts_with("POST /api/v1/campaigns/")
            && server_span.name.ends_with("/participations")
            && !server_span.name.contains(&format!("/{campaign}/")),
        "{}",
        server_span.name
    );
    let children = |kind: SpanKind| {
        in_trace
            .iter()
            .filter(|s| s.kind == kind as i32)
            .inspect(|s| {
                assert_eq!(
                    s.parent_span_id, server_span.span_id,
                    "{} continues the request's span",
                    s.name
                );
            })
            .count()
    };
    assert_eq!(
        children(SpanKind::Producer),
        1,
        "one publish span: {in_trace:#?}"
    );
    assert_eq!(
        children(SpanKind::Consumer),
        2,
        "stats and rewards each apply it"
    );
}

/// The request without a traceparent: a new trace, exported with its own server span.
pub fn assert_the_fresh_trace_is_exported(spans: &[Span], fresh_server: &TraceContext) {
    let fresh_trace = of_trace(spans, fresh_server);
    assert!(
        fresh_trace.iter().any(|s| s.kind == SpanKind::Server as i32
            && s.parent_span_id.is_empty()
            && hex(&s.span_id) == format!("{:016x}", fresh_server.span_id())),
        "{fresh_trace:#?}"
    );
}
