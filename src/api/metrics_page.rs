//! `/metrics` on the port of the API (docs/design.md §17): open on a loopback address, as
//! before; on an address other hosts reach, an admin token's (checked at the admin door, so a
//! guess there is a failed attempt like any other). Prometheus on an internal network scrapes
//! the listener of `METRICS_ADDR` instead, which serves nothing else and needs no token.
//!
//! The figures name no user and no secret, but they are a map of the sale for whoever wants to
//! time an attack on it (stock left, queue lengths, pool saturation, lag).

use poem::{Endpoint, IntoResponse, Request, Response};

use crate::{
    http::{
        admin_auth::{bearer, AdminTokens},
        error::ApiError,
    },
    telemetry::metrics::Exposition,
};

/// The exposition, behind the admin door when `admin` is set (an exposed address).
pub struct MetricsPage {
    pub exposition: Exposition,
    /// `Some` on an exposed address: who may read it.
    pub admin: Option<AdminTokens>,
}

impl Endpoint for MetricsPage {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if let Some(admin) = &self.admin {
            // No bearer: 401 as any admin call without one; a wrong one is a failed attempt.
            let checked = bearer(&req)
                .ok_or_else(ApiError::unauthorized)
                .and_then(|token| admin.check(&req, token));
            if let Err(refused) = checked {
                return Ok(refused.into_response());
            }
        }
        self.exposition.call(req).await
    }
}
