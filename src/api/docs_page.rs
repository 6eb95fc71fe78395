//! `/docs`: the Swagger UI page, served compressed and under a Content-Security-Policy
//! (docs/design.md §17). The page is poem-openapi's: the UI's script and style and the spec,
//! all inline (1.9 MB). Built once at start: its gzip (~0.5 MB), and a policy that lets run only
//! the page's own scripts, by their SHA-256, and nothing from elsewhere: no inline script an
//! injection could add, no other origin, no frame around it.

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD, Engine};
use poem::{
    endpoint::make_sync,
    http::{header, HeaderValue, StatusCode},
    Endpoint, Request, Response, Route,
};

/// The page as served: its bytes, their gzip, its policy.
struct Page {
    html: Vec<u8>,
    gzip: Vec<u8>,
    policy: HeaderValue,
}

impl Page {
    fn new(html: String) -> Self {
        let policy = HeaderValue::from_str(&policy(&html))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        let gzip = gzip(html.as_bytes());
        Self {
            html: html.into_bytes(),
            gzip,
            policy,
        }
    }

    fn answer(&self, req: &Request) -> Response {
        let (body, encoded) = if accepts_gzip(req) {
            (self.gzip.clone(), true)
        } else {
            (self.html.clone(), false)
        };
        let mut res = Response::builder()
            .status(StatusCode::OK)
            .content_type("text/html; charset=utf-8")
            .header(header::CONTENT_SECURITY_POLICY, self.policy.clone())
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::VARY, "Accept-Encoding")
            .body(body);
        if encoded {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        res
    }
}

/// The `/docs` route. poem-openapi's own also serves an OAuth redirect page, which no scheme of
/// this API uses (its schemes are bearer tokens): not served.
pub fn routes(ui_html: String) -> impl Endpoint {
    let ui = Arc::new(Page::new(ui_html));
    Route::new().at("/", make_sync(move |req| ui.answer(&req)))
}

/// The page's policy: its inline scripts by hash, its inline styles (the UI sets style
/// attributes as it renders), images and fonts from itself or `data:`, requests ("Try it out")
/// to its own origin only.
fn policy(html: &str) -> String {
    let scripts: Vec<String> = inline_scripts(html)
        .map(|script| {
            let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
            format!("'sha256-{}'", STANDARD.encode(digest.as_ref()))
        })
        .collect();
    format!(
        "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'",
        if scripts.is_empty() {
            "'none'".to_string()
        } else {
            scripts.join(" ")
        }
    )
}

/// The text of each inline `<script …>…</script>` of `html`, as a browser hashes it.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        let open = rest.find("<script")?;
        let body = open + rest[open..].find('>')? + 1;
        let close = body + rest[body..].find("</script>")?;
        let script = &rest[body..close];
        rest = &rest[close + "</script>".len()..];
        Some(script)
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether the request's `Accept-Encoding` names gzip (or `*`) without `q=0`.
fn accepts_gzip(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inline_script_is_found_with_its_exact_text() {
        let html = "<head><script charset=\"UTF-8\">a()</script></head><script>\nb()\n</script>";
        let found: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(found, ["a()", "\nb()\n"]);
        let policy = policy(html);
        assert!(policy.contains("script-src 'sha256-"), "{policy}");
        assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
    }

    #[test]
    fn gzip_is_sent_only_to_a_client_that_takes_it() {
        let with = |value: &str| {
            Request::builder()
                .header(header::ACCEPT_ENCODING, value)
                .finish()
        };
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, deflate")));
        assert!(!accepts_gzip(&Request::builder().finish()));
    }
}
