//! The poison run's steps: two poison messages (not JSON, an unknown `eventType`) produced with
//! headers of their own on a campaign's partition, the premise that they sit between its wins,
//! and each consumer's dead-letter topic holding them as they were plus why and where.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use firstcome::{
    config::consumers::ConsumerName,
    consumer::{ConsumerReport, ConsumerStatus},
    events::{dlq, headers, Headers},
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    consumer_helpers::{produce, Raw},
    kafka::{read_topic, Consumed},
    spawn::TestApp,
};

use super::APPLIED;

fn header<'a>(headers: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    headers
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("header {name} missing from {headers:?}"))
}

/// Two poison messages with the campaign's key (so its partition), each with headers of its own
/// that the dead letter must keep: not JSON, then an unknown `eventType`. Returns them, each with
/// its expected `dlq_reason`, and a time just before they were produced.
pub async fn produce_two_poison_messages(
    app: &TestApp,
    campaign: i64,
) -> ([(Raw, &'static str); 2], DateTime<Utc>) {
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
    (
        [(not_json, "not_json"), (unknown_type, "unknown_event_type")],
        before,
    )
}

/// The premise: one partition, the poison between the first win and the others. Returns the
/// partition's 8 distinct messages in order.
pub async fn read_the_poison_between_the_wins(app: &TestApp, campaign: i64) -> Vec<Consumed> {
    let key = campaign.to_string();
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
    main
}

/// `name` dead-lettered the two poison messages, applied the 6 wins and still runs; its
/// dead-letter topic holds exactly the two poison messages, in their order, as they were, plus
/// why and where (`main` is the campaign's partition as read, the poison at 1 and 2).
pub async fn assert_dead_lettered_as_they_were(
    app: &TestApp,
    campaign: i64,
    name: ConsumerName,
    messages: &[(Raw, &'static str); 2],
    main: &[Consumed],
    before: DateTime<Utc>,
) {
    let key = campaign.to_string();
    let poison = [
        (&messages[0].0, messages[0].1, &main[1]),
        (&messages[1].0, messages[1].1, &main[2]),
    ];
    let report = app.consumer(name);
    assert_eq!(ConsumerReport::get(&report.dead_lettered), 2, "{name}");
    assert_eq!(ConsumerReport::get(&report.applied), 6, "{name}");
    assert_eq!(report.status(), ConsumerStatus::Running, "{name}");

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
}
