//! The events of a campaign's live controls (docs/design.md §15): `CampaignStockChanged`,
//! `CampaignPaused`, `CampaignResumed` and `CampaignClosed`. Same topic and key as the campaign's
//! participation events (the campaign id), so a consumer reads a control in order with the wins
//! around it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{
    accepted::message_key,
    headers::{self, Headers},
};

/// `eventType` of a stock change (units added or withdrawn).
pub const CAMPAIGN_STOCK_CHANGED: &str = "CampaignStockChanged";
/// `eventType` of a pause: joins are refused until a resume.
pub const CAMPAIGN_PAUSED: &str = "CampaignPaused";
/// `eventType` of a resume.
pub const CAMPAIGN_RESUMED: &str = "CampaignResumed";
/// `eventType` of an early close: the campaign has ended.
pub const CAMPAIGN_CLOSED: &str = "CampaignClosed";

/// `aggregate_type` of outbox rows written for campaign controls.
pub const AGGREGATE_CAMPAIGN: &str = "campaign";

/// Which control: the `eventType` of its event, and its `kind` in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    StockChanged,
    Paused,
    Resumed,
    Closed,
}

impl ControlKind {
    pub const ALL: [Self; 4] = [
        Self::StockChanged,
        Self::Paused,
        Self::Resumed,
        Self::Closed,
    ];

    /// The event's `eventType`.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::StockChanged => CAMPAIGN_STOCK_CHANGED,
            Self::Paused => CAMPAIGN_PAUSED,
            Self::Resumed => CAMPAIGN_RESUMED,
            Self::Closed => CAMPAIGN_CLOSED,
        }
    }

    /// The audit trail's `kind` (`campaign_control.kind`, `gate_control.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StockChanged => "STOCK_CHANGED",
            Self::Paused => "PAUSED",
            Self::Resumed => "RESUMED",
            Self::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn from_event_type(t: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.event_type() == t)
    }
}

/// A control changed a running campaign. One shape for the four event types; `delta` is set on
/// `CampaignStockChanged` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignChanged {
    pub event_id: Uuid,
    /// One of the four control event types.
    pub event_type: String,
    /// When the control committed.
    #[serde(
        serialize_with = "crate::events::rfc3339::serialize",
        deserialize_with = "crate::events::rfc3339::deserialize"
    )]
    pub occurred_at: DateTime<Utc>,
    pub campaign_id: i64,
    /// The control's number within its campaign: 1, 2, … in commit order.
    pub control_seq: i64,
    /// The name of the admin token that asked.
    pub changed_by: String,
    /// Units added (positive) or withdrawn (negative): `CampaignStockChanged` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<i64>,
    /// The campaign's stock after the control.
    pub total_stock: i64,
    pub remaining_stock: i64,
}

/// The fields of a [`CampaignChanged`] value, as [`crate::events::accepted::FIELDS`] (`delta` is serialized
/// on a stock change only).
pub const FIELDS: &[(&str, &str, &str)] = &[
    ("eventId", "string", "uuid"),
    ("eventType", "string", ""),
    ("occurredAt", "string", "date-time"),
    ("campaignId", "integer", "int64"),
    ("controlSeq", "integer", "int64"),
    ("changedBy", "string", ""),
    ("delta", "integer", "int64"),
    ("totalStock", "integer", "int64"),
    ("remainingStock", "integer", "int64"),
];

impl CampaignChanged {
    /// Which control it reports (`None` for a value whose `eventType` is not a control's).
    pub fn kind(&self) -> Option<ControlKind> {
        ControlKind::from_event_type(&self.event_type)
    }

    /// The message key: the campaign id.
    pub fn key(&self) -> String {
        message_key(self.campaign_id)
    }

    /// The value's JSON text.
    pub fn json(&self) -> String {
        // Serializing plain fields into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The message headers.
    pub fn message_headers(&self, traceparent: Option<&str>) -> Headers {
        headers::build(self.event_id, &self.event_type, traceparent)
    }
}
