//! Admin authentication: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time so
//! the comparison does not leak how much of a guess was right.

use poem_openapi::{auth::Bearer, SecurityScheme};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Secret;

/// The admin bearer token (`ADMIN_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AdminAuth(Bearer);

/// Whether the request carries the admin token, for an operation open to everyone that lets an
/// admin do more (cancelling a confirmed win). No `Authorization` header: `false`; a bearer token
/// that is not the admin token: 401, never a silent downgrade to the public call.
pub fn admin_presented(req: &poem::Request, expected: &Secret) -> Result<bool, ApiError> {
    let Some(value) = req.headers().get(poem::http::header::AUTHORIZATION) else {
        return Ok(false);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    is_admin_token(token, expected).map(|()| true)
}

impl AdminAuth {
    /// Ok when the presented token is the configured one.
    pub fn check(&self, expected: &Secret) -> Result<(), ApiError> {
        is_admin_token(&self.0.token, expected)
    }
}

/// `presented` is the configured token, compared in constant time.
fn is_admin_token(presented: &str, expected: &Secret) -> Result<(), ApiError> {
    // ct_eq on slices of different lengths is false without comparing contents; the length of
    // the configured token is not a secret worth protecting.
    if bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}
