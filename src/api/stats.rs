//! Campaign statistics kept by the stats consumer: `GET /api/v1/campaigns/{id}/stats` (public),
//! and per-day figures for campaign teams (admin) from the aggregate table
//! (`/api/v1/admin/stats/daily`) or computed from `participation` (`/api/v1/admin/stats/raw`),
//! each with how long its query took, so the two can be compared.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

use super::{auth::AdminAuth, error::ApiError, Tag};
use crate::{
    campaign::repo,
    consumer::stats::{self, DailyRow},
    state::AppState,
};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CampaignStatsDto {
    pub campaign_id: i64,
    /// Wins applied by the stats consumer.
    pub accepted_count: i64,
    /// Units of those wins.
    pub accepted_quantity: i64,
    #[oai(skip_serializing_if_is_none)]
    pub first_accepted_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// When the win that took the last unit was committed (absent until then).
    #[oai(skip_serializing_if_is_none)]
    pub sold_out_at: Option<DateTime<Utc>>,
    /// Events the consumer applied for this campaign (each once, whatever Kafka redelivered).
    pub events_applied: i64,
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

pub struct StatsApi;

#[OpenApi(tag = "Tag::Stats")]
impl StatsApi {
    /// A campaign's statistics, from the stats consumer (eventually consistent: see `lagMs`).
    #[oai(path = "/api/v1/campaigns/:id/stats", method = "get")]
    async fn campaign(
        &self,
        state: Data<&Arc<AppState>>,
        /// Campaign id.
        #[oai(validator(minimum(value = "1")))]
        id: Path<i64>,
    ) -> Result<Json<CampaignStatsDto>, ApiError> {
        let id = id.0;
        if repo::find(&state.db, id).await?.is_none() {
            return Err(ApiError::campaign_not_found(id));
        }
        let s = stats::campaign(&state.db, id).await?;
        let utc = |t: chrono::NaiveDateTime| t.and_utc();
        Ok(Json(match s {
            Some(s) => CampaignStatsDto {
                campaign_id: id,
                accepted_count: s.accepted_count,
                accepted_quantity: s.accepted_quantity,
                first_accepted_at: Some(utc(s.first_accepted_at)),
                last_accepted_at: Some(utc(s.last_accepted_at)),
                sold_out_at: s.sold_out_at.map(utc),
                events_applied: s.accepted_count,
                lag_ms: Some(s.lag_ms),
                updated_at: Some(utc(s.updated_at)),
            },
            None => CampaignStatsDto {
                campaign_id: id,
                accepted_count: 0,
                accepted_quantity: 0,
                first_accepted_at: None,
                last_accepted_at: None,
                sold_out_at: None,
                events_applied: 0,
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
        state: Data<&Arc<AppState>>,
        /// The UTC day, `YYYY-MM-DD` (default: today).
        date: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        day(auth, &state, date.0, DailySource::Aggregate).await
    }

    /// The same figures computed from `participation` at query time, for comparison (admin).
    #[oai(path = "/api/v1/admin/stats/raw", method = "get")]
    async fn raw(
        &self,
        auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        /// The UTC day, `YYYY-MM-DD` (default: today).
        date: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        day(auth, &state, date.0, DailySource::Raw).await
    }
}

/// One day's figures from `source`, timed.
async fn day(
    auth: AdminAuth,
    state: &AppState,
    date: Option<NaiveDate>,
    source: DailySource,
) -> Result<Json<DailyStats>, ApiError> {
    auth.check(&state.admin_token)?;
    let date = date.unwrap_or_else(|| Utc::now().date_naive());
    let started = Instant::now();
    let rows = match source {
        DailySource::Aggregate => stats::daily(&state.db, date).await?,
        DailySource::Raw => stats::daily_raw(&state.db, date).await?,
    };
    Ok(Json(DailyStats::new(date, source, rows, started)))
}
