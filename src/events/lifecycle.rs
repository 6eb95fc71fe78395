//! The events of a win's later life (docs/design.md §14): `ParticipationConfirmed` and
//! `ParticipationCancelled`. Same topic and key as the `ParticipationAccepted` they follow (the
//! campaign id), so a consumer always reads a win's events in order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{
    accepted::{message_key, WinStatus},
    headers::{self, Headers},
};

/// `eventType` of a confirmation.
pub const PARTICIPATION_CONFIRMED: &str = "ParticipationConfirmed";
/// `eventType` of a cancellation (by the user, an admin, or the expiry of a hold).
pub const PARTICIPATION_CANCELLED: &str = "ParticipationCancelled";

/// A held win was confirmed (paid): it is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationConfirmed {
    pub event_id: Uuid,
    /// Always [`PARTICIPATION_CONFIRMED`].
    pub event_type: String,
    /// When the confirmation committed.
    #[serde(
        serialize_with = "crate::events::rfc3339::serialize",
        deserialize_with = "crate::events::rfc3339::deserialize"
    )]
    pub occurred_at: DateTime<Utc>,
    pub campaign_id: i64,
    pub participation_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    /// Points per unit the campaign grants (the rewards consumer grants them now).
    pub reward_points: i64,
    /// The purchase (cart) the win is an item of (docs/design.md §22), as in its
    /// `ParticipationAccepted`; absent for a join of one campaign. A purchase changes as a
    /// whole: each item's event, on its own campaign's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_id: Option<i64>,
}

/// The fields of a [`ParticipationConfirmed`] value, in order, with their JSON Schema types
/// (type, format): the AsyncAPI document is generated from this list, and a test checks it
/// against the serialized type.
pub const CONFIRMED_FIELDS: &[(&str, &str, &str)] = &[
    ("eventId", "string", "uuid"),
    ("eventType", "string", ""),
    ("occurredAt", "string", "date-time"),
    ("campaignId", "integer", "int64"),
    ("participationId", "integer", "int64"),
    ("userId", "integer", "int64"),
    ("quantity", "integer", "int32"),
    ("rewardPoints", "integer", "int64"),
    ("purchaseId", "integer", "int64"),
];

/// The fields of a [`ParticipationCancelled`] value, as [`CONFIRMED_FIELDS`].
pub const CANCELLED_FIELDS: &[(&str, &str, &str)] = &[
    ("eventId", "string", "uuid"),
    ("eventType", "string", ""),
    ("occurredAt", "string", "date-time"),
    ("campaignId", "integer", "int64"),
    ("participationId", "integer", "int64"),
    ("userId", "integer", "int64"),
    ("quantity", "integer", "int32"),
    ("reason", "string", ""),
    ("previousStatus", "string", ""),
    ("rewardPoints", "integer", "int64"),
    ("purchaseId", "integer", "int64"),
];

/// Why a win was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// The user gave a held win up.
    User,
    /// An admin cancelled it (the only way to cancel a confirmed win: a refund).
    Admin,
    /// The hold ran out unconfirmed.
    Expired,
}

impl CancelReason {
    pub const ALL: [Self; 3] = [Self::User, Self::Admin, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Admin => "ADMIN",
            Self::Expired => "EXPIRED",
        }
    }
}

/// A win was cancelled or expired: its units went back to the sale in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipationCancelled {
    pub event_id: Uuid,
    /// Always [`PARTICIPATION_CANCELLED`].
    pub event_type: String,
    /// When the cancellation committed.
    #[serde(
        serialize_with = "crate::events::rfc3339::serialize",
        deserialize_with = "crate::events::rfc3339::deserialize"
    )]
    pub occurred_at: DateTime<Utc>,
    pub campaign_id: i64,
    pub participation_id: i64,
    pub user_id: i64,
    /// Units given back to the sale.
    pub quantity: i32,
    pub reason: CancelReason,
    /// What the win was before: `CONFIRMED` means points were granted and are taken back.
    pub previous_status: WinStatus,
    /// Points per unit the campaign grants (what a refund takes back).
    pub reward_points: i64,
    /// The purchase (cart) the win is an item of (docs/design.md §22), as in its
    /// `ParticipationAccepted`; absent for a join of one campaign. A purchase changes as a
    /// whole: each item's event, on its own campaign's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_id: Option<i64>,
}

/// What the outbox needs of any participation event.
pub trait ParticipationMessage: Serialize {
    fn event_id(&self) -> Uuid;
    fn event_type(&self) -> &str;
    fn campaign_id(&self) -> i64;
    fn participation_id(&self) -> i64;

    /// The message key: the campaign id.
    fn key(&self) -> String {
        message_key(self.campaign_id())
    }

    /// The value's JSON text.
    fn json(&self) -> String {
        // Serializing plain fields into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The message headers.
    fn message_headers(&self, traceparent: Option<&str>) -> Headers {
        headers::build(self.event_id(), self.event_type(), traceparent)
    }
}

macro_rules! participation_message {
    ($($t:ty),*) => {$(
        impl ParticipationMessage for $t {
            fn event_id(&self) -> Uuid {
                self.event_id
            }
            fn event_type(&self) -> &str {
                &self.event_type
            }
            fn campaign_id(&self) -> i64 {
                self.campaign_id
            }
            fn participation_id(&self) -> i64 {
                self.participation_id
            }
        }
    )*};
}

participation_message!(
    crate::events::accepted::ParticipationAccepted,
    ParticipationConfirmed,
    ParticipationCancelled
);
