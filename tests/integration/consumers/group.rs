//! docs/design.md §2.8 with two consumer processes in one group (per consumer): the second joins while
//! wins still flow (a rebalance hands it part of the partitions), then the first stops (a second
//! rebalance hands the rest over), wins flowing all along. Every event is applied once across
//! both members, and each campaign's events are applied in their order.
//!
//! Three instances share one database and a broker held by the test: one serves the API and runs
//! the relay, two run only the consumers (as `firstcome consume` processes would). In process,
//! so the test reads each member's report (what it applied, which partitions it holds).

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use firstcome::{
    config::{consumers::ConsumerName, Settings},
    consumer::ConsumerReport,
    events::dlq,
    kafka::EmbeddedBroker,
};
use serde_json::json;

use crate::{
    consumer_helpers::{applied_record, with_consumers},
    kafka::read_topic,
    spawn::{spawn_app_with, test_settings, with_relay, TestApp},
    wait::wait_until,
};

const TOPIC: &str = "campaign.participation.v1";
const PARTITIONS: i32 = 4;
/// Keys: campaign ids 1..=12 (a fresh database), which hash to every one of the 4 partitions.
const CAMPAIGNS: i64 = 12;
/// Rebalances on the mock cluster take up to a KIP-848 heartbeat (3 s) per step.
const STEP: Duration = Duration::from_secs(30);

fn applied(report: &ConsumerReport) -> u64 {
    ConsumerReport::get(&report.applied)
}

/// Both consumers' reports of one member.
fn reports(app: &TestApp) -> [Arc<ConsumerReport>; 2] {
    [
        app.consumer(ConsumerName::Stats),
        app.consumer(ConsumerName::Rewards),
    ]
}

/// Partitions a member holds, by its report (librdkafka's statistics, once a second).
fn held(report: &ConsumerReport) -> BTreeSet<i32> {
    report.lag().keys().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumer_processes_in_one_group_apply_every_event_once_and_each_campaign_in_order() {
    let mut topics = vec![TOPIC.to_string(), dlq::relay_topic(TOPIC)];
    topics.extend(["stats", "rewards"].map(|c| dlq::consumer_topic(TOPIC, c)));
    let broker = EmbeddedBroker::start(&topics, PARTITIONS).expect("broker");

    // The API and the relay, no consumers.
    let mut settings = with_relay(test_settings().await);
    settings.consumers.enabled = Vec::new();
    settings.kafka.bootstrap_servers = Some(broker.bootstrap_servers().to_string());
    let api = spawn_app_with(settings.clone()).await;
    // The consumer members: same database (migrated by `api`), both consumers, no relay, small
    // batches (more transactions to interleave with the rebalances).
    let mut member = with_consumers(settings);
    member.relay.enabled = false;
    member.migrate_on_start = false;
    member.consumers.batch_size = 20;

    let campaigns = open_campaigns(&api).await;

    // Wins on every campaign, round after round, until the choreography is done.
    let done = AtomicBool::new(false);
    let traffic = traffic(&api, &campaigns, &done);
    let choreography = choreography(&api, &member, &done);
    let (rounds, (a_reports, b, b_reports)) = tokio::join!(traffic, choreography);
    assert!(rounds > 0);

    api.wait_for_outbox_drained(STEP).await;
    api.wait_for_consumers(STEP).await;
    // Totals exact: stats, daily stats, grants, balances, one inbox row per event.
    api.assert_consumers_match_participations().await;
    let events = api.scalar("SELECT COUNT(*) FROM outbox_event").await;
    // Each event was applied by exactly one member (a redelivery to the other was skipped).
    for (a, b) in a_reports.iter().zip(&b_reports) {
        assert_eq!(
            applied(a) + applied(b),
            events as u64,
            "{}: applied by A ({}) + by B ({})",
            a.name,
            applied(a),
            applied(b)
        );
    }

    assert_topic_in_order_over_every_partition(&api, events).await;
    for consumer in ConsumerName::ALL {
        assert_each_campaign_applied_in_order(&api, consumer, events).await;
    }

    b.stop().await.expect("member B stops cleanly");
    api.stop().await.expect("clean stop");
}

/// `CAMPAIGNS` campaigns with stock for the whole test, each with its own reward points.
async fn open_campaigns(api: &TestApp) -> Vec<i64> {
    let mut campaigns = Vec::new();
    for n in 1..=CAMPAIGNS {
        let c = api
            .create_campaign(json!({"name": "group", "totalStock": 1_000_000,
                "perUserLimit": 3, "rewardPoints": n}))
            .await;
        campaigns.push(c["id"].as_i64().expect("id"));
    }

    campaigns
}

/// Wins on every campaign, round after round, until `done`; returns how many rounds ran.
async fn traffic(api: &TestApp, campaigns: &[i64], done: &AtomicBool) -> i64 {
    let mut rounds = 0i64;
    while !done.load(Ordering::Relaxed) {
        let users = (rounds * 4 + 1)..=(rounds * 4 + 4);
        let replies = futures::future::join_all(campaigns.iter().flat_map(|&id| {
            users
                .clone()
                .map(move |u| api.join(id, u, (u % 3 + 1) as i32))
        }))
        .await;
        assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
        rounds += 1;
    }
    rounds
}

/// A backlog, then member A alone, then member B joining while wins flow (the group splits the
/// partitions), then A stopping (B takes over). Sets `done` at the end and returns both members'
/// reports and member B, still running.
async fn choreography(
    api: &TestApp,
    member: &Settings,
    done: &AtomicBool,
) -> ([Arc<ConsumerReport>; 2], TestApp, [Arc<ConsumerReport>; 2]) {
    // A backlog before any member runs.
    wait_until("a backlog on the topic", STEP, || async {
        api.outbox_count("PUBLISHED").await >= 200
    })
    .await;

    // Member A alone: it holds every partition and applies part of what flows.
    let a = spawn_app_with(member.clone()).await;
    let a_reports = reports(&a);
    wait_until("member A to apply events", STEP, || async {
        a_reports.iter().all(|r| applied(r) > 0)
    })
    .await;

    // Member B joins while wins flow: the group splits the partitions between them.
    let b = spawn_app_with(member.clone()).await;
    let b_reports = reports(&b);
    wait_until(
        "member B to take partitions from A and apply events",
        STEP,
        || async {
            a_reports.iter().zip(&b_reports).all(|(a, b)| {
                let (held_a, held_b) = (held(a), held(b));
                !held_b.is_empty()
                    && held_a.len() + held_b.len() == PARTITIONS as usize
                    && held_a.is_disjoint(&held_b)
                    && applied(b) > 0
            })
        },
    )
    .await;
    let a_applied_with_b = a_reports.iter().map(|r| applied(r)).collect::<Vec<_>>();
    wait_until(
        "both members to apply events side by side",
        STEP,
        || async {
            a_reports
                .iter()
                .zip(&a_applied_with_b)
                .all(|(r, before)| applied(r) > *before)
        },
    )
    .await;

    // A stops (commits what it applied, leaves the group) while wins flow: B takes over.
    a.stop().await.expect("member A stops cleanly");
    let b_applied_alone = b_reports.iter().map(|r| applied(r)).collect::<Vec<_>>();
    wait_until(
        "member B to hold every partition and apply more",
        STEP,
        || async {
            b_reports.iter().zip(&b_applied_alone).all(|(r, before)| {
                held(r).len() == PARTITIONS as usize && applied(r) >= before + 100
            })
        },
    )
    .await;
    done.store(true, Ordering::Relaxed);
    (a_reports, b, b_reports)
}

/// The keys covered every partition, so both rebalances moved partitions with events; the topic
/// holds first deliveries in per-key order.
async fn assert_topic_in_order_over_every_partition(api: &TestApp, events: i64) {
    let messages = read_topic(
        &api.kafka_bootstrap,
        TOPIC,
        events as usize,
        Duration::from_secs(30),
    )
    .await;
    eprintln!(
        "TOPIC ORDER CHECK: {}",
        crate::kafka::assert_first_deliveries_in_order(&messages, &api.outbox_ids().await)
    );
    let partitions: BTreeSet<i32> = messages.iter().map(|m| m.partition).collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{partitions:?}");
}

/// Per campaign, in outbox order (the order the relay published them), each event was applied by
/// `consumer` in the same transaction as the one before it or a later one.
async fn assert_each_campaign_applied_in_order(api: &TestApp, consumer: ConsumerName, events: i64) {
    let rows = api
        .int_rows(&format!(
            "SELECT CAST(o.msg_key AS SIGNED), o.id, \
             TIMESTAMPDIFF(MICROSECOND, '2000-01-01', r.at) \
             FROM {} r JOIN outbox_event o ON o.event_id = r.event_id ORDER BY 1, 2",
            applied_record(consumer)
        ))
        .await;
    assert_eq!(rows.len() as i64, events, "{consumer}: every event");
    let mut last: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut inversions = Vec::new();
    for row in &rows {
        let [Some(key), Some(id), Some(at)] = row[..] else {
            panic!("{row:?}");
        };
        if let Some((prev_id, prev_at)) = last.insert(key, (id, at)) {
            if at < prev_at {
                inversions.push(format!(
                    "campaign {key}: outbox id {id} applied at {at}, before id {prev_id} at {prev_at}"
                ));
            }
        }
    }
    assert!(
        inversions.is_empty(),
        "{consumer}: {} events applied before an earlier event of their campaign: {inversions:#?}",
        inversions.len()
    );
    assert_eq!(last.len() as i64, CAMPAIGNS);
}
