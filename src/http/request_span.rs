//! What the door (`http::door`) does first and last: every request's id, its server span, and the
//! one log line that reports how it ended.
//!
//! - Request id: the client's `x-request-id` when it is 1–128 characters of `[A-Za-z0-9]` and
//!   `-_.:+/=@` (what load balancers and UUIDs use), a new UUIDv7 otherwise (a longer or stranger
//!   value is replaced rather than written into every log line). Echoed in the response.
//! - Trace: the server span continues the caller's trace when a valid W3C `traceparent` came in,
//!   and starts a new one otherwise. Handlers read it as [`ServerSpan`]: its `traceparent` is the
//!   one stored in the outbox row and sent to Kafka.
//! - Logs: the `request` span (target `firstcome::http`, level `info`) carries `request_id` and
//!   `trace_id`, so every line logged while the request runs has them. The completion line is
//!   `debug` for everything below 500 (at 10k requests/s an info line each would flood the
//!   logs), `warn` for a 5xx, `error` for a 500.
//! - Secrets: the path in the span and the exported `url.path` is [`loggable_path`]'s, a
//!   waiting-room ticket replaced by `{ticket}` (whoever holds a ticket polls it and is handed
//!   its admission token); the query string is neither logged nor exported.

use std::{borrow::Cow, time::Instant};

use poem::{
    http::{HeaderValue, Method, StatusCode},
    PathPattern, Request, Response,
};
use uuid::Uuid;

use crate::telemetry::trace::{
    export::{self, ExportSpan, KeyValue, SpanKind},
    TraceContext,
};

pub const X_REQUEST_ID: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";
/// Longest client-supplied request id kept.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's server span: its context is what the request's events carry as `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSpan(pub TraceContext);

/// A request's span while it runs, from [`Opened::open`] to [`Opened::close`] (the door,
/// `http::door`, runs the request inside [`Opened::span`]).
pub struct Opened {
    started: Instant,
    request_id: String,
    method: Method,
    span: tracing::Span,
    otel: ExportSpan,
}

impl Opened {
    /// Names the request (id, trace context, [`ServerSpan`] in its data) and opens its span.
    pub fn open(req: &mut Request) -> Self {
        let started = Instant::now();
        let request_id = header(req, X_REQUEST_ID)
            .filter(|id| acceptable_request_id(id))
            .map_or_else(|| Uuid::now_v7().to_string(), str::to_owned);
        let parent = header(req, TRACEPARENT).and_then(TraceContext::parse);
        let ctx = match parent {
            Some(parent) => parent.child(),
            // A new trace is recorded only when someone can see it.
            None => TraceContext::new_root(export::enabled()),
        };
        req.set_data(ServerSpan(ctx));
        let method = req.method().clone();
        let path = loggable_path(req.uri().path());
        let span = tracing::info_span!(target: "firstcome::http", "request",
            %request_id, trace_id = %ctx.trace_id_hex(), %method,
            path = %path);
        // Built only when exported (no allocation per request otherwise).
        let otel = if export::enabled() {
            export::start(
                method.to_string(),
                SpanKind::Server,
                ctx,
                parent,
                vec![
                    KeyValue::new("http.request.method", method.to_string()),
                    KeyValue::new("url.path", path.into_owned()),
                    KeyValue::new("firstcome.request_id", request_id.clone()),
                ],
            )
        } else {
            ExportSpan::inert()
        };
        Self {
            started,
            request_id,
            method,
            span,
            otel,
        }
    }

    /// The span the request runs in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Logs how the request ended, ends its exported span and echoes its id.
    pub fn close(self, mut resp: Response) -> Response {
        let Self {
            started,
            request_id,
            method,
            span,
            mut otel,
        } = self;
        let status = resp.status();
        let route = resp.data::<PathPattern>().map(|p| p.0.clone());
        let route_text = route.as_deref().unwrap_or("");
        let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
        span.in_scope(|| {
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(target: "firstcome::http", status = status.as_u16(), route = route_text, elapsed_ms,
                    "Request failed with an internal error.");
            } else if status.is_server_error() {
                tracing::warn!(target: "firstcome::http", status = status.as_u16(), route = route_text, elapsed_ms,
                    "Request failed with a server error.");
            } else {
                tracing::debug!(target: "firstcome::http", status = status.as_u16(), route = route_text, elapsed_ms,
                    "Request done.");
            }
        });
        if otel.is_recording() {
            if let Some(route) = &route {
                otel.update_name(format!("{method} {route}"));
                otel.set_attribute(KeyValue::new("http.route", route.to_string()));
            }
            otel.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                otel.set_error(status.to_string());
            }
            otel.end();
        }
        // Acceptable ids are header-safe by construction.
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert(X_REQUEST_ID, value);
        }
        resp
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The segment a waiting-room ticket takes in a logged path.
pub const TICKET: &str = "{ticket}";

/// `path` as logs, spans and traces may carry it: the segment after `queue` (a waiting room's
/// ticket, `/api/v1/campaigns/{id}/queue/{ticket}`) replaced by [`TICKET`]. Borrowed when there
/// is nothing to hide (every other path). Whoever else logs a request's path uses this too.
pub fn loggable_path(path: &str) -> Cow<'_, str> {
    // The router matches segments as written: only a literal `queue` routes to a poll.
    let Some(at) = path.find("/queue/") else {
        return Cow::Borrowed(path);
    };
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    let mut next = Some(at);
    while let Some(at) = next {
        let ticket_at = at + "/queue/".len();
        out.push_str(&rest[..ticket_at]);
        let tail = &rest[ticket_at..];
        let end = tail.find('/').unwrap_or(tail.len());
        if end > 0 {
            out.push_str(TICKET);
        }
        rest = &tail[end..];
        next = rest.find("/queue/");
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Whether a client's request id is kept as it is.
fn acceptable_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_short_and_plain() {
        assert!(acceptable_request_id(
            "0193a5f2-7c4e-7b21-9d3a-5e8f0c1b2a47"
        ));
        assert!(acceptable_request_id(
            "Root=1-67891233-abcdef012345678912345678"
        ));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("a b"));
        assert!(!acceptable_request_id("id\"; drop"));
        assert!(!acceptable_request_id("é"));
        assert!(!acceptable_request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(acceptable_request_id(&"x".repeat(MAX_REQUEST_ID_LEN)));
    }

    #[test]
    fn a_ticket_never_reaches_a_logged_path() {
        for (path, logged) in [
            (
                "/api/v1/campaigns/7/queue/AAAAAAAAAAAAAAAAAAAAAA",
                "/api/v1/campaigns/7/queue/{ticket}",
            ),
            (
                "/api/v1/campaigns/7/queue/secret/more",
                "/api/v1/campaigns/7/queue/{ticket}/more",
            ),
            (
                "/api/v1/campaigns/7/queue/a/queue/b",
                "/api/v1/campaigns/7/queue/{ticket}/queue/{ticket}",
            ),
            ("//queue/x", "//queue/{ticket}"),
            ("/api/v1/campaigns/7/queue", "/api/v1/campaigns/7/queue"),
            ("/api/v1/campaigns/7/queue/", "/api/v1/campaigns/7/queue/"),
            ("/api/v1/campaigns/7/live", "/api/v1/campaigns/7/live"),
            ("/", "/"),
        ] {
            assert_eq!(loggable_path(path), logged, "{path}");
        }
        assert!(matches!(
            loggable_path("/api/v1/campaigns/7/participations"),
            Cow::Borrowed(_)
        ));
    }
}
