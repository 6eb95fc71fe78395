//! The consumers through faults (docs/design.md §2.8, §4, §11):
//! - poison (not JSON, an unknown `eventType`) goes to each consumer's dead-letter topic with its
//!   key, value and headers and the `dlq_*` headers, and the messages behind it are applied;
//! - MySQL failing (a trigger) or killing the consumers' connections mid-transaction blocks them:
//!   retried, nothing skipped, nothing applied twice, no offset committed past what was applied;
//! - `firstcome consume` (the real binary) refuses a configuration it cannot run, naming the
//!   variable.

mod killed_connections;
mod poison;

use std::{collections::BTreeMap, time::Duration};

use firstcome::{
    config::{consumers::ConsumerName, Settings},
    consumer::{ConsumerReport, ConsumerStatus},
    events::dlq,
    kafka::EmbeddedBroker,
};
use futures::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    consumer_helpers::{applied_record, committed_offsets, end_offsets, with_consumers},
    spawn::{spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

const APPLIED: Duration = Duration::from_secs(30);

/// The partitions of `offsets` that hold messages (a group commits nothing for the others).
fn nonempty(offsets: BTreeMap<i32, i64>) -> BTreeMap<i32, i64> {
    offsets.into_iter().filter(|(_, o)| *o > 0).collect()
}

/// Waits until `name`'s group has committed the end of every partition that holds messages.
async fn wait_for_commits_at_end(app: &TestApp, name: ConsumerName) {
    let ends = nonempty(end_offsets(&app.kafka_bootstrap, &app.topic).await);
    wait_until(
        &format!("{name} to commit the end of every partition ({ends:?})"),
        APPLIED,
        || async {
            committed_offsets(&app.kafka_bootstrap, &name.group_id(), &app.topic).await == ends
        },
    )
    .await;
}

/// How many events `name` recorded as applied (its inbox rows, or rewards' grants: every event
/// of these tests is a final win, which moves points).
async fn applied_count(app: &TestApp, name: ConsumerName) -> i64 {
    app.scalar(&format!("SELECT COUNT(*) FROM {} r", applied_record(name)))
        .await
}

/// `user` wins one unit of `campaign`, or the test stops.
async fn win(app: &TestApp, campaign: i64, user: i64) {
    let reply = app.join(campaign, user, 1).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_goes_to_each_consumers_dead_letter_topic_and_its_partition_goes_on() {
    let app = spawn_app_with(with_consumers(with_relay(test_settings().await))).await;
    let campaign = app
        .create_campaign(json!({"name": "poison", "totalStock": 10, "rewardPoints": 3}))
        .await["id"]
        .as_i64()
        .expect("id");
    win(&app, campaign, 1).await;
    // Published (acked) before the poison is produced: it comes first on the partition.
    app.wait_for_outbox_drained(APPLIED).await;

    let (messages, before) = poison::produce_two_poison_messages(&app, campaign).await;
    // Wins behind the poison, on the same partition: both consumers apply them, once.
    for user in 2..=6 {
        win(&app, campaign, user).await;
    }
    app.wait_for_outbox_drained(APPLIED).await;
    app.wait_for_consumers(APPLIED).await;
    app.assert_consumers_match_participations().await;

    let main = poison::read_the_poison_between_the_wins(&app, campaign).await;
    for name in ConsumerName::ALL {
        poison::assert_dead_lettered_as_they_were(&app, campaign, name, &messages, &main, before)
            .await;
        // The poison's offsets are committed too: nothing is left to redeliver.
        wait_for_commits_at_end(&app, name).await;
    }
    app.stop().await.expect("clean stop");
}

/// One win per user of `users` in each of `campaigns`, concurrently.
async fn wins(app: &TestApp, campaigns: &[i64], users: std::ops::RangeInclusive<i64>) {
    join_all(
        campaigns
            .iter()
            .flat_map(|c| users.clone().map(move |u| win(app, *c, u))),
    )
    .await;
}

/// Each consumer has applied exactly `applied` events and committed no offset past them.
async fn assert_held_back(app: &TestApp, committed: &BTreeMap<i32, i64>, applied: i64) {
    for name in ConsumerName::ALL {
        assert_eq!(applied_count(app, name).await, applied, "{name}");
        assert_eq!(
            &committed_offsets(&app.kafka_bootstrap, &name.group_id(), &app.topic).await,
            committed,
            "{name} committed offsets past what it applied"
        );
    }
    assert_eq!(
        app.scalar("SELECT CAST(SUM(accepted_count) AS SIGNED) FROM campaign_stats")
            .await,
        applied
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM reward_grant").await,
        applied
    );
}

/// An app with both consumers and the relay, on `broker` (outside the app, so the topic and the
/// groups' offsets outlive it).
async fn settings_on(broker: &EmbeddedBroker) -> Settings {
    let mut s = with_consumers(with_relay(test_settings().await));
    s.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_inserts_block_the_consumers_without_skipping_or_committing_past_them() {
    let topic = test_settings().await.kafka.topic;
    let mut topics = vec![topic.clone(), dlq::relay_topic(&topic)];
    topics.extend(ConsumerName::ALL.map(|c| dlq::consumer_topic(&topic, c.as_str())));
    let broker = EmbeddedBroker::start(&topics, 4).expect("broker");
    let settings = settings_on(&broker).await;
    let app = spawn_app_with(settings.clone()).await;
    let mut campaigns = Vec::new();
    for points in [4, 9] {
        let c = app
            .create_campaign(json!({"name": "c", "totalStock": 100, "rewardPoints": points}))
            .await;
        campaigns.push(c["id"].as_i64().expect("id"));
    }
    wins(&app, &campaigns, 1..=5).await;
    app.wait_for_outbox_drained(APPLIED).await;
    app.wait_for_consumers(APPLIED).await;
    for name in ConsumerName::ALL {
        wait_for_commits_at_end(&app, name).await;
    }
    let applied_before = nonempty(end_offsets(&app.kafka_bootstrap, &app.topic).await);

    // While fault_flag has a row, every insert into campaign_stats (stats) and reward_grant
    // (rewards) fails; ON DUPLICATE KEY UPDATE fires BEFORE INSERT too.
    for sql in [
        "CREATE TABLE fault_flag (id INT PRIMARY KEY)".to_string(),
        "INSERT INTO fault_flag VALUES (1)".to_string(),
        trigger("campaign_stats"),
        trigger("reward_grant"),
    ] {
        app.db.execute_unprepared(&sql).await.expect(&sql);
    }
    wins(&app, &campaigns, 6..=15).await;
    app.wait_for_outbox_drained(APPLIED).await;
    let ends = nonempty(end_offsets(&app.kafka_bootstrap, &app.topic).await);
    assert_ne!(ends, applied_before, "the new wins are on the topic");

    // Each consumer fails, retries, and keeps retrying the same messages (its retry count keeps
    // rising): nothing of them is applied, no offset moves past what was applied before.
    for name in ConsumerName::ALL {
        let report = app.consumer(name);
        wait_until(&format!("{name} to retry"), APPLIED, || async {
            report.status() == ConsumerStatus::Retrying && ConsumerReport::get(&report.retries) > 0
        })
        .await;
        let seen = ConsumerReport::get(&report.retries);
        wait_until(&format!("{name} to retry again"), APPLIED, || async {
            ConsumerReport::get(&report.retries) >= seen + 3
        })
        .await;
        assert_eq!(report.status(), ConsumerStatus::Retrying, "{name}");
        assert_eq!(ConsumerReport::get(&report.applied), 10, "{name}");
    }
    assert_held_back(&app, &applied_before, 10).await;

    // Stopped while retrying, a consumer commits what it applied and nothing of the batch it
    // was retrying.
    let (bootstrap, topic) = (app.kafka_bootstrap.clone(), app.topic.clone());
    app.stop().await.expect("clean stop");
    for name in ConsumerName::ALL {
        assert_eq!(
            committed_offsets(&bootstrap, &name.group_id(), &topic).await,
            applied_before,
            "{name} committed, on its way out, offsets of what it had not applied"
        );
    }
    // Started again on the same database and topic, still failing: it resumes from the
    // committed offsets and retries the same messages.
    let app = spawn_app_with(settings).await;
    for name in ConsumerName::ALL {
        let report = app.consumer(name);
        wait_until(
            &format!("{name} to retry after the restart"),
            APPLIED,
            || async { report.status() == ConsumerStatus::Retrying },
        )
        .await;
    }
    assert_held_back(&app, &applied_before, 10).await;

    // The database recovers: everything is applied exactly once and committed.
    app.db
        .execute_unprepared("DELETE FROM fault_flag")
        .await
        .expect("clear the fault");
    for report in recovered(&app).await {
        assert_eq!(ConsumerReport::get(&report.applied), 20, "{}", report.name);
    }
    app.stop().await.expect("clean stop");
}

/// After a fault: every event applied exactly once, every offset committed to the end, each
/// consumer back to Running. Returns the consumers' reports.
async fn recovered(app: &TestApp) -> Vec<std::sync::Arc<ConsumerReport>> {
    app.wait_for_consumers(APPLIED).await;
    app.assert_consumers_match_participations().await;
    let mut reports = Vec::new();
    for name in ConsumerName::ALL {
        let report = app.consumer(name);
        wait_for_commits_at_end(app, name).await;
        wait_until(&format!("{name} to report Running"), APPLIED, || async {
            report.status() == ConsumerStatus::Running
        })
        .await;
        reports.push(report);
    }
    reports
}

/// A trigger failing every insert into `table` while `fault_flag` has a row.
fn trigger(table: &str) -> String {
    format!(
        "CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} FOR EACH ROW \
         BEGIN IF EXISTS (SELECT 1 FROM fault_flag) THEN \
         SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure on {table}'; END IF; END"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_consumer_connections_mid_transaction_skip_nothing_and_apply_nothing_twice() {
    use killed_connections::{
        assert_exactly_the_earlier_campaigns_applied, kill_blocked_consumers_twice,
        open_campaigns_with_locked_rows, publish_the_backlog, ROUNDS, WINS,
    };
    let mut settings = with_consumers(with_relay(test_settings().await));
    // One partition, one event per transaction: the backlog is one ordered line, so "applied
    // exactly n" says exactly which events are applied.
    settings.kafka.partitions = 1;
    settings.consumers.batch_size = 1;
    let url = settings.database.url.expose().to_string();
    let app = spawn_app_with(settings).await;

    let (campaigns, locks) = open_campaigns_with_locked_rows(&app, &url).await;
    publish_the_backlog(&app, &campaigns).await;

    let mut exclude: Vec<i64> = locks.iter().map(|l| l.id).collect();
    for (r, lock) in locks.into_iter().enumerate() {
        let applied = r as i64 * WINS;
        kill_blocked_consumers_twice(&app, r, applied, &mut exclude).await;
        assert_exactly_the_earlier_campaigns_applied(&app, &campaigns[..r], applied).await;
        lock.release().await;
    }

    for report in recovered(&app).await {
        let name = report.name;
        assert_eq!(
            ConsumerReport::get(&report.applied),
            ROUNDS as u64 * WINS as u64,
            "{name}"
        );
        assert!(
            ConsumerReport::get(&report.retries) >= 2 * ROUNDS as u64,
            "{name}: every kill failed a transaction"
        );
    }
    app.stop().await.expect("clean stop");
}

/// Runs `firstcome consume` with `env` only; returns its exit status, stderr and stdout (where
/// its log goes). It must exit by itself within 30 s.
async fn consume_with(env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let run = crate::binary::run_firstcome(&["consume"], env).await;
    (run.status, run.stderr, run.stdout)
}

#[tokio::test]
async fn consume_refuses_a_configuration_it_cannot_run_and_names_the_variable() {
    // Nothing listens on port 1: should a check stop working, the process fails on the database
    // (and the assertions on the variable's name fail) instead of migrating and consuming the
    // local default database.
    let no_database = (
        "DATABASE_URL",
        "mysql://firstcome:firstcome@127.0.0.1:1/unreachable",
    );
    let kafka = ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1");

    let (status, stderr, _) = consume_with(&[no_database, kafka, ("CONSUMERS", "billing")]).await;
    assert!(!status.success(), "{status}");
    assert!(
        stderr.contains("CONSUMERS") && stderr.contains("billing"),
        "{stderr}"
    );

    // These two are found after the configuration is read, and reported through the log.
    let (status, stderr, stdout) = consume_with(&[no_database]).await;
    assert!(!status.success(), "{status}");
    assert!(
        format!("{stderr}{stdout}").contains("KAFKA_BOOTSTRAP_SERVERS"),
        "{stderr}{stdout}"
    );

    let (status, stderr, stdout) = consume_with(&[no_database, kafka, ("CONSUMERS", "")]).await;
    assert!(!status.success(), "{status}");
    let output = format!("{stderr}{stdout}");
    assert!(
        output.contains("CONSUMERS") && output.contains("nothing to run"),
        "{output}"
    );
}
