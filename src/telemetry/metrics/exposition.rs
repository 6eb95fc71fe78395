//! `GET /metrics`: the registry as OpenMetrics text, which Prometheus scrapes as well as its own
//! text format. Public, like `/health` (ops); nothing in it names a user or a secret.

use std::sync::Arc;

use poem::{Endpoint, Request, Response};

use crate::telemetry::metrics::Metrics;

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` endpoint of one application (mount it under `GET`).
pub struct Exposition {
    metrics: Arc<Metrics>,
}

impl Exposition {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Endpoint for Exposition {
    type Output = Response;

    async fn call(&self, _req: Request) -> poem::Result<Response> {
        Ok(Response::builder()
            .content_type(CONTENT_TYPE)
            .body(self.metrics.encode()))
    }
}
