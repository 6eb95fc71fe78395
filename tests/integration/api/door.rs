//! The door of an exposed deployment (docs/design.md §16–17): who the client is when proxies
//! stand in front (against the real per-IP limiter on Redis), failed admin attempts limited and
//! logged without the token, a limiter without Redis counted, and CORS for a shop's own pages.

use std::time::{Duration, Instant};

use firstcome::config::{cidr::Cidr, Settings};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    binary::{fixture, read_all_lines, run_firstcome, start_with, terminate, wait_for_exit},
    operations::metrics::exposition::{scrape, scrape_url, sum},
    proxy::Proxy,
    spawn::{spawn_app_with, test_settings, TestApp},
};

/// The per-IP bucket of these tests: 1 a second, 5 at once.
const RATE: u32 = 1;
const BURST: u32 = 5;

/// An app whose every public call takes from its client IP's bucket, with `header` trusted from
/// the peers in `proxies`.
async fn limited_app(header: &str, proxies: &str) -> TestApp {
    let mut s = test_settings().await;
    s.rate_limits.ip_per_second = Some(RATE);
    s.rate_limits.ip_burst = Some(BURST);
    s.rate_limits.trusted_proxy_header = Some(header.to_string());
    s.rate_limits.trusted_proxies = proxies
        .split(',')
        .map(|c| c.parse::<Cidr>().expect("a CIDR"))
        .collect();
    spawn_app_with(s).await
}

/// Sends `n` public calls, the i-th with the header lines `lines(i)`; how many were let through
/// and how long the calls took.
async fn burst(
    app: &TestApp,
    n: usize,
    lines: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> (u32, f64) {
    let started = Instant::now();
    let mut passed = 0;
    for i in 0..n {
        let mut headers = HeaderMap::new();
        for (name, value) in lines(i) {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).expect("a header value"),
            );
        }
        let reply = app
            .send(
                app.client
                    .get(app.url("/api/v1/campaigns"))
                    .headers(headers),
            )
            .await;
        match reply.status {
            200 => passed += 1,
            429 => assert_eq!(reply.code(), "RATE_LIMITED", "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    }
    (passed, started.elapsed().as_secs_f64())
}

/// The calls of one client were limited: no more passed than its one bucket allows.
fn one_bucket((passed, elapsed): (u32, f64)) {
    let allowed = f64::from(BURST) + f64::from(RATE) * elapsed + 1.0;
    assert!(
        f64::from(passed) <= allowed,
        "{passed} passed in {elapsed:.1} s: more than one bucket"
    );
}

/// The calls were not limited at all.
fn unlimited((passed, _): (u32, f64), n: usize) {
    assert_eq!(passed as usize, n, "calls of a fresh client were refused");
}

#[tokio::test]
async fn a_forged_first_line_does_not_make_a_fresh_client() {
    let app = limited_app("x-forwarded-for", "127.0.0.1").await;
    // The client writes its own line; the proxy (the test, on loopback) appends the real one.
    one_bucket(
        burst(&app, 20, |i| {
            vec![
                ("x-forwarded-for", format!("10.77.{}.{}", i / 200, i % 200)),
                ("x-forwarded-for", "198.51.100.7".to_string()),
            ]
        })
        .await,
    );
    // The same on one line: whatever is left of the proxy's address is the client's word.
    let app = limited_app("x-forwarded-for", "127.0.0.1").await;
    one_bucket(
        burst(&app, 20, |i| {
            vec![("x-forwarded-for", format!("10.78.0.{i}, 198.51.100.8"))]
        })
        .await,
    );
}

#[tokio::test]
async fn a_peer_that_is_no_trusted_proxy_cannot_name_the_client() {
    let app = limited_app("x-forwarded-for", "10.0.0.0/8").await;
    one_bucket(
        burst(&app, 20, |i| {
            vec![("x-forwarded-for", format!("203.0.113.{i}"))]
        })
        .await,
    );
}

#[tokio::test]
async fn addresses_with_ports_are_clients_of_their_own() {
    let app = limited_app("x-forwarded-for", "127.0.0.1").await;
    one_bucket(
        burst(&app, 20, |i| {
            vec![("x-forwarded-for", format!("198.51.100.7:{}", 40_000 + i))]
        })
        .await,
    );
    // Another client behind the same proxy has a bucket of its own (it would share the proxy's
    // if `ip:port` were not read).
    unlimited(
        burst(&app, 4, |_| {
            vec![("x-forwarded-for", "[2001:db8::9]:443".to_string())]
        })
        .await,
        4,
    );
}

#[tokio::test]
async fn forwarded_is_read_and_ipv6_clients_are_keyed_by_their_64() {
    let app = limited_app("forwarded", "127.0.0.1").await;
    // Every address of one /64 is one client.
    one_bucket(
        burst(&app, 20, |i| {
            vec![(
                "forwarded",
                format!("for=\"[2001:db8:1:2::{:x}]:4711\";proto=https", i + 1),
            )]
        })
        .await,
    );
    // The next /64 is another client.
    unlimited(
        burst(&app, 4, |_| {
            vec![("forwarded", "for=\"[2001:db8:1:3::1]\"".to_string())]
        })
        .await,
        4,
    );
}

#[tokio::test]
async fn failed_admin_attempts_are_limited_per_client_and_logged_without_the_token() {
    let (broker, db_url, prefix) = fixture().await;
    let env = [
        ("ADMIN_FAILED_ATTEMPTS_BURST", Some("3")),
        ("ADMIN_FAILED_ATTEMPTS_PER_MINUTE", Some("1")),
        ("LOG_FORMAT", Some("json")),
    ];
    let mut service = start_with(&db_url, &prefix, broker.bootstrap_servers(), &env, true).await;
    let reader = read_all_lines(&mut service.child);
    let client = reqwest::Client::new();
    let call = |token: String| {
        client
            .get(format!("{}/api/v1/admin/outbox", service.base))
            .bearer_auth(token)
            .send()
    };
    for i in 0..3 {
        let guess = format!("guess-number-{i}-0123456789");
        assert_eq!(call(guess).await.expect("answer").status(), 401);
    }
    // Out of attempts: refused before the comparison, even with the right token.
    let refused = call(service.token.clone()).await.expect("answer");
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    let samples = scrape_url(&client, &format!("{}/metrics", service.base)).await;
    assert_eq!(
        sum(&samples, "firstcome_admin_auth_failures_total", &[]),
        4.0
    );
    // The whole log, read to its end after a clean stop (a line written before its answer may
    // still sit in the pipe when the answer arrives).
    let stopped = Instant::now();
    terminate(&service.child);
    wait_for_exit(&mut service.child, stopped, Duration::from_secs(20), || {
        "the service did not stop".into()
    })
    .await;
    let log = reader.join().expect("the log reader").join("\n");
    let failures = log
        .lines()
        .filter(|l| l.contains("neither an admin token nor a JWT was refused"))
        .count();
    assert_eq!(failures, 3, "{log}");
    assert!(
        log.contains("/api/v1/admin/outbox"),
        "the path is logged: {log}"
    );
    assert!(
        !log.contains("guess-number"),
        "a presented token is never logged: {log}"
    );
}

#[tokio::test]
async fn weak_and_example_admin_tokens_are_refused_at_start() {
    for token in [
        "change-me-local-admin-token",
        "aaaaaaaaaaaaaaaaaaaa",
        "short-token",
        // Accepted before issue 57: 16 characters and more than one of them.
        "aaaaaaaaaaaaaaab",
        "0123456789abcdef",
        "passwordpassword",
        // 24 characters, but a repetition, too few distinct ones, a straight run.
        "abcdefghijklabcdefghijkl",
        "passwordpasswordpassword",
        "0123456789abcdefghijklmn",
        // Accepted before issue 71: words, a keyboard walk, l33t and a year, a near-repetition.
        "correcthorsebatterystaple",
        "qwertyuiopasdfghjklzxcvbnm",
        "P@ssw0rd-firstcome-2026!",
        "firstcome-admin-token-2026",
        "aaaaaaaaaaaabcdefghijklmn",
    ] {
        let run = run_firstcome(&["serve"], &[("ADMIN_TOKEN", token)]).await;
        assert_eq!(run.status.code(), Some(2), "{token}: {}", run.stderr);
        assert!(run.stderr.contains("ADMIN_TOKEN="), "{}", run.stderr);
        assert!(
            run.stderr.contains("openssl rand -hex 32"),
            "says how to make one: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(token),
            "the token is not echoed: {}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn a_limiter_that_cannot_reach_redis_lets_calls_through_and_counts_them() {
    let redis: std::net::SocketAddr = crate::spawn::redis_url()
        .trim_start_matches("redis://")
        .parse()
        .expect("the test Redis's address");
    let proxy = Proxy::start(redis).await;
    let mut s = test_settings().await;
    s.redis.url = firstcome::config::Secret::new(format!("redis://{}", proxy.addr()));
    s.redis.timeout = Duration::from_millis(300);
    s.rate_limits.ip_per_second = Some(100);
    let app = spawn_app_with(s).await;
    assert_eq!(app.get("/api/v1/campaigns").await.status, 200);
    proxy.black_hole();
    for _ in 0..3 {
        let reply = app.get("/api/v1/campaigns").await;
        assert_eq!(reply.status, 200, "let through without Redis: {reply:?}");
    }
    let counted = sum(
        &scrape(&app).await,
        "firstcome_rate_limit_unavailable_total",
        &[],
    );
    assert!(counted >= 3.0, "{counted}");
    proxy.resume();
}

/// A preflight of `path` for `method` from `origin`; the `Access-Control-Allow-Origin` answered.
async fn preflight(app: &TestApp, path: &str, method: &str, origin: &str) -> Option<String> {
    let reply = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, idempotency-key, traceparent",
        )
        .send()
        .await
        .expect("an answer");
    assert!(reply
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let allowed = reply
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("text").to_string());
    if allowed.is_some() {
        let headers = reply.headers()["access-control-allow-headers"]
            .to_str()
            .expect("text")
            .to_string();
        for needed in ["authorization", "idempotency-key", "traceparent"] {
            assert!(headers.contains(needed), "{headers}");
        }
    }
    allowed
}

async fn cors_app(origins: &[&str]) -> TestApp {
    let mut s: Settings = test_settings().await;
    s.cors.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    spawn_app_with(s).await
}

#[tokio::test]
async fn a_preflight_is_answered_for_an_allowed_origin_on_the_public_api_only() {
    let shop = "https://shop.example";
    let app = cors_app(&[shop]).await;
    let join = "/api/v1/campaigns/1/participations";
    assert_eq!(
        preflight(&app, join, "POST", shop).await.as_deref(),
        Some(shop)
    );
    assert_eq!(
        preflight(&app, join, "POST", "https://evil.example").await,
        None
    );
    for (path, method) in [
        ("/api/v1/admin/outbox", "GET"),
        ("/api/v1/admin/campaigns/1/pause", "POST"),
        ("/api/v1/campaigns", "POST"),
        ("/console/", "GET"),
    ] {
        assert_eq!(preflight(&app, path, method, shop).await, None, "{path}");
    }
    // The calls themselves: the public one carries the header, the admin one never.
    let public = app
        .client
        .get(app.url("/api/v1/campaigns"))
        .header("origin", shop)
        .send()
        .await
        .expect("answer");
    assert_eq!(public.headers()["access-control-allow-origin"], shop);
    let admin = app
        .client
        .get(app.url("/api/v1/admin/outbox"))
        .header("origin", shop)
        .bearer_auth(crate::spawn::ADMIN_TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(admin.status(), 200);
    assert!(admin.headers().get("access-control-allow-origin").is_none());
    // Unset (the default): no CORS header at all.
    let off = cors_app(&[]).await;
    assert_eq!(preflight(&off, join, "POST", shop).await, None);
}
