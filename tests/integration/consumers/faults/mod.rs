//! The consumers through faults (docs/design.md §2.8, §4, §11):
//! - poison (not JSON, an unknown `eventType`) goes to each consumer's dead-letter topic with its
//!   key, value and headers and the `dlq_*` headers, and the messages behind it are applied;
//! - MySQL failing (a trigger) or killing the consumers' connections mid-transaction blocks them:
//!   retried, nothing skipped, nothing applied twice, no offset committed past what was applied;
//! - `firstcome consume` (the real binary) refuses a configuration it cannot run, naming the
//!   variable.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use firstcome::{
    config::Settings,
    consumer::{ConsumerName, ConsumerReport, ConsumerStatus},
    kafka::EmbeddedBroker,
    outbox::{dlq, headers, Headers},
};
use futures::future::join_all;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    Statement, TransactionTrait,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    consumer_helpers::{committed_offsets, end_offsets, produce, with_consumers, Raw},
    kafka::read_topic,
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

async fn inbox_count(app: &TestApp, name: ConsumerName) -> i64 {
    app.scalar(&format!(
        "SELECT COUNT(*) FROM consumer_inbox WHERE consumer = '{name}'"
    ))
    .await
}

/// `user` wins one unit of `campaign`, or the test stops.
async fn win(app: &TestApp, campaign: i64, user: i64) {
    let reply = app.join(campaign, user, 1).await;
    assert_eq!(reply.status, 201, "{reply:?}");
}

fn header<'a>(headers: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    headers
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("header {name} missing from {headers:?}"))
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

    // Two poison messages with the campaign's key (so its partition), each with headers of its
    // own that the dead letter must keep.
    let key = campaign.to_string();
    let mut not_json_headers = Headers::new();
    not_json_headers.insert("content-type".into(), "text/plain".into());
    not_json_headers.insert("x-test-origin".into(), "consumer_faults".into());
    let not_json = Raw {
        key: Some(key.clone().into_bytes()),
        value: Some(b"{\"eventType\": not json".to_vec()),
        headers: not_json_headers,
    };
    let refund_id = Uuid::now_v7();
    let refund = json!({
        "eventId": refund_id, "eventType": "ParticipationRefunded", "occurredAt": Utc::now(),
        "campaignId": campaign, "participationId": 1, "userId": 1, "quantity": 1, "sequence": 1,
    });
    let mut refund_headers = headers::build(refund_id, "ParticipationRefunded", None);
    refund_headers.insert("x-test-origin".into(), "consumer_faults".into());
    let unknown_type = Raw {
        key: Some(key.clone().into_bytes()),
        value: Some(refund.to_string().into_bytes()),
        headers: refund_headers,
    };
    let before = Utc::now() - chrono::Duration::seconds(1);
    produce(
        &app.kafka_bootstrap,
        &app.topic,
        &[not_json.clone(), unknown_type.clone()],
    )
    .await;

    // Wins behind the poison, on the same partition: both consumers apply them, once.
    for user in 2..=6 {
        win(&app, campaign, user).await;
    }
    app.wait_for_outbox_drained(APPLIED).await;
    app.wait_for_consumers(APPLIED).await;
    app.assert_consumers_match_participations().await;

    // The premise: one partition, the poison between the first win and the others.
    let mut main = read_topic(&app.kafka_bootstrap, &app.topic, 8, APPLIED).await;
    main.sort_by_key(|m| (m.partition, m.offset));
    // A relay duplicate (byte-identical, docs/design.md §2.4) is not what this test is about.
    let mut payloads = std::collections::HashSet::new();
    main.retain(|m| payloads.insert(m.payload.clone()));
    assert_eq!(main.len(), 8, "{main:#?}");
    assert!(main
        .iter()
        .all(|m| m.partition == main[0].partition && m.key == key));
    let kinds: Vec<&str> = main
        .iter()
        .map(|m| {
            match serde_json::from_str::<Value>(&m.payload)
                .ok()
                .and_then(|v| v["eventType"].as_str().map(str::to_owned))
            {
                None => "not json",
                Some(t) if t == "ParticipationAccepted" => "win",
                Some(_) => "unknown type",
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "win",
            "not json",
            "unknown type",
            "win",
            "win",
            "win",
            "win",
            "win"
        ]
    );
    let poison = [
        (&not_json, "not_json", &main[1]),
        (&unknown_type, "unknown_event_type", &main[2]),
    ];

    for name in ConsumerName::ALL {
        let report = app.consumer(name);
        assert_eq!(ConsumerReport::get(&report.dead_lettered), 2, "{name}");
        assert_eq!(ConsumerReport::get(&report.applied), 6, "{name}");
        assert_eq!(report.status(), ConsumerStatus::Running, "{name}");

        // Exactly the two poison messages, in their order, as they were, plus why and where.
        let topic = dlq::consumer_topic(&app.topic, name.as_str());
        let mut letters = read_topic(&app.kafka_bootstrap, &topic, 2, APPLIED).await;
        letters.sort_by_key(|m| (m.partition, m.offset));
        assert_eq!(letters.len(), 2, "{name}: {letters:#?}");
        for (letter, (raw, reason, original)) in letters.iter().zip(poison) {
            assert_eq!(letter.key, key, "{name}");
            assert_eq!(
                Some(letter.payload.as_bytes()),
                raw.value.as_deref(),
                "{name}"
            );
            for (k, v) in &raw.headers {
                assert_eq!(letter.headers.get(k), Some(v), "{name}: header {k} kept");
            }
            let h = &letter.headers;
            assert_eq!(header(h, dlq::REASON), reason, "{name}");
            assert!(!header(h, dlq::ERROR).is_empty(), "{name}");
            assert_eq!(header(h, dlq::ATTEMPTS), "1", "{name}");
            assert_eq!(header(h, dlq::ORIGINAL_TOPIC), app.topic, "{name}");
            assert_eq!(header(h, dlq::CONSUMER), name.as_str());
            assert_eq!(
                header(h, dlq::ORIGINAL_POSITION),
                format!("{}:{}", original.partition, original.offset),
                "{name}"
            );
            let failed_at = DateTime::parse_from_rfc3339(header(h, dlq::FAILED_AT))
                .expect("dlq_failed_at is RFC 3339");
            assert!(
                failed_at >= before && failed_at <= Utc::now(),
                "{name}: {failed_at}"
            );
        }
        assert!(
            header(&letters[1].headers, dlq::ERROR).contains("ParticipationRefunded"),
            "{letters:#?}"
        );
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
        assert_eq!(inbox_count(app, name).await, applied, "{name}");
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

/// A transaction of the test's own, on a connection of its own, holding the rows a consumer
/// must write for `campaign` (stats: its `campaign_stats` row) and `user` (rewards: their
/// `reward_account` row): uncommitted inserts, so the consumer's insert waits on the key lock
/// in the middle of its transaction (after its inbox rows, and for rewards its grant).
/// Rolled back, it leaves nothing.
struct RowLock {
    /// The connection id, never killed.
    id: i64,
    txn: DatabaseTransaction,
    _conn: DatabaseConnection,
}

async fn lock_rows(url: &str, campaign: i64, user: i64) -> RowLock {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1).sqlx_logging(false);
    let conn = Database::connect(opts).await.expect("connect");
    let txn = conn.begin().await.expect("begin");
    let id = txn
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT CAST(CONNECTION_ID() AS SIGNED)",
        ))
        .await
        .expect("connection id")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("an id");
    for sql in [
        format!(
            "INSERT INTO campaign_stats (campaign_id, accepted_count, accepted_quantity, first_accepted_at, \
             last_accepted_at, last_event_at, updated_at) VALUES ({campaign}, 0, 0, UTC_TIMESTAMP(6), \
             UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))"
        ),
        format!("INSERT INTO reward_account (user_id, points, updated_at) VALUES ({user}, 0, UTC_TIMESTAMP(6))"),
    ] {
        txn.execute_unprepared(&sql).await.expect(&sql);
    }
    RowLock {
        id,
        txn,
        _conn: conn,
    }
}

/// The two connections the consumers are blocked on, when both have applied exactly `applied`
/// events and are now waiting in the insert a [`RowLock`] holds: stats in `INSERT INTO
/// campaign_stats`, rewards in `INSERT INTO reward_account`. Only the consumers run those
/// statements (the API and relay pools never do; `exclude` has the test's own connections and
/// those already killed), so these are the consumer pool's connections, found by the test's
/// database in PROCESSLIST. With one event per batch, a consumer that applied exactly `applied`
/// and runs one of these inserts is in the batch of the locked event.
async fn blocked_consumers(app: &TestApp, applied: i64, exclude: &[i64]) -> Option<[i64; 2]> {
    for name in ConsumerName::ALL {
        if inbox_count(app, name).await != applied {
            return None;
        }
    }
    let excluded: Vec<String> = exclude.iter().map(i64::to_string).collect();
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            format!(
                "SELECT CAST(ID AS SIGNED), LEFT(INFO, 60) FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND ID NOT IN ({}) \
                 AND COMMAND NOT IN ('Sleep', 'Killed') \
                 AND (INFO LIKE 'INSERT INTO campaign_stats %' OR INFO LIKE 'INSERT INTO reward_account %')",
                excluded.join(", ")
            ),
        ))
        .await
        .expect("processlist");
    let mut stats = Vec::new();
    let mut rewards = Vec::new();
    for row in rows {
        let id: i64 = row.try_get_by_index(0).expect("id");
        let info: String = row.try_get_by_index(1).expect("info");
        if info.starts_with("INSERT INTO campaign_stats") {
            stats.push(id);
        } else {
            rewards.push(id);
        }
    }
    match (stats.as_slice(), rewards.as_slice()) {
        (&[s], &[r]) => Some([s, r]),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_consumer_connections_mid_transaction_skip_nothing_and_apply_nothing_twice() {
    const ROUNDS: usize = 3;
    const WINS: i64 = 10;
    let mut settings = with_consumers(with_relay(test_settings().await));
    // One partition, one event per transaction: the backlog is one ordered line, so "applied
    // exactly n" says exactly which events are applied.
    settings.kafka.partitions = 1;
    settings.consumers.batch_size = 1;
    let url = settings.database.url.expose().to_string();
    let app = spawn_app_with(settings).await;

    // Campaign r's first win is user r*1000+1; a lock on that campaign's stats row and that
    // user's account stops both consumers at that event, mid-transaction.
    let mut campaigns = Vec::new();
    let mut locks = Vec::new();
    for r in 1..=ROUNDS as i64 {
        let c = app
            .create_campaign(json!({"name": "c", "totalStock": WINS, "rewardPoints": r * 10}))
            .await["id"]
            .as_i64()
            .expect("id");
        locks.push(lock_rows(&url, c, r * 1000 + 1).await);
        campaigns.push(c);
    }
    // The backlog: each campaign's wins published before the next campaign's.
    for (r, c) in (1..).zip(&campaigns) {
        win(&app, *c, r * 1000 + 1).await;
        join_all((2..=WINS).map(|u| win(&app, *c, r * 1000 + u))).await;
        app.wait_for_outbox_drained(APPLIED).await;
    }

    let mut exclude: Vec<i64> = locks.iter().map(|l| l.id).collect();
    for (r, lock) in locks.into_iter().enumerate() {
        let applied = r as i64 * WINS;
        // Kill both consumers' connections while they are blocked mid-transaction, twice; each
        // time the retry must come back to the same event and block on it again.
        for kill in 0..=2 {
            wait_until(
                &format!(
                    "both consumers to block at campaign {}'s first event",
                    r + 1
                ),
                APPLIED,
                || async { blocked_consumers(&app, applied, &exclude).await.is_some() },
            )
            .await;
            if kill == 2 {
                break;
            }
            let ids = blocked_consumers(&app, applied, &exclude)
                .await
                .expect("still blocked");
            for id in ids {
                match app
                    .db
                    .execute_unprepared(&format!("KILL CONNECTION {id}"))
                    .await
                {
                    Ok(_) => {}
                    // It went away meanwhile (its lock wait timed out and the pool closed it):
                    // the consumer failed and retries all the same.
                    Err(e) if e.to_string().contains("Unknown thread id") => {}
                    Err(e) => panic!("could not kill connection {id}: {e}"),
                }
                exclude.push(id);
            }
        }

        // Exactly the events before the lock are applied, each once; no offset is committed
        // past them.
        let earlier: Vec<String> = campaigns[..r].iter().map(|c| format!("'{c}'")).collect();
        for name in ConsumerName::ALL {
            if r > 0 {
                assert_eq!(
                    app.scalar(&format!(
                        "SELECT COUNT(*) FROM consumer_inbox i JOIN outbox_event o ON o.event_id = i.event_id \
                         WHERE i.consumer = '{name}' AND o.msg_key IN ({})",
                        earlier.join(", ")
                    ))
                    .await,
                    applied,
                    "{name}: the inbox holds exactly the earlier campaigns' events"
                );
            }
            let committed =
                committed_offsets(&app.kafka_bootstrap, &name.group_id(), &app.topic).await;
            assert!(
                committed.get(&0).copied().unwrap_or(0) <= applied,
                "{name} committed {committed:?} with {applied} events applied"
            );
        }
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM reward_grant").await,
            applied
        );
        assert_eq!(
            app.scalar(
                "SELECT CAST(COALESCE(SUM(accepted_count), 0) AS SIGNED) FROM campaign_stats"
            )
            .await,
            applied
        );
        lock.txn.rollback().await.expect("release the rows");
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
