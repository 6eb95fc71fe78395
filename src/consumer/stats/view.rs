//! The stats endpoints' reads (docs/design.md §3, §11): a campaign's statistics and the days'
//! figures as the stats consumer keeps them, and the same days' figures counted from
//! `participation`, for the comparison.

use chrono::{NaiveDate, NaiveDateTime};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::db::{sql::stmt, Db};

/// The stats endpoints' reads, over the API's pool.
#[derive(Clone)]
pub struct StatsView {
    db: Db,
}

impl StatsView {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// `None` until the consumer has applied an event of the campaign.
    pub async fn campaign(&self, campaign_id: i64) -> Result<Option<CampaignStats>, DbErr> {
        campaign(&self.db, campaign_id).await
    }

    /// Each day's figures per campaign from `from` to `to` (both included), from the aggregate
    /// table.
    pub async fn daily(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
        daily(&self.db, from, to).await
    }

    /// The same figures counted from `participation`.
    pub async fn daily_raw(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
        daily_raw(&self.db, from, to).await
    }
}

/// A campaign's statistics as the stats consumer keeps them.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CampaignStats {
    /// Wins ever applied, and their units.
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    /// Wins confirmed (at acceptance, without a window, or later).
    pub confirmed_count: i64,
    /// Wins cancelled by their user or an admin.
    pub cancelled_count: i64,
    /// Holds that ran out.
    pub expired_count: i64,
    /// Confirmed wins cancelled since (refunds), counted in `cancelled_count` too.
    pub refunded_count: i64,
    /// Units held or confirmed now.
    pub active_quantity: i64,
    /// Events of every type applied.
    pub events_applied: i64,
    /// `None` while the campaign's events applied hold no win.
    pub first_accepted_at: Option<NaiveDateTime>,
    pub last_accepted_at: Option<NaiveDateTime>,
    pub sold_out_at: Option<NaiveDateTime>,
    /// Units added, and withdrawn, by stock changes (both positive).
    pub stock_added: i64,
    pub stock_withdrawn: i64,
    /// Whether the latest pause or resume applied left the campaign paused.
    pub paused: bool,
    /// When the campaign was closed early (`None` unless a close was applied).
    pub closed_at: Option<NaiveDateTime>,
    /// Controls of every kind applied.
    pub controls_applied: i64,
    pub last_event_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Commit → applied of the latest event, in milliseconds.
    pub lag_ms: i64,
}

#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn campaign(
    db: &impl ConnectionTrait,
    campaign_id: i64,
) -> Result<Option<CampaignStats>, DbErr> {
    CampaignStats::find_by_statement(stmt(
        "SELECT accepted_count, accepted_quantity, confirmed_count, cancelled_count, expired_count, \
         refunded_count, active_quantity, events_applied, first_accepted_at, last_accepted_at, sold_out_at, \
         stock_added, stock_withdrawn, paused, closed_at, controls_applied, last_event_at, updated_at, \
         CAST(GREATEST(TIMESTAMPDIFF(MICROSECOND, last_event_at, updated_at), 0) DIV 1000 AS SIGNED) AS lag_ms \
         FROM campaign_stats WHERE campaign_id = ?",
        vec![campaign_id.into()],
    ))
    .one(db)
    .await
}

/// One campaign's figures on one day.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct DailyRow {
    pub campaign_id: i64,
    pub day: NaiveDate,
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    pub confirmed_count: i64,
    pub cancelled_count: i64,
    pub expired_count: i64,
}

/// The days' figures from the aggregate table (one index range per day: the key is
/// `(campaign_id, day)`, so a range of days reads each campaign's range).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn daily(
    db: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, DbErr> {
    DailyRow::find_by_statement(stmt(
        "SELECT campaign_id, day, accepted_count, accepted_quantity, confirmed_count, \
         cancelled_count, expired_count FROM campaign_daily_stats \
         WHERE day >= ? AND day <= ? ORDER BY day, campaign_id",
        vec![from.into(), to.into()],
    ))
    .all(db)
    .await
}

/// The same figures computed from `participation` (no index on its times: the hot write path
/// pays for every index, so this reads the whole table; that is the comparison). A win counts on
/// the day it was accepted, its confirmation on `confirmed_at`'s day (a win without a
/// confirmation window: on its acceptance's), its cancellation or expiry on `cancelled_at`'s.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn daily_raw(
    db: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyRow>, DbErr> {
    let values: Vec<Value> = (0..4).flat_map(|_| [from.into(), to.into()]).collect();
    DailyRow::find_by_statement(stmt(
        "SELECT campaign_id, day, CAST(SUM(a) AS SIGNED) AS accepted_count, \
         CAST(SUM(q) AS SIGNED) AS accepted_quantity, CAST(SUM(c) AS SIGNED) AS confirmed_count, \
         CAST(SUM(x) AS SIGNED) AS cancelled_count, CAST(SUM(e) AS SIGNED) AS expired_count FROM ( \
           SELECT campaign_id, DATE(created_at) AS day, 1 AS a, quantity AS q, 0 AS c, 0 AS x, 0 AS e \
           FROM participation WHERE DATE(created_at) BETWEEN ? AND ? \
           UNION ALL \
           SELECT campaign_id, DATE(COALESCE(confirmed_at, created_at)), 0, 0, 1, 0, 0 \
           FROM participation WHERE DATE(confirmed_at) BETWEEN ? AND ? \
             OR (confirmed_at IS NULL AND hold_expires_at IS NULL AND DATE(created_at) BETWEEN ? AND ?) \
           UNION ALL \
           SELECT campaign_id, DATE(cancelled_at), 0, 0, 0, cancel_reason <> 'EXPIRED', cancel_reason = 'EXPIRED' \
           FROM participation WHERE DATE(cancelled_at) BETWEEN ? AND ? \
         ) steps GROUP BY campaign_id, day ORDER BY day, campaign_id",
        values,
    ))
    .all(db)
    .await
}
