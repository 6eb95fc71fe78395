//! `ParticipationAccepted`: the value of a `campaign.participation.v1` message, how the writer
//! builds it, and the contract check a consumer runs before applying it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::headers::{self, Headers};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<DateTime<Utc>>,
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
/// generated from this list, and a test checks it against the serialized type.
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
];

/// Why a message does not satisfy the contract (it goes to the consumer's dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("the value is not a ParticipationAccepted JSON object: {0}")]
    NotJson(String),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("{0}")]
    Invalid(String),
}

impl ContractError {
    /// The `dlq_reason` of a consumer dead letter.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::UnknownEventType(_) => "unknown_event_type",
            Self::Invalid(_) => "contract_violation",
        }
    }
}

impl ParticipationAccepted {
    /// The message key: the campaign id as a decimal string (all of a campaign's events share a
    /// partition, so consumers see them in order).
    pub fn message_key(&self) -> String {
        message_key(self.campaign_id)
    }

    /// The value's JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain fields into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The message headers.
    pub fn headers(&self, traceparent: Option<&str>) -> Headers {
        headers::build(self.event_id, &self.event_type, traceparent)
    }

    /// The contract check a consumer runs on a received message: the value is a
    /// `ParticipationAccepted`, the `event_id` header (when present) and the key agree with it,
    /// and its numbers are in range. Anything else is poison for every consumer.
    pub fn from_message(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<Self, ContractError> {
        let value =
            value.ok_or_else(|| ContractError::NotJson("the message has no value".into()))?;
        let json: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| ContractError::NotJson(e.to_string()))?;
        match json.get("eventType").and_then(serde_json::Value::as_str) {
            Some(PARTICIPATION_ACCEPTED) => {}
            Some(other) => return Err(ContractError::UnknownEventType(other.into())),
            None => return Err(ContractError::UnknownEventType(String::new())),
        }
        let event: Self =
            serde_json::from_value(json).map_err(|e| ContractError::Invalid(e.to_string()))?;
        if let Some(id) = headers.get(headers::EVENT_ID) {
            if *id != event.event_id.to_string() {
                return Err(ContractError::Invalid(format!(
                    "header event_id {id:?} differs from eventId {}",
                    event.event_id
                )));
            }
        }
        if key != Some(event.message_key().as_bytes()) {
            return Err(ContractError::Invalid(format!(
                "the key {:?} is not campaignId {}",
                key.map(String::from_utf8_lossy),
                event.campaign_id
            )));
        }
        if event.user_id <= 0 || event.quantity <= 0 || event.reward_points < 0 {
            return Err(ContractError::Invalid(
                "userId and quantity must be positive, rewardPoints not negative".into(),
            ));
        }
        Ok(event)
    }
}

/// The message key of a campaign's events.
pub fn message_key(campaign_id: i64) -> String {
    campaign_id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    #[test]
    fn the_documented_fields_are_exactly_the_serialized_ones() {
        let json = serde_json::to_value(sample()).expect("serializes");
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
            Some(e.to_json().as_bytes()),
            &e.headers(None),
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
        assert_eq!(
            reason(br#"{"eventType":"ParticipationAccepted"}"#),
            "contract_violation"
        );
        let e = sample();
        let wrong_key =
            ParticipationAccepted::from_message(Some(b"2"), Some(e.to_json().as_bytes()), &h);
        assert!(matches!(wrong_key, Err(ContractError::Invalid(_))));
        let mut other = e.headers(None);
        other.insert(headers::EVENT_ID.into(), Uuid::nil().to_string());
        let wrong_id =
            ParticipationAccepted::from_message(Some(b"1"), Some(e.to_json().as_bytes()), &other);
        assert!(matches!(wrong_id, Err(ContractError::Invalid(_))));
    }
}
