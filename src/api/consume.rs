//! The HTTP surface of `firstcome consume`, so that process can be scraped and probed like
//! `serve`: `GET /metrics`, `GET /health/live`, and `GET /health/ready` (MySQL answers, pinged at
//! most once a second; the consumers' state, counters and lag in the body, to an admin token
//! only). Not in the OpenAPI spec: it is the ops surface of a process that serves no API.
//!
//! It is served as `serve`'s API is (docs/design.md §17): by the same server (deadlines, caps)
//! behind the same door (client address, body limit, request deadline, JSON errors), with
//! `/metrics` an admin token's on an exposed address. Only the per-IP limit is missing: it
//! lives in Redis, which this process does not use.

use std::sync::Arc;

use poem::{
    get, handler, http::StatusCode, web::Data, Endpoint, EndpointExt, IntoResponse, Request,
    Response, Route,
};
use poem_openapi::{payload::Json, Object};

use crate::{
    api::{
        health::{Check, ConsumerHealth, Live},
        metrics_page::MetricsPage,
        readiness::{sees_details, Throttled},
    },
    consumer::ConsumerHandle,
    db::Db,
    http::{
        admin_auth::AdminTokens,
        client_ip::TrustedProxies,
        cors::Cors,
        door::{self, Door},
        Limits,
    },
    telemetry::metrics::{Exposition, HttpMetrics, Metrics},
};

/// What the handlers read: the consumers' pool, the consumers, who sees the details, and the
/// last ping of MySQL.
struct ConsumeState {
    db: Db,
    consumers: Vec<ConsumerHandle>,
    admin: AdminTokens,
    ping: Throttled<Check>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
struct ConsumeReady {
    /// `ready` or `not_ready`.
    status: String,
    mysql: Check,
    /// With an admin token only.
    #[oai(skip_serializing_if_is_none)]
    consumers: Option<Vec<ConsumerHealth>>,
}

/// What the listener of `firstcome consume` is built from.
pub struct ConsumeSurface {
    pub db: Db,
    pub consumers: Vec<ConsumerHandle>,
    pub metrics: Arc<Metrics>,
    pub admin: AdminTokens,
    /// Whether `HTTP_ADDR` is exposed: `/metrics` then needs the admin token.
    pub exposed: bool,
    pub limits: Limits,
    pub proxies: TrustedProxies,
    pub cors: Cors,
}

/// The routes of `firstcome consume`'s listener, behind the door.
pub fn routes(surface: ConsumeSurface) -> impl Endpoint {
    let ConsumeSurface {
        db,
        consumers,
        metrics,
        admin,
        exposed,
        limits,
        proxies,
        cors,
    } = surface;
    let state = ConsumeState {
        db,
        consumers,
        admin: admin.clone(),
        ping: Throttled::new(metrics.readiness_checks.clone()),
    };
    let api = Route::new()
        .at("/health/live", get(live))
        .at("/health/ready", get(ready))
        .data(Arc::new(state));
    let pages = Route::new().at(
        door::PAGE_METRICS,
        get(MetricsPage {
            exposition: Exposition::new(metrics.clone()),
            admin: exposed.then_some(admin),
        }),
    );
    Door {
        api,
        pages,
        limits,
        metrics: HttpMetrics::new(&metrics),
        cors,
        proxies,
        rate_limits: None,
        admin: None,
    }
}

#[handler]
fn live() -> Json<Live> {
    Json(Live {
        status: "ok".into(),
    })
}

#[handler]
async fn ready(state: Data<&Arc<ConsumeState>>, req: &Request) -> Response {
    let details = match sees_details(&state.admin, req) {
        Ok(details) => details,
        Err(refused) => return refused.into_response(),
    };
    let mysql = state
        .ping
        .get(|| crate::api::health::check(state.db.ping()))
        .await;
    let ok = mysql.ok;
    let body = ConsumeReady {
        status: crate::api::health::status(ok),
        mysql: if details { mysql } else { mysql.public() },
        consumers: details.then(|| state.consumers.iter().map(Into::into).collect()),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(body).with_status(status).into_response()
}
