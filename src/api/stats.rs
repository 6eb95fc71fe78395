//! Campaign statistics kept by the stats consumer: `GET /api/v1/campaigns/{id}/stats` (public),
//! and per-day figures for campaign teams (admin) from the aggregate table
//! (`/api/v1/admin/stats/daily`) or computed from `participation` (`/api/v1/admin/stats/raw`),
//! each with how long its query took, so the two can be compared.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

use super::{
    auth::{AdminAuth, AdminTokens},
    error::ApiError,
    Tag,
};
use crate::{
    campaign::CampaignService,
    consumer::stats::{DailyRow, StatsView},
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CampaignStatsDto {
    pub campaign_id: i64,
    /// Wins applied by the stats consumer (every win ever, whatever became of it).
    pub accepted_count: i64,
    /// Units of those wins.
    pub accepted_quantity: i64,
    /// Wins confirmed: at acceptance (a campaign without a confirmation window) or later. A
    /// refunded win stays counted here and is counted in `cancelledCount` too.
    pub confirmed_count: i64,
    /// Wins cancelled by their user (a hold) or an admin (a refund).
    pub cancelled_count: i64,
    /// Holds that ran out unconfirmed.
    pub expired_count: i64,
    /// Units held or confirmed now: `acceptedQuantity` minus the units cancelled or expired.
    pub active_quantity: i64,
    #[oai(skip_serializing_if_is_none)]
    pub first_accepted_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// When the win that took the last unit was committed, the first time the campaign sold out
    /// (absent until then).
    #[oai(skip_serializing_if_is_none)]
    pub sold_out_at: Option<DateTime<Utc>>,
    /// Events of every type the consumer applied for this campaign, its controls included (each
    /// once, whatever Kafka redelivered).
    pub events_applied: i64,
    /// Units added to the stock by live controls (`CampaignStockChanged` with a positive
    /// `delta`), summed.
    pub stock_added: i64,
    /// Units withdrawn from the stock by live controls (a negative `delta`), summed, as a
    /// positive number.
    pub stock_withdrawn: i64,
    /// Whether the latest pause or resume applied left the campaign paused (joins are refused
    /// while it is). False for a campaign never paused.
    pub paused: bool,
    /// When an admin closed the campaign early (the `CampaignClosed` event's `occurredAt`);
    /// absent unless it was.
    #[oai(skip_serializing_if_is_none)]
    pub closed_at: Option<DateTime<Utc>>,
    /// Live controls of every kind applied (stock changes, pauses, resumes, closes); each also
    /// counts in `eventsApplied`.
    pub controls_applied: i64,
    /// Commit → applied of the latest event applied, in milliseconds.
    #[oai(skip_serializing_if_is_none)]
    pub lag_ms: Option<i64>,
    /// When the consumer last applied an event of this campaign.
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// Where daily figures came from.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DailySource {
    /// `campaign_daily_stats`, kept by the stats consumer.
    Aggregate,
    /// `participation`, counted at query time.
    Raw,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DailyCampaign {
    pub campaign_id: i64,
    pub accepted_count: i64,
    pub accepted_quantity: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DailyStats {
    /// The UTC day.
    pub date: NaiveDate,
    pub source: DailySource,
    /// Campaigns with wins that day, by id.
    pub campaigns: Vec<DailyCampaign>,
    /// How long the database query took, in milliseconds.
    pub query_time_ms: f64,
}

impl DailyStats {
    fn new(date: NaiveDate, source: DailySource, rows: Vec<DailyRow>, started: Instant) -> Self {
        Self {
            date,
            source,
            campaigns: rows
                .into_iter()
                .map(|r| DailyCampaign {
                    campaign_id: r.campaign_id,
                    accepted_count: r.accepted_count,
                    accepted_quantity: r.accepted_quantity,
                })
                .collect(),
            query_time_ms: started.elapsed().as_secs_f64() * 1_000.0,
        }
    }
}

/// The stats resource: the stats consumer's tables, and the campaigns they are about.
pub struct StatsApi {
    pub stats: StatsView,
    pub campaigns: CampaignService,
    pub admin: AdminTokens,
}

#[OpenApi(tag = "Tag::Stats")]
impl StatsApi {
    /// A campaign's statistics, from the stats consumer (eventually consistent: see `lagMs`).
    #[oai(path = "/api/v1/campaigns/:id/stats", method = "get")]
    async fn campaign(
        &self,
        /// Campaign id.
        #[oai(validator(minimum(value = "1")))]
        id: Path<i64>,
    ) -> Result<Json<CampaignStatsDto>, ApiError> {
        let id = id.0;
        if !self.campaigns.exists(id).await? {
            return Err(ApiError::campaign_not_found(id));
        }
        let s = self.stats.campaign(id).await?;
        let utc = |t: chrono::NaiveDateTime| t.and_utc();
        Ok(Json(match s {
            Some(s) => CampaignStatsDto {
                campaign_id: id,
                accepted_count: s.accepted_count,
                accepted_quantity: s.accepted_quantity,
                confirmed_count: s.confirmed_count,
                cancelled_count: s.cancelled_count,
                expired_count: s.expired_count,
                active_quantity: s.active_quantity,
                first_accepted_at: s.first_accepted_at.map(utc),
                last_accepted_at: s.last_accepted_at.map(utc),
                sold_out_at: s.sold_out_at.map(utc),
                events_applied: s.events_applied,
                stock_added: s.stock_added,
                stock_withdrawn: s.stock_withdrawn,
                paused: s.paused,
                closed_at: s.closed_at.map(utc),
                controls_applied: s.controls_applied,
                lag_ms: Some(s.lag_ms),
                updated_at: Some(utc(s.updated_at)),
            },
            None => CampaignStatsDto {
                campaign_id: id,
                accepted_count: 0,
                accepted_quantity: 0,
                confirmed_count: 0,
                cancelled_count: 0,
                expired_count: 0,
                active_quantity: 0,
                first_accepted_at: None,
                last_accepted_at: None,
                sold_out_at: None,
                events_applied: 0,
                stock_added: 0,
                stock_withdrawn: 0,
                paused: false,
                closed_at: None,
                controls_applied: 0,
                lag_ms: None,
                updated_at: None,
            },
        }))
    }

    /// Wins per campaign on one UTC day, from the pre-aggregated table (admin).
    #[oai(path = "/api/v1/admin/stats/daily", method = "get")]
    async fn daily(
        &self,
        auth: AdminAuth,
        /// The UTC day, `YYYY-MM-DD` (default: today).
        date: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        self.day(auth, date.0, DailySource::Aggregate).await
    }

    /// The same figures computed from `participation` at query time, for comparison (admin).
    #[oai(path = "/api/v1/admin/stats/raw", method = "get")]
    async fn raw(
        &self,
        auth: AdminAuth,
        /// The UTC day, `YYYY-MM-DD` (default: today).
        date: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        self.day(auth, date.0, DailySource::Raw).await
    }
}

impl StatsApi {
    /// One day's figures from `source`, timed.
    async fn day(
        &self,
        auth: AdminAuth,
        date: Option<NaiveDate>,
        source: DailySource,
    ) -> Result<Json<DailyStats>, ApiError> {
        auth.check(&self.admin)?;
        let date = date.unwrap_or_else(|| Utc::now().date_naive());
        let started = Instant::now();
        let rows = match source {
            DailySource::Aggregate => self.stats.daily(date).await?,
            DailySource::Raw => self.stats.daily_raw(date).await?,
        };
        Ok(Json(DailyStats::new(date, source, rows, started)))
    }
}
