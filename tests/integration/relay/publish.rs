//! The relay end to end through librdkafka's mock cluster: no loss (docs/design.md §2.3), the dedupe
//! contract (§2.4), per-key order (§2.5), one publisher per key across instances (graceful
//! shutdown of the real binary is in `faults/crash.rs`).

use std::{collections::HashMap, time::Duration};

use firstcome::events::{accepted::PARTICIPATION_ACCEPTED, headers};
use futures::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::{
    kafka::read_topic,
    spawn::{spawn_app_with, spawn_pair, test_settings, with_relay, TestApp},
    wait::wait_until,
};

const DRAIN: Duration = Duration::from_secs(30);

/// Asserts that, per key, messages appear in ascending outbox id.
fn assert_per_key_order(messages: &[crate::kafka::Consumed], outbox_ids: &HashMap<String, i64>) {
    let mut last: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut sorted: Vec<_> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition, m.offset));
    for m in sorted {
        let id = outbox_ids[m.event_id()];
        if let Some((prev, prev_offset)) = last.insert(&m.key, (id, m.offset)) {
            assert!(
                prev < id,
                "key {}: outbox id {id} (offset {}) after {prev} (offset {prev_offset})",
                m.key,
                m.offset
            );
        }
    }
}

/// The caller's trace context every request of the contract test carries.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_participation_reaches_the_topic_once_with_its_contract() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    // Different points per campaign, so each event is checked against its own campaign's.
    let reward_points = [250, 1_000_000_000];
    let campaigns = [
        app.open_campaign_with(30, 1, json!({"rewardPoints": reward_points[0]}))
            .await,
        app.open_campaign_with(30, 1, json!({"rewardPoints": reward_points[1]}))
            .await,
    ];
    fifty_wins_with_a_traceparent(&app, &campaigns).await;
    let messages = read_each_event_once(&app).await;
    let stored = stored_payloads(&app).await;
    for m in &messages {
        assert_the_message_keeps_the_contract(m, &campaigns, &reward_points, &stored);
    }
    assert_per_key_order(&messages, &app.outbox_ids().await);
}

/// 50 users win across the two campaigns, each request with [`TRACEPARENT`]; the relay
/// publishes all 50.
async fn fifty_wins_with_a_traceparent(app: &TestApp, campaigns: &[i64; 2]) {
    let replies = join_all((1..=50).map(|u| {
        let url = app.url(&format!(
            "/api/v1/campaigns/{}/participations",
            campaigns[u as usize % 2]
        ));
        app.send(
            app.client
                .post(url)
                .header("traceparent", TRACEPARENT)
                .json(&json!({"userId": u})),
        )
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 201), "{replies:?}");
    app.wait_for_outbox_drained(DRAIN).await;
    assert_eq!(app.outbox_count("PUBLISHED").await, 50);
}

/// The topic holds one message per participation: every event, no duplicate while nothing
/// failed.
async fn read_each_event_once(app: &TestApp) -> Vec<crate::kafka::Consumed> {
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, 50, DRAIN).await;
    let participations = app.scalar("SELECT COUNT(*) FROM participation").await as usize;
    let distinct: std::collections::HashSet<_> =
        messages.iter().map(|m| m.event_id().to_string()).collect();
    assert_eq!(
        distinct.len(),
        participations,
        "consumed distinct event ids == participation rows"
    );
    assert_eq!(
        messages.len(),
        participations,
        "no duplicates while nothing failed"
    );
    messages
}

/// The outbox's payloads by event id.
async fn stored_payloads(app: &TestApp) -> HashMap<String, String> {
    app.db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::MySql,
            "SELECT event_id, payload FROM outbox_event",
        ))
        .await
        .expect("outbox")
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).expect("id"),
                r.try_get_by_index(1).expect("payload"),
            )
        })
        .collect()
}

/// One message against the contract: keyed by its campaign, its campaign's points, the event id
/// header equal to the field, the type and content-type headers, the service's span in the
/// caller's trace, and the stored bytes unchanged.
fn assert_the_message_keeps_the_contract(
    m: &crate::kafka::Consumed,
    campaigns: &[i64; 2],
    reward_points: &[i64; 2],
    stored: &HashMap<String, String>,
) {
    let value = m.json();
    assert_eq!(m.key, value["campaignId"].to_string(), "key = campaign id");
    let campaign = campaigns
        .iter()
        .position(|c| value["campaignId"] == json!(c))
        .expect("one of the test's campaigns");
    assert_eq!(
        value["rewardPoints"],
        json!(reward_points[campaign]),
        "the campaign's rewardPoints travel in the event"
    );
    assert_eq!(
        value["eventId"],
        json!(m.event_id()),
        "event_id header = field"
    );
    assert_eq!(m.headers[headers::EVENT_TYPE], PARTICIPATION_ACCEPTED);
    assert_eq!(m.headers[headers::CONTENT_TYPE], headers::APPLICATION_JSON);
    // The service's own span in the caller's trace: same trace id and flags, its own span id.
    let sent = TRACEPARENT.split('-').collect::<Vec<_>>();
    let carried = m.headers[headers::TRACEPARENT]
        .split('-')
        .collect::<Vec<_>>();
    assert!(
        headers::is_valid_traceparent(&m.headers[headers::TRACEPARENT]),
        "{carried:?}"
    );
    assert_eq!(
        (carried[1], carried[3]),
        (sent[1], sent[3]),
        "trace id and flags"
    );
    assert_ne!(
        carried[2], sent[2],
        "the service's span id, not the caller's"
    );
    assert_eq!(
        m.payload,
        stored[m.event_id()],
        "the stored bytes are sent unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_campaigns_messages_keep_outbox_order() {
    let mut settings = with_relay(test_settings().await);
    settings.relay.batch_size = 16; // many claims, so keys interleave across batches and workers
    let app = spawn_app_with(settings).await;
    let mut campaigns = Vec::new();
    for _ in 0..6 {
        campaigns.push(app.open_campaign(1_000, 1).await);
    }
    // Interleaved bursts: every campaign gets users at the same time.
    for wave in 0..4 {
        join_all((0..120).map(|i| {
            app.join(
                campaigns[i % campaigns.len()],
                (wave * 1_000 + i + 1) as i64,
                1,
            )
        }))
        .await;
    }
    app.wait_for_outbox_drained(DRAIN).await;
    let total = app.scalar("SELECT COUNT(*) FROM outbox_event").await as usize;
    assert_eq!(total, 480);
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, total, DRAIN).await;
    assert_eq!(messages.len(), total);
    assert_per_key_order(&messages, &app.outbox_ids().await);
}

/// Rows and shards left leased by a relay that died: another relay publishes them once the
/// leases expire, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_claimed_by_a_dead_relay_are_published_after_its_lease_expires() {
    let settings = with_relay(test_settings().await);
    // Write the rows first, without a relay.
    let mut no_relay = settings.clone();
    no_relay.relay.enabled = false;
    let writer = spawn_app_with(no_relay).await;
    let campaign = writer.open_campaign(10, 1).await;
    for u in 1..=5 {
        assert_eq!(writer.join(campaign, u, 1).await.status, 201);
    }
    // A relay "dead-relay" led every shard and claimed the rows, then died without releasing
    // anything.
    let shard_rows: Vec<String> = (0..settings.relay.shards)
        .map(|s| format!("({s}, 'dead-relay', UTC_TIMESTAMP(6) + INTERVAL 5 SECOND)"))
        .collect();
    writer
        .db
        .execute_unprepared(&format!(
            "INSERT INTO relay_shard (shard, owner, lease_until) VALUES {}",
            shard_rows.join(", ")
        ))
        .await
        .expect("lease shards");
    writer
        .db
        .execute_unprepared(
            "UPDATE outbox_event SET lease_owner = 'dead-relay', \
             lease_until = UTC_TIMESTAMP(6) + INTERVAL 5 SECOND",
        )
        .await
        .expect("lease rows");
    writer.stop().await.expect("stop writer");

    let app = spawn_app_with(settings).await;
    // Not vacuous: the new relay is up while the dead relay's leases still run.
    assert_eq!(
        app.scalar(
            "SELECT COUNT(*) FROM relay_shard WHERE owner = 'dead-relay' AND lease_until > UTC_TIMESTAMP(6)"
        )
        .await,
        app.settings_shards(),
        "the new relay started after the dead relay's leases expired; the test proves nothing"
    );
    let leased_until = app
        .scalar(
            "SELECT CAST(UNIX_TIMESTAMP(MAX(lease_until)) * 1000000 AS SIGNED) FROM outbox_event",
        )
        .await;
    app.wait_for_outbox_drained(DRAIN).await;
    let first_publish = app
        .scalar(
            "SELECT CAST(UNIX_TIMESTAMP(MIN(published_at)) * 1000000 AS SIGNED) FROM outbox_event",
        )
        .await;
    assert!(
        first_publish >= leased_until,
        "published only after the dead relay's leases expired"
    );
    let owner = app.relay.as_ref().expect("relay").owner.clone();
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM relay_shard WHERE owner = '{owner}'"
        ))
        .await,
        app.settings_shards(),
        "the new relay took the shards over"
    );
    let messages = read_topic(&app.kafka_bootstrap, &app.topic, 5, DRAIN).await;
    assert_eq!(messages.len(), 5);
}

/// Shards whose lease row `owner` holds now.
async fn shards_led_by(app: &TestApp, owner: &str) -> i64 {
    app.scalar(&format!(
        "SELECT COUNT(*) FROM relay_shard WHERE owner = '{owner}' AND lease_until > UTC_TIMESTAMP(6)"
    ))
    .await
}

/// Whether `app`'s relay leads the shard of `key`.
async fn leads_key(app: &TestApp, key: &str) -> bool {
    let owner = app.relay.as_ref().expect("relay").owner.clone();
    app.scalar(&format!(
        "SELECT COUNT(*) FROM relay_shard WHERE owner = '{owner}' \
         AND shard = MOD(CRC32('{key}'), {})",
        app.settings_shards()
    ))
    .await
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_compete_for_shards_never_publish_a_row_twice_and_take_over_after_a_lease_expires(
) {
    // Both start at the same moment and race for the same shard rows.
    let (a, b, broker) = spawn_pair().await;
    let owner = |app: &TestApp| app.relay.as_ref().expect("relay").owner.clone();
    wait_until("every shard to be led", DRAIN, || async {
        shards_led_by(&a, &owner(&a)).await + shards_led_by(&b, &owner(&b)).await
            == a.settings_shards()
    })
    .await;
    let campaign = a.open_campaign(1_000, 1).await;
    // Both instances accept participations (they share the database and the Redis gate).
    let replies = join_all((1..=200).map(|u| {
        if u % 2 == 0 {
            a.join(campaign, u, 1)
        } else {
            b.join(campaign, u, 1)
        }
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 201));
    a.wait_for_outbox_drained(DRAIN).await;

    // An instance that leads the campaign's shard freezes, as a stalled process would: it
    // releases nothing, so the other takes over only when the leases expire.
    let (leader, other) = if leads_key(&a, &campaign.to_string()).await {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let pause = (
        leader.pause_relay_claims().await,
        leader.pause_relay_renewals().await,
    );
    let frozen_at = other
        .scalar("SELECT CAST(UNIX_TIMESTAMP(UTC_TIMESTAMP(6)) * 1000000 AS SIGNED)")
        .await;
    for u in 201..=260 {
        assert_eq!(other.join(campaign, u, 1).await.status, 201);
    }
    wait_until("the other instance to lead every shard", DRAIN, || async {
        shards_led_by(other, &owner(other)).await == other.settings_shards()
    })
    .await;
    other.wait_for_outbox_drained(DRAIN).await;
    let first_new_publish = other
        .scalar(
            "SELECT CAST(UNIX_TIMESTAMP(MIN(published_at)) * 1000000 AS SIGNED) FROM \
             (SELECT published_at FROM outbox_event ORDER BY id DESC LIMIT 60) AS new_rows",
        )
        .await;
    let lease = 3_000_000; // with_relay's RELAY_LEASE_MS, in µs
    assert!(
        first_new_publish >= frozen_at + lease / 2,
        "taken over only after the frozen leader's lease ran out"
    );
    let messages = read_topic(broker.bootstrap_servers(), &other.topic, 260, DRAIN).await;
    assert_eq!(messages.len(), 260, "no row was published by both");
    assert_per_key_order(&messages, &other.outbox_ids().await);
    drop(pause);
}
