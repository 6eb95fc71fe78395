//! Where a campaign's events land (docs/design.md §4 "Partition"): every event of a bucketed
//! campaign, whatever its bucket's key, goes to its campaign's partition, the one librdkafka's
//! default partitioner gives the campaign's unbucketed key (CRC-32 of the key modulo the
//! partition count), so a campaign's buckets never split its producer batches and consumer
//! fetches over the topic.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use crate::{
    kafka::read_topic,
    spawn::{spawn_app_with, test_settings, with_relay},
};

/// The test topic's partitions (`with_relay`).
const PARTITIONS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucketed_campaigns_events_all_go_to_its_campaigns_partition() {
    let app = spawn_app_with(with_relay(test_settings().await)).await;
    let mut campaigns = Vec::new();
    for _ in 0..2 {
        campaigns.push(app.open_campaign_with(100, 1, json!({"buckets": 8})).await);
    }
    let unbucketed = app.open_campaign(100, 1).await;
    let mut wins = 0;
    for user in 1..=40 {
        for &c in campaigns.iter().chain([&unbucketed]) {
            assert_eq!(app.join(c, user, 1).await.status, 201);
            wins += 1;
        }
    }
    let messages = read_topic(
        &app.kafka_bootstrap,
        &app.topic,
        wins,
        Duration::from_secs(30),
    )
    .await;
    for &c in campaigns.iter().chain([&unbucketed]) {
        let mut partitions: BTreeMap<i32, usize> = BTreeMap::new();
        let mut keys = std::collections::BTreeSet::new();
        for m in messages
            .iter()
            .filter(|m| m.key.split(':').next() == Some(&c.to_string()))
        {
            *partitions.entry(m.partition).or_default() += 1;
            keys.insert(m.key.clone());
        }
        assert_eq!(
            partitions.values().sum::<usize>(),
            40,
            "campaign {c}'s events"
        );
        if c != unbucketed {
            assert!(keys.len() >= 4, "campaign {c}'s wins fell in {keys:?}");
        }
        let expected = (crc32fast::hash(c.to_string().as_bytes()) % PARTITIONS) as i32;
        assert_eq!(
            partitions.keys().copied().collect::<Vec<_>>(),
            [expected],
            "campaign {c} (keys {keys:?})"
        );
    }
}
