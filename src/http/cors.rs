//! CORS for a shop's own pages on another origin (docs/design.md §17, `CORS_ALLOWED_ORIGINS`).
//!
//! Only the public and user calls under `/api/v1/` take part: a preflight for the admin API
//! (`/api/v1/admin/…` and creating a campaign), the console, the metrics or the documentation
//! is never answered, and their responses never carry CORS headers, so a page elsewhere cannot
//! drive them from a browser even with a stolen token. No `Access-Control-Allow-Credentials` is
//! ever sent: the API takes bearer tokens, which a page sends itself, never cookies. With no
//! origin configured this middleware adds nothing at all.

use std::sync::Arc;

use poem::{
    http::{header, HeaderValue, Method, StatusCode},
    Request, Response,
};

use crate::config::CorsSettings;

/// The request headers a page may send: the user's JWT, a join's idempotency key, its trace.
const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, traceparent, x-request-id";
/// The response headers a page may read besides the simple ones.
const EXPOSE_HEADERS: &str = "retry-after, x-request-id";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// The allowed origins. Cheap to clone.
#[derive(Clone)]
pub struct Cors {
    /// Normalised (`config::cors`); `["*"]` for any; empty: CORS off.
    origins: Arc<[String]>,
}

impl Cors {
    pub fn new(settings: &CorsSettings) -> Self {
        Self {
            origins: settings.allowed_origins.clone().into(),
        }
    }

    /// The value of `Access-Control-Allow-Origin` for `origin`, if it is allowed.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.origins.first().is_some_and(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }
}

/// Whether a call of `method` on `path` is one a shop's page may make: the public and user API,
/// less the admin's.
fn shared(method: &Method, path: &str) -> bool {
    path.starts_with("/api/v1/")
        && !path.starts_with("/api/v1/admin/")
        && !(method == Method::POST && path.trim_end_matches('/') == "/api/v1/campaigns")
}

/// The preflight's method, if `req` is a preflight (`OPTIONS` with
/// `Access-Control-Request-Method`).
fn preflight(req: &Request) -> Option<Method> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    req.headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// What CORS makes of a request before it is served (`http::door`).
pub enum Before {
    /// A preflight this service allows: the answer, sent without serving anything.
    Answer(Response),
    /// Served as it is and answered without CORS headers: CORS is off, the call is not one a
    /// page may make, or a preflight that is not ours to allow (the router answers it as any
    /// OPTIONS, and the browser does not send the call).
    Untouched,
    /// Served, then its answer gets [`Cors::after`]'s headers.
    Shared { origin: Option<HeaderValue> },
}

impl Cors {
    /// See [`Before`].
    pub fn before(&self, req: &Request) -> Before {
        if self.origins.is_empty() {
            return Before::Untouched;
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let path = req.uri().path();
        if let Some(method) = preflight(req) {
            let allowed = origin.and_then(|o| self.allow(o));
            return match allowed.filter(|_| shared(&method, path)) {
                Some(allow) => Before::Answer(preflight_answer(allow)),
                None => Before::Untouched,
            };
        }
        if !shared(req.method(), path) {
            return Before::Untouched;
        }
        Before::Shared {
            origin: origin.and_then(|o| self.allow(o)),
        }
    }

    /// The answer to a [`Before::Shared`] call: `Vary: origin`, and the allowed origin with the
    /// readable headers when the origin is allowed.
    pub fn after(origin: Option<HeaderValue>, mut resp: Response) -> Response {
        let headers = resp.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(allow) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        resp
    }
}

/// The answer to an allowed preflight.
fn preflight_answer(allow: HeaderValue) -> Response {
    let mut answer = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")
        .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
        .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE)
        .finish();
    answer
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_public_and_user_api_is_shared() {
        assert!(shared(&Method::POST, "/api/v1/campaigns/7/participations"));
        assert!(shared(&Method::GET, "/api/v1/campaigns"));
        assert!(shared(&Method::GET, "/api/v1/users/3/rewards"));
        assert!(!shared(&Method::POST, "/api/v1/campaigns"));
        assert!(!shared(&Method::POST, "/api/v1/campaigns/"));
        assert!(!shared(&Method::GET, "/api/v1/admin/outbox"));
        assert!(!shared(&Method::GET, "/console/"));
        assert!(!shared(&Method::GET, "/metrics"));
    }
}
