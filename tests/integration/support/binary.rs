//! The real `firstcome` binary as a child process of a test: started on a free port with a
//! database, a Redis key prefix and a Kafka broker of the test's, believed ready only when it
//! answers an admin call with its own token; stopped by signals; always killed and reaped when
//! dropped.

use std::{
    io::BufRead,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;

use crate::spawn::{create_database, start_broker};

/// A running binary. Dropping it kills and reaps the process, so a test that panics (a failed
/// assertion, a timeout) leaves no service running on its database and ports.
pub struct Service {
    pub child: Child,
    pub base: String,
    /// This process's own admin token: only it answers admin calls made with it.
    pub token: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        // Errors mean it already exited and was reaped, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the binary and waits until it is ready. The port is picked free but only bound by the
/// child later, so another process (another test binary on this machine) can take it first:
/// then the child exits and is started again on another port, and readiness is only believed
/// when an admin call with this child's own token succeeds, never from whoever holds the port.
pub async fn start(db_url: &str, prefix: &str, bootstrap: &str) -> Service {
    start_with(db_url, prefix, bootstrap, &[], false).await
}

/// `start`, with `env` set on top of the usual variables (`None` unsets one) and, when
/// `capture_logs`, the child's stdout (its log lines) piped for the test to read (it must then
/// keep reading it).
pub async fn start_with(
    db_url: &str,
    prefix: &str,
    bootstrap: &str,
    env: &[(&str, Option<&str>)],
    capture_logs: bool,
) -> Service {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    for _attempt in 0..5 {
        let port = free_port();
        let token = format!("crash-{}", uuid::Uuid::now_v7().simple());
        let mut command = Command::new(env!("CARGO_BIN_EXE_firstcome"));
        command
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", db_url)
            .env("REDIS_URL", crate::spawn::redis_url())
            .env("REDIS_KEY_PREFIX", prefix)
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("KAFKA_MESSAGE_TIMEOUT_MS", "1000")
            .env("RELAY_LEASE_MS", "6000")
            .env("RELAY_POLL_INTERVAL_MS", "50")
            .env("HTTP_REQUEST_TIMEOUT_MS", "2000")
            .env("RESERVATION_TIMEOUT_MS", "3000")
            .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
            // Hundreds of the test's connections at once, all from 127.0.0.1.
            .env("HTTP_MAX_CONNECTIONS_PER_CLIENT", "1000000")
            .env("ADMIN_TOKEN", &token)
            .env("RUST_LOG", "warn")
            .stdout(if capture_logs {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null());
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command.spawn().expect("start the firstcome binary");
        let mut service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            token,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if service.child.try_wait().expect("child status").is_some() {
                break; // it could not start (port taken): another port
            }
            if is_ours_and_ready(&client, &service).await {
                return service;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the service was not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("the service did not start in 5 attempts");
}

async fn is_ours_and_ready(client: &reqwest::Client, service: &Service) -> bool {
    let ours = client
        .get(format!("{}/api/v1/admin/outbox", service.base))
        .bearer_auth(&service.token)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200);
    ours && client
        .get(format!("{}/health/ready", service.base))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// What the binary runs against: a broker in the test (it outlives the service), a fresh
/// database and a Redis key prefix.
pub async fn fixture() -> (firstcome::kafka::EmbeddedBroker, String, String) {
    let broker = start_broker();
    let prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
    (broker, create_database().await, prefix)
}

/// Creates an open campaign on the running binary; returns its id.
pub async fn create_campaign(client: &reqwest::Client, service: &Service, stock: i64) -> i64 {
    create_campaign_with(
        client,
        service,
        &json!({"name": "signals", "totalStock": stock}),
    )
    .await
}

/// Creates a campaign from `body` (as the API takes it) on the running binary; returns its id.
pub async fn create_campaign_with(
    client: &reqwest::Client,
    service: &Service,
    body: &serde_json::Value,
) -> i64 {
    let created: serde_json::Value = client
        .post(format!("{}/api/v1/campaigns", service.base))
        .bearer_auth(&service.token)
        .json(body)
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("campaign");
    created["id"].as_i64().expect("id")
}

/// Waits until `child` exits, at most `limit` from `since`; past it, fails with `context()`.
pub async fn wait_for_exit(
    child: &mut Child,
    since: std::time::Instant,
    limit: Duration,
    context: impl Fn() -> String,
) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            since.elapsed() < limit,
            "still running {:?} after the signal. {}",
            since.elapsed(),
            context()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGTERM to a child process.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM");
}

/// What the real binary did: its exit status, stdout (where its log goes) and stderr.
pub struct BinaryRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `firstcome` binary with `args` and only `env`; it must exit by itself within
/// 30 s.
pub async fn run_firstcome(args: &[&str], env: &[(&str, &str)]) -> BinaryRun {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_firstcome"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the firstcome binary");
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("firstcome exits by itself")
        .expect("its output");
    BinaryRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `users` join the campaign at once on `service`, one unit each: the bodies of the wins (201)
/// and the codes of the refusals (409). Any other answer fails the test.
pub async fn join_wave(
    client: &reqwest::Client,
    service: &Service,
    campaign: i64,
    users: std::ops::RangeInclusive<i64>,
) -> (Vec<serde_json::Value>, Vec<String>) {
    let url = format!(
        "{}/api/v1/campaigns/{campaign}/participations",
        service.base
    );
    let replies = futures::future::join_all(users.map(|u| {
        let request = client
            .post(&url)
            .json(&serde_json::json!({"userId": u}))
            .send();
        async move {
            let reply = request.await.expect("an answer");
            let status = reply.status().as_u16();
            let body: serde_json::Value = reply.json().await.expect("JSON");
            (status, body)
        }
    }))
    .await;
    let (mut wins, mut refused) = (Vec::new(), Vec::new());
    for (status, body) in replies {
        match (status, body["code"].as_str()) {
            (201, _) => wins.push(body),
            (409, Some(code)) => refused.push(code.to_string()),
            _ => panic!("{status}: {body}"),
        }
    }
    (wins, refused)
}

/// Reads the child's whole stdout on a thread that ends at its end of file: joined after the
/// child exited, it holds every line the child wrote. (A line written before an answer was sent
/// may still sit in the pipe when the test reads the answer; a count taken from
/// [`collect_lines`] while the child runs can come short.)
pub fn read_all_lines(child: &mut Child) -> std::thread::JoinHandle<Vec<String>> {
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
}

/// Collects a child's stdout lines on a thread of its own (a pipe must be read, or the child
/// blocks when it fills); with `TEST_LOG=1` they are also copied to the test's stderr.
pub fn collect_lines(
    child: &mut std::process::Child,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if echo {
                eprintln!("{line}");
            }
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}
