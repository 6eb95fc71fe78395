//! Slow, idle and greedy clients (docs/design.md §17), on raw sockets: a request head must arrive
//! within `HTTP_HEADER_TIMEOUT_MS` (fresh or between requests on a kept-alive connection), a body
//! within the request deadline, a connection on which nothing moves is closed after
//! `HTTP_IDLE_TIMEOUT_MS`, and a connection over a cap is answered 503 at once and closed. Ordinary
//! clients are served all the while.
//!
//! Closure is seen as end of file or a reset, read under a generous bound; every deadline here is
//! short, so a server without them fails by running into the bound.

use std::time::{Duration, Instant};

use firstcome::config::Settings;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

use crate::{
    spawn::{spawn_app_with, test_settings, TestApp, ADMIN_TOKEN},
    wait::wait_until,
};

/// How much longer than a deadline a closure or an answer may take on a busy test machine.
const SLACK: Duration = Duration::from_secs(4);

async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut s = test_settings().await;
    configure(&mut s);
    spawn_app_with(s).await
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.address.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// A response as read off the wire (bodies with Content-Length only, as the app's are).
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

/// The next response, or `None` when the connection closed (or was reset) before one.
async fn read_response<R: AsyncRead + Unpin>(r: &mut R) -> Option<Raw> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut raw = Raw {
        status,
        head,
        body: String::new(),
    };
    let length: usize = raw.header("content-length")?.parse().ok()?;
    let mut body = buf[end + 4..].to_vec();
    while body.len() < length {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    raw.body = String::from_utf8_lossy(&body).to_string();
    Some(raw)
}

async fn get(stream: &mut TcpStream, path: &str) -> Raw {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    read_response(stream).await.expect("a response")
}

/// Reads until the server closes the connection (anything it sends first is passed over);
/// how long after `since` that was. Panics if it is still open after `bound`.
async fn closed_within<R: AsyncRead + Unpin>(
    r: &mut R,
    since: Instant,
    bound: Duration,
) -> Duration {
    let mut sink = [0u8; 4096];
    let closed = tokio::time::timeout(bound, async {
        while let Ok(n) = r.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {bound:?}"
    );
    since.elapsed()
}

/// Writes `first`, then `line(n)` every 100 ms until the connection breaks (or for a minute).
fn trickle(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    first: String,
    line: impl Fn(u32) -> String + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if w.write_all(first.as_bytes()).await.is_err() {
            return;
        }
        for n in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if w.write_all(line(n).as_bytes()).await.is_err() {
                return;
            }
        }
    })
}

/// The value of one sample of the app's metrics (0 when absent), on a connection of its own: a
/// pooled one may be closing under its head deadline just as it is reused.
async fn metric(app: &TestApp, sample: &str) -> f64 {
    let text = get(&mut connect(app).await, "/metrics").await.body;
    sample_of(&text, sample)
}

fn sample_of(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn tricklers_and_silent_clients_are_closed_by_the_header_deadline_others_are_served() {
    let header = Duration::from_millis(1_000);
    let app = spawn_with(|s| {
        s.http.header_timeout = header;
        s.http.request_timeout = Duration::from_millis(2_000);
        s.http.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let opened = Instant::now();
    let mut tricklers = Vec::new();
    for i in 0..20 {
        let (r, w) = connect(&app).await.into_split();
        let first = "GET /health/live HTTP/1.1\r\nHost: test\r\n".to_string();
        // Header lines, never the blank line that ends the head.
        let writer = trickle(w, first, move |n| format!("x-slow-{n}: {i}\r\n"));
        tricklers.push((r, writer));
    }
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect(&app).await);
    }

    let reply = app.get("/health/live").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        opened.elapsed() < header,
        "the ordinary request was answered while the slow clients were open"
    );

    for (mut r, writer) in tricklers {
        let after = closed_within(&mut r, opened, header + SLACK).await;
        assert!(
            after >= header,
            "closed after {after:?}, before the deadline"
        );
        writer.abort();
    }
    for mut stream in silent {
        closed_within(&mut stream, opened, header + SLACK).await;
    }
    let timed_out = metric(
        &app,
        "firstcome_connections_timed_out_total{reason=\"header\"}",
    )
    .await;
    assert!(timed_out >= 25.0, "{timed_out} header timeouts counted");
}

#[tokio::test]
async fn a_slow_chunked_body_gets_the_request_deadlines_answer() {
    let request_timeout = Duration::from_millis(800);
    let app = spawn_with(|s| {
        s.http.request_timeout = request_timeout;
        s.http.header_timeout = Duration::from_secs(30);
        s.http.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let (mut r, w) = connect(&app).await.into_split();
    let head = format!(
        "POST /api/v1/campaigns HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n"
    );
    let sent = Instant::now();
    // One byte of JSON whitespace every 100 ms: the body never ends in time.
    let writer = trickle(w, head, |_| "1\r\n \r\n".to_string());

    let answer = tokio::time::timeout(request_timeout + SLACK, read_response(&mut r))
        .await
        .expect("an answer (or a closed connection) within the request deadline");
    let after = sent.elapsed();
    // The client's slowness is named as such (408), not blamed on a dependency (503).
    let reply = answer.expect("an answer before the connection closes");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.body.contains("REQUEST_TIMEOUT"), "{reply:?}");
    assert!(after >= request_timeout, "answered after {after:?}");
    writer.abort();

    // A body with a Content-Length that trickles is held to the same deadline.
    let (mut r, w) = connect(&app).await.into_split();
    let head = format!(
        "POST /api/v1/campaigns HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let sent = Instant::now();
    let writer = trickle(w, head, |_| " ".to_string());
    let answer = tokio::time::timeout(request_timeout + SLACK, read_response(&mut r))
        .await
        .expect("an answer within the request deadline");
    let reply = answer.expect("an answer before the connection closes");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(sent.elapsed() >= request_timeout);
    writer.abort();

    // The service itself is unharmed.
    assert_eq!(app.get("/health/live").await.status, 200);
}

#[tokio::test]
async fn a_connection_on_which_nothing_moves_is_closed_by_the_idle_deadline() {
    let idle = Duration::from_millis(800);
    let app = spawn_with(|s| {
        s.http.header_timeout = Duration::from_secs(30);
        s.http.request_timeout = Duration::from_millis(400);
        s.http.idle_timeout = idle;
    })
    .await;
    let opened = Instant::now();
    let mut quiet = Vec::new();
    for _ in 0..10 {
        quiet.push(connect(&app).await);
    }
    // Half a head, then nothing: the head's own deadline is far off, the idle one is not.
    let mut stalled = connect(&app).await;
    stalled
        .write_all(b"GET /health/live HTTP/1.1\r\n")
        .await
        .expect("write");
    quiet.push(stalled);

    let reply = app.get("/health/live").await;
    assert_eq!(reply.status, 200, "{reply:?}");

    for mut stream in quiet {
        let after = closed_within(&mut stream, opened, idle + SLACK).await;
        assert!(after >= idle, "closed after {after:?}, before the deadline");
    }
    let timed_out = metric(
        &app,
        "firstcome_connections_timed_out_total{reason=\"idle\"}",
    )
    .await;
    assert!(timed_out >= 11.0, "{timed_out} idle timeouts counted");
}

#[tokio::test]
async fn a_kept_alive_connection_serves_requests_in_a_row_then_its_head_deadline_closes_it() {
    let header = Duration::from_millis(800);
    let app = spawn_with(|s| {
        s.http.header_timeout = header;
        s.http.request_timeout = Duration::from_millis(1_000);
        s.http.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut stream = connect(&app).await;
    for _ in 0..3 {
        let reply = get(&mut stream, "/health/live").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.contains("ok"), "{reply:?}");
        // A pause shorter than the deadline between requests.
        tokio::time::sleep(header / 3).await;
    }
    let reply = get(&mut stream, "/health/live").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let answered = Instant::now();
    let after = closed_within(&mut stream, answered, header + SLACK).await;
    assert!(
        after >= header / 2,
        "closed {after:?} after its last answer"
    );
    // Counted: hyper's own deadline, told from other connection errors.
    let sample = "firstcome_connections_timed_out_total{reason=\"header\"}";
    assert_eq!(metric(&app, sample).await, 1.0);
}

/// Holds `cap` admitted connections, then checks one more is answered 503 and closed, counted
/// under `reason`, and that a place comes back when a held connection closes.
async fn one_over_the_cap_is_refused(app: &TestApp, cap: usize, reason: &str) {
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut stream = connect(app).await;
        assert_eq!(get(&mut stream, "/health/live").await.status, 200);
        held.push(stream);
    }
    let mut over = connect(app).await;
    let refused_at = Instant::now();
    over.write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let reply = read_response(&mut over).await.expect("the 503 answer");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{reply:?}");
    assert_eq!(reply.header("connection"), Some("close"), "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(body["code"], "SERVICE_BUSY", "{body}");
    closed_within(&mut over, refused_at, SLACK).await;

    let metrics = get(&mut held[0], "/metrics").await.body;
    let sample = format!("firstcome_connections_refused_total{{reason=\"{reason}\"}}");
    assert!(sample_of(&metrics, &sample) >= 1.0, "{sample} not counted");
    assert!(sample_of(&metrics, "firstcome_connections_open") >= cap as f64);

    drop(held.pop());
    wait_until("a place given back", SLACK, || async {
        let mut stream = connect(app).await;
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .is_ok()
            && read_response(&mut stream)
                .await
                .is_some_and(|r| r.status == 200)
    })
    .await;
}

#[tokio::test]
async fn a_client_over_its_connection_cap_is_answered_503_and_closed() {
    let app = spawn_with(|s| {
        s.http.max_connections_per_client = 3;
        s.http.header_timeout = Duration::from_secs(30);
    })
    .await;
    one_over_the_cap_is_refused(&app, 3, "per_client").await;
}

#[tokio::test]
async fn a_connection_over_the_total_cap_is_answered_503_and_closed() {
    let app = spawn_with(|s| {
        s.http.max_connections = 3;
        s.http.header_timeout = Duration::from_secs(30);
    })
    .await;
    one_over_the_cap_is_refused(&app, 3, "total").await;
}

/// An admin-only call's token is checked before its body is read (docs/design.md §17): without
/// an admin token, a call that declares 100 bytes and sends 8, or declares a megabyte, is
/// answered 401 at once (not 408 once the request deadline passed, nor 413); with the token, the
/// body's own limit applies.
#[tokio::test]
async fn an_admin_only_call_without_its_token_is_refused_before_its_body_is_read() {
    let app = spawn_with(|s| s.http.request_timeout = Duration::from_secs(10)).await;
    let calls = [
        "/api/v1/campaigns",
        "/api/v1/groups",
        "/api/v1/admin/campaigns/1/pause",
        "/api/v1/admin/outbox/redrive",
    ];
    let send = |path: &'static str, length: usize, token: Option<&'static str>| {
        let app = &app;
        async move {
            let mut stream = connect(app).await;
            let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                 {auth}Content-Length: {length}\r\n\r\n{{\"name\":"
            );
            stream.write_all(head.as_bytes()).await.expect("write");
            let started = std::time::Instant::now();
            let answer = tokio::time::timeout(SLACK, read_response(&mut stream))
                .await
                .unwrap_or_else(|_| panic!("{path}: no answer within {SLACK:?}"))
                .expect("an answer");
            (answer, started.elapsed())
        }
    };
    for path in calls {
        for (length, token) in [
            (100, None),
            (1_000_000, None),
            (100, Some("not-an-admin-token-0123456789")),
        ] {
            let (answer, after) = send(path, length, token).await;
            assert_eq!(answer.status, 401, "{path} {length} {token:?}: {answer:?}");
            assert!(answer.body.contains("UNAUTHORIZED"), "{answer:?}");
            assert!(after < SLACK, "{path}: answered after {after:?}");
        }
    }
    let (with_token, _) = send("/api/v1/campaigns", 1_000_000, Some(ADMIN_TOKEN)).await;
    assert_eq!(
        with_token.status, 413,
        "the admin's call meets the body limit: {with_token:?}"
    );
}
