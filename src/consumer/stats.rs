//! The stats consumer: per-campaign statistics (`campaign_stats`) and wins per campaign and UTC
//! day (`campaign_daily_stats`), and the queries behind the stats endpoints, including the same
//! daily figures computed from `participation` (the comparison the aggregate exists for).
//!
//! A batch is folded per campaign (and per campaign and day) first, so a batch of a thousand
//! events of one hot campaign is three statements, not three thousand.

use crate::db::{
    sql::{in_list, insert_rows, stmt},
    time::to_db,
};
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use super::{Delivered, Handler};
use crate::db::{Db, Txn};

pub struct StatsHandler;

/// One campaign's share of a batch.
#[derive(Debug, Clone, Copy)]
struct CampaignTotals {
    count: i64,
    quantity: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// `occurredAt` of the campaign's last event in the batch (read order = commit order).
    latest: DateTime<Utc>,
}

#[async_trait]
impl Handler for StatsHandler {
    async fn apply(&self, txn: &Txn, events: &[Delivered]) -> Result<(), DbErr> {
        let batch = BatchTotals::fold(events);
        upsert_campaigns(txn, &batch.campaigns).await?;
        mark_sold_out(txn, &batch.campaigns).await?;
        upsert_days(txn, &batch.days).await
    }
}

/// A batch folded per campaign, and per campaign and UTC day (wins, units).
#[derive(Default)]
struct BatchTotals {
    campaigns: BTreeMap<i64, CampaignTotals>,
    days: BTreeMap<(i64, NaiveDate), (i64, i64)>,
}

impl BatchTotals {
    fn fold(events: &[Delivered]) -> Self {
        let mut totals = Self::default();
        for d in events {
            let e = &d.event;
            let q = i64::from(e.quantity);
            totals
                .campaigns
                .entry(e.campaign_id)
                .and_modify(|f| {
                    f.count += 1;
                    f.quantity += q;
                    f.first = f.first.min(e.occurred_at);
                    f.last = f.last.max(e.occurred_at);
                    f.latest = e.occurred_at;
                })
                .or_insert(CampaignTotals {
                    count: 1,
                    quantity: q,
                    first: e.occurred_at,
                    last: e.occurred_at,
                    latest: e.occurred_at,
                });
            let day = totals
                .days
                .entry((e.campaign_id, e.occurred_at.date_naive()))
                .or_insert((0, 0));
            day.0 += 1;
            day.1 += q;
        }
        totals
    }
}

async fn upsert_campaigns(
    txn: &Txn,
    campaigns: &BTreeMap<i64, CampaignTotals>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(campaigns.len() * 6);
    for (id, f) in campaigns {
        values.extend([
            (*id).into(),
            f.count.into(),
            f.quantity.into(),
            to_db(f.first).into(),
            to_db(f.last).into(),
            to_db(f.latest).into(),
        ]);
    }
    // VALUES() rather than MySQL 8's row alias: MariaDB has no row alias.
    insert_rows(
        txn,
        "INSERT INTO campaign_stats (campaign_id, accepted_count, accepted_quantity, first_accepted_at, \
         last_accepted_at, last_event_at, updated_at)",
        "(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
        " ON DUPLICATE KEY UPDATE accepted_count = accepted_count + VALUES(accepted_count), \
         accepted_quantity = accepted_quantity + VALUES(accepted_quantity), \
         first_accepted_at = LEAST(first_accepted_at, VALUES(first_accepted_at)), \
         last_accepted_at = GREATEST(last_accepted_at, VALUES(last_accepted_at)), \
         last_event_at = VALUES(last_event_at), updated_at = VALUES(updated_at)",
        values,
    )
    .await?;
    Ok(())
}

/// Sold out: the first time the applied quantity reaches the campaign's stock, at the latest
/// win applied (the one that took the last unit).
async fn mark_sold_out(txn: &Txn, campaigns: &BTreeMap<i64, CampaignTotals>) -> Result<(), DbErr> {
    let mut ids: Vec<Value> = Vec::new();
    let list = in_list(&mut ids, campaigns.keys().map(|id| Value::from(*id)));
    txn.execute_raw(stmt(
        &format!(
            "UPDATE campaign_stats s JOIN campaign c ON c.id = s.campaign_id \
             SET s.sold_out_at = s.last_accepted_at \
             WHERE s.campaign_id IN ({list}) AND s.sold_out_at IS NULL AND s.accepted_quantity >= c.total_stock"
        ),
        ids,
    ))
    .await?;
    Ok(())
}

async fn upsert_days(
    txn: &Txn,
    days: &BTreeMap<(i64, NaiveDate), (i64, i64)>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(days.len() * 4);
    for ((id, day), (count, quantity)) in days {
        values.extend([
            (*id).into(),
            (*day).into(),
            (*count).into(),
            (*quantity).into(),
        ]);
    }
    insert_rows(
        txn,
        "INSERT INTO campaign_daily_stats (campaign_id, day, accepted_count, accepted_quantity)",
        "(?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE accepted_count = accepted_count + VALUES(accepted_count), \
         accepted_quantity = accepted_quantity + VALUES(accepted_quantity)",
        values,
    )
    .await?;
    Ok(())
}

/// The stats endpoints' reads, over the API's pool.
#[derive(Clone)]
pub struct StatsView {
    db: Db,
}

impl StatsView {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// `None` until the consumer has applied a win of the campaign.
    pub async fn campaign(&self, campaign_id: i64) -> Result<Option<CampaignStats>, DbErr> {
        campaign(&self.db, campaign_id).await
    }

    /// The day's wins per campaign, from the aggregate table.
    pub async fn daily(&self, day: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
        daily(&self.db, day).await
    }

    /// The same figures counted from `participation`.
    pub async fn daily_raw(&self, day: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
        daily_raw(&self.db, day).await
    }
}

/// A campaign's statistics as the stats consumer keeps them.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CampaignStats {
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    pub first_accepted_at: NaiveDateTime,
    pub last_accepted_at: NaiveDateTime,
    pub sold_out_at: Option<NaiveDateTime>,
    pub last_event_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Commit → applied of the latest event, in milliseconds.
    pub lag_ms: i64,
}

#[tracing::instrument(level = "debug", skip(db), err)]
async fn campaign(
    db: &impl ConnectionTrait,
    campaign_id: i64,
) -> Result<Option<CampaignStats>, DbErr> {
    CampaignStats::find_by_statement(stmt(
        "SELECT accepted_count, accepted_quantity, first_accepted_at, last_accepted_at, sold_out_at, \
         last_event_at, updated_at, \
         CAST(GREATEST(TIMESTAMPDIFF(MICROSECOND, last_event_at, updated_at), 0) DIV 1000 AS SIGNED) AS lag_ms \
         FROM campaign_stats WHERE campaign_id = ?",
        vec![campaign_id.into()],
    ))
    .one(db)
    .await
}

/// One campaign's wins on one day.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct DailyRow {
    pub campaign_id: i64,
    pub accepted_count: i64,
    pub accepted_quantity: i64,
}

/// The day's figures from the aggregate table (one index range).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn daily(db: &impl ConnectionTrait, day: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
    DailyRow::find_by_statement(stmt(
        "SELECT campaign_id, accepted_count, accepted_quantity FROM campaign_daily_stats \
         WHERE day = ? ORDER BY campaign_id",
        vec![day.into()],
    ))
    .all(db)
    .await
}

/// The same figures computed from `participation` (no index on `created_at`: the hot write
/// path pays for every index, so this reads the whole table; that is the comparison).
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn daily_raw(db: &impl ConnectionTrait, day: NaiveDate) -> Result<Vec<DailyRow>, DbErr> {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let end = start + chrono::Duration::days(1);
    DailyRow::find_by_statement(stmt(
        "SELECT campaign_id, CAST(COUNT(*) AS SIGNED) AS accepted_count, \
         CAST(SUM(quantity) AS SIGNED) AS accepted_quantity FROM participation \
         WHERE created_at >= ? AND created_at < ? GROUP BY campaign_id ORDER BY campaign_id",
        vec![start.into(), end.into()],
    ))
    .all(db)
    .await
}
