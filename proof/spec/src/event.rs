//! The topic's events as the model reads them, parsed from the payloads of the final state
//! (design §4, docs/asyncapi.yaml). Written from the contract, not from the service's types.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `HELD` or `CONFIRMED`: what a win is while it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LiveStatus {
    Held,
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CancelReason {
    User,
    Admin,
    Expired,
}

impl CancelReason {
    pub fn name(self) -> &'static str {
        match self {
            CancelReason::User => "USER",
            CancelReason::Admin => "ADMIN",
            CancelReason::Expired => "EXPIRED",
        }
    }
}

/// One event of a campaign, typed by its `eventType`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Accepted {
        participation: i64,
        user: i64,
        quantity: i64,
        status: LiveStatus,
        hold_expires_at: Option<DateTime<Utc>>,
        reward_points: i64,
        /// The gate's FCFS sequence (§4); the join's answer must carry the same.
        sequence: Option<i64>,
    },
    Confirmed {
        participation: i64,
        user: i64,
        quantity: i64,
        reward_points: i64,
    },
    Cancelled {
        participation: i64,
        user: i64,
        quantity: i64,
        reason: CancelReason,
        previous: LiveStatus,
        reward_points: i64,
    },
    Control {
        kind: ControlKind,
        seq: i64,
        total_stock: i64,
        remaining_stock: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ControlKind {
    Stock(i64),
    Pause,
    Resume,
    Close,
}

impl ControlKind {
    /// The audit row's `kind` (`campaign_control.kind`).
    pub fn audit_name(self) -> &'static str {
        match self {
            ControlKind::Stock(_) => "STOCK",
            ControlKind::Pause => "PAUSE",
            ControlKind::Resume => "RESUME",
            ControlKind::Close => "CLOSE",
        }
    }
}

/// An event with what every event carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: String,
    pub campaign: i64,
    pub occurred_at: DateTime<Utc>,
    pub event: Event,
}

impl Envelope {
    pub fn participation(&self) -> Option<i64> {
        match &self.event {
            Event::Accepted { participation, .. }
            | Event::Confirmed { participation, .. }
            | Event::Cancelled { participation, .. } => Some(*participation),
            Event::Control { .. } => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.event {
            Event::Accepted { .. } => "ParticipationAccepted",
            Event::Confirmed { .. } => "ParticipationConfirmed",
            Event::Cancelled { .. } => "ParticipationCancelled",
            Event::Control { kind, .. } => match kind {
                ControlKind::Stock(_) => "CampaignStockChanged",
                ControlKind::Pause => "CampaignPaused",
                ControlKind::Resume => "CampaignResumed",
                ControlKind::Close => "CampaignClosed",
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an event of the contract: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("unknown eventType {0:?}")]
    UnknownType(String),
    #[error("{0} without {1}")]
    Missing(&'static str, &'static str),
}

/// Every field any event type has; which are required depends on the type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    event_id: String,
    event_type: String,
    occurred_at: DateTime<Utc>,
    campaign_id: i64,
    participation_id: Option<i64>,
    user_id: Option<i64>,
    quantity: Option<i64>,
    status: Option<LiveStatus>,
    hold_expires_at: Option<DateTime<Utc>>,
    reward_points: Option<i64>,
    reason: Option<CancelReason>,
    previous_status: Option<LiveStatus>,
    control_seq: Option<i64>,
    total_stock: Option<i64>,
    remaining_stock: Option<i64>,
    delta: Option<i64>,
    sequence: Option<i64>,
}

/// Parses a record's value. Fields the contract adds later are ignored; a missing `status` reads
/// as `CONFIRMED` and a missing `rewardPoints` as 0 (§4).
pub fn parse(payload: &serde_json::Value) -> Result<Envelope, EventError> {
    let raw = Raw::deserialize(payload)?;
    let ty = raw.event_type.as_str();
    let need =
        |v: Option<i64>, field: &'static str| v.ok_or(EventError::Missing(type_of(ty), field));
    let event = match ty {
        "ParticipationAccepted" => Event::Accepted {
            participation: need(raw.participation_id, "participationId")?,
            user: need(raw.user_id, "userId")?,
            quantity: need(raw.quantity, "quantity")?,
            status: raw.status.unwrap_or(LiveStatus::Confirmed),
            hold_expires_at: raw.hold_expires_at,
            reward_points: raw.reward_points.unwrap_or(0),
            sequence: raw.sequence,
        },
        "ParticipationConfirmed" => Event::Confirmed {
            participation: need(raw.participation_id, "participationId")?,
            user: need(raw.user_id, "userId")?,
            quantity: need(raw.quantity, "quantity")?,
            reward_points: raw.reward_points.unwrap_or(0),
        },
        "ParticipationCancelled" => Event::Cancelled {
            participation: need(raw.participation_id, "participationId")?,
            user: need(raw.user_id, "userId")?,
            quantity: need(raw.quantity, "quantity")?,
            reason: raw
                .reason
                .ok_or(EventError::Missing("ParticipationCancelled", "reason"))?,
            previous: raw.previous_status.ok_or(EventError::Missing(
                "ParticipationCancelled",
                "previousStatus",
            ))?,
            reward_points: raw.reward_points.unwrap_or(0),
        },
        "CampaignStockChanged" | "CampaignPaused" | "CampaignResumed" | "CampaignClosed" => {
            let kind = match ty {
                "CampaignStockChanged" => ControlKind::Stock(need(raw.delta, "delta")?),
                "CampaignPaused" => ControlKind::Pause,
                "CampaignResumed" => ControlKind::Resume,
                _ => ControlKind::Close,
            };
            Event::Control {
                kind,
                seq: need(raw.control_seq, "controlSeq")?,
                total_stock: need(raw.total_stock, "totalStock")?,
                remaining_stock: need(raw.remaining_stock, "remainingStock")?,
            }
        }
        other => return Err(EventError::UnknownType(other.to_owned())),
    };
    Ok(Envelope {
        event_id: raw.event_id,
        campaign: raw.campaign_id,
        occurred_at: raw.occurred_at,
        event,
    })
}

fn type_of(ty: &str) -> &'static str {
    match ty {
        "ParticipationAccepted" => "ParticipationAccepted",
        "ParticipationConfirmed" => "ParticipationConfirmed",
        "ParticipationCancelled" => "ParticipationCancelled",
        _ => "a control event",
    }
}
