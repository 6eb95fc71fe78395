//! Campaign statistics kept by the stats consumer: `GET /api/v1/campaigns/{id}/stats` (public),
//! and per-day figures for campaign teams (admin), for one day or a period of up to 366, from the
//! aggregate table (`/api/v1/admin/stats/daily`) or computed from `participation`
//! (`/api/v1/admin/stats/raw`), each with how long its query took, so the two can be compared.
//! Both carry the day's refused joins (`campaign_refusal`, docs/design.md §20).

use std::{collections::BTreeMap, time::Instant};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

use crate::{
    api::Tag,
    campaign::CampaignService,
    consumer::stats::{DailyRow, StatsView},
    http::{admin_auth::AdminOnly, error::ApiError},
    refusal::{store::RefusalRow, RefusalView},
};

/// The longest period one call reads, in days (both ends included).
const MAX_DAYS: i64 = 366;

#[derive(Debug, Clone, Object)]
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
    /// Confirmed wins cancelled since by an admin (refunds); counted in `confirmedCount` and
    /// `cancelledCount` too.
    pub refunded_count: i64,
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

/// One campaign on one UTC day.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DailyCampaign {
    /// The UTC day.
    pub date: NaiveDate,
    pub campaign_id: i64,
    /// Wins accepted that day, and their units.
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    /// Wins confirmed that day (a win without a confirmation window: on its acceptance's day).
    pub confirmed_count: i64,
    /// Wins cancelled that day by their user or an admin.
    pub cancelled_count: i64,
    /// Holds that ran out that day.
    pub expired_count: i64,
    /// Joins refused that day (the same counts in both sources), and by code.
    pub refused_count: i64,
    pub refused_by_reason: BTreeMap<String, i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DailyStats {
    /// The first UTC day (one day asked with `date`: that day).
    pub date: NaiveDate,
    pub from: NaiveDate,
    /// The last UTC day, included.
    pub to: NaiveDate,
    pub source: DailySource,
    /// One row per day and campaign with anything that day, by day then campaign id.
    pub campaigns: Vec<DailyCampaign>,
    /// How long the database queries took, in milliseconds.
    pub query_time_ms: f64,
}

/// The period asked: `date` alone, or `from` and `to` (either alone: that one day); default
/// today. At most [`MAX_DAYS`] days, `from` not after `to`.
fn period(
    date: Option<NaiveDate>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (from, to) = match (date, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::validation(
                "give either date, or from and to, not both",
            ))
        }
        (Some(day), None, None) => (day, day),
        (None, None, None) => {
            let today = Utc::now().date_naive();
            (today, today)
        }
        (None, from, to) => {
            let (from, to) = (from.or(to), to.or(from));
            (from.unwrap_or_default(), to.unwrap_or_default())
        }
    };
    let storable = |d: NaiveDate| crate::campaign::storable(d.and_time(NaiveTime::MIN).and_utc());
    if !storable(from) || !storable(to) {
        return Err(ApiError::validation(
            "days must be between 1000-01-01 and 9999-12-31",
        ));
    }
    if from > to {
        return Err(ApiError::validation("from must not be after to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::validation(format!(
            "a period is at most {MAX_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// The rows of both tables, one per day and campaign present in either.
fn merge(rows: Vec<DailyRow>, refused: Vec<RefusalRow>) -> Vec<DailyCampaign> {
    let mut days: BTreeMap<(NaiveDate, i64), DailyCampaign> = BTreeMap::new();
    let blank = |date: NaiveDate, campaign_id: i64| DailyCampaign {
        date,
        campaign_id,
        accepted_count: 0,
        accepted_quantity: 0,
        confirmed_count: 0,
        cancelled_count: 0,
        expired_count: 0,
        refused_count: 0,
        refused_by_reason: BTreeMap::new(),
    };
    for r in rows {
        let d = days
            .entry((r.day, r.campaign_id))
            .or_insert_with(|| blank(r.day, r.campaign_id));
        d.accepted_count = r.accepted_count;
        d.accepted_quantity = r.accepted_quantity;
        d.confirmed_count = r.confirmed_count;
        d.cancelled_count = r.cancelled_count;
        d.expired_count = r.expired_count;
    }
    for r in refused {
        let d = days
            .entry((r.day, r.campaign_id))
            .or_insert_with(|| blank(r.day, r.campaign_id));
        d.refused_count += r.refused_count;
        d.refused_by_reason.insert(r.reason, r.refused_count);
    }
    days.into_values().collect()
}

/// The stats resource: the stats consumer's tables, and the campaigns they are about.
pub struct StatsApi {
    pub stats: StatsView,
    pub campaigns: CampaignService,
    /// The refused joins per day.
    pub refusals: RefusalView,
    /// A campaign's statistics as last read, kept briefly ([`super::read_cache`]).
    pub reads: super::read_cache::ReadCache<Option<CampaignStatsDto>>,
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
        let read = self
            .reads
            .get_or(id, || async {
                if !self.campaigns.exists(id).await? {
                    return Ok::<_, ApiError>(None);
                }
                Ok(Some(stats_dto(id, self.stats.campaign(id).await?)))
            })
            .await?;
        read.map(Json)
            .ok_or_else(|| ApiError::campaign_not_found(id))
    }

    /// Each campaign's figures per UTC day, for one day or a period of up to 366 days: wins,
    /// units, confirmations, cancellations, expiries and refused joins, from the pre-aggregated
    /// table (admin).
    #[oai(path = "/api/v1/admin/stats/daily", method = "get")]
    async fn daily(
        &self,
        _auth: AdminOnly,
        /// One UTC day, `YYYY-MM-DD` (default: today). Not with `from` or `to`.
        date: Query<Option<NaiveDate>>,
        /// The period's first UTC day.
        from: Query<Option<NaiveDate>>,
        /// The period's last UTC day, included; at most 365 days after `from`.
        to: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        let (from, to) = period(date.0, from.0, to.0)?;
        self.days(from, to, DailySource::Aggregate).await
    }

    /// The same figures computed from `participation` at query time, for comparison (admin).
    #[oai(path = "/api/v1/admin/stats/raw", method = "get")]
    async fn raw(
        &self,
        _auth: AdminOnly,
        /// One UTC day, `YYYY-MM-DD` (default: today). Not with `from` or `to`.
        date: Query<Option<NaiveDate>>,
        /// The period's first UTC day.
        from: Query<Option<NaiveDate>>,
        /// The period's last UTC day, included; at most 365 days after `from`.
        to: Query<Option<NaiveDate>>,
    ) -> Result<Json<DailyStats>, ApiError> {
        let (from, to) = period(date.0, from.0, to.0)?;
        self.days(from, to, DailySource::Raw).await
    }
}

impl StatsApi {
    /// The period's figures from `source` and its refusals, timed.
    async fn days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        source: DailySource,
    ) -> Result<Json<DailyStats>, ApiError> {
        let started = Instant::now();
        let rows = match source {
            DailySource::Aggregate => self.stats.daily(from, to).await?,
            DailySource::Raw => self.stats.daily_raw(from, to).await?,
        };
        let refused = self.refusals.days(from, to).await?;
        Ok(Json(DailyStats {
            date: from,
            from,
            to,
            source,
            campaigns: merge(rows, refused),
            query_time_ms: started.elapsed().as_secs_f64() * 1_000.0,
        }))
    }
}

/// A campaign's figures as the API shows them; all 0 before the stats consumer saw an event of
/// it.
fn stats_dto(id: i64, s: Option<crate::consumer::stats::CampaignStats>) -> CampaignStatsDto {
    let utc = |t: chrono::NaiveDateTime| t.and_utc();
    match s {
        Some(s) => CampaignStatsDto {
            campaign_id: id,
            accepted_count: s.accepted_count,
            accepted_quantity: s.accepted_quantity,
            confirmed_count: s.confirmed_count,
            cancelled_count: s.cancelled_count,
            expired_count: s.expired_count,
            refunded_count: s.refunded_count,
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
            refunded_count: 0,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    #[test]
    fn a_period_is_one_day_or_from_to_of_at_most_366_days() {
        let d = day("2026-11-20");
        assert_eq!(period(Some(d), None, None).ok(), Some((d, d)));
        assert_eq!(period(None, Some(d), None).ok(), Some((d, d)));
        assert_eq!(period(None, None, Some(d)).ok(), Some((d, d)));
        assert_eq!(
            period(None, Some(day("2025-11-21")), Some(day("2026-11-21"))).ok(),
            Some((day("2025-11-21"), day("2026-11-21")))
        );
        assert!(period(None, Some(day("2025-11-20")), Some(day("2026-11-21"))).is_err());
        assert!(period(None, Some(day("2026-11-21")), Some(d)).is_err());
        assert!(period(Some(d), Some(d), None).is_err());
        assert!(period(Some(day("0999-12-31")), None, None).is_err());
        assert!(period(None, Some(day("9999-01-01")), Some(day("9999-12-31"))).is_ok());
        let today = Utc::now().date_naive();
        assert!(period(None, None, None).is_ok_and(|(f, t)| f == t && t >= today));
    }
}
