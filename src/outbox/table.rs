//! The `outbox_event` INSERT: the only place that writes outbox rows. The relay's claim and
//! outcome SQL lives with the relay (`relay/store.rs`).

use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

use crate::db::sql::insert_rows;

use crate::events::{
    accepted::{ParticipationAccepted, AGGREGATE_PARTICIPATION},
    control::{CampaignChanged, AGGREGATE_CAMPAIGN},
    headers,
    lifecycle::ParticipationMessage,
};

/// `outbox_event.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Published,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Published => "PUBLISHED",
            Self::Dead => "DEAD",
        }
    }
}

/// An outbox row to write.
#[derive(Debug, Clone)]
pub struct NewOutboxEvent {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub topic: String,
    pub msg_key: String,
    /// The message value, sent as is.
    pub payload: String,
    /// The message headers as stored (a JSON object).
    pub headers: String,
    pub status: OutboxStatus,
}

impl NewOutboxEvent {
    /// The row announcing a win: the event's JSON and headers, keyed by campaign.
    pub fn participation_accepted(
        event: &ParticipationAccepted,
        topic: &str,
        traceparent: Option<&str>,
    ) -> Self {
        Self::participation(event, topic, traceparent)
    }

    /// The row of any event of a participation (accepted, confirmed, cancelled): its JSON and
    /// headers, keyed by campaign, aggregated under the participation.
    pub fn participation(
        event: &impl ParticipationMessage,
        topic: &str,
        traceparent: Option<&str>,
    ) -> Self {
        Self {
            event_id: event.event_id(),
            aggregate_type: AGGREGATE_PARTICIPATION.into(),
            aggregate_id: event.participation_id().to_string(),
            event_type: event.event_type().into(),
            topic: topic.into(),
            msg_key: event.key(),
            payload: event.json(),
            headers: headers::stored(traceparent),
            status: OutboxStatus::Pending,
        }
    }

    /// The row of a campaign control's event: keyed by campaign like its participations' events
    /// (so it keeps its place among them), aggregated under the campaign.
    pub fn campaign(event: &CampaignChanged, topic: &str, traceparent: Option<&str>) -> Self {
        Self {
            event_id: event.event_id,
            aggregate_type: AGGREGATE_CAMPAIGN.into(),
            aggregate_id: event.campaign_id.to_string(),
            event_type: event.event_type.clone(),
            topic: topic.into(),
            msg_key: event.key(),
            payload: event.json(),
            headers: headers::stored(traceparent),
            status: OutboxStatus::Pending,
        }
    }
}

/// Writes `rows` in one multi-row INSERT, due now. `created_at` is the database's clock inside
/// the caller's transaction, after the campaign lock: the commit time to within a statement
/// (the relay's lag is measured from it).
pub async fn insert(conn: &impl ConnectionTrait, rows: &[NewOutboxEvent]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 9);
    for row in rows {
        values.extend([
            row.event_id.to_string().into(),
            row.aggregate_type.clone().into(),
            row.aggregate_id.clone().into(),
            row.event_type.clone().into(),
            row.topic.clone().into(),
            row.msg_key.clone().into(),
            row.payload.clone().into(),
            row.headers.clone().into(),
            row.status.as_str().into(),
        ]);
    }
    insert_rows(
        conn,
        "INSERT INTO outbox_event (event_id, aggregate_type, aggregate_id, event_type, topic, msg_key, payload, \
         headers, status, attempts, available_at, created_at)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        "",
        values,
    )
    .await?;
    Ok(())
}
