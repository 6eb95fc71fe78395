//! The stats consumer: per-campaign statistics (`campaign_stats`) and wins per campaign and UTC
//! day (`campaign_daily_stats`), and the queries behind the stats endpoints, including the same
//! daily figures computed from `participation` (the comparison the aggregate exists for).
//!
//! What each event counts (docs/design.md §11, §14), every count being of events, never undone:
//! - `ParticipationAccepted`: a win (count, units, the day's figures); `CONFIRMED` ones (a
//!   campaign without a confirmation window) are also confirmed;
//! - `ParticipationConfirmed`: a confirmed win;
//! - `ParticipationCancelled`: cancelled (reason `USER` or `ADMIN`) or expired (`EXPIRED`).
//!
//! The active quantity (units held or confirmed now) is the units won minus the units cancelled
//! or expired. A refunded win counts as confirmed and as cancelled.
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
use crate::{
    db::{Db, Txn},
    outbox::{
        event::WinStatus,
        lifecycle::{CancelReason, ParticipationCancelled},
        ParticipationEvent,
    },
};

pub struct StatsHandler;

/// One campaign's share of a batch.
#[derive(Debug, Clone, Copy)]
struct CampaignTotals {
    /// Wins, and their units.
    count: i64,
    quantity: i64,
    confirmed: i64,
    cancelled: i64,
    expired: i64,
    /// Units won minus units given back (negative in a batch of cancellations only).
    active: i64,
    /// Events of every type.
    events: i64,
    /// The earliest and the latest win (none in a batch without wins).
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// `occurredAt` of the campaign's last event in the batch (read order = commit order).
    latest: DateTime<Utc>,
}

impl CampaignTotals {
    fn new(latest: DateTime<Utc>) -> Self {
        Self {
            count: 0,
            quantity: 0,
            confirmed: 0,
            cancelled: 0,
            expired: 0,
            active: 0,
            events: 0,
            first: None,
            last: None,
            latest,
        }
    }

    /// Adds one event of the campaign, read after every event already added.
    fn add(&mut self, event: &ParticipationEvent) {
        let at = event.occurred_at();
        let q = i64::from(event.quantity());
        self.events += 1;
        self.latest = at;
        match event {
            ParticipationEvent::Accepted(e) => {
                self.count += 1;
                self.quantity += q;
                self.active += q;
                self.confirmed += i64::from(e.status == WinStatus::Confirmed);
                self.first = Some(self.first.map_or(at, |f| f.min(at)));
                self.last = Some(self.last.map_or(at, |l| l.max(at)));
            }
            ParticipationEvent::Confirmed(_) => self.confirmed += 1,
            ParticipationEvent::Cancelled(ParticipationCancelled { reason, .. }) => {
                self.active -= q;
                match reason {
                    CancelReason::User | CancelReason::Admin => self.cancelled += 1,
                    CancelReason::Expired => self.expired += 1,
                }
            }
        }
    }
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
            totals
                .campaigns
                .entry(e.campaign_id())
                .or_insert_with(|| CampaignTotals::new(e.occurred_at()))
                .add(e);
            // The daily figures are wins per day, as `participation` counts them.
            if let ParticipationEvent::Accepted(win) = e {
                let day = totals
                    .days
                    .entry((win.campaign_id, win.occurred_at.date_naive()))
                    .or_insert((0, 0));
                day.0 += 1;
                day.1 += i64::from(win.quantity);
            }
        }
        totals
    }
}

async fn upsert_campaigns(
    txn: &Txn,
    campaigns: &BTreeMap<i64, CampaignTotals>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(campaigns.len() * 11);
    for (id, f) in campaigns {
        values.extend([
            (*id).into(),
            f.count.into(),
            f.quantity.into(),
            f.confirmed.into(),
            f.cancelled.into(),
            f.expired.into(),
            f.active.into(),
            f.events.into(),
            f.first.map(to_db).into(),
            f.last.map(to_db).into(),
            to_db(f.latest).into(),
        ]);
    }
    // VALUES() rather than MySQL 8's row alias: MariaDB has no row alias. LEAST and GREATEST are
    // NULL when either side is (a row or a batch without wins): COALESCE keeps the other side.
    insert_rows(
        txn,
        "INSERT INTO campaign_stats (campaign_id, accepted_count, accepted_quantity, confirmed_count, \
         cancelled_count, expired_count, active_quantity, events_applied, first_accepted_at, \
         last_accepted_at, last_event_at, updated_at)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
        " ON DUPLICATE KEY UPDATE accepted_count = accepted_count + VALUES(accepted_count), \
         accepted_quantity = accepted_quantity + VALUES(accepted_quantity), \
         confirmed_count = confirmed_count + VALUES(confirmed_count), \
         cancelled_count = cancelled_count + VALUES(cancelled_count), \
         expired_count = expired_count + VALUES(expired_count), \
         active_quantity = active_quantity + VALUES(active_quantity), \
         events_applied = events_applied + VALUES(events_applied), \
         first_accepted_at = COALESCE(LEAST(first_accepted_at, VALUES(first_accepted_at)), \
         first_accepted_at, VALUES(first_accepted_at)), \
         last_accepted_at = COALESCE(GREATEST(last_accepted_at, VALUES(last_accepted_at)), \
         last_accepted_at, VALUES(last_accepted_at)), \
         last_event_at = VALUES(last_event_at), updated_at = VALUES(updated_at)",
        values,
    )
    .await?;
    Ok(())
}

/// Sold out: the first time the units held or confirmed reach the campaign's stock, at the
/// latest win applied (the one that took the last unit). Units given back and won again are not
/// counted twice; once set, it stays (the first sell-out).
async fn mark_sold_out(txn: &Txn, campaigns: &BTreeMap<i64, CampaignTotals>) -> Result<(), DbErr> {
    let mut ids: Vec<Value> = Vec::new();
    let list = in_list(&mut ids, campaigns.keys().map(|id| Value::from(*id)));
    txn.execute_raw(stmt(
        &format!(
            "UPDATE campaign_stats s JOIN campaign c ON c.id = s.campaign_id \
             SET s.sold_out_at = s.last_accepted_at \
             WHERE s.campaign_id IN ({list}) AND s.sold_out_at IS NULL AND s.active_quantity >= c.total_stock"
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
    /// Wins ever applied, and their units.
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    /// Wins confirmed (at acceptance, without a window, or later).
    pub confirmed_count: i64,
    /// Wins cancelled by their user or an admin.
    pub cancelled_count: i64,
    /// Holds that ran out.
    pub expired_count: i64,
    /// Units held or confirmed now.
    pub active_quantity: i64,
    /// Events of every type applied.
    pub events_applied: i64,
    /// `None` while the campaign's events applied hold no win.
    pub first_accepted_at: Option<NaiveDateTime>,
    pub last_accepted_at: Option<NaiveDateTime>,
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
        "SELECT accepted_count, accepted_quantity, confirmed_count, cancelled_count, expired_count, \
         active_quantity, events_applied, first_accepted_at, last_accepted_at, sold_out_at, last_event_at, updated_at, \
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

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::outbox::{
        event::PARTICIPATION_ACCEPTED,
        lifecycle::{ParticipationConfirmed, PARTICIPATION_CANCELLED, PARTICIPATION_CONFIRMED},
        ParticipationAccepted,
    };

    fn delivered(event: ParticipationEvent) -> Delivered {
        Delivered {
            event,
            partition: 0,
            offset: 0,
            traceparent: None,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("a valid time")
    }

    fn win(participation_id: i64, status: WinStatus, secs: i64) -> Delivered {
        delivered(ParticipationEvent::Accepted(ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: at(secs),
            campaign_id: 1,
            participation_id,
            user_id: participation_id,
            quantity: 2,
            sequence: participation_id,
            reward_points: 0,
            status,
            hold_expires_at: None,
        }))
    }

    fn confirm(participation_id: i64, secs: i64) -> Delivered {
        delivered(ParticipationEvent::Confirmed(ParticipationConfirmed {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CONFIRMED.into(),
            occurred_at: at(secs),
            campaign_id: 1,
            participation_id,
            user_id: participation_id,
            quantity: 2,
            reward_points: 0,
        }))
    }

    fn cancel(participation_id: i64, reason: CancelReason, secs: i64) -> Delivered {
        delivered(ParticipationEvent::Cancelled(ParticipationCancelled {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CANCELLED.into(),
            occurred_at: at(secs),
            campaign_id: 1,
            participation_id,
            user_id: participation_id,
            quantity: 2,
            reason,
            previous_status: WinStatus::Held,
            reward_points: 0,
        }))
    }

    #[test]
    fn a_batch_folds_every_event_type_into_one_row_per_campaign() {
        let events = [
            win(1, WinStatus::Held, 10),
            confirm(1, 11),
            win(2, WinStatus::Held, 12),
            cancel(2, CancelReason::Expired, 13),
            win(3, WinStatus::Confirmed, 14),
            cancel(3, CancelReason::Admin, 15),
            win(4, WinStatus::Held, 16),
            cancel(4, CancelReason::User, 17),
        ];
        let batch = BatchTotals::fold(&events);
        let t = batch.campaigns[&1];
        assert_eq!((t.count, t.quantity, t.events), (4, 8, 8));
        assert_eq!(
            (t.confirmed, t.cancelled, t.expired, t.active),
            (2, 2, 1, 2)
        );
        assert_eq!(
            (t.first, t.last, t.latest),
            (Some(at(10)), Some(at(16)), at(17))
        );
        // Only wins count per day.
        assert_eq!(batch.days.values().copied().collect::<Vec<_>>(), [(4, 8)]);
    }

    #[test]
    fn a_batch_without_wins_has_no_win_times_and_gives_units_back() {
        let batch = BatchTotals::fold(&[cancel(1, CancelReason::User, 5)]);
        let t = batch.campaigns[&1];
        assert_eq!((t.first, t.last, t.latest), (None, None, at(5)));
        assert_eq!((t.count, t.cancelled, t.active, t.events), (0, 1, -2, 1));
        assert!(batch.days.is_empty());
    }
}
