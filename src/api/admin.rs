//! `/api/v1/admin/outbox`: the relay's state for operators (admin token required): counts by
//! status, the age of the oldest due row, the dead-letter list, and redrive (one event, or every
//! dead event of a campaign).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};

use crate::{
    api::{
        components::Components,
        health::{KafkaHealth, RelayHealth},
        Tag,
    },
    http::{
        admin_auth::AdminOnly,
        error::{ApiError, ErrorBody, ErrorCode},
    },
    relay::admin::OutboxAdmin,
    telemetry::metrics::Metrics,
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OutboxSummary {
    pub pending: i64,
    pub published: i64,
    pub dead: i64,
    /// How long the oldest due PENDING row has waited (absent when none is due).
    #[oai(skip_serializing_if_is_none)]
    pub oldest_due_pending_age_ms: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub last_published_at: Option<DateTime<Utc>>,
    /// Counters of this instance since it started.
    pub relay_published: u64,
    pub relay_retried: u64,
    pub relay_dead_lettered: u64,
    pub relay_worker_restarts: u64,
    /// Rows delivered after an older row of their key failed; zero unless Kafka's client broke
    /// its ordering guarantee.
    pub relay_order_violations: u64,
    /// Sync-path wins whose event was lost after commit (this instance).
    pub sync_events_lost: u64,
    /// This instance's relay and the shards it leads (as in `/health/ready`).
    pub relay: RelayHealth,
    /// Kafka as this instance's producers see it (as in `/health/ready`).
    pub kafka: KafkaHealth,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeadEvent {
    pub event_id: String,
    pub topic: String,
    pub key: String,
    pub event_type: String,
    pub attempts: i32,
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeadPage {
    pub items: Vec<DeadEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Redriven {
    pub event_id: String,
    pub status: String,
    /// The name of the admin token that asked (`ADMIN_TOKENS`; `admin` for `ADMIN_TOKEN`).
    pub redriven_by: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RedrivenCampaign {
    pub campaign_id: i64,
    /// How many DEAD events went back to PENDING (0 when there were none).
    pub redriven: u64,
    /// The name of the admin token that asked (`ADMIN_TOKENS`; `admin` for `ADMIN_TOKEN`).
    pub redriven_by: String,
}

/// The admin resource: the outbox's admin operations, and this instance's counters and component
/// states for the summary.
pub struct AdminApi {
    pub outbox: OutboxAdmin,
    pub components: Components,
    pub metrics: Arc<Metrics>,
}

#[OpenApi(prefix_path = "/api/v1/admin/outbox", tag = "Tag::Admin")]
impl AdminApi {
    /// Outbox counts by status, oldest due pending age, last publish time (admin).
    #[oai(path = "/", method = "get")]
    async fn summary(
        &self,
        _auth: AdminOnly,
        /// Only this campaign's events.
        #[oai(name = "campaignId", validator(minimum(value = "1")))]
        campaign_id: Query<Option<i64>>,
    ) -> Result<Json<OutboxSummary>, ApiError> {
        let key = campaign_id.0.map(crate::events::accepted::message_key);
        let s = self.outbox.summary(key.as_deref()).await?;
        let m = &self.metrics;
        Ok(Json(OutboxSummary {
            pending: s.pending,
            published: s.published,
            dead: s.dead,
            oldest_due_pending_age_ms: s.oldest_due_pending_age_ms,
            last_published_at: s.last_published_at.map(|t| t.and_utc()),
            relay_published: m.relay_published.get(),
            relay_retried: m.relay_retried.get(),
            relay_dead_lettered: m.relay_dead_lettered.get(),
            relay_worker_restarts: m.relay_worker_restarts.get(),
            relay_order_violations: m.relay_order_violations.get(),
            sync_events_lost: m.sync_events_lost.get(),
            relay: (&self.components).into(),
            kafka: (&self.components).into(),
        }))
    }

    /// DEAD events with their attempts and last error, oldest first (admin).
    #[oai(path = "/dead", method = "get")]
    async fn dead(
        &self,
        _auth: AdminOnly,
        /// Page size, 1 to 500 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// `nextCursor` of the previous page.
        #[oai(validator(minimum(value = "0")))]
        cursor: Query<Option<i64>>,
    ) -> Result<Json<DeadPage>, ApiError> {
        let limit = limit.0.unwrap_or(50);
        let mut rows = self.outbox.dead(cursor.0.unwrap_or(0), limit + 1).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Json(DeadPage {
            items: rows
                .into_iter()
                .map(|r| DeadEvent {
                    event_id: r.event_id,
                    topic: r.topic,
                    key: r.msg_key,
                    event_type: r.event_type,
                    attempts: r.attempts,
                    last_error: r.last_error,
                    created_at: r.created_at.and_utc(),
                })
                .collect(),
            next_cursor,
        }))
    }

    /// Put every DEAD event of a campaign back to PENDING with its attempts reset, in one call
    /// (admin). They are published again in outbox order.
    #[oai(path = "/redrive", method = "post")]
    async fn redrive_campaign(
        &self,
        auth: AdminOnly,
        /// The campaign whose dead events are redriven.
        #[oai(name = "campaignId", validator(minimum(value = "1")))]
        campaign_id: Query<i64>,
    ) -> Result<Json<RedrivenCampaign>, ApiError> {
        let admin = auth.name().clone();
        let key = crate::events::accepted::message_key(campaign_id.0);
        let redriven = self.outbox.redrive_key(&key).await?;
        tracing::info!(
            campaign_id = campaign_id.0,
            redriven,
            %admin,
            "Dead events of a campaign redriven."
        );
        Ok(Json(RedrivenCampaign {
            campaign_id: campaign_id.0,
            redriven,
            redriven_by: admin.to_string(),
        }))
    }

    /// Put a DEAD event back to PENDING with its attempts reset (admin).
    #[oai(path = "/:eventId/redrive", method = "post")]
    async fn redrive(
        &self,
        auth: AdminOnly,
        #[oai(name = "eventId")] event_id: Path<uuid::Uuid>,
    ) -> Result<Json<Redriven>, ApiError> {
        let admin = auth.name().clone();
        let event_id = event_id.0.to_string();
        if !self.outbox.redrive(&event_id).await? {
            return Err(ApiError::NotFound(Json(ErrorBody {
                code: ErrorCode::EventNotFound,
                message: "no DEAD event has this id".into(),
                participation_id: None,
                free_stock: None,
                campaign_id: None,
            })));
        }
        tracing::info!(%event_id, %admin, "Dead event redriven.");
        Ok(Json(Redriven {
            event_id,
            status: "PENDING".into(),
            redriven_by: admin.to_string(),
        }))
    }
}
