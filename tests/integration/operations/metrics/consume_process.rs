//! `firstcome consume` as a child process for the metrics test: started on any free port (read
//! from its "Consuming." log line), then its `/metrics`, `/health/live` and `/health/ready`, and
//! the deadlines of `serve`'s server, which serves it too (issue 57).

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{consumer_helpers::ChildProcess, wait::wait_until};

use super::exposition::{has, scrape_url, sum, Sample};

/// The admin token of the consume process: its readiness details need it.
const CONSUME_TOKEN: &str = "Rz5Nk8Tq2Wm7Xp4Lh9Vc3Jb6Fd1Gs0c";

/// Its head deadline: short, so that a test sees it close a silent connection.
const HEADER_TIMEOUT_MS: u64 = 1_000;

/// Starts the process on any free port; the process says which in its "Consuming." log line
/// (JSON). Returns it (killed when dropped) and its base URL.
pub async fn start(db_url: &str, bootstrap: &str) -> (ChildProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firstcome"))
        .arg("consume")
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("CONSUMER_GROUP_PROTOCOL", "consumer")
        .env("MIGRATE_ON_START", "false")
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("HTTP_HEADER_TIMEOUT_MS", HEADER_TIMEOUT_MS.to_string())
        .env("ADMIN_TOKEN", CONSUME_TOKEN)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start `firstcome consume`");
    let stdout = child.stdout.take().expect("stdout");
    let consume = ChildProcess { child };
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .find(|v| v["message"] == "Consuming." || v["fields"]["message"] == "Consuming.")
            .map(|v| {
                v.get("addr")
                    .or_else(|| v["fields"].get("addr"))
                    .and_then(|a| a.as_str())
                    .expect("the listening address")
                    .to_string()
            })
            .expect("`firstcome consume` logs that it is consuming");
        // Keep draining, so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        addr
    })
    .await
    .expect("log reader");
    (consume, format!("http://{addr}"))
}

/// Waits until its metrics show both consumers applied the 10 wins.
pub async fn wait_until_every_win_is_applied(client: &reqwest::Client, base: &str) {
    let applied = |m: &[Sample], consumer: &str| {
        sum(
            m,
            "firstcome_consumer_events_total",
            &[("consumer", consumer), ("result", "applied")],
        )
    };
    wait_until(
        "the consumer process to apply every win",
        Duration::from_secs(60),
        || async {
            let m = scrape_url(client, &format!("{base}/metrics")).await;
            applied(&m, "stats") == 10.0 && applied(&m, "rewards") == 10.0
        },
    )
    .await;
}

/// Its `/metrics` has its consumers' pool and counts its own scrapes.
pub async fn assert_its_metrics(client: &reqwest::Client, base: &str) {
    let m = scrape_url(client, &format!("{base}/metrics")).await;
    assert!(has(
        &m,
        "firstcome_db_pool_connections",
        &[("pool", "consumers")]
    ));
    assert!(has(
        &m,
        "firstcome_http_requests_total",
        &[("route", "/metrics"), ("status", "200")]
    ));
}

/// It is live, and ready with MySQL and both consumers.
pub async fn assert_its_health(client: &reqwest::Client, base: &str) {
    let live = client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);
    // Anyone: the status and MySQL's up or down, nothing of the consumers.
    let public: serde_json::Value = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("JSON");
    assert_eq!(public["status"], "ready", "{public}");
    assert!(public.get("consumers").is_none(), "{public}");
    let ready = client
        .get(format!("{base}/health/ready"))
        .bearer_auth(CONSUME_TOKEN)
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["mysql"]["ok"], true, "{body}");
    let names: Vec<&str> = body["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["stats", "rewards"], "{body}");
}

/// Its listener keeps `serve`'s head deadline: a connection that never finishes its request head
/// is closed once the deadline passes (poem's own server, which served it before, never did).
pub async fn assert_its_deadlines(base: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("a partial head");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection outlived the head deadline by 9 s"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(HEADER_TIMEOUT_MS - 100),
        "closed before the deadline: {waited:?}"
    );
}
