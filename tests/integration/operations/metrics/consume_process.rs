//! `firstcome consume` as a child process for the metrics test: started on any free port (read
//! from its "Consuming." log line), then its `/metrics`, `/health/live` and `/health/ready`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{consumer_helpers::ChildProcess, wait::wait_until};

use super::exposition::{has, scrape_url, sum, Sample};

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
    let ready = client
        .get(format!("{base}/health/ready"))
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
