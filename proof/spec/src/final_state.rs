//! The final-state format: one JSON document the harness takes once the faults are healed and
//! the system has settled (the outbox drained, the consumers caught up, the gate's markers
//! applied). The checker compares the model's end with each part.
//!
//! # Format
//!
//! ```json
//! {
//!   "campaigns": [{"id": 1, "totalStock": 10, "remainingStock": 3, "paused": false,
//!                  "closed": false, "rewardPoints": 5, "confirmWithinSeconds": 3,
//!                  "perUserLimit": 2, "admission": "QUEUE"}],
//!   "participations": [{"id": 7, "campaign": 1, "user": 42, "quantity": 1,
//!                       "status": "HELD", "acceptedAt": "…", "holdExpiresAt": "…",
//!                       "cancelReason": null}],
//!   "controls": [{"campaign": 1, "seq": 1, "kind": "STOCK", "delta": 5,
//!                 "totalStock": 15, "remainingStock": 8, "eventId": "…"}],
//!   "gates": [{"campaign": 1, "stock": 3, "users": [42], "returned": [], "pending": 0}],
//!   "events": [{"partition": 0, "offset": 0, "key": "1", "payload": {"eventId": "…", …}}],
//!   "stats": [{"campaign": 1, "acceptedCount": 7, …}],
//!   "rewards": [{"user": 42, "points": 5}],
//!   "grants": [{"eventId": "…", "user": 42, "campaign": 1, "points": 5}]
//! }
//! ```
//!
//! Timestamps are RFC 3339 in UTC (MySQL's `DATETIME(6)` read as UTC). `events` is every record
//! of the main topic, each partition read from its start, in partition then offset order; the
//! payload is the record's value parsed as JSON, unchanged (unknown fields kept). A part the
//! harness could not take is left out (`controls`, `gates`, `stats`, `rewards`, `grants` may be
//! absent, and so may any field marked optional below); the checker then says which comparisons
//! it skipped.
//!
//! A bucketed campaign's fields (§21: `buckets`, `pool`, `bucketRows`, each participation's and
//! gate's `bucket`) are read apart, into [`BucketState`] ([`read_with_buckets`]); so are the
//! fields of groups and carts (§22: each campaign's `group`, each participation's `purchase`,
//! `groups`, `purchases`, `groupHoldings`), into [`GroupState`] ([`read_all`]).

mod buckets;
mod groups;

pub use buckets::{BucketGate, BucketRow, BucketState, CampaignBuckets, ParticipationBucket};
pub use groups::{CampaignGroup, Group, GroupHolding, GroupState, ParticipationPurchase, Purchase};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalState {
    /// MySQL's `campaign` rows of the campaigns the run used.
    pub campaigns: Vec<Campaign>,
    /// MySQL's `participation` rows of those campaigns.
    pub participations: Vec<Participation>,
    /// MySQL's `campaign_control` audit rows; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls: Option<Vec<ControlRow>>,
    /// Each campaign's gate in Redis; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<Vec<Gate>>,
    /// Every record of the main topic, in partition then offset order.
    pub events: Vec<TopicRecord>,
    /// The outbox rows of the campaigns' events (the key is the campaign): their ids give the
    /// order §2.5 promises on the topic. Absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<Vec<OutboxRow>>,
    /// The stats consumer's `campaign_stats` rows; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<Stats>>,
    /// The rewards consumer's `reward_account` rows; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewards: Option<Vec<RewardAccount>>,
    /// The rewards consumer's `reward_grant` rows; absent: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<RewardGrant>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: i64,
    pub total_stock: i64,
    pub remaining_stock: i64,
    #[serde(default)]
    pub paused: bool,
    /// `closed_at IS NOT NULL`.
    #[serde(default)]
    pub closed: bool,
    #[serde(default)]
    pub reward_points: i64,
    #[serde(default)]
    pub confirm_within_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// The stock the campaign was created with, if the harness knows it; otherwise the checker
    /// derives it from `totalStock` and the audit's stock changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stock: Option<i64>,
    /// Most units one user may take (`per_user_limit`); absent: not taken, not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user_limit: Option<i64>,
    /// `OPEN`, `QUEUE` or `RAFFLE` (§16); absent: not taken (the waiting room is not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<String>,
    /// `offerSeconds` (§22): how long an offer to a waitlisted ticket stays valid; absent or 0:
    /// no waitlist (offers are not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participation {
    pub id: i64,
    pub campaign: i64,
    pub user: i64,
    pub quantity: i64,
    /// `HELD`, `CONFIRMED`, `CANCELLED` or `EXPIRED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// `USER`, `ADMIN` or `EXPIRED` once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// MySQL's `cancelled_at` once closed: the instant its transaction wrote the row (MySQL's
    /// clock), recorded for reading a run. Not a bound on the commit, which may come later (the
    /// transaction waits on the campaign row's lock after writing it): the checker places an
    /// expiry's commit by the order alone. Absent in older final states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// One row of `campaign_control`: a live control as MySQL committed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlRow {
    pub campaign: i64,
    pub seq: i64,
    /// `STOCK`, `PAUSE`, `RESUME` or `CLOSE`.
    pub kind: String,
    #[serde(default)]
    pub delta: i64,
    pub total_stock: i64,
    pub remaining_stock: i64,
    pub event_id: String,
}

/// A campaign's gate in Redis, read once settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    pub campaign: i64,
    /// The `…:meta` stock; absent when the keys are not loaded (nothing to compare: the next
    /// join rebuilds them from MySQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
    /// `…:users`: winners and open reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<i64>>,
    /// `…:returned`: participation ids whose units the gate got back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Vec<i64>>,
    /// Entries of `…:pending` (open reservations); 0 once settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i64>,
}

/// One `outbox_event` row: the id that orders a campaign's events, and the event it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: String,
}

/// One record of the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    /// The record's key (the campaign id as a decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value, parsed as JSON.
    pub payload: serde_json::Value,
}

/// One row of `campaign_stats`. Figures the harness did not read are absent and not compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub campaign: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_quantity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_applied: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_added: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_withdrawn: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controls_applied: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// `closed_at IS NOT NULL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
}

/// One row of `reward_account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardAccount {
    pub user: i64,
    pub points: i64,
}

/// One row of `reward_grant`: the points one event moved (negative for a refund).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardGrant {
    pub event_id: String,
    pub user: i64,
    pub campaign: i64,
    pub points: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FinalStateError {
    #[error("reading the final state: {0}")]
    Io(#[from] std::io::Error),
    #[error("the final state is not valid: {0}")]
    Parse(#[from] serde_json::Error),
}

pub fn read(reader: impl std::io::Read) -> Result<FinalState, FinalStateError> {
    Ok(serde_json::from_reader(reader)?)
}

/// Reads the document once into both: what every campaign has, and what buckets add (all of
/// it optional, so a final state without buckets reads as unbucketed).
pub fn read_with_buckets(
    reader: impl std::io::Read,
) -> Result<(FinalState, BucketState), FinalStateError> {
    let document: serde_json::Value = serde_json::from_reader(reader)?;
    let buckets = BucketState::deserialize(&document)?;
    Ok((FinalState::deserialize(document)?, buckets))
}

/// Reads the document once into all three: what every campaign has, what buckets add and what
/// groups and carts add (each optional: a final state without them reads as before).
pub fn read_all(
    reader: impl std::io::Read,
) -> Result<(FinalState, BucketState, GroupState), FinalStateError> {
    let document: serde_json::Value = serde_json::from_reader(reader)?;
    let buckets = BucketState::deserialize(&document)?;
    let groups = GroupState::deserialize(&document)?;
    Ok((FinalState::deserialize(document)?, buckets, groups))
}
