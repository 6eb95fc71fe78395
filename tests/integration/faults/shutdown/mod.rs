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

mod children;
mod kafka_outage;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{binary::wait_for_exit, consumer_helpers::ChildProcess, spawn::start_broker};

use children::{collect_lines, signal, wait_for_line};
use kafka_outage::{sigterm_while_kafka_is, Before, Outage};

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
    firstcome::telemetry::init(firstcome::config::LogFormat::Pretty, None);
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
    // Taken before the signal: the process's own deadline starts when it receives it, a moment
    // after `signal` returns would be (an exit 0.1 ms before "expected" failed a run).
    let signalled = Instant::now();
    signal(&child, "TERM");
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
