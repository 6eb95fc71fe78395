//! Request ids and W3C traces (docs/design.md §4 `traceparent`, §12):
//! - the Kafka message carries the service's own span (same trace as the caller's, its own span
//!   id, the caller's flags), or a new trace when the request had no valid `traceparent`, on the
//!   outbox path through the relay and on the sync path;
//! - `x-request-id` is echoed, generated when absent, replaced when oversized or odd;
//! - the real binary exports its spans over OTLP/HTTP (to a collector in this test) with the
//!   ids Kafka carried, flushed at shutdown, and puts the request id on a request's log lines
//!   while logging nothing per successful request at the default level;
//! - a waiting-room ticket in a request's path reaches no log line, span or metric (`redaction`).

mod collector;
mod export;
mod redaction;

use std::{
    collections::{HashMap, HashSet},
    io::BufRead,
    sync::{Arc, Mutex},
    time::Duration,
};

use firstcome::{events::headers, telemetry::trace::TraceContext};
use futures::future::join_all;
use serde_json::{json, Value};

use crate::binary::{create_campaign, fixture, start_with, terminate};

use crate::{
    http::Reply,
    kafka::{read_topic, Consumed},
    spawn::{spawn_app, spawn_app_with, test_settings, with_relay, TestApp},
};

use collector::start_collector;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const WAIT: Duration = Duration::from_secs(30);

/// The message's `traceparent`, parsed (it must be there and valid).
fn carried(m: &Consumed) -> TraceContext {
    let value = m
        .headers
        .get(headers::TRACEPARENT)
        .unwrap_or_else(|| panic!("no traceparent on {m:?}"));
    TraceContext::parse(value).unwrap_or_else(|| panic!("invalid traceparent {value:?}"))
}

/// Joins with the given headers; panics unless 201. Returns the reply (its `eventId` names the
/// message).
async fn join_with(app: &TestApp, path: &str, user: i64, headers: &[(&str, &str)]) -> Reply {
    let mut req = app
        .client
        .post(app.url(path))
        .json(&json!({ "userId": user }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let reply = app.send(req).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    reply
}

/// The messages of `replies`, by event id, read from the app's topic.
async fn messages_of(app: &TestApp, replies: &[&Reply]) -> Vec<Consumed> {
    let all = read_topic(&app.kafka_bootstrap, &app.topic, replies.len(), WAIT).await;
    let by_id: HashMap<&str, &Consumed> = all.iter().map(|m| (m.event_id(), m)).collect();
    replies
        .iter()
        .map(|r| {
            let id = r.body["eventId"].as_str().expect("eventId");
            (*by_id
                .get(id)
                .unwrap_or_else(|| panic!("no message for {id}")))
            .clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_message_carries_the_services_own_span_in_the_callers_trace() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let campaign = app.open_campaign(10, 1).await;
    let path = format!("/api/v1/campaigns/{campaign}/participations");
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let sampled = join_with(&app, &path, 1, &[("traceparent", CALLER)]).await;
    let not_sampled = join_with(&app, &path, 2, &[("traceparent", unsampled)]).await;
    app.wait_for_outbox_drained(WAIT).await;

    let messages = messages_of(&app, &[&sampled, &not_sampled]).await;
    for (m, sent) in messages.iter().zip([CALLER, unsampled]) {
        let sent = TraceContext::parse(sent).expect("valid");
        let ours = carried(m);
        assert_eq!(ours.trace_id(), sent.trace_id(), "the caller's trace");
        assert_ne!(ours.span_id(), sent.span_id(), "the service's own span id");
        assert_eq!(ours.flags(), sent.flags(), "the caller's flags are kept");
        // Exactly the W3C form: lower-case hex, version 00.
        assert_eq!(m.headers[headers::TRACEPARENT], ours.to_string());
    }
    assert_ne!(
        carried(&messages[0]).span_id(),
        carried(&messages[1]).span_id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_without_a_valid_traceparent_starts_a_new_trace() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let campaign = app.open_campaign(10, 1).await;
    let path = format!("/api/v1/campaigns/{campaign}/participations");
    let first = join_with(&app, &path, 1, &[]).await;
    let second = join_with(&app, &path, 2, &[]).await;
    // Malformed by the spec (upper case; an all-zero trace id): ignored, a new trace instead.
    let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let third = join_with(&app, &path, 3, &[("traceparent", upper)]).await;
    let fourth = join_with(&app, &path, 4, &[("traceparent", zeros)]).await;
    app.wait_for_outbox_drained(WAIT).await;

    let messages = messages_of(&app, &[&first, &second, &third, &fourth]).await;
    let traces: HashSet<u128> = messages.iter().map(|m| carried(m).trace_id()).collect();
    assert_eq!(traces.len(), 4, "every request has a trace of its own");
    assert!(!traces.contains(&0));
    assert!(!traces.contains(&0x4bf92f3577b34da6a3ce929d0e0e4736));
    for m in &messages {
        // No exporter in this process: a new trace is not marked sampled (nobody records it).
        assert!(!carried(m).sampled(), "{:?}", m.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sync_path_carries_the_services_traceparent_too() {
    let app = spawn_app().await;
    let campaign = app.open_campaign(10, 1).await;
    let path = format!("/api/v1/campaigns/{campaign}/participations/sync");
    let with = join_with(&app, &path, 1, &[("traceparent", CALLER)]).await;
    let without = join_with(&app, &path, 2, &[]).await;

    let messages = messages_of(&app, &[&with, &without]).await;
    let caller = TraceContext::parse(CALLER).expect("valid");
    let ours = carried(&messages[0]);
    assert_eq!(ours.trace_id(), caller.trace_id());
    assert_ne!(ours.span_id(), caller.span_id());
    assert_eq!(ours.flags(), caller.flags());
    assert_ne!(carried(&messages[1]).trace_id(), caller.trace_id());
}

#[tokio::test]
async fn request_ids_are_echoed_generated_or_replaced() {
    let app = spawn_app().await;
    let id_of = |r: &Reply| {
        r.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id on {r:?}"))
            .to_string()
    };
    let get = |id: Option<&str>, path: &str| {
        let mut req = app.client.get(app.url(path));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        app.send(req)
    };

    // Echoed: on a success, on an API error and on an unknown route.
    for path in [
        "/health/live",
        "/api/v1/campaigns/999999999",
        "/no/such/route",
    ] {
        let reply = get(Some("client-id_1.2:3"), path).await;
        assert_eq!(id_of(&reply), "client-id_1.2:3", "{path}: {reply:?}");
    }
    let uuid = uuid::Uuid::now_v7().to_string();
    assert_eq!(id_of(&get(Some(&uuid), "/health/live").await), uuid);

    // Generated when absent: non-empty and different every time.
    let generated: HashSet<String> = join_all((0..20).map(|_| get(None, "/health/live")))
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(generated.len(), 20, "{generated:?}");
    assert!(generated.iter().all(|id| !id.is_empty() && id.len() <= 128));

    // Replaced when oversized or odd; never a reason to refuse the request.
    let long = "x".repeat(129);
    for odd in [long.as_str(), "a b", "id\";drop", "<script>"] {
        let reply = get(Some(odd), "/health/live").await;
        assert_eq!(reply.status, 200, "{odd}: {reply:?}");
        let id = id_of(&reply);
        assert_ne!(id, odd);
        assert!(!id.is_empty() && id.len() <= 128, "{id}");
    }
    let reply = app
        .send(app.client.get(app.url("/health/live")).header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("obs-text"),
        ))
        .await;
    assert_eq!(reply.status, 200);
    assert!(!id_of(&reply).is_empty());
}

/// Reads the child's log lines (stdout) into `lines` until it closes.
fn collect_lines(
    stdout: std::process::ChildStdout,
    lines: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.lock().expect("lines").push(line);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_exports_spans_with_the_propagated_ids_and_flushes_them_at_shutdown() {
    let collector = start_collector().await;
    let (broker, db_url, prefix) = fixture().await;
    // A batch delay far beyond this test: the spans can only arrive through the shutdown flush.
    let mut service = start_with(
        &db_url,
        &prefix,
        broker.bootstrap_servers(),
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                Some(collector.endpoint.as_str()),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", Some("600000")),
            ("RELAY_POLL_INTERVAL_MS", Some("50")),
        ],
        false,
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let campaign = create_campaign(&client, &service, 10).await;

    let fresh_id = export::join_with_and_without_a_traceparent(&client, &service, campaign).await;
    export::wait_until_both_consumers_applied_both(&client, &service, campaign).await;
    let (server, fresh_server) = export::carried_contexts(&broker, &fresh_id).await;
    assert!(
        fresh_server.sampled(),
        "with an exporter a new trace is recorded"
    );
    assert!(
        collector.spans.lock().expect("spans").is_empty(),
        "nothing exported before the batch delay or the shutdown"
    );

    export::sigterm_and_wait_for_exit(&mut service).await;
    let spans = collector.spans.lock().expect("spans").clone();
    export::assert_the_request_span_and_its_children(&spans, &server, campaign);
    export::assert_the_fresh_trace_is_exported(&spans, &fresh_server);
}

/// A named admin token of the logging test (`ADMIN_TOKENS=ops:…`).
const OPS_TOKEN: &str = "Wp6Kd1Zr9Ht4Mq8Ln3Vx7Bc2Jf5Gs0o";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_lines_of_a_request_carry_its_id_and_its_admin_and_successes_log_nothing_by_default() {
    let (broker, db_url, prefix) = fixture().await;
    // `RUST_LOG` unset: the default filter, as in production.
    let mut service = start_with(
        &db_url,
        &prefix,
        broker.bootstrap_servers(),
        &[
            ("RUST_LOG", None),
            ("LOG_FORMAT", Some("json")),
            ("ADMIN_TOKENS", Some(&format!("ops:{OPS_TOKEN}"))),
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

    // Creating a campaign logs "Campaign created." at info, inside the request, after the line
    // that names the admin token it came with.
    let created = client
        .post(format!("{}/api/v1/campaigns", service.base))
        .bearer_auth(OPS_TOKEN)
        .header("x-request-id", "create-req-1")
        .header("traceparent", CALLER)
        .json(&json!({"name": "logs", "totalStock": 10}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let campaign: Value = created.json().await.expect("campaign");
    let joins = join_all((1..=20).map(|u| {
        client
            .post(format!(
                "{}/api/v1/campaigns/{}/participations",
                service.base, campaign["id"]
            ))
            .header("x-request-id", format!("join-req-{u}"))
            .json(&json!({"userId": u}))
            .send()
    }))
    .await;
    let statuses: Vec<_> = joins
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
        .collect();
    // Stock 10: ten wins and ten SOLD_OUT, neither of which is worth a log line.
    let wins = statuses.iter().filter(|s| **s == Ok(201)).count();
    let sold_out = statuses.iter().filter(|s| **s == Ok(409)).count();
    assert_eq!((wins, sold_out), (10, 10), "{statuses:?}");

    // Stopped and its output read to the end, so every line it wrote is here.
    terminate(&service.child);
    let status = tokio::task::spawn_blocking(move || service.child.wait())
        .await
        .expect("wait task")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
    reader.join().expect("log reader");
    let logged: Vec<Value> = lines
        .lock()
        .expect("lines")
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let line = logged
        .iter()
        .find(|l| {
            l["message"] == "Campaign created." || l["fields"]["message"] == "Campaign created."
        })
        .unwrap_or_else(|| panic!("no campaign line in {logged:#?}"));
    assert_eq!(line["span"]["request_id"], "create-req-1", "{line}");
    assert_eq!(
        line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{line}"
    );
    let admin = logged
        .iter()
        .find(|l| {
            l["span"]["request_id"] == "create-req-1"
                && (l["fields"]["message"] == "Admin call." || l["message"] == "Admin call.")
        })
        .unwrap_or_else(|| panic!("no admin line in {logged:#?}"));
    assert_eq!(admin["admin"], "ops", "{admin}");
    // Joins that won or were refused log nothing at the default level (no line per request).
    let per_request: Vec<&Value> = logged
        .iter()
        .filter(|l| {
            l["span"]["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("join-req-"))
        })
        .collect();
    assert!(per_request.is_empty(), "{per_request:#?}");
}
