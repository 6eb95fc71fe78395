//! The HTTP API (docs/design.md §3): one poem-openapi `XxxApi` per resource, the shared error type,
//! and the middleware every request passes (request id and trace span, body limit, timeout, JSON
//! errors).

pub mod admin;
pub mod bot_check;
pub mod campaigns;
pub mod components;
pub mod consume;
pub mod controls;
mod docs_page;
mod gate_update;
pub mod groups;
pub mod health;
mod join_json;
pub mod lifecycle;
pub mod live;
pub mod live_group;
mod metrics_page;
pub mod participations;
pub mod purchases;
pub mod queue;
pub mod read_cache;
pub mod readiness;
pub mod rewards;
mod spec_only;
pub mod stats;

use std::sync::Arc;

use poem::{get, Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use crate::http::{door, Front};
use crate::{
    api::spec_only::SpecOnly,
    telemetry::metrics::{Exposition, HttpMetrics, Metrics},
};

#[derive(Tags)]
pub enum Tag {
    /// Create and inspect campaigns.
    Campaigns,
    /// Groups of campaigns under one per-user limit, and purchases (carts) of their campaigns.
    Groups,
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
    groups::GroupsApi,
    purchases::PurchasesApi,
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

/// The whole HTTP application: API, Swagger UI at `/docs`, spec at `/openapi.json`, Prometheus
/// text at `/metrics` (an admin token's when `metrics_admin` is set: an exposed address), the
/// live console at `/console`.
pub fn routes(apis: Apis, metrics: Arc<Metrics>, front: Front) -> impl Endpoint {
    let service = openapi_service(apis);
    let ui = docs_page::routes(service.swagger_ui_html());
    let spec = service.spec_endpoint();
    let pages = Route::new()
        .nest(door::PAGES_DOCS, ui)
        .at(door::PAGE_SPEC, spec)
        .at(
            door::PAGE_METRICS,
            get(metrics_page::MetricsPage {
                exposition: Exposition::new(metrics.clone()),
                admin: front.metrics_admin,
            }),
        )
        .nest(door::PAGES_CONSOLE, crate::console::routes());
    door::Door {
        // The admin tokens for [`crate::http::admin_auth::AdminOnly`]'s check.
        api: service.into_endpoint().data(front.admin.clone()),
        pages,
        limits: front.limits,
        metrics: HttpMetrics::new(&metrics).with_openapi::<Apis>(),
        cors: front.cors,
        proxies: front.proxies,
        rate_limits: Some(front.rate_limits),
        admin: Some(front.admin),
    }
}
