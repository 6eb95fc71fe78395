//! The contract check a consumer runs on every message of `campaign.participation.v1`
//! (docs/design.md §4): which event it is ([`ParticipationEvent`], dispatched on `eventType`), and
//! why a message that is none of them is poison ([`ContractError`]).
//!
//! The three event types share the topic and the key (the campaign id), so one check serves them
//! all, and a consumer reads a win's events in the order they were committed.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    event::{message_key, ParticipationAccepted, PARTICIPATION_ACCEPTED},
    headers::{self, Headers},
    lifecycle::{
        ParticipationCancelled, ParticipationConfirmed, PARTICIPATION_CANCELLED,
        PARTICIPATION_CONFIRMED,
    },
};

/// Why a message does not satisfy the contract (it goes to the consumer's dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("the value is not a JSON object: {0}")]
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

/// Every event type of the topic, as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipationEvent {
    /// A win (`HELD` or `CONFIRMED`).
    Accepted(ParticipationAccepted),
    /// A held win was confirmed.
    Confirmed(ParticipationConfirmed),
    /// A win was cancelled (by the user or an admin) or its hold expired.
    Cancelled(ParticipationCancelled),
}

/// The same expression on whichever event `$self` holds (the types share these fields).
macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            ParticipationEvent::Accepted($e) => $body,
            ParticipationEvent::Confirmed($e) => $body,
            ParticipationEvent::Cancelled($e) => $body,
        }
    };
}

/// Reads the value as one event type; a missing or mistyped field is a contract violation.
fn parse<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Result<T, ContractError> {
    serde_json::from_value(json).map_err(|e| ContractError::Invalid(e.to_string()))
}

impl ParticipationEvent {
    /// The contract check: the value is one of the topic's event types (by `eventType`), the
    /// `event_id` header (when present) and the key agree with it, and its numbers are in range
    /// (positive `userId` and `quantity`, `rewardPoints` not negative). Anything else is poison
    /// for every consumer, an `eventType` it does not know included.
    pub fn from_message(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &Headers,
    ) -> Result<Self, ContractError> {
        let value =
            value.ok_or_else(|| ContractError::NotJson("the message has no value".into()))?;
        let json: serde_json::Value =
            serde_json::from_slice(value).map_err(|e| ContractError::NotJson(e.to_string()))?;
        let event_type = json
            .get("eventType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let event = match event_type {
            PARTICIPATION_ACCEPTED => Self::Accepted(parse(json)?),
            PARTICIPATION_CONFIRMED => Self::Confirmed(parse(json)?),
            PARTICIPATION_CANCELLED => Self::Cancelled(parse(json)?),
            other => return Err(ContractError::UnknownEventType(other.into())),
        };
        event.check(key, headers)?;
        Ok(event)
    }

    /// The rules every event type shares, beyond its shape.
    fn check(&self, key: Option<&[u8]>, headers: &Headers) -> Result<(), ContractError> {
        if let Some(id) = headers.get(headers::EVENT_ID) {
            if *id != self.event_id().to_string() {
                return Err(ContractError::Invalid(format!(
                    "header event_id {id:?} differs from eventId {}",
                    self.event_id()
                )));
            }
        }
        if key != Some(message_key(self.campaign_id()).as_bytes()) {
            return Err(ContractError::Invalid(format!(
                "the key {:?} is not campaignId {}",
                key.map(String::from_utf8_lossy),
                self.campaign_id()
            )));
        }
        if self.user_id() <= 0 || self.quantity() <= 0 || self.reward_points() < 0 {
            return Err(ContractError::Invalid(
                "userId and quantity must be positive, rewardPoints not negative".into(),
            ));
        }
        Ok(())
    }

    /// The dedupe key (the same in every copy of the event).
    pub fn event_id(&self) -> Uuid {
        each!(self, e => e.event_id)
    }

    /// `eventType`: which of the three it is.
    pub fn event_type(&self) -> &str {
        each!(self, e => &e.event_type)
    }

    /// When the change it reports committed.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        each!(self, e => e.occurred_at)
    }

    /// The campaign; also the message key.
    pub fn campaign_id(&self) -> i64 {
        each!(self, e => e.campaign_id)
    }

    pub fn participation_id(&self) -> i64 {
        each!(self, e => e.participation_id)
    }

    pub fn user_id(&self) -> i64 {
        each!(self, e => e.user_id)
    }

    /// The win's units (won, confirmed, or given back).
    pub fn quantity(&self) -> i32 {
        each!(self, e => e.quantity)
    }

    /// Points per unit the campaign grants.
    pub fn reward_points(&self) -> i64 {
        each!(self, e => e.reward_points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{
        event::WinStatus,
        lifecycle::{CancelReason, ParticipationMessage},
    };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid time")
    }

    fn accepted() -> ParticipationAccepted {
        ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: at(0),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            sequence: 4,
            reward_points: 10,
            status: WinStatus::Held,
            hold_expires_at: Some(at(60)),
        }
    }

    fn confirmed() -> ParticipationConfirmed {
        ParticipationConfirmed {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CONFIRMED.into(),
            occurred_at: at(1),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reward_points: 10,
        }
    }

    fn cancelled() -> ParticipationCancelled {
        ParticipationCancelled {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CANCELLED.into(),
            occurred_at: at(2),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reason: CancelReason::Admin,
            previous_status: WinStatus::Confirmed,
            reward_points: 10,
        }
    }

    /// The message the relay would send for `e`: its key, value and headers.
    fn check<E: ParticipationMessage>(
        e: &E,
        key: &str,
        headers: &Headers,
    ) -> Result<ParticipationEvent, ContractError> {
        ParticipationEvent::from_message(Some(key.as_bytes()), Some(e.json().as_bytes()), headers)
    }

    #[test]
    fn each_event_type_is_read_as_itself() {
        let (a, c, x) = (accepted(), confirmed(), cancelled());
        let got = check(&a, "1", &a.message_headers(None));
        assert_eq!(got, Ok(ParticipationEvent::Accepted(a.clone())));
        let got = check(&c, "1", &c.message_headers(None));
        assert_eq!(got, Ok(ParticipationEvent::Confirmed(c.clone())));
        let got = check(&x, "1", &x.message_headers(None)).expect("valid");
        assert_eq!(got, ParticipationEvent::Cancelled(x.clone()));
        assert_eq!(got.event_id(), x.event_id);
        assert_eq!(got.event_type(), PARTICIPATION_CANCELLED);
        assert_eq!(got.occurred_at(), x.occurred_at);
        assert_eq!(
            (got.user_id(), got.quantity(), got.reward_points()),
            (3, 2, 10)
        );
    }

    #[test]
    fn an_accepted_event_from_before_the_lifecycle_reads_as_confirmed() {
        let mut json = serde_json::to_value(accepted()).expect("serializes");
        let object = json.as_object_mut().expect("object");
        for old in ["status", "holdExpiresAt", "rewardPoints"] {
            object.remove(old);
        }
        let got = ParticipationEvent::from_message(
            Some(b"1"),
            Some(json.to_string().as_bytes()),
            &Headers::new(),
        );
        let Ok(ParticipationEvent::Accepted(e)) = got else {
            panic!("not read as a win: {got:?}");
        };
        assert_eq!(
            (e.status, e.hold_expires_at, e.reward_points),
            (WinStatus::Confirmed, None, 0)
        );
    }

    #[test]
    fn the_shared_rules_hold_for_every_type() {
        let (c, x) = (confirmed(), cancelled());
        let reason = |r: Result<ParticipationEvent, ContractError>| r.expect_err("poison").reason();
        assert_eq!(
            reason(check(&c, "2", &Headers::new())),
            "contract_violation"
        );
        let mut other = x.message_headers(None);
        other.insert(headers::EVENT_ID.into(), Uuid::nil().to_string());
        assert_eq!(reason(check(&x, "1", &other)), "contract_violation");
        let mut bad = x.clone();
        bad.quantity = 0;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
        let mut bad = c.clone();
        bad.user_id = -1;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
        let mut bad = c;
        bad.reward_points = -1;
        assert_eq!(
            reason(check(&bad, "1", &Headers::new())),
            "contract_violation"
        );
    }

    #[test]
    fn poison_is_classified() {
        let h = Headers::new();
        let reason = |v: &[u8]| {
            ParticipationEvent::from_message(Some(b"1"), Some(v), &h)
                .expect_err("poison")
                .reason()
        };
        assert_eq!(reason(b"not json"), "not_json");
        assert_eq!(reason(br#"{"eventType":"Refunded"}"#), "unknown_event_type");
        assert_eq!(reason(br#"{"no":"type"}"#), "unknown_event_type");
        for t in [
            PARTICIPATION_ACCEPTED,
            PARTICIPATION_CONFIRMED,
            PARTICIPATION_CANCELLED,
        ] {
            let value = format!(r#"{{"eventType":"{t}"}}"#);
            assert_eq!(reason(value.as_bytes()), "contract_violation", "{t}");
        }
        let mut json = serde_json::to_value(cancelled()).expect("serializes");
        json["reason"] = "BORED".into();
        assert_eq!(reason(json.to_string().as_bytes()), "contract_violation");
        let none = ParticipationEvent::from_message(Some(b"1"), None, &h);
        assert_eq!(none.expect_err("poison").reason(), "not_json");
    }
}
