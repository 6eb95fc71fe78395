//! The HTTP stack (docs/design.md §3, §10, §16, §17): everything a request meets before and after
//! the resource that answers it, and nothing of the resources themselves (`crate::api`). Both
//! `firstcome serve` and `firstcome consume` serve through it.
//!
//! # Layout, in the order a request meets it
//! - [`server`]: the accept loop: connection caps, client deadlines (head, body, idle), HTTP/1.1
//!   (HTTP/2 when enabled, its streams capped), graceful shutdown, the open-file limit.
//! - [`door`]: the one layer every request passes: the request's id and span
//!   ([`request_span`]), the client's address ([`client_ip`]), CORS ([`cors`]), the per-client
//!   limits ([`rate_limit`]), the body limit and the request deadline ([`Limits`]).
//! - [`admin_auth`]: admin tokens, and [`guess_limit`], the limit on failed attempts at them.
//! - [`user_auth`]: who may act for a user (`USER_AUTH`).
//! - [`error`]: the one error response, `{"code", "message"}` with a stable code, and what
//!   each domain's error answers.
//! - [`catcher`]: the framework's own errors (bad JSON, unknown routes, …) in the same shape.
//! - [`idempotency_key`]: the `Idempotency-Key` header of the calls that take one.
//! - [`json_string`]: a request field that must be a JSON string.

pub mod admin_auth;
pub mod catcher;
pub mod client_ip;
pub mod cors;
pub mod door;
pub mod error;
mod guess_limit;
pub mod idempotency_key;
pub mod json_string;
pub mod rate_limit;
pub mod request_span;
pub mod server;
pub mod user_auth;

use std::time::Duration;

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

/// What the door in front of the resources is given, built at start-up.
#[derive(Clone)]
pub struct Front {
    pub limits: Limits,
    /// The per-client limits of every public call (`RATE_LIMIT_*`).
    pub rate_limits: rate_limit::RateLimits,
    /// Who the client of a request is (`TRUSTED_PROXIES`), in front of every limit.
    pub proxies: client_ip::TrustedProxies,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors: cors::Cors,
    /// Who may read `/metrics` on `HTTP_ADDR`: `Some` (admins) on an exposed address.
    pub metrics_admin: Option<admin_auth::AdminTokens>,
    /// The admin tokens, which an admin-only call's scheme ([`admin_auth::AdminOnly`]) checks
    /// before the call's body is read.
    pub admin: admin_auth::AdminTokens,
}
