//! The message contract with downstream consumers (DESIGN.md §4, README "Kafka contract").
//!
//! The payload and headers are built once, in the participation transaction, and stored in the
//! outbox row as text; the relay sends those bytes unchanged. That is what makes a duplicate
//! (a re-publish after a crash or an expired lease) byte-identical to the original.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `event_type` of a win.
pub const PARTICIPATION_ACCEPTED: &str = "ParticipationAccepted";
/// `aggregate_type` of outbox rows written for participations.
pub const AGGREGATE_PARTICIPATION: &str = "participation";

pub const HEADER_EVENT_ID: &str = "event_id";
pub const HEADER_EVENT_TYPE: &str = "event_type";
pub const HEADER_CONTENT_TYPE: &str = "content-type";
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// The value of a `campaign.participation.v1` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationAccepted {
    pub event_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub campaign_id: i64,
    pub participation_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
}

/// Message headers, stored as a JSON object in `outbox_event.headers`.
pub type Headers = BTreeMap<String, String>;

/// The headers every message carries; `traceparent` only when the request had a valid one.
pub fn headers(event_id: Uuid, event_type: &str, traceparent: Option<&str>) -> Headers {
    let mut h = Headers::new();
    h.insert(HEADER_EVENT_ID.into(), event_id.to_string());
    h.insert(HEADER_EVENT_TYPE.into(), event_type.into());
    h.insert(HEADER_CONTENT_TYPE.into(), "application/json".into());
    if let Some(tp) = traceparent.filter(|tp| is_valid_traceparent(tp)) {
        h.insert(HEADER_TRACEPARENT.into(), tp.into());
    }
    h
}

/// The message key: the campaign id as a decimal string (all of a campaign's events share a
/// partition, so consumers see them in order).
pub fn message_key(campaign_id: i64) -> String {
    campaign_id.to_string()
}

/// W3C trace context `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`. Anything else is dropped
/// rather than forwarded to every consumer.
fn is_valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_uses_the_documented_field_names() {
        let event = ParticipationAccepted {
            event_id: Uuid::nil(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: DateTime::from_timestamp(0, 0).expect("epoch"),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 1,
            sequence: 4,
        };
        let json = serde_json::to_value(&event).expect("serializes");
        for field in [
            "eventId",
            "eventType",
            "occurredAt",
            "campaignId",
            "participationId",
            "userId",
            "quantity",
            "sequence",
        ] {
            assert!(json.get(field).is_some(), "missing {field}: {json}");
        }
    }

    #[test]
    fn only_well_formed_traceparents_are_forwarded() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            headers(Uuid::nil(), "T", Some(good))
                .get("traceparent")
                .map(String::as_str),
            Some(good)
        );
        assert!(!headers(Uuid::nil(), "T", Some("evil\r\nheader")).contains_key("traceparent"));
        assert_eq!(headers(Uuid::nil(), "T", None).len(), 3);
    }
}
