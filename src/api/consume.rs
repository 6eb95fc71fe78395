//! The HTTP surface of `firstcome consume`, so that process can be scraped and probed like
//! `serve`: `GET /metrics`, `GET /health/live`, and `GET /health/ready` (MySQL answers; the
//! consumers' state, counters and lag in the body, as `serve` reports them). Not in the OpenAPI
//! spec: it is the ops surface of a process that serves no API.

use std::sync::Arc;

use poem::{
    get, handler, http::StatusCode, web::Data, Endpoint, EndpointExt, IntoResponse, Response, Route,
};
use poem_openapi::{payload::Json, Object};

use super::health::{Check, ConsumerHealth, Live};
use crate::{
    consumer::ConsumerHandle,
    db::Db,
    metrics::{Exposition, HttpMetrics, Metrics},
};

/// What the handlers read: the consumers' pool and the consumers.
struct ConsumeState {
    db: Db,
    consumers: Vec<ConsumerHandle>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
struct ConsumeReady {
    /// `ready` or `not_ready`.
    status: String,
    mysql: Check,
    consumers: Vec<ConsumerHealth>,
}

/// The routes of `firstcome consume`'s listener.
pub fn routes(db: Db, consumers: Vec<ConsumerHandle>, metrics: Arc<Metrics>) -> impl Endpoint {
    Route::new()
        .at("/metrics", get(Exposition::new(metrics.clone())))
        .at("/health/live", get(live))
        .at("/health/ready", get(ready))
        .data(Arc::new(ConsumeState { db, consumers }))
        .with(HttpMetrics::new(&metrics))
}

#[handler]
fn live() -> Json<Live> {
    Json(Live {
        status: "ok".into(),
    })
}

#[handler]
async fn ready(state: Data<&Arc<ConsumeState>>) -> Response {
    let mysql = super::health::check(state.db.ping()).await;
    let ok = mysql.ok;
    let body = ConsumeReady {
        status: if ok { "ready" } else { "not_ready" }.into(),
        mysql,
        consumers: state.consumers.iter().map(Into::into).collect(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Json(body).with_status(status).into_response()
}
