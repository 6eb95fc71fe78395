//! docs/design.md §2.8 (effectively-once downstream) against the real `firstcome consume` binary:
//! wins and their lifecycle events (§14: confirmations, cancellations, refunds, expiries) are
//! each on the topic twice (same key, value and headers: what a relay duplicate looks like), and
//! the consumer process is killed with SIGKILL after its database commits but before any offset
//! commit, so a restart redelivers everything once more. The record of applied events must absorb
//! both (the stats consumer's inbox; the rewards consumer's grants, keyed by the event id): the
//! stats, daily stats and reward totals equal `participation` exactly, one grant per granting
//! event.
//!
//! The broker lives in the test, so it outlives the killed process with its topic and offsets.

mod traffic;

use std::{
    collections::{BTreeMap, HashSet},
    process::{Command, Stdio},
    time::Duration,
};

use firstcome::{events::dlq, kafka::EmbeddedBroker};
use traffic::{assert_one_grant_per_granting_event, win_and_change_wins_over_four_campaigns};

use crate::{
    consumer_helpers::{committed_offsets, end_offsets, produce, ChildProcess, Raw, Tables},
    kafka::{read_topic, Consumed},
    spawn::{spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

const TOPIC: &str = "campaign.participation.v1";
const GROUPS: [&str; 2] = ["firstcome-stats", "firstcome-rewards"];
/// A restart after SIGKILL waits for the killed member's KIP-848 session to expire (30 s on the
/// mock cluster) before its partitions are handed to the new member.
const AFTER_RESTART: Duration = Duration::from_secs(90);

/// The main topic, the relay's dead-letter topic and both consumers'.
fn topics() -> Vec<String> {
    vec![
        TOPIC.to_string(),
        dlq::relay_topic(TOPIC),
        dlq::consumer_topic(TOPIC, "stats"),
        dlq::consumer_topic(TOPIC, "rewards"),
    ]
}

impl ChildProcess {
    /// Starts both consumers (`CONSUMERS` unset) in their own process. `commit_interval_ms` is
    /// `CONSUMER_COMMIT_INTERVAL_MS`. Logs go to the test's stderr with `TEST_LOG=1`.
    fn consume(db_url: &str, bootstrap: &str, commit_interval_ms: u64) -> Self {
        let logs = || {
            if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            }
        };
        let child = Command::new(env!("CARGO_BIN_EXE_firstcome"))
            .arg("consume")
            .env_clear()
            .env("DATABASE_URL", db_url)
            .env("REDIS_URL", crate::spawn::redis_url())
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("CONSUMER_GROUP_PROTOCOL", "consumer")
            .env(
                "CONSUMER_COMMIT_INTERVAL_MS",
                commit_interval_ms.to_string(),
            )
            // Small batches: the second copy of an event is read in a later batch than the
            // first, so it is the inbox (not the batch's own dedupe) that skips it.
            .env("CONSUMER_BATCH_SIZE", "7")
            .env("CONSUMER_RETRY_BACKOFF_BASE_MS", "20")
            .env("CONSUMER_RETRY_BACKOFF_CAP_MS", "200")
            .env("MIGRATE_ON_START", "false")
            // Its HTTP listener (/metrics, /health) on any free port: a restart never waits for one.
            .env("HTTP_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(logs())
            .stderr(logs())
            .spawn()
            .expect("start `firstcome consume`");
        Self { child }
    }

    /// Panics if the process has exited (a startup error, a crash).
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("child status") {
            panic!("`firstcome consume` exited: {status}");
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    async fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(25);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`firstcome consume` still running 25 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status:?}");
    }
}

/// Whether `committed` is at the end of every partition (an empty partition has nothing to
/// commit).
fn reached(committed: &BTreeMap<i32, i64>, end: &BTreeMap<i32, i64>) -> bool {
    end.iter()
        .all(|(p, end)| committed.get(p).copied().unwrap_or(0) == *end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wins_and_their_lifecycle_events_redelivered_and_a_kill_before_the_offset_commit_apply_once(
) {
    let broker = EmbeddedBroker::start(&topics(), 4).expect("broker");
    let bootstrap = broker.bootstrap_servers().to_string();

    // The service: API and relay, no consumers, publishing to the test's broker.
    let mut settings = with_relay(test_settings().await);
    settings.consumers.enabled = Vec::new();
    settings.kafka.bootstrap_servers = Some(bootstrap.clone());
    let db_url = settings.database.url.expose().to_string();
    let app = spawn_app_with(settings).await;

    let events = win_and_change_wins_over_four_campaigns(&app).await;
    let (published, end) = put_every_message_on_the_topic_twice(&bootstrap, events).await;
    first_run_applies_everything_and_is_killed_before_its_offset_commit(
        &app, &db_url, &bootstrap, events,
    )
    .await;
    second_run_reads_every_message_again(&db_url, &bootstrap, &end).await;

    app.assert_consumers_match_participations().await;
    assert_one_grant_per_granting_event(&app, &published).await;
    app.stop().await.expect("clean stop");
}

/// Every message once more, as it is: the topic now holds each event (at least) twice. Returns
/// the messages the relay published and the topic's end offsets.
async fn put_every_message_on_the_topic_twice(
    bootstrap: &str,
    events: i64,
) -> (Vec<Consumed>, BTreeMap<i32, i64>) {
    let published = read_topic(bootstrap, TOPIC, events as usize, Duration::from_secs(30)).await;
    let distinct: HashSet<&str> = published.iter().map(|m| m.event_id()).collect();
    assert_eq!(distinct.len() as i64, events, "every event on the topic");
    let copies: Vec<Raw> = published.iter().map(Raw::from).collect();
    produce(bootstrap, TOPIC, &copies).await;
    let end = end_offsets(bootstrap, TOPIC).await;
    assert_eq!(
        end.values().sum::<i64>(),
        2 * published.len() as i64,
        "each message twice on the topic: {end:?}"
    );
    (published, end)
}

/// First run: it applies everything but commits no offset (the interval is an hour), and is
/// killed between its database commits and its offset commit. The tables are exact already.
async fn first_run_applies_everything_and_is_killed_before_its_offset_commit(
    app: &TestApp,
    db_url: &str,
    bootstrap: &str,
    events: i64,
) {
    let tables = Tables(&app.db);
    let grants = tables.implied_grants().await;
    let mut first = ChildProcess::consume(db_url, bootstrap, 3_600_000);
    wait_until(
        "the first consumer process to apply every event",
        Duration::from_secs(60),
        || {
            first.assert_running();
            tables.caught_up(events, grants)
        },
    )
    .await;
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    drop(first);
    for group in GROUPS {
        let committed = committed_offsets(bootstrap, group, TOPIC).await;
        assert!(
            committed.is_empty(),
            "{group}: nothing committed before the kill, so everything is redelivered: {committed:?}"
        );
    }
    // Exact already: whatever copies the first run read before the kill were skipped.
    app.assert_consumers_match_participations().await;
}

/// Second run: every message is delivered again (both copies of each event); it commits offsets
/// after its batches, so the group's position reaching the end of every partition shows it read
/// (and skipped) all of them. Then SIGTERM and a clean exit.
async fn second_run_reads_every_message_again(
    db_url: &str,
    bootstrap: &str,
    end: &BTreeMap<i32, i64>,
) {
    let mut second = ChildProcess::consume(db_url, bootstrap, 100);
    for group in GROUPS {
        wait_until(
            &format!("{group} to commit the end of every partition"),
            AFTER_RESTART,
            || {
                second.assert_running();
                async move { reached(&committed_offsets(bootstrap, group, TOPIC).await, end) }
            },
        )
        .await;
    }
    second.terminate().await;
}
