//! The live stream (docs/design.md §20): one snapshot per campaign and interval on each instance,
//! whatever the number of watchers; a watcher that stops reading is dropped while the others go
//! on; the stream outlives a Redis restart.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::{
    operations::metrics::exposition::{scrape, sum},
    spawn::{spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

/// A reader of one `…/live` stream.
pub(super) struct Watch {
    response: reqwest::Response,
    pending: String,
}

impl Watch {
    pub(super) async fn open(app: &TestApp, campaign_id: i64) -> Self {
        match Self::open_with(app, campaign_id, &[]).await {
            Ok(watch) => watch,
            Err(refused) => panic!("the live stream was refused: {refused:?}"),
        }
    }

    /// The stream requested with `headers`; the response when it is not a stream.
    pub(super) async fn open_with(
        app: &TestApp,
        campaign_id: i64,
        headers: &[(&str, &str)],
    ) -> Result<Self, reqwest::Response> {
        // A client of its own: the app's has a request timeout, and a stream lasts.
        let mut request =
            reqwest::Client::new().get(app.url(&format!("/api/v1/campaigns/{campaign_id}/live")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("open the live stream");
        if response.status() != 200 {
            return Err(response);
        }
        let content_type = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Ok(Self {
            response,
            pending: String::new(),
        })
    }

    /// The next `snapshot` event's data; `None` when the stream ended.
    pub(super) async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                if !event.lines().any(|l| l == "event: snapshot") {
                    continue; // a keep-alive comment
                }
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                return Some(serde_json::from_str(&data).expect("a JSON snapshot"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a snapshot within 10 s")
                .ok()??;
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub(super) async fn app_with_interval(ms: &str) -> TestApp {
    let mut settings = test_settings().await;
    settings.live.interval = Duration::from_millis(ms.parse().expect("ms"));
    spawn_app_with(settings).await
}

async fn metric(app: &TestApp, name: &str) -> f64 {
    sum(&scrape(app).await, name, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_watchers_cost_the_database_what_one_does() {
    // 500 watchers from one address: past the per-client cap (`access` tests it).
    let mut settings = test_settings().await;
    settings.live.interval = Duration::from_millis(200);
    settings.live.max_watchers_per_client = 500;
    let app = spawn_app_with(settings).await;
    let id = app.open_campaign(100, 1).await;
    for user in 1..=30 {
        app.join(id, user, 1).await;
    }
    let started = std::time::Instant::now();
    let mut watches = join_all((0..500).map(|_| Watch::open(&app, id))).await;
    // Every watcher reads three snapshots.
    let mut last = Vec::new();
    for watch in &mut watches {
        for _ in 0..3 {
            last = vec![watch.next().await.expect("a snapshot")];
        }
    }
    let snapshot = &last[0];
    assert_eq!(snapshot["campaignId"], id);
    assert_eq!(snapshot["acceptedCount"], 30);
    assert_eq!(snapshot["freeStock"], 70);
    assert_eq!(snapshot["confirmedStock"], 30);
    assert_eq!(snapshot["heldStock"], 0);
    assert_eq!(snapshot["stockUsageRate"], 0.3);
    assert_eq!(snapshot["queue"], Value::Null);
    assert_eq!(metric(&app, "firstcome_live_watchers").await, 500.0);

    // 1,500 snapshots read; the database was asked for one reading per interval since the
    // first watcher came, however many watch. Both counters from one scrape: a reading counts
    // its queries as it starts and its snapshot once it is sent, so one may be on its way.
    let text = scrape(&app).await;
    let taken = sum(&text, "firstcome_live_snapshots_total", &[]);
    let queries = sum(&text, "firstcome_live_queries_total", &[]);
    let intervals = started.elapsed().as_millis() as f64 / 200.0;
    assert!(taken >= 3.0, "{taken}");
    assert!(
        taken <= intervals + 2.0,
        "{taken} snapshots in {intervals} intervals for 500 watchers: one per watcher, not one per campaign"
    );
    let per_reading = firstcome::live::reading::QUERIES_PER_READING as f64;
    assert!(
        [taken, taken + 1.0].contains(&(queries / per_reading)),
        "{queries} queries for {taken} snapshots: {per_reading} a reading, one reading at most on its way"
    );
    // Watchers that hang up are let go at the next snapshot.
    drop(watches);
    wait_until(
        "the watchers to be let go",
        Duration::from_secs(5),
        || async { metric(&app, "firstcome_live_watchers").await == 0.0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_that_never_reads_is_dropped_and_the_others_go_on() {
    // Every 10 ms (the shortest interval), and a long name: the silent connection's kernel
    // buffers (megabytes on loopback) fill in about a minute rather than in an hour.
    let app = app_with_interval("10").await;
    let id = app
        .create_campaign(json!({"name": "n".repeat(200), "totalStock": 100}))
        .await["id"]
        .as_i64()
        .expect("id");
    let mut reader = Watch::open(&app, id).await;
    // A client that asks for the stream and never reads a byte, with a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let addr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut silent = socket.connect(addr).await.expect("connect");
    silent
        .write_all(
            format!("GET /api/v1/campaigns/{id}/live HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send the request");
    // The reader keeps reading meanwhile: it must not be the one dropped.
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(240);
    while metric(&app, "firstcome_live_watchers_dropped_total").await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the silent watcher was not dropped within 240 s"
        );
        reader.next().await.expect("the reader's stream goes on");
    }
    eprintln!(
        "the silent watcher was dropped after {:?}",
        started.elapsed()
    );
    assert_eq!(metric(&app, "firstcome_live_watchers").await, 1.0);
    assert_eq!(
        metric(&app, "firstcome_live_watchers_dropped_total").await,
        1.0
    );
    let after = reader
        .next()
        .await
        .expect("the reader still gets snapshots");
    assert_eq!(after["campaignId"], id);
    drop(silent);
}

/// A redis-server of this test's own, on a fixed port so that it can be restarted.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/services.sh installs it)");
        wait_until(
            "redis-server's port",
            Duration::from_secs(10),
            || async move { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() },
        )
        .await;
        Self { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_goes_on_while_redis_restarts() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut redis = OwnRedis::start(port).await;
    let mut settings = test_settings().await;
    settings.redis.url = firstcome::config::Secret::new(format!("redis://127.0.0.1:{port}"));
    settings.live.interval = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let created = app
        .create_campaign(json!({"name": "queued", "totalStock": 10, "admission": "QUEUE"}))
        .await;
    let id = created["id"].as_i64().expect("id");
    let queued = app
        .post_json(
            &format!("/api/v1/campaigns/{id}/queue"),
            &json!({"userId": 7}),
            None,
        )
        .await;
    assert_eq!(queued.status, 202, "{queued:?}");
    let mut watch = Watch::open(&app, id).await;
    let mut seen = watch.next().await.expect("a snapshot");
    while seen["queue"].is_null() {
        seen = watch.next().await.expect("a snapshot");
    }
    assert!(seen["queue"]["length"].as_i64().is_some(), "{seen}");

    redis.stop();
    loop {
        let s = watch
            .next()
            .await
            .expect("the stream goes on without Redis");
        if s["queue"].is_null() {
            assert_eq!(s["totalStock"], 10, "MySQL's figures are still there: {s}");
            break;
        }
    }
    let _redis = OwnRedis::start(redis.port).await;
    loop {
        let s = watch
            .next()
            .await
            .expect("the stream goes on after Redis is back");
        if !s["queue"].is_null() {
            break;
        }
    }
}

/// What became of the wins and when the next hold runs out (issue 73: "Accepted 52" on a 50-unit
/// sale with no breakdown, "Holds expiring soon 0" while ten holds were due in eight minutes):
/// four wins held for 600 s; one cancelled, one confirmed, one confirmed and refunded by an admin.
#[tokio::test]
async fn a_snapshot_says_what_became_of_the_wins_and_when_the_next_hold_runs_out() {
    // The outcomes are the stats consumer's: the relay and the consumers run.
    let mut settings = crate::consumer_helpers::with_consumers(with_relay(test_settings().await));
    settings.live.interval = Duration::from_millis(100);
    let app = spawn_app_with(settings).await;
    let campaign = app
        .open_campaign_with(5, 1, json!({"confirmWithinSeconds": 600}))
        .await;
    for user in 1..=4 {
        let joined = app.join(campaign, user, 1).await;
        assert_eq!(joined.body["status"], "HELD", "{joined:?}");
    }
    let steps = [
        (1, "cancel", None),
        (2, "confirm", None),
        (3, "confirm", None),
        (3, "cancel", Some(crate::spawn::ADMIN_TOKEN)),
    ];
    for (user, step, token) in steps {
        let path = format!("/api/v1/campaigns/{campaign}/participations/{user}/{step}");
        let done = app.post_json(&path, &json!({}), token).await;
        assert_eq!(done.status, 200, "{step}: {done:?}");
    }
    let mut watch = Watch::open(&app, campaign).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let snapshot = loop {
        let s = watch.next().await.expect("a snapshot");
        if s["winsConfirmed"] == 2 && s["winsCancelled"] == 2 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stats consumer's figures within 20 s: {s}"
        );
    };
    assert_eq!(snapshot["acceptedCount"], 4, "{snapshot}");
    assert_eq!(snapshot["winsExpired"], 0, "{snapshot}");
    assert_eq!(snapshot["winsRefunded"], 1, "{snapshot}");
    assert_eq!(snapshot["heldStock"], 1, "{snapshot}");
    assert_eq!(snapshot["holdsExpiringSoon"], 0, "{snapshot}");
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(snapshot[field].as_str().expect(field))
            .expect("a time")
    };
    let next_in = (at("nextHoldExpiresAt") - at("at")).num_seconds();
    assert!((540..=600).contains(&next_in), "{snapshot}");
}
