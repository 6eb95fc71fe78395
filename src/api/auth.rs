//! Admin authentication: `Authorization: Bearer <token>`, one of the named admin tokens
//! (`ADMIN_TOKENS`, and `ADMIN_TOKEN` as the one named `admin`). The presented token is compared
//! with every configured one in constant time, without stopping at a match, so neither the
//! comparison nor the number of comparisons tells how much of a guess was right. The name of the
//! token that matched is what the service records: the log line of each admin call, a redrive's
//! answer, a refund's log line.
//!
//! Every check goes through the door of `admin_door` first (docs/design.md §17): a client IP
//! whose failed attempts are used up is answered 429 before its token is compared. A failed
//! attempt is logged (client, peer, method and path; never the token), counted in
//! `firstcome_admin_auth_failures_total` and taken from the client's bucket.

use std::{sync::Arc, time::Instant};

use poem::Request;
use poem_openapi::{auth::Bearer, SecurityScheme};
use rand::Rng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{admin_door::FailedAttempts, client_ip, error::ApiError, rate_limit::retry_after};
use crate::{
    config::{NamedToken, Secret, Settings},
    metrics::Metrics,
};

/// An admin bearer token (`ADMIN_TOKENS` / `ADMIN_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AdminAuth(Bearer);

/// The name of the admin token a call came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminName(pub Arc<str>);

impl std::fmt::Display for AdminName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The configured admin tokens and the door in front of them. Cheap to clone.
#[derive(Clone)]
pub struct AdminTokens {
    tokens: Arc<[(AdminName, Secret)]>,
    /// Failed attempts per client IP (`ADMIN_FAILED_ATTEMPTS_*`).
    failures: Arc<FailedAttempts>,
    metrics: Arc<Metrics>,
}

impl AdminTokens {
    /// `ADMIN_TOKENS` and `ADMIN_TOKEN` (named `admin`); with neither, one token named `admin`
    /// generated for this run and printed once to stderr (never into the structured log, which
    /// is shipped and kept).
    pub fn from_settings(settings: &Settings, metrics: Arc<Metrics>) -> Self {
        let mut tokens: Vec<NamedToken> = settings.admin_tokens.clone();
        if let Some(single) = &settings.admin_token {
            tokens.push(NamedToken {
                name: "admin".into(),
                token: single.clone(),
            });
        }
        if tokens.is_empty() {
            let token: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
            tracing::warn!("Neither ADMIN_TOKEN nor ADMIN_TOKENS is set; generated one, named admin, for this run and printed it once to stderr.");
            eprintln!("firstcome: generated admin token for this run (set ADMIN_TOKEN to choose one): {token}");
            tokens.push(NamedToken {
                name: "admin".into(),
                token: Secret::new(token),
            });
        }
        let door = &settings.admin_door;
        Self::new(
            tokens,
            FailedAttempts::new(door.burst, door.per_minute),
            metrics,
        )
    }

    pub fn new(tokens: Vec<NamedToken>, failures: FailedAttempts, metrics: Arc<Metrics>) -> Self {
        Self {
            tokens: tokens
                .into_iter()
                .map(|t| (AdminName(t.name.into()), t.token))
                .collect(),
            failures: Arc::new(failures),
            metrics,
        }
    }

    /// The name of the token `presented` is, if any: every token is compared, in constant time.
    fn identify(&self, presented: &str) -> Option<AdminName> {
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, (_, token)) in self.tokens.iter().enumerate() {
            // ct_eq on slices of different lengths is false without comparing contents; the
            // length of a configured token is not a secret worth protecting.
            let equal = presented.as_bytes().ct_eq(token.expose().as_bytes());
            index.conditional_assign(&(i as u32), equal);
            found |= equal;
        }
        bool::from(found).then(|| self.tokens[index as usize].0.clone())
    }

    /// 429 when the client of `req` has no failed attempt left (checked before any comparison).
    fn door(&self, req: &Request) -> Result<(), ApiError> {
        let client = client_ip::of(req).key();
        match self.failures.blocked(&client, Instant::now()) {
            None => Ok(()),
            Some(wait) => {
                self.metrics.admin_auth_failures.inc();
                tracing::debug!(%client, path = %super::request_span::loggable_path(req.uri().path()), "An admin call refused before its token was compared: the client's failed attempts are used up.");
                Err(ApiError::rate_limited(retry_after(wait)))
            }
        }
    }

    /// An admin-only call: the name of the token `presented`; 401 (a failed attempt) when it is
    /// none of them, 429 when the client has no attempt left.
    pub fn check(&self, req: &Request, presented: &str) -> Result<AdminName, ApiError> {
        self.door(req)?;
        let admin = self.identify(presented).ok_or_else(|| self.failed(req))?;
        tracing::info!(admin = %admin, "Admin call.");
        Ok(admin)
    }

    /// A call that an admin or someone else may make: the admin named by the request's bearer
    /// token; `None` without a bearer, or when it is no admin token (it may be a user's JWT: the
    /// caller decides, and calls [`Self::failed`] when it was meant as an admin's). 429 when the
    /// client has no attempt left.
    pub fn in_header(&self, req: &Request) -> Result<Option<AdminName>, ApiError> {
        let Some(token) = bearer(req) else {
            return Ok(None);
        };
        self.door(req)?;
        Ok(self.identify(token))
    }

    /// Records a failed admin attempt of `req`'s client and returns the 401 to answer it with.
    pub fn failed(&self, req: &Request) -> ApiError {
        let client = client_ip::of(req);
        self.failures.record(&client.key(), Instant::now());
        self.metrics.admin_auth_failures.inc();
        tracing::warn!(
            client = %client.0,
            peer = ?client_ip::peer(req),
            method = %req.method(),
            path = %super::request_span::loggable_path(req.uri().path()),
            "An admin call with a token that is no admin token was refused."
        );
        ApiError::unauthorized()
    }
}

/// The bearer token of the `Authorization` header, if it has one.
pub fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl AdminAuth {
    /// The name of the admin token presented ([`AdminTokens::check`]). The call's log line
    /// names the admin.
    pub fn check(&self, tokens: &AdminTokens, req: &Request) -> Result<AdminName, ApiError> {
        tokens.check(req, &self.0.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AdminTokens {
        AdminTokens::new(
            vec![
                NamedToken {
                    name: "alice".into(),
                    token: Secret::new("alice-token-0123456789"),
                },
                NamedToken {
                    name: "bob".into(),
                    token: Secret::new("bob-token-0123456789"),
                },
            ],
            FailedAttempts::new(10, 6),
            Arc::new(Metrics::new()),
        )
    }

    fn request(peer: &str, token: &str) -> Request {
        let bearer = format!("Bearer {token}");
        client_ip::test_request(peer, &[("authorization", bearer.as_str())])
    }

    #[test]
    fn a_client_out_of_attempts_is_refused_before_the_comparison() {
        let t = AdminTokens::new(
            vec![NamedToken {
                name: "admin".into(),
                token: Secret::new("the-real-admin-token-42"),
            }],
            FailedAttempts::new(3, 1),
            Arc::new(Metrics::new()),
        );
        for _ in 0..3 {
            let refused = t.check(
                &request("203.0.113.5:1", "guess-guess-guess-1"),
                "guess-guess-guess-1",
            );
            assert_eq!(refused.unwrap_err().code().name(), "UNAUTHORIZED");
        }
        // The right token no longer helps this client: it is not even compared.
        let right = request("203.0.113.5:2", "the-real-admin-token-42");
        let refused = t.check(&right, "the-real-admin-token-42").unwrap_err();
        assert_eq!(refused.code().name(), "RATE_LIMITED");
        assert_eq!(t.metrics.admin_auth_failures.get(), 4);
        // Another client is not affected.
        let other = request("198.51.100.9:1", "the-real-admin-token-42");
        assert_eq!(
            t.check(&other, "the-real-admin-token-42")
                .expect("admin")
                .0
                .as_ref(),
            "admin"
        );
        // A bearer on a mixed call that is no admin token is not a failure by itself.
        let user = request("198.51.100.10:1", "a.user.jwt");
        assert_eq!(t.in_header(&user).expect("no 429"), None);
    }

    #[test]
    fn each_token_is_known_by_its_name() {
        let t = tokens();
        assert_eq!(
            t.identify("alice-token-0123456789").unwrap().0.as_ref(),
            "alice"
        );
        assert_eq!(
            t.identify("bob-token-0123456789").unwrap().0.as_ref(),
            "bob"
        );
    }

    #[test]
    fn a_wrong_prefix_or_extension_is_no_token() {
        let t = tokens();
        for guess in [
            "",
            "alice-token-012345678",
            "alice-token-01234567890",
            "bob",
        ] {
            assert!(t.identify(guess).is_none(), "{guess}");
        }
    }
}
