//! Admin authentication: `Authorization: Bearer <token>`, one of the named admin tokens
//! (`ADMIN_TOKENS`, and `ADMIN_TOKEN` as the one named `admin`). The presented token is compared
//! with every configured one in constant time, without stopping at a match, so neither the
//! comparison nor the number of comparisons tells how much of a guess was right. The name of the
//! token that matched is what the service records: the log line of each admin call, a redrive's
//! answer, a refund's log line.
//!
//! A failed admin attempt is any bearer that is neither an admin token nor shaped like a JWT
//! (docs/design.md §17), on every call that reads a bearer: a JWT-shaped one is a user's, judged
//! by the user verifier, never compared here, never counted, and never refused by the door, so
//! a user does not meet the failed attempts of another client at the same address. Every other
//! bearer goes through the door of `admin_door` first: a client IP whose failed attempts are used
//! up is answered 429 before its token is compared. A failed attempt is logged (client, peer,
//! method and path; never the token), counted in `firstcome_admin_auth_failures_total` and taken
//! from the client's bucket.

use std::{sync::Arc, time::Instant};

use poem::Request;
use poem_openapi::{auth::Bearer, SecurityScheme};
use rand::Rng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::{
    config::jwt_shape::well_formed_jwt,
    config::{NamedToken, Secret, Settings},
    http::{client_ip, error::ApiError, guess_limit::FailedAttempts, rate_limit::retry_after},
    telemetry::metrics::Metrics,
};

/// An admin bearer token (`ADMIN_TOKENS` / `ADMIN_TOKEN`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct AdminAuth(Bearer);

/// An admin-only call's bearer, checked ([`AdminTokens::check`]) as the first thing the call
/// extracts: before its body is read or validated, so an anonymous caller learns nothing from a
/// body's 400 and a body costs nothing before the token is known (docs/design.md §17). The
/// endpoint carries the tokens as request data (`api::routes`). Same scheme as [`AdminAuth`] in
/// the OpenAPI document; [`AdminAuth`] stays for the calls an admin, a user or anyone may make.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "AdminAuth", checker = "admin_only")]
pub struct AdminOnly(AdminName);

impl AdminOnly {
    /// The name of the admin token the call came with.
    pub fn name(&self) -> &AdminName {
        &self.0
    }
}

async fn admin_only(req: &Request, bearer: Bearer) -> poem::Result<AdminName> {
    let Some(tokens) = req.data::<AdminTokens>() else {
        tracing::error!(
            "An admin-only call reached an endpoint without the admin tokens; refused."
        );
        return Err(ApiError::unauthorized().into());
    };
    tokens.check(req, &bearer.token).map_err(Into::into)
}

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
            FailedAttempts::new(
                door.burst,
                door.per_minute,
                door.max_clients,
                metrics.clone(),
            ),
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
                tracing::debug!(%client, path = %crate::http::request_span::loggable_path(req.uri().path()), "An admin call refused before its token was compared: the client's failed attempts are used up.");
                Err(ApiError::rate_limited(retry_after(wait)))
            }
        }
    }

    /// An admin-only call: the name of the token `presented`; 401 when it is none of them (a
    /// failed attempt unless it is shaped like a user's JWT), 429 when the client has no
    /// attempt left.
    pub fn check(&self, req: &Request, presented: &str) -> Result<AdminName, ApiError> {
        let admin = self.verify(req, presented)?;
        tracing::info!(admin = %admin, "Admin call.");
        Ok(admin)
    }

    /// [`Self::check`] without its log line: the door's check of an admin-only call's bearer,
    /// before the body is read ([`admin_only_route`]); the call's own check logs it.
    pub fn verify(&self, req: &Request, presented: &str) -> Result<AdminName, ApiError> {
        if well_formed_jwt(presented) {
            tracing::debug!("A user's token on an admin call; refused, not counted as a guess.");
            return Err(ApiError::unauthorized());
        }
        self.door(req)?;
        let Some(admin) = self.identify(presented) else {
            self.failed(req);
            return Err(ApiError::unauthorized());
        };
        Ok(admin)
    }

    /// The door's check of an admin-only call (`admin_only_route`): its bearer verified before
    /// its body is read, so a caller without an admin token is answered 401 at once, whatever
    /// body it declares or trickles (docs/design.md §17). `None` when the call may go on.
    pub fn refuse_before_body(&self, req: &Request) -> Option<ApiError> {
        if !admin_only_route(req.method(), req.uri().path()) {
            return None;
        }
        match bearer(req) {
            None => Some(ApiError::unauthorized()),
            Some(token) => self.verify(req, token).err(),
        }
    }

    /// What the request's `Authorization` header presents, for a call that an admin, a user or
    /// anyone may make. A bearer shaped like a JWT is a user's, never compared and never a
    /// failed attempt; anything else is compared with the admin tokens after the client's bucket
    /// is consulted (429 when it is empty), and is a failed attempt unless it is one.
    pub fn presented(&self, req: &Request) -> Result<Presented, ApiError> {
        if !req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION)
        {
            return Ok(Presented::Nothing);
        }
        let token = bearer(req);
        if token.is_some_and(well_formed_jwt) {
            return Ok(Presented::UserJwt);
        }
        self.door(req)?;
        match token.and_then(|t| self.identify(t)) {
            Some(admin) => Ok(Presented::Admin(admin)),
            None => {
                self.failed(req);
                Ok(Presented::Failed)
            }
        }
    }

    /// Records a failed admin attempt of `req`'s client: logged (never the token), counted, and
    /// taken from the client's bucket.
    fn failed(&self, req: &Request) {
        let client = client_ip::of(req);
        self.failures.record(&client.key(), Instant::now());
        self.metrics.admin_auth_failures.inc();
        tracing::warn!(
            client = %client.0,
            peer = ?client_ip::peer(req),
            method = %req.method(),
            path = %crate::http::request_span::loggable_path(req.uri().path()),
            "A bearer that is neither an admin token nor a JWT was refused."
        );
    }
}

/// What a request's `Authorization` header presents ([`AdminTokens::presented`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No `Authorization` header.
    Nothing,
    /// A bearer shaped like a JWT: the user verifier's to judge.
    UserJwt,
    /// An admin token, by its name.
    Admin(AdminName),
    /// Neither: a failed admin attempt, already logged, counted and taken from the bucket.
    Failed,
}

/// The bearer token of the `Authorization` header, if it has one. The scheme is read without
/// regard to case (RFC 9110 §11.1), as the user verifier reads it: a user's `bearer <JWT>` must
/// be taken for a JWT here too, not for a guess at an admin token.
/// Whether `method` `path` is one of the calls only an admin may make (their operations extract
/// [`AdminOnly`]): everything under `/api/v1/admin/`, and creating a campaign or a group.
/// `api::admin_tokens` checks this against every admin-only operation.
pub fn admin_only_route(method: &poem::http::Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path.starts_with("/api/v1/admin/")
        || (method == poem::http::Method::POST
            && matches!(path, "/api/v1/campaigns" | "/api/v1/groups"))
}

pub fn bearer(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
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

    #[test]
    fn the_admin_only_routes_are_the_admin_room_and_creations() {
        use poem::http::Method;
        for (method, path) in [
            (Method::GET, "/api/v1/admin/outbox"),
            (Method::POST, "/api/v1/admin/campaigns/7/pause"),
            (Method::POST, "/api/v1/campaigns"),
            (Method::POST, "/api/v1/campaigns/"),
            (Method::POST, "/api/v1/groups"),
        ] {
            assert!(admin_only_route(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/api/v1/campaigns"),
            (Method::POST, "/api/v1/campaigns/7/participations"),
            (Method::GET, "/api/v1/groups/3"),
            (Method::POST, "/api/v1/administrators"),
            (Method::GET, "/health/ready"),
        ] {
            assert!(!admin_only_route(&method, path), "{method} {path}");
        }
    }

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
            FailedAttempts::new(10, 6, 100, Arc::new(Metrics::new())),
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
            FailedAttempts::new(3, 1, 100, Arc::new(Metrics::new())),
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
    }

    /// A JWT's shape: `{"alg":"HS256"}.{"sub":"1"}.sig`.
    const USER_JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";

    #[test]
    fn a_bearer_is_a_guess_unless_it_is_an_admin_token_or_shaped_like_a_jwt() {
        let t = AdminTokens::new(
            vec![NamedToken {
                name: "admin".into(),
                token: Secret::new("the-real-admin-token-42"),
            }],
            FailedAttempts::new(2, 1, 100, Arc::new(Metrics::new())),
            Arc::new(Metrics::new()),
        );
        let peer = "203.0.113.5:1";
        let no_header = client_ip::test_request(peer, &[]);
        assert_eq!(t.presented(&no_header).expect("ok"), Presented::Nothing);
        for guess in ["not.a.jwt", "aaaaaaaaaaaaaaab"] {
            let failed = t.presented(&request(peer, guess)).expect("not yet blocked");
            assert_eq!(failed, Presented::Failed, "{guess}");
        }
        // Out of attempts: a guess, and a non-bearer header, are refused before any comparison…
        for refused in [
            request(peer, "the-real-admin-token-42"),
            client_ip::test_request(peer, &[("authorization", "Basic dXNlcjpwdw==")]),
        ] {
            let err = t.presented(&refused).expect_err("blocked");
            assert_eq!(err.code().name(), "RATE_LIMITED");
        }
        // …while a user's token from the same address never meets the door, and costs nothing.
        let user = request(peer, USER_JWT);
        assert_eq!(t.presented(&user).expect("no 429"), Presented::UserJwt);
        let on_admin_call = t.check(&user, USER_JWT).expect_err("no admin");
        assert_eq!(on_admin_call.code().name(), "UNAUTHORIZED");
        assert_eq!(t.metrics.admin_auth_failures.get(), 4);
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
