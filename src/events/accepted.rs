//! `ParticipationAccepted`: the value of a win's `campaign.participation.v1` message and how the
//! writer builds it. The contract check consumers run on it (and on the later events of a win) is
//! in [`crate::events::contract`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{contract::ParticipationEvent, headers::Headers};

/// `eventType` (and the `event_type` header) of a win.
pub const PARTICIPATION_ACCEPTED: &str = "ParticipationAccepted";
/// `aggregate_type` of outbox rows written for participations.
pub const AGGREGATE_PARTICIPATION: &str = "participation";

/// The value of a `campaign.participation.v1` message (JSON, camelCase).
///
/// Fields are only ever added within v1 (`rewardPoints` was); readers ignore fields they do not
/// know, and a field added later reads as its default in older events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationAccepted {
    /// UUIDv7, the same in every copy of the event: the dedupe key.
    pub event_id: Uuid,
    /// Always [`PARTICIPATION_ACCEPTED`].
    pub event_type: String,
    /// When the win was committed (the response's `acceptedAt`).
    #[serde(
        serialize_with = "crate::events::rfc3339::serialize",
        deserialize_with = "crate::events::rfc3339::deserialize"
    )]
    pub occurred_at: DateTime<Utc>,
    /// The campaign; also the message key.
    pub campaign_id: i64,
    pub participation_id: i64,
    pub user_id: i64,
    /// Units won.
    pub quantity: i32,
    /// FCFS rank from the Redis gate (gaps are normal).
    pub sequence: i64,
    /// Points per unit the campaign grants (added in v1; 0 in events written before it).
    #[serde(default)]
    pub reward_points: i64,
    /// `HELD` when the campaign has a confirmation window, else `CONFIRMED` (added in v1: an
    /// event without it is `CONFIRMED`).
    #[serde(default)]
    pub status: WinStatus,
    /// When a held win expires unless confirmed (absent when `CONFIRMED`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::events::rfc3339::serialize_option",
        deserialize_with = "crate::events::rfc3339::option"
    )]
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// The purchase (cart) this win is an item of (docs/design.md §22); absent for a join of
    /// one campaign. A purchase's items are accepted in one transaction, each on its own
    /// campaign's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_id: Option<i64>,
}

/// What a win is when it is accepted, or was when it was cancelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WinStatus {
    /// Waiting for its confirmation, until `holdExpiresAt`.
    Held,
    /// Final (a campaign without a window, or confirmed).
    #[default]
    Confirmed,
}

impl WinStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Confirmed => "CONFIRMED",
        }
    }
}

/// The fields of the value, in order, with their JSON Schema types: the AsyncAPI document is
/// generated from this list, and a test checks it against the serialized type (`holdExpiresAt`
/// is serialized only when set: on a `HELD` win).
pub const FIELDS: &[(&str, &str, &str)] = &[
    ("eventId", "string", "uuid"),
    ("eventType", "string", ""),
    ("occurredAt", "string", "date-time"),
    ("campaignId", "integer", "int64"),
    ("participationId", "integer", "int64"),
    ("userId", "integer", "int64"),
    ("quantity", "integer", "int32"),
    ("sequence", "integer", "int64"),
    ("rewardPoints", "integer", "int64"),
    ("status", "string", ""),
    ("holdExpiresAt", "string", "date-time"),
    ("purchaseId", "integer", "int64"),
];

pub use crate::events::contract::ContractError;

/// Its key, JSON and headers come from [`ParticipationMessage`], as for every participation
/// event.
impl ParticipationAccepted {
    /// The contract check of [`ParticipationEvent::from_message`], for a reader that takes
    /// only wins: the later events of a win and a campaign's controls are an
    /// `unknown_event_type` here.
    pub fn from_message(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<Self, ContractError> {
        match ParticipationEvent::from_message(key, value, headers)? {
            ParticipationEvent::Accepted(event) => Ok(event),
            other => Err(ContractError::UnknownEventType(other.event_type().into())),
        }
    }
}

/// The message key of a campaign's events.
pub fn message_key(campaign_id: i64) -> String {
    campaign_id.to_string()
}

/// The message key of a win's events (docs/design.md §21): `<campaign>` in an unbucketed
/// campaign, `<campaign>:<bucket>` in a bucketed one, so that per-key order holds per bucket.
pub fn win_message_key(campaign_id: i64, bucket: Option<u16>) -> String {
    match bucket {
        None => message_key(campaign_id),
        Some(bucket) => format!("{campaign_id}:{bucket}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{headers, lifecycle::ParticipationMessage};

    fn sample() -> ParticipationAccepted {
        ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: DateTime::from_timestamp(0, 0).expect("epoch"),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 1,
            sequence: 4,
            reward_points: 10,
            status: WinStatus::Confirmed,
            hold_expires_at: None,
            purchase_id: None,
        }
    }

    #[test]
    fn the_documented_fields_are_exactly_the_serialized_ones() {
        let held = ParticipationAccepted {
            status: WinStatus::Held,
            hold_expires_at: Some(DateTime::from_timestamp(60, 0).expect("a valid time")),
            purchase_id: Some(5),
            ..sample()
        };
        let json = serde_json::to_value(held).expect("serializes");
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
        documented.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, documented);
    }

    #[test]
    fn a_valid_message_passes_the_contract_check() {
        let e = sample();
        let got = ParticipationAccepted::from_message(
            Some(b"1"),
            Some(e.json().as_bytes()),
            &e.message_headers(None),
        );
        assert_eq!(got, Ok(e));
    }

    #[test]
    fn an_event_without_reward_points_reads_as_zero() {
        let mut json = serde_json::to_value(sample()).expect("serializes");
        json.as_object_mut().expect("object").remove("rewardPoints");
        let e = ParticipationAccepted::from_message(
            Some(b"1"),
            Some(json.to_string().as_bytes()),
            &Headers::new(),
        )
        .expect("valid");
        assert_eq!(e.reward_points, 0);
    }

    #[test]
    fn poison_is_classified() {
        let h = Headers::new();
        let reason = |v: &[u8]| {
            ParticipationAccepted::from_message(Some(b"1"), Some(v), &h)
                .expect_err("poison")
                .reason()
        };
        assert_eq!(reason(b"not json"), "not_json");
        assert_eq!(reason(br#"{"eventType":"Refunded"}"#), "unknown_event_type");
        let closed = serde_json::json!({
            "eventId": Uuid::nil(), "eventType": "CampaignClosed", "occurredAt": "2026-11-21T09:00:00Z",
            "campaignId": 1, "controlSeq": 1, "changedBy": "ops", "totalStock": 1, "remainingStock": 0,
        });
        assert_eq!(
            reason(closed.to_string().as_bytes()),
            "unknown_event_type",
            "a valid control is not a win"
        );
        assert_eq!(
            reason(br#"{"eventType":"ParticipationAccepted"}"#),
            "contract_violation"
        );
        let e = sample();
        let wrong_key =
            ParticipationAccepted::from_message(Some(b"2"), Some(e.json().as_bytes()), &h);
        assert!(matches!(wrong_key, Err(ContractError::Invalid(_))));
        let mut other = e.message_headers(None);
        other.insert(headers::EVENT_ID.into(), Uuid::nil().to_string());
        let wrong_id =
            ParticipationAccepted::from_message(Some(b"1"), Some(e.json().as_bytes()), &other);
        assert!(matches!(wrong_id, Err(ContractError::Invalid(_))));
    }
}
