//! Who may act for a user (`USER_AUTH`, docs/design.md §3): with `jwt`, a join (both paths), a
//! confirm, a cancel and a rewards read carry `Authorization: Bearer <JWT>` whose user is the
//! `userId` of the path or body. The check runs before anything is written or reserved: a
//! missing or invalid token is 401 `UNAUTHENTICATED`, a valid one of another user 403
//! `USER_MISMATCH`. With `none` (the default) nothing is checked: the deployment's gateway
//! authenticates, or nobody does (trying the service out).
//!
//! The security schemes below are what the OpenAPI document declares for those operations:
//! a user's JWT, or nothing (the `none` mode), and on cancel an admin token too. The handlers read
//! the `Authorization` header themselves: an admin token and a JWT are both bearer tokens.

use poem::Request;
use poem_openapi::{auth::Bearer, SecurityScheme};

use crate::{
    http::{
        admin_auth::{AdminAuth, AdminTokens, Presented},
        error::ApiError,
    },
    identity::{IdentityError, UserVerifier},
};

/// A user's JWT (`Authorization: Bearer <JWT>`), required when the service runs with
/// `USER_AUTH=jwt`: signed with the configured algorithm, within `exp`/`nbf`, for the configured
/// issuer and audience, its user claim (`sub` by default) the user the call names.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
// The token itself is read from the raw header by `UserAuthority` (an admin token and a JWT are
// both bearer tokens); the field only makes this the bearer scheme.
pub struct UserJwt(#[allow(dead_code)] Bearer);

/// A user's JWT, or nothing when the service runs with `USER_AUTH=none`.
#[derive(SecurityScheme)]
pub enum UserToken {
    UserJwt(UserJwt),
    #[oai(fallback)]
    NoToken,
}

/// An admin token (a refund; a read of any user's win), a user's JWT, or nothing when the
/// service runs with `USER_AUTH=none`.
#[derive(SecurityScheme)]
pub enum AdminOrUserToken {
    AdminAuth(AdminAuth),
    UserJwt(UserJwt),
    #[oai(fallback)]
    NoToken,
}

/// The check of `USER_AUTH`. Cheap to clone.
#[derive(Clone)]
pub struct UserAuthority {
    /// `None` with `USER_AUTH=none`.
    verifier: Option<UserVerifier>,
    /// The admin door: a bearer that is not shaped like a JWT is a guess at an admin token
    /// wherever it is presented (docs/design.md §17).
    door: AdminTokens,
}

impl UserAuthority {
    pub fn new(verifier: Option<UserVerifier>, door: AdminTokens) -> Self {
        Self { verifier, door }
    }

    /// Whether calls are checked (`USER_AUTH=jwt`).
    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// Ok when the request may act for `user_id`. With `jwt`, a bearer that is not shaped like a
    /// JWT goes through the admin door ([`AdminTokens::presented`]): counted as a failed admin
    /// attempt (an admin token excepted) and 429 once the client has none left; either way it
    /// acts for no user.
    pub fn authorize(&self, req: &Request, user_id: i64) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        match self.door.presented(req)? {
            Presented::Nothing | Presented::UserJwt => self.verified(req, user_id),
            Presented::Admin(_) | Presented::Failed => Err(ApiError::unauthenticated()),
        }
    }

    /// [`Self::authorize`] for a caller that asked the door itself: the user verifier alone.
    pub fn verified(&self, req: &Request, user_id: i64) -> Result<(), ApiError> {
        match self.token_user(req)? {
            Some(token_user) if token_user != user_id => {
                tracing::debug!(
                    token_user,
                    user_id,
                    "A valid token of another user; refused."
                );
                Err(ApiError::user_mismatch())
            }
            _ => Ok(()),
        }
    }

    /// The user whose valid token the request carries, for a caller that asked the door itself:
    /// `None` with `USER_AUTH=none`; 401 without a valid token. A call about a resource that
    /// names its user (a purchase) asks this before it looks the resource up, so that its
    /// answer without a token never says whether the resource exists (docs/design.md §17).
    pub fn token_user(&self, req: &Request) -> Result<Option<i64>, ApiError> {
        let Some(verifier) = &self.verifier else {
            return Ok(None);
        };
        let header = match req.headers().get(poem::http::header::AUTHORIZATION) {
            None => None,
            // Bytes that are not text cannot be a JWT; "" is invalid, not missing.
            Some(value) => Some(value.to_str().unwrap_or("")),
        };
        match verifier.verify(header) {
            Ok(token_user) => Ok(Some(token_user)),
            Err(IdentityError::Missing) => Err(ApiError::unauthenticated()),
            Err(e @ IdentityError::Invalid(_)) => {
                // Debug: a flood of forged tokens must not flood the log too.
                tracing::debug!(error = %e, "A user token was refused.");
                Err(ApiError::unauthenticated())
            }
        }
    }
}
