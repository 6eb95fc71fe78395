//! The live sale console at `/console` (docs/design.md §20): one page that lists the campaigns,
//! draws a campaign's live stream (`GET /api/v1/campaigns/{id}/live`) and, with an admin token
//! the operator types in (kept for the tab only), runs its controls through the admin API.
//!
//! Its three files are compiled into the binary: no CDN, no Node, nothing to install at run
//! time. The page runs no inline script, so it is served with a strict Content-Security-Policy.

use poem::{
    get, handler,
    http::{header, StatusCode},
    Response, Route,
};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// Only the service's own files and calls: no inline script, no third party.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

#[handler]
fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `/console`, `/console/console.js`, `/console/console.css`.
pub fn routes() -> Route {
    Route::new()
        .at("/", get(index))
        .at("/console.js", get(script))
        .at("/console.css", get(style))
}
