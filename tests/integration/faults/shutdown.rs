//! Shutdown within its deadline whatever Kafka does (docs/design.md §2.7, §2.9), with the real binary:
//! - SIGTERM while the broker is hung (SIGSTOP) or gone (killed), consumers on and a relay
//!   backlog pending: the process exits 0 within `SHUTDOWN_TIMEOUT_MS` plus a second, releases
//!   its leases and loses nothing; restarted with a broker, it publishes every row and the
//!   consumers' tables equal MySQL's (offsets it could not commit are delivered again and skipped);
//! - while the broker is hung, the consumers lose their group session, and `/health/live` and
//!   joins still answer (no async worker is held by a Kafka call);
//! - the watchdog: tasks that block every async worker past the deadline cannot hold the process;
//!   it exits at deadline + grace, naming what was stuck.
//!
//! Two pieces run as child processes of this test binary (one of the `#[ignore]`d functions
//! below, started with an environment variable): the Kafka broker, so that it can be stopped with
//! SIGSTOP apart from the test; and the process whose workers get stuck, which the watchdog ends.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    binary::{create_campaign, start_with, terminate, wait_for_exit, Service},
    consumer_helpers::{ChildProcess, Tables},
    db::scalar,
    spawn::{create_database, start_broker},
    wait::wait_until,
};

/// Set in the environment of a child started by [`child_test`]; the child functions do nothing
/// without it (so `cargo test -- --ignored` does not hang on them).
const CHILD: &str = "FIRSTCOME_TEST_CHILD";

/// Starts this test binary again, running only the ignored test `name` of this module, with
/// `CHILD` set; its stdout (test harness lines and what the child prints) is piped.
fn child_test(name: &str, env: &[(&str, &str)]) -> ChildProcess {
    // The test's path without the crate's name: `faults::shutdown::<name>`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{name}");
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args([
            "--exact",
            &test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    ChildProcess {
        child: command.spawn().expect("start a child of the test binary"),
    }
}

/// Collects a child's stdout lines on a thread of its own (a pipe must be read, or the child
/// blocks when it fills); with `TEST_LOG=1` they are also copied to the test's stderr.
fn collect_lines(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if echo {
                eprintln!("{line}");
            }
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

fn count_lines(lines: &Mutex<Vec<String>>, pattern: &str) -> usize {
    lines
        .lock()
        .expect("lines")
        .iter()
        .filter(|l| l.contains(pattern))
        .count()
}

async fn wait_for_line(lines: &Arc<Mutex<Vec<String>>>, what: &str, pattern: &str) -> String {
    let mut found = None;
    wait_until(what, Duration::from_secs(60), || {
        found = lines
            .lock()
            .expect("lines")
            .iter()
            .find(|l| l.contains(pattern))
            .cloned();
        std::future::ready(found.is_some())
    })
    .await;
    found.expect("found")
}

/// A Kafka broker in a process of its own (the embedded broker), and its address.
async fn broker_process() -> (ChildProcess, String) {
    let mut child = child_test("host_a_broker", &[]);
    let lines = collect_lines(&mut child.child);
    let line = wait_for_line(&lines, "the broker process to start", "BOOTSTRAP=").await;
    // The harness prints the test's name on the same line first.
    let bootstrap = line
        .split("BOOTSTRAP=")
        .nth(1)
        .expect("an address")
        .trim()
        .to_string();
    (child, bootstrap)
}

/// The broker process: prints its address, then lives until it is killed.
#[test]
#[ignore = "a child process of the shutdown tests"]
fn host_a_broker() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let broker = start_broker();
    println!("BOOTSTRAP={}", broker.bootstrap_servers());
    loop {
        std::thread::park();
    }
}

fn signal(child: &ChildProcess, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal}");
}

/// What happens to the broker before the service gets SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// SIGSTOP: connections stay open and nothing answers.
    Hung,
    /// Killed: connections are refused.
    Gone,
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(6);

/// The service with consumers on; `session` is the consumers' `session.timeout.ms`.
async fn start_service(db_url: &str, prefix: &str, bootstrap: &str, session: &str) -> Service {
    let properties = format!("session.timeout.ms={session}");
    start_with(
        db_url,
        prefix,
        bootstrap,
        &[
            ("SHUTDOWN_TIMEOUT_MS", Some("6000")),
            // Offsets are only committed at shutdown: whatever was applied is then left to the
            // last commit, which Kafka will not answer.
            ("CONSUMER_COMMIT_INTERVAL_MS", Some("3600000")),
            // When the group session ends, the consumers lose their partitions (a revoke); after
            // a restart, the dead member's partitions are handed on after it.
            ("KAFKA_PROPERTIES", Some(&properties)),
            ("RUST_LOG", Some("warn,firstcome::consumer=info")),
        ],
        true,
    )
    .await
}

async fn join(client: &reqwest::Client, service: &Service, campaign: i64, user: i64) -> u16 {
    client
        .post(format!(
            "{}/api/v1/campaigns/{campaign}/participations",
            service.base
        ))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn events_applied(client: &reqwest::Client, service: &Service, campaign: i64) -> i64 {
    let stats: Value = match client
        .get(format!(
            "{}/api/v1/campaigns/{campaign}/stats",
            service.base
        ))
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
        _ => Value::Null,
    };
    stats["eventsApplied"].as_i64().unwrap_or(0)
}

/// The consumers' counters of a running service, from `/health/ready`: (applied, duplicates)
/// summed over both consumers.
async fn consumer_counters(client: &reqwest::Client, service: &Service) -> (u64, u64) {
    let ready: Value = client
        .get(format!("{}/health/ready", service.base))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    let consumers = ready["consumers"].as_array().expect("consumers").clone();
    let sum = |field: &str| {
        consumers
            .iter()
            .map(|c| c[field].as_u64().unwrap_or(0))
            .sum()
    };
    (sum("applied"), sum("duplicates"))
}

/// What a run does between the outage and SIGTERM.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Before {
    /// SIGTERM right away: the consumers still hold their partitions and applied offsets that
    /// were never committed, so the shutdown's last commit waits for Kafka.
    Sigterm,
    /// Wait until the consumers' group session ends (a revoke, run on an async worker), then check
    /// that the service still answers.
    SessionLost,
}

async fn sigterm_while_kafka_is(outage: Outage, before: Before) {
    let (mut broker, bootstrap) = broker_process().await;
    let db_url = create_database().await;
    let prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    // 6 s: short enough to wait for its end; 10 s: the run is over before it ends.
    let session = if before == Before::SessionLost {
        "6000"
    } else {
        "10000"
    };
    let mut service = start_service(&db_url, &prefix, &bootstrap, session).await;
    let logs = collect_lines(&mut service.child);
    let campaign = create_campaign(&client, &service, 1_000).await;

    // 50 wins, published and applied by both consumers (nothing committed yet).
    for user in 1..=50 {
        assert_eq!(join(&client, &service, campaign, user).await, 201);
    }
    wait_until(
        "the consumers to apply the first wins",
        Duration::from_secs(60),
        || async { events_applied(&client, &service, campaign).await == 50 },
    )
    .await;

    match outage {
        Outage::Hung => signal(&broker, "STOP"),
        Outage::Gone => signal(&broker, "KILL"),
    }
    // A backlog the relay cannot deliver.
    for user in 51..=100 {
        assert_eq!(join(&client, &service, campaign, user).await, 201);
    }
    if before == Before::SessionLost {
        // The session ends without a coordinator: librdkafka revokes each consumer's partitions,
        // in a callback run on an async worker. The service still answers afterwards.
        wait_until(
            "both consumers to lose their partitions",
            Duration::from_secs(60),
            || std::future::ready(count_lines(&logs, "Partitions revoked") >= 2),
        )
        .await;
    }
    for user in 101..=110 {
        let live = client
            .get(format!("{}/health/live", service.base))
            .send()
            .await;
        assert!(
            live.is_ok_and(|r| r.status() == 200),
            "/health/live answers while Kafka is {outage:?}"
        );
        assert_eq!(
            join(&client, &service, campaign, user).await,
            201,
            "joins win while Kafka is {outage:?}"
        );
    }

    terminate(&service.child);
    let signalled = Instant::now();
    let status = wait_for_exit(
        &mut service.child,
        signalled,
        SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        || {
            let logs = logs.lock().expect("logs");
            format!(
                "Kafka {outage:?}; last log lines: {:?}",
                logs.iter().rev().take(20).collect::<Vec<_>>()
            )
        },
    )
    .await;
    assert!(status.success(), "exit status {status:?}");
    if (outage, before) == (Outage::Hung, Before::Sigterm) {
        // The case of the bug: the last commit never got an answer, and the process went on.
        assert_eq!(
            count_lines(&logs, "without its last offset commit"),
            2,
            "both consumers' last commits were given up"
        );
    }

    let db = sea_orm::Database::connect(db_url.as_str())
        .await
        .expect("db");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM participation").await, 110);
    assert!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM outbox_event WHERE status = 'PENDING'"
        )
        .await
            >= 50,
        "the backlog waits in the outbox"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM relay_shard WHERE owner IS NOT NULL"
        )
        .await,
        0,
        "shard leases released"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM outbox_event WHERE lease_owner IS NOT NULL"
        )
        .await,
        0,
        "row leases released"
    );

    // The broker back (the same one, or a new empty one), the service restarted.
    let bootstrap = match outage {
        Outage::Hung => {
            signal(&broker, "CONT");
            bootstrap
        }
        Outage::Gone => {
            let (fresh, bootstrap) = broker_process().await;
            broker = fresh;
            bootstrap
        }
    };
    let mut service = start_service(&db_url, &prefix, &bootstrap, session).await;
    let _logs = collect_lines(&mut service.child);
    wait_until(
        "every outbox row published",
        Duration::from_secs(60),
        || async {
            scalar(
                &db,
                "SELECT COUNT(*) FROM outbox_event WHERE status <> 'PUBLISHED'",
            )
            .await
                == 0
        },
    )
    .await;
    let tables = Tables(&db);
    tables.wait_for_consumers(Duration::from_secs(90)).await;
    tables.assert_consumers_match_participations().await;
    if (outage, before) == (Outage::Hung, Before::SessionLost) {
        // The first 50 events were applied but their offsets never committed (the commit at the
        // revoke found no coordinator): the same broker delivers them again, and the inbox skips
        // them. (More duplicates are possible: rows purged at shutdown may still have reached the
        // stopped broker's socket, and are published again.) After a plain SIGTERM the given-up
        // commit may still be in the stopped broker's socket and land: no redelivery to count.
        let (applied, duplicates) = consumer_counters(&client, &service).await;
        assert_eq!(
            applied,
            2 * 60,
            "each consumer applies only the 60 events it had not applied before"
        );
        assert!(
            duplicates >= 2 * 50,
            "the 50 uncommitted events are delivered again and skipped: {duplicates}"
        );
    }
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_while_the_broker_hangs_exits_in_time_and_loses_nothing() {
    sigterm_while_kafka_is(Outage::Hung, Before::Sigterm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_after_the_broker_died_exits_in_time_and_loses_nothing() {
    sigterm_while_kafka_is(Outage::Gone, Before::Sigterm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumers_losing_their_session_to_a_hung_broker_starve_no_worker_and_redeliver_what_they_did_not_commit(
) {
    sigterm_while_kafka_is(Outage::Hung, Before::SessionLost).await;
}

/// What the stuck process's tasks are called in the registry (and so in the watchdog's log).
const STUCK: &str = "test task blocking its worker thread";

/// A service whose async workers are blocked by two tasks as soon as the shutdown begins, for two
/// minutes: only the watchdog can end it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the watchdog test"]
async fn stuck_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    firstcome::telemetry::init(firstcome::config::LogFormat::Pretty);
    let mut settings = crate::spawn::test_settings().await;
    settings.shutdown_timeout = Duration::from_millis(1_500);
    let timeout = settings.shutdown_timeout;
    let app = firstcome::startup::Application::build(settings)
        .await
        .expect("build");
    let stop = app.shutdown_token();
    firstcome::shutdown::watchdog::start(stop.clone(), timeout).expect("watchdog");
    for _ in 0..2 {
        let stop = stop.clone();
        tokio::spawn(firstcome::shutdown::running::track(STUCK, async move {
            stop.cancelled().await;
            std::thread::sleep(Duration::from_secs(120));
        }));
    }
    println!("READY");
    // The shutdown's timers need a free worker. Should the scheduler have put both stuck tasks on
    // one worker, the shutdown returns, and the runtime's exit then waits for the blocked worker:
    // either way the process cannot end by itself.
    let _ = app.run_until_stopped().await;
}

#[tokio::test]
async fn the_watchdog_ends_a_shutdown_stuck_past_its_deadline_and_names_what_was_stuck() {
    let mut child = child_test("stuck_process", &[]);
    let lines = collect_lines(&mut child.child);
    wait_for_line(&lines, "the stuck process to start", "READY").await;
    signal(&child, "TERM");
    let signalled = Instant::now();
    let status = wait_for_exit(&mut child.child, signalled, Duration::from_secs(20), || {
        "the watchdog did not end the process".into()
    })
    .await;
    let elapsed = signalled.elapsed();
    let expected = Duration::from_millis(1_500) + firstcome::shutdown::watchdog::GRACE;
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_secs(1),
        "exited {elapsed:?} after SIGTERM; expected at deadline + grace ({expected:?})"
    );
    assert_eq!(status.code(), Some(1), "{status:?}");
    // The log line says what happened and names the stuck task (the reader thread may still be
    // taking the last lines from the pipe).
    let line = wait_for_line(&lines, "the watchdog's log line", "did not end within").await;
    assert!(line.contains(STUCK), "{line}");
}
