//! The HTTP API (docs/design.md §3): one poem-openapi `XxxApi` per resource, the shared error type,
//! and the middleware every request passes (request id and trace span, body limit, timeout, JSON
//! errors).

pub mod admin;
mod admin_door;
pub mod auth;
pub mod campaigns;
pub mod client_ip;
pub mod consume;
pub mod controls;
pub mod cors;
pub mod error;
pub mod health;
pub mod json_string;
pub mod lifecycle;
pub mod live;
pub mod participations;
pub mod queue;
pub mod rate_limit;
pub mod request_span;
pub mod rewards;
mod spec_only;
pub mod stats;
pub mod user_auth;

use std::{sync::Arc, time::Duration};

use poem::{
    get, http::header::CONTENT_LENGTH, Endpoint, EndpointExt, IntoResponse, Request, Response,
    Route,
};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use self::{error::ApiError, spec_only::SpecOnly};
use crate::metrics::{Exposition, HttpMetrics, Metrics};

#[derive(Tags)]
pub enum Tag {
    /// Create and inspect campaigns.
    Campaigns,
    /// The waiting room of `QUEUE` and `RAFFLE` campaigns: queue, poll, get an admission token.
    Queue,
    /// Join a campaign and look participations up.
    Participations,
    /// Campaign statistics from the stats consumer.
    Stats,
    /// Reward points from the rewards consumer.
    Rewards,
    /// Outbox and relay operations, and live campaign controls (admin).
    Admin,
    /// Liveness and readiness.
    Health,
}

/// Every resource, each holding the services it calls (built by `startup`).
pub type Apis = (
    health::HealthApi,
    campaigns::CampaignsApi,
    participations::ParticipationsApi,
    stats::StatsApi,
    rewards::RewardsApi,
    lifecycle::LifecycleApi,
    admin::AdminApi,
    controls::ControlsApi,
    queue::QueueApi,
    live::LiveApi,
);

/// The OpenAPI service over `apis`: the resources themselves, or [`SpecOnly`] for the document.
fn openapi_service<T: OpenApi>(apis: T) -> OpenApiService<T, ()> {
    OpenApiService::new(apis, "firstcome", env!("CARGO_PKG_VERSION")).description(
        "First-come-first-served campaigns on a transactional outbox. Errors are \
         `{\"code\", \"message\"}` with a stable code. Admin calls need an admin token \
         (`Authorization: Bearer <token>`, scheme AdminAuth); calls that act for a user (join, \
         confirm, cancel, rewards) need that user's JWT (scheme UserJwt) when the service runs \
         with `USER_AUTH=jwt`, and nothing with `USER_AUTH=none`; with `jwt` a user's \
         participation is read with that user's JWT or an admin token, and a campaign's list of \
         participations with an admin token. Every response carries \
         `x-request-id` (the request's own when it is 1-128 characters of `[A-Za-z0-9-_.:+/=@]`, \
         generated otherwise). A W3C `traceparent` on a request is continued \
         by the service's own span, whose context the resulting Kafka event carries.",
    )
}

/// The spec as YAML (committed as `openapi/openapi.yaml`); needs no connection.
pub fn openapi_yaml() -> String {
    openapi_service(SpecOnly::<Apis>::default()).spec_yaml()
}

/// Limits the HTTP layer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub body_bytes: usize,
    pub request_timeout: Duration,
}

impl Limits {
    /// `HTTP_BODY_LIMIT_BYTES` and `HTTP_REQUEST_TIMEOUT_MS`.
    pub fn of(http: &crate::config::HttpSettings) -> Self {
        Self {
            body_bytes: http.body_limit,
            request_timeout: http.request_timeout,
        }
    }
}

/// The whole HTTP application: API, Swagger UI at `/docs`, spec at `/openapi.json`, Prometheus
/// text at `/metrics`, the live console at `/console`.
pub fn routes(
    apis: Apis,
    metrics: Arc<Metrics>,
    limits: Limits,
    rate_limits: rate_limit::RateLimits,
    proxies: client_ip::TrustedProxies,
    cors: cors::Cors,
) -> impl Endpoint {
    let service = openapi_service(apis);
    let ui = service.swagger_ui();
    let spec = service.spec_endpoint();
    Route::new()
        .nest("/docs", ui)
        .at("/openapi.json", spec)
        .at("/metrics", get(Exposition::new(metrics.clone())))
        .nest("/console", crate::console::routes())
        .nest("/", service)
        // Each layer boxed: a layer's request future then holds the one inside it as a
        // pointer. Nested by value they added up to ~12 KiB, copied at every layer of every
        // request (docs/design.md §10, "Request futures").
        .boxed()
        .around(move |ep, req| guard(ep, req, limits))
        .boxed()
        .around(move |ep, req| rate_limit::limit_ips(ep, req, rate_limits.clone()))
        .boxed()
        .around(move |ep, req| client_ip::resolve(ep, req, proxies.clone()))
        .boxed()
        .catch_all_error(error::catch_all)
        .boxed()
        .around(move |ep, req| cors::cors(ep, req, cors.clone()))
        .boxed()
        .with(HttpMetrics::new(&metrics).with_openapi::<Apis>())
        .boxed()
        .with(request_span::RequestSpan)
        .boxed()
}

/// Body limit and request timeout, answering in the API's JSON error shape.
async fn guard<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    limits: Limits,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limits.body_bytes) {
        return Ok(ApiError::payload_too_large(limits.body_bytes).into_response());
    }
    // One deadline for reading the body and answering (docs/design.md §17). The body (at most
    // HTTP_BODY_LIMIT_BYTES) is read whole first, so a client trickling it is told so (408) and
    // not mistaken for a slow dependency, which would log an ERROR per slow client.
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    // Boxed: this future alone is ~4 KiB, and would otherwise sit in every request's future.
    let body = Box::pin(req.take_body().into_bytes_limit(limits.body_bytes));
    match tokio::time::timeout_at(deadline, body).await {
        Ok(Ok(bytes)) => req.set_body(bytes),
        Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => {
            return Ok(ApiError::payload_too_large(limits.body_bytes).into_response())
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => {
            tracing::debug!(timeout = ?limits.request_timeout, "A request body did not arrive within the request deadline.");
            return Ok(error::request_timeout(limits.request_timeout));
        }
    }
    match tokio::time::timeout_at(deadline, ep.call(req)).await {
        Ok(result) => result.map(IntoResponse::into_response),
        Err(_) => {
            let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out");
            Ok(ApiError::dependency("a dependency", &cause).into_response())
        }
    }
}
