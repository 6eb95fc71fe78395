//! The door: the one layer every request passes on its way to the routes (docs/design.md §10
//! "Request futures", §17). In order: its id and span (`request_span`), its HTTP metrics, CORS,
//! its client's address (`client_ip`), the per-IP rate limit (`rate_limit`), an admin-only call's
//! token (`admin_auth`), then the body read whole and the call, both within the request deadline; errors the framework raises become the
//! API's JSON errors (`catcher::catch_all`) before CORS and the metrics see the answer. The call
//! goes to the pages or, for every other path, straight to the OpenAPI operations.
//!
//! One `Endpoint` rather than a middleware per concern: each poem layer wraps the request in
//! three more futures (`Arc`, `Box`, `dyn`) that each move the 472-byte `Request`, and boxing
//! them apart cost an allocation each. Each concern keeps its own module; this file only orders
//! them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use poem::{
    error::ReadBodyError, http::header::CONTENT_LENGTH, Body, Endpoint, IntoResponse, Request,
    Response,
};
use tracing::Instrument;

use crate::{
    http::{
        admin_auth::AdminTokens,
        catcher,
        client_ip::TrustedProxies,
        cors::{Before, Cors},
        error::ApiError,
        rate_limit::RateLimits,
        request_span::Opened,
        Limits,
    },
    telemetry::metrics::{http::method_label, HttpMetrics},
};

/// See the module documentation.
pub(crate) struct Door<A, P> {
    /// The OpenAPI operations: every path but the pages'.
    pub api: A,
    /// The pages ([`is_page`]): Swagger UI, the spec, the metrics, the console.
    pub pages: P,
    pub limits: Limits,
    pub metrics: HttpMetrics,
    pub cors: Cors,
    pub proxies: TrustedProxies,
    /// The per-IP limit (`RATE_LIMIT_IP_*`); `None` where there is no Redis to keep it
    /// (`firstcome consume`).
    pub rate_limits: Option<RateLimits>,
    /// The admin tokens, for an admin-only call's bearer checked before its body is read;
    /// `None` where no such call is served (`firstcome consume`).
    pub admin: Option<AdminTokens>,
}

impl<A: Endpoint, P: Endpoint> Endpoint for Door<A, P> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let opened = Opened::open(&mut req);
        let span = opened.span().clone();
        let resp = self.serve(req).instrument(span).await;
        Ok(opened.close(resp))
    }
}

impl<A: Endpoint, P: Endpoint> Door<A, P> {
    /// The request after its span opened: counted and timed, with CORS around it.
    async fn serve(&self, req: Request) -> Response {
        let method = method_label(req.method());
        let started = Instant::now();
        let resp = match self.cors.before(&req) {
            Before::Answer(answer) => answer,
            Before::Untouched => self.admitted(req).await,
            Before::Shared { origin } => Cors::after(origin, self.admitted(req).await),
        };
        self.metrics.record(method, started, &resp);
        resp
    }

    /// The client found and limited, then the body and the call within the deadline.
    async fn admitted(&self, mut req: Request) -> Response {
        self.proxies.resolve(&mut req);
        if let Some(limits) = &self.rate_limits {
            if let Some(refused) = limits.refuse_ip(&req).await {
                return refused;
            }
        }
        match self.within_deadline(req).await {
            Ok(resp) => resp,
            Err(err) => catcher::catch_all(err),
        }
    }

    /// Body limit and request timeout, answering in the API's JSON error shape.
    async fn within_deadline(&self, mut req: Request) -> poem::Result<Response> {
        let limits = self.limits;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // An admin-only call without an admin token is refused before its body is looked at.
        if let Some(refused) = (self.admin.as_ref()).and_then(|a| a.refuse_before_body(&req)) {
            return Ok(refused.into_response());
        }
        if declared.is_some_and(|len| len > limits.body_bytes) {
            return Ok(ApiError::payload_too_large(limits.body_bytes).into_response());
        }
        // One deadline for reading the body and answering (docs/design.md §17). The body (at
        // most HTTP_BODY_LIMIT_BYTES) is read whole first, so a client trickling it is told so
        // (408) and not mistaken for a slow dependency, which would log an ERROR per slow client.
        let deadline = tokio::time::Instant::now() + limits.request_timeout;
        let body = read_body(req.take_body(), limits.body_bytes);
        match tokio::time::timeout_at(deadline, body).await {
            Ok(Ok(body)) => req.set_body(body),
            Ok(Err(ReadBodyError::PayloadTooLarge)) => {
                return Ok(ApiError::payload_too_large(limits.body_bytes).into_response())
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Ok(timed_out_reading(limits.request_timeout)),
        }
        // Boxed: the two routes' futures side by side would make every request's future
        // larger, and it is moved whole at each layer that awaits it.
        match tokio::time::timeout_at(deadline, Box::pin(self.route(req))).await {
            Ok(result) => result.map(IntoResponse::into_response),
            Err(_) => {
                let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out");
                Ok(ApiError::dependency("a dependency", &cause).into_response())
            }
        }
    }

    /// The request to the pages or to the API. What a `Route` nesting the API at `/` beside
    /// the pages would do, without its match, its copy of the URI and its two more layers.
    async fn route(&self, req: Request) -> poem::Result<Response> {
        if is_page(req.uri().path()) {
            self.pages.call(req).await.map(IntoResponse::into_response)
        } else {
            self.api.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// Whether `path` is one of the pages' (`api::routes`): `/docs` and below, `/openapi.json`,
/// `/metrics`, `/console` and below. Everything else is the API's, a 404 included.
fn is_page(path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(PAGES_DOCS) || under(PAGES_CONSOLE) || path == PAGE_SPEC || path == PAGE_METRICS
}

/// The pages' paths ([`is_page`], `api::routes`).
pub const PAGES_DOCS: &str = "/docs";
pub const PAGES_CONSOLE: &str = "/console";
pub const PAGE_SPEC: &str = "/openapi.json";
pub const PAGE_METRICS: &str = "/metrics";

fn timed_out_reading(timeout: Duration) -> Response {
    tracing::debug!(
        ?timeout,
        "A request body did not arrive within the request deadline."
    );
    catcher::request_timeout(timeout)
}

/// The whole body, at most `limit` bytes. A body that came in one piece (a join's always does)
/// is kept as it came: no buffer to fill and no copy.
async fn read_body(body: Body, limit: usize) -> Result<Body, ReadBodyError> {
    let mut chunks = std::pin::pin!(body.into_bytes_stream());
    let mut first = None;
    let mut rest = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        len += chunk.len();
        if len > limit {
            return Err(ReadBodyError::PayloadTooLarge);
        }
        match first {
            None => first = Some(chunk),
            Some(_) => rest.extend_from_slice(&chunk),
        }
    }
    Ok(match first {
        None => Body::empty(),
        Some(first) if rest.is_empty() => Body::from(first),
        Some(first) => {
            let mut whole = Vec::with_capacity(len);
            whole.extend_from_slice(&first);
            whole.extend_from_slice(&rest);
            Body::from(whole)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_theirs_and_every_other_path_the_apis() {
        for page in [
            "/docs",
            "/docs/",
            "/docs/index.html",
            "/openapi.json",
            "/metrics",
            "/console",
            "/console/",
            "/console/app.js",
        ] {
            assert!(is_page(page), "{page}");
        }
        for api in [
            "/",
            "",
            "/api/v1/campaigns",
            "/health/live",
            "/docsx",
            "/metrics/",
            "/metricsx",
            "/openapi.json/x",
            "/consoles",
            "/api/docs",
        ] {
            assert!(!is_page(api), "{api}");
        }
    }

    async fn read(chunks: &[&'static str], limit: usize) -> Result<Vec<u8>, ReadBodyError> {
        let chunks: Vec<_> = chunks
            .iter()
            .map(|c| Ok::<_, std::io::Error>(c.as_bytes().to_vec()))
            .collect();
        let stream = futures::stream::iter(chunks);
        let body = read_body(Body::from_bytes_stream(stream), limit).await?;
        Ok(body.into_vec().await.expect("a body read"))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_in_one_piece_or_many() {
        assert_eq!(read(&[], 10).await.expect("empty"), b"");
        assert_eq!(read(&["abc"], 10).await.expect("one"), b"abc");
        assert_eq!(
            read(&["ab", "", "cd", "e"], 10).await.expect("many"),
            b"abcde"
        );
        assert_eq!(read(&["abcde"], 5).await.expect("at the limit"), b"abcde");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused_in_one_piece_or_many() {
        for chunks in [&["abcdef"][..], &["abc", "def"][..]] {
            assert!(matches!(
                read(chunks, 5).await,
                Err(ReadBodyError::PayloadTooLarge)
            ));
        }
    }
}
