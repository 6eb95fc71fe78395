//! Events the broker dropped before a consumer read them (docs/design.md §11 "Events the broker
//! dropped"): the embedded broker keeps ~5 MiB a partition, so a burst produced while a group's
//! consumers are away pushes the oldest events out before they are read. The consumers, back,
//! cannot apply those; each names the offsets in an ERROR and counts them
//! (`firstcome_consumer_events_total{result="skipped"}`), exactly the run between its group's
//! committed offset and the first one the broker still has, and applies the rest once.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use firstcome::{
    config::consumers::ConsumerName,
    consumer::ConsumerReport,
    events::{
        accepted::{WinStatus, PARTICIPATION_ACCEPTED},
        ParticipationAccepted,
    },
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    consumer_helpers::{committed_offsets, end_offsets, produce, watermarks, with_consumers, Raw},
    spawn::{spawn_app_with, start_broker, test_settings},
    wait::wait_until,
};

/// Events of one campaign produced while its consumers are away: ~7 MB of messages, past the
/// embedded broker's ~5 MiB a partition.
const BURST: i64 = 15_000;

/// The message the relay would send for user `user`'s win.
fn win(campaign: i64, user: i64) -> Raw {
    Raw::of(&ParticipationAccepted {
        event_id: Uuid::now_v7(),
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: firstcome::db::time::precision(Utc::now()),
        campaign_id: campaign,
        participation_id: user,
        user_id: user,
        quantity: 1,
        sequence: user,
        reward_points: 1,
        status: WinStatus::Confirmed,
        hold_expires_at: None,
        purchase_id: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_the_broker_dropped_before_the_consumers_read_them_are_named_and_counted() {
    let broker = Arc::new(start_broker());
    let bootstrap = broker.bootstrap_servers().to_string();
    let mut settings = with_consumers(test_settings().await);
    settings.kafka.bootstrap_servers = Some(bootstrap.clone());
    let first = spawn_app_with(settings.clone()).await;
    let topic = first.topic.clone();
    let campaign = first
        .create_campaign(json!({"name": "dropped", "totalStock": 100_000}))
        .await["id"]
        .as_i64()
        .expect("id");
    produce(
        &bootstrap,
        &topic,
        &(1..=3).map(|u| win(campaign, u)).collect::<Vec<_>>(),
    )
    .await;
    first.wait_for_both_consumers(3, 0, 0).await;
    first.stop().await.expect("the first app stops");
    let ends = end_offsets(&bootstrap, &topic).await;
    let (&partition, _) = ends
        .iter()
        .find(|(_, &end)| end == 3)
        .expect("the campaign's partition");
    for name in ConsumerName::ALL {
        let committed = committed_offsets(&bootstrap, &name.group_id(), &topic).await;
        assert_eq!(
            committed.get(&partition),
            Some(&3),
            "{name}: its three events committed"
        );
    }

    let burst: Vec<Raw> = (4..4 + BURST).map(|u| win(campaign, u)).collect();
    produce(&bootstrap, &topic, &burst).await;
    let low = watermarks(&bootstrap, &topic).await[&partition].0;
    assert!(
        low > 3,
        "the broker dropped the burst's first events (it keeps {low}..)"
    );
    let end = 3 + BURST;

    let second = spawn_app_with(settings).await;
    for name in ConsumerName::ALL {
        let report = second.consumer(name);
        wait_until(
            &format!("{name} to count the events it could not read and apply the rest"),
            Duration::from_secs(60),
            || {
                let report = report.clone();
                async move {
                    ConsumerReport::get(&report.skipped) == (low - 3) as u64
                        && ConsumerReport::get(&report.applied) == (end - low) as u64
                }
            },
        )
        .await;
    }
    let text = second.probe.metrics_text();
    assert!(
        text.contains(&format!(
            "firstcome_consumer_events_total{{consumer=\"stats\",result=\"skipped\"}} {}",
            low - 3
        )),
        "the skipped events are exported"
    );
}
