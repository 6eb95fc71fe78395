//! The stats consumer: per-campaign statistics (`campaign_stats`) and wins per campaign and UTC
//! day (`campaign_daily_stats`), and the queries behind the stats endpoints, including the same
//! daily figures computed from `participation` (the comparison the aggregate exists for).
//!
//! What each event counts (docs/design.md §11, §14), every count being of events, never undone:
//! - `ParticipationAccepted`: a win (count, units, the day's figures); `CONFIRMED` ones (a
//!   campaign without a confirmation window) are also confirmed;
//! - `ParticipationConfirmed`: a confirmed win;
//! - `ParticipationCancelled`: cancelled (reason `USER` or `ADMIN`) or expired (`EXPIRED`); one
//!   of a `CONFIRMED` win (`previousStatus`) is also a refund;
//! - a campaign's controls, each a control applied: `CampaignStockChanged` adds its `delta` to
//!   the units added (a positive one) or withdrawn (a negative one); `CampaignPaused` and
//!   `CampaignResumed` set whether the campaign is paused (the latest of them decides);
//!   `CampaignClosed` sets when it closed. A control is no win, confirmation or cancellation, and
//!   no day's figure.
//!
//! Every event, whatever its type, counts as an event applied and moves `last_event_at`.
//!
//! The active quantity (units held or confirmed now) is the units won minus the units cancelled
//! or expired. A refunded win counts as confirmed and as cancelled.
//!
//! Wins also go to the live chart's 5-second slots ([`series`]).
//!
//! A batch is folded per campaign (and per campaign and day) first, so a batch of a thousand
//! events of one hot campaign is three statements, not three thousand (one or two more when it
//! pauses or resumes a campaign: see [`set_paused`]).

use crate::db::{
    sql::{in_list, insert_rows, size_at_least, stmt},
    time::to_db,
};
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbErr, Value};

use crate::{
    consumer::{Delivered, Handler},
    db::Txn,
    events::{
        accepted::WinStatus,
        control::{CampaignChanged, ControlKind},
        lifecycle::{CancelReason, ParticipationCancelled},
        ParticipationEvent,
    },
};

pub mod series;
mod view;

pub use view::{campaign, daily, daily_raw, CampaignStats, DailyRow, StatsView};

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
    /// Cancellations of confirmed wins (refunds), counted in `cancelled` too.
    refunded: i64,
    /// Units won minus units given back (negative in a batch of cancellations only).
    active: i64,
    /// Events of every type.
    events: i64,
    /// The earliest and the latest win (none in a batch without wins).
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// `occurredAt` of the campaign's last event in the batch (read order = commit order).
    latest: DateTime<Utc>,
    /// Controls of every kind.
    controls: i64,
    /// Units added and withdrawn by stock changes (both positive).
    stock_added: i64,
    stock_withdrawn: i64,
    /// Whether the campaign's last pause or resume in the batch paused it; `None` when the batch
    /// has neither, which leaves the stored state alone.
    paused: Option<bool>,
    /// The earliest close in the batch (a campaign closes once; the earliest is the one kept).
    closed_at: Option<DateTime<Utc>>,
}

impl CampaignTotals {
    fn new(latest: DateTime<Utc>) -> Self {
        Self {
            count: 0,
            quantity: 0,
            confirmed: 0,
            cancelled: 0,
            expired: 0,
            refunded: 0,
            active: 0,
            events: 0,
            first: None,
            last: None,
            latest,
            controls: 0,
            stock_added: 0,
            stock_withdrawn: 0,
            paused: None,
            closed_at: None,
        }
    }

    /// Adds one event of the campaign, read after every event already added.
    fn add(&mut self, event: &ParticipationEvent) {
        let at = event.occurred_at();
        self.events += 1;
        self.latest = at;
        match event {
            ParticipationEvent::Accepted(e) => {
                let q = i64::from(e.quantity);
                self.count += 1;
                self.quantity += q;
                self.active += q;
                self.confirmed += i64::from(e.status == WinStatus::Confirmed);
                self.first = Some(self.first.map_or(at, |f| f.min(at)));
                self.last = Some(self.last.map_or(at, |l| l.max(at)));
            }
            ParticipationEvent::Confirmed(_) => self.confirmed += 1,
            ParticipationEvent::Cancelled(ParticipationCancelled {
                reason,
                quantity,
                previous_status,
                ..
            }) => {
                self.active -= i64::from(*quantity);
                self.refunded += i64::from(*previous_status == WinStatus::Confirmed);
                match reason {
                    CancelReason::User | CancelReason::Admin => self.cancelled += 1,
                    CancelReason::Expired => self.expired += 1,
                }
            }
            ParticipationEvent::Campaign(control) => self.add_control(control),
        }
    }

    /// Adds one control of the campaign. Saturating: the contract bounds no `delta`, and a
    /// hand-made one must not overflow the fold.
    fn add_control(&mut self, control: &CampaignChanged) {
        self.controls += 1;
        match (control.kind(), control.delta) {
            (Some(ControlKind::StockChanged), Some(delta)) if delta > 0 => {
                self.stock_added = self.stock_added.saturating_add(delta);
            }
            (Some(ControlKind::StockChanged), Some(delta)) => {
                self.stock_withdrawn = self.stock_withdrawn.saturating_sub(delta);
            }
            (Some(ControlKind::Paused), _) => self.paused = Some(true),
            (Some(ControlKind::Resumed), _) => self.paused = Some(false),
            (Some(ControlKind::Closed), _) => {
                let at = control.occurred_at;
                self.closed_at = Some(self.closed_at.map_or(at, |c| c.min(at)));
            }
            // The contract check lets neither through: a stock change has a delta, and every
            // `Campaign` event is one of the four kinds.
            (Some(ControlKind::StockChanged), None) | (None, _) => {}
        }
    }
}

#[async_trait]
impl Handler for StatsHandler {
    async fn apply(&self, txn: &Txn, events: &[Delivered]) -> Result<(), DbErr> {
        let batch = BatchTotals::fold(events);
        upsert_campaigns(txn, &batch.campaigns).await?;
        set_paused(txn, &batch.campaigns).await?;
        mark_sold_out(txn, &batch.campaigns).await?;
        upsert_days(txn, &batch.days).await?;
        series::add_wins(txn, &batch.slots).await
    }
}

/// One campaign's figures of one UTC day: its wins and their units, and the wins confirmed,
/// cancelled and expired that day (a win confirmed at acceptance, on its acceptance's day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub count: i64,
    pub quantity: i64,
    pub confirmed: i64,
    pub cancelled: i64,
    pub expired: i64,
}

impl DayTotals {
    fn add(&mut self, event: &ParticipationEvent) {
        match event {
            ParticipationEvent::Accepted(win) => {
                self.count += 1;
                self.quantity += i64::from(win.quantity);
                self.confirmed += i64::from(win.status == WinStatus::Confirmed);
            }
            ParticipationEvent::Confirmed(_) => self.confirmed += 1,
            ParticipationEvent::Cancelled(c) => match c.reason {
                CancelReason::User | CancelReason::Admin => self.cancelled += 1,
                CancelReason::Expired => self.expired += 1,
            },
            ParticipationEvent::Campaign(_) => {}
        }
    }
}

/// A batch folded per campaign, and per campaign and UTC day.
#[derive(Default)]
struct BatchTotals {
    campaigns: BTreeMap<i64, CampaignTotals>,
    days: BTreeMap<(i64, NaiveDate), DayTotals>,
    /// Wins per campaign and 5-second slot of their `occurredAt` (the live chart's, [`series`]).
    slots: BTreeMap<(i64, DateTime<Utc>), i64>,
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
            // The daily figures are a win's steps on the day each happened, as `participation`
            // dates them; controls have none.
            if matches!(e, ParticipationEvent::Accepted(_)) {
                *totals
                    .slots
                    .entry((e.campaign_id(), series::slot_of(e.occurred_at())))
                    .or_default() += 1;
            }
            if !matches!(e, ParticipationEvent::Campaign(_)) {
                totals
                    .days
                    .entry((e.campaign_id(), e.occurred_at().date_naive()))
                    .or_default()
                    .add(e);
            }
        }
        totals
    }
}

async fn upsert_campaigns(
    txn: &Txn,
    campaigns: &BTreeMap<i64, CampaignTotals>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(campaigns.len() * 18);
    for (id, f) in campaigns {
        values.extend([
            (*id).into(),
            f.count.into(),
            f.quantity.into(),
            f.confirmed.into(),
            f.cancelled.into(),
            f.expired.into(),
            f.refunded.into(),
            f.active.into(),
            f.events.into(),
            f.first.map(to_db).into(),
            f.last.map(to_db).into(),
            to_db(f.latest).into(),
            f.stock_added.into(),
            f.stock_withdrawn.into(),
            // A new row's state; an existing row's is [`set_paused`]'s.
            f.paused.unwrap_or(false).into(),
            f.closed_at.map(to_db).into(),
            f.controls.into(),
        ]);
    }
    // VALUES() rather than MySQL 8's row alias: MariaDB has no row alias. LEAST and GREATEST are
    // NULL when either side is (a row or a batch without wins or closes): COALESCE keeps the
    // other side. `paused` is left to `set_paused`: VALUES() cannot say "unchanged".
    insert_rows(
        txn,
        "INSERT INTO campaign_stats (campaign_id, accepted_count, accepted_quantity, confirmed_count, \
         cancelled_count, expired_count, refunded_count, active_quantity, events_applied, \
         first_accepted_at, last_accepted_at, last_event_at, stock_added, stock_withdrawn, paused, \
         closed_at, controls_applied, updated_at)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
        " ON DUPLICATE KEY UPDATE accepted_count = accepted_count + VALUES(accepted_count), \
         accepted_quantity = accepted_quantity + VALUES(accepted_quantity), \
         confirmed_count = confirmed_count + VALUES(confirmed_count), \
         cancelled_count = cancelled_count + VALUES(cancelled_count), \
         expired_count = expired_count + VALUES(expired_count), \
         refunded_count = refunded_count + VALUES(refunded_count), \
         active_quantity = active_quantity + VALUES(active_quantity), \
         events_applied = events_applied + VALUES(events_applied), \
         first_accepted_at = COALESCE(LEAST(first_accepted_at, VALUES(first_accepted_at)), \
         first_accepted_at, VALUES(first_accepted_at)), \
         last_accepted_at = COALESCE(GREATEST(last_accepted_at, VALUES(last_accepted_at)), \
         last_accepted_at, VALUES(last_accepted_at)), \
         stock_added = stock_added + VALUES(stock_added), \
         stock_withdrawn = stock_withdrawn + VALUES(stock_withdrawn), \
         closed_at = COALESCE(LEAST(closed_at, VALUES(closed_at)), closed_at, VALUES(closed_at)), \
         controls_applied = controls_applied + VALUES(controls_applied), \
         last_event_at = VALUES(last_event_at), updated_at = VALUES(updated_at)",
        values,
    )
    .await?;
    Ok(())
}

/// Whether each campaign paused or resumed in the batch is paused now: the state its last pause
/// or resume left (read order = commit order). Apart from the upsert because a multi-row
/// `VALUES()` cannot carry "no pause or resume in this batch, keep the stored state": the column
/// is NOT NULL, so NULL is refused, and any sentinel would be stored as is in a new row. One
/// statement per state, and none in the usual batch that neither pauses nor resumes.
async fn set_paused(txn: &Txn, campaigns: &BTreeMap<i64, CampaignTotals>) -> Result<(), DbErr> {
    for state in [true, false] {
        let mut values: Vec<Value> = vec![state.into()];
        let ids = campaigns
            .iter()
            .filter(|(_, f)| f.paused == Some(state))
            .map(|(id, _)| Value::from(*id));
        let list = in_list(&mut values, ids);
        if list.is_empty() {
            continue;
        }
        txn.execute_raw(stmt(
            &format!("UPDATE campaign_stats SET paused = ? WHERE campaign_id IN ({list})"),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Sold out: the first time the units held or confirmed reach the campaign's stock, at the
/// latest win applied (the one that took the last unit). Units given back and won again are not
/// counted twice; once set, it stays (the first sell-out). Only a win or a stock withdrawal can
/// sell a campaign out, so only the campaigns with one in the batch are looked at.
///
/// The stock comes from a plain (consistent, non-locking) read of `campaign`, not from a join in
/// the UPDATE: InnoDB reads the other tables of a multi-table UPDATE with shared locks, held to
/// the consumer's commit, and a hot campaign's row is the one every win's transaction updates —
/// the consumer then waited for the write path and the write path for the consumer's commit.
async fn mark_sold_out(txn: &Txn, campaigns: &BTreeMap<i64, CampaignTotals>) -> Result<(), DbErr> {
    let mut ids: Vec<Value> = Vec::new();
    let may_sell_out = campaigns
        .iter()
        .filter(|(_, f)| f.count > 0 || f.stock_withdrawn > 0);
    let list = in_list(&mut ids, may_sell_out.map(|(id, _)| Value::from(*id)));
    if list.is_empty() {
        return Ok(());
    }
    let stocks = txn
        .query_all_raw(stmt(
            &format!("SELECT id, total_stock FROM campaign WHERE id IN ({list})"),
            ids,
        ))
        .await?;
    let mut stock: Vec<(i64, i64)> = Vec::with_capacity(stocks.len());
    for row in &stocks {
        stock.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
    }
    if stock.is_empty() {
        return Ok(());
    }
    // The `IN` list lets the UPDATE reach (and lock) only these campaigns' rows by primary key.
    // Both lists padded like an `IN` list (the last term repeated), for a shared statement text.
    let mut values: Vec<Value> = Vec::with_capacity(stock.len() * 3);
    let list = in_list(&mut values, stock.iter().map(|(id, _)| Value::from(*id)));
    let n = size_at_least(stock.len());
    let last = stock[stock.len() - 1];
    for (id, total) in stock.iter().chain(std::iter::repeat(&last)).take(n) {
        values.extend([Value::from(*id), Value::from(*total)]);
    }
    let terms = vec!["(campaign_id = ? AND active_quantity >= ?)"; n].join(" OR ");
    txn.execute_raw(stmt(
        &format!(
            "UPDATE campaign_stats SET sold_out_at = last_accepted_at \
             WHERE campaign_id IN ({list}) AND sold_out_at IS NULL AND ({terms})"
        ),
        values,
    ))
    .await?;
    Ok(())
}

async fn upsert_days(txn: &Txn, days: &BTreeMap<(i64, NaiveDate), DayTotals>) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(days.len() * 7);
    for ((id, day), t) in days {
        values.extend([
            (*id).into(),
            (*day).into(),
            t.count.into(),
            t.quantity.into(),
            t.confirmed.into(),
            t.cancelled.into(),
            t.expired.into(),
        ]);
    }
    insert_rows(
        txn,
        "INSERT INTO campaign_daily_stats (campaign_id, day, accepted_count, accepted_quantity, \
         confirmed_count, cancelled_count, expired_count)",
        "(?, ?, ?, ?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE accepted_count = accepted_count + VALUES(accepted_count), \
         accepted_quantity = accepted_quantity + VALUES(accepted_quantity), \
         confirmed_count = confirmed_count + VALUES(confirmed_count), \
         cancelled_count = cancelled_count + VALUES(cancelled_count), \
         expired_count = expired_count + VALUES(expired_count)",
        values,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::events::{
        accepted::PARTICIPATION_ACCEPTED,
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
            purchase_id: None,
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
            purchase_id: None,
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
            purchase_id: None,
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
        // Per day: the wins, and each confirmation, cancellation and expiry.
        assert_eq!(
            batch.days.values().copied().collect::<Vec<_>>(),
            [DayTotals {
                count: 4,
                quantity: 8,
                confirmed: 2,
                cancelled: 2,
                expired: 1
            }]
        );
    }

    fn control(kind: ControlKind, delta: Option<i64>, secs: i64) -> Delivered {
        delivered(ParticipationEvent::Campaign(CampaignChanged {
            event_id: Uuid::now_v7(),
            event_type: kind.event_type().into(),
            occurred_at: at(secs),
            campaign_id: 1,
            control_seq: secs,
            changed_by: "ops".into(),
            delta,
            total_stock: 100,
            remaining_stock: 50,
        }))
    }

    #[test]
    fn controls_are_counted_as_controls_and_as_events_only() {
        use ControlKind::{Closed, Paused, Resumed, StockChanged};
        let events = [
            win(1, WinStatus::Confirmed, 10),
            control(StockChanged, Some(5), 11),
            control(Paused, None, 12),
            win(2, WinStatus::Held, 13),
            control(StockChanged, Some(-2), 14),
            control(Resumed, None, 15),
            control(StockChanged, Some(-1), 16),
            control(Paused, None, 17),
            control(Closed, None, 18),
        ];
        let batch = BatchTotals::fold(&events);
        let t = batch.campaigns[&1];
        assert_eq!((t.controls, t.events), (7, 9));
        assert_eq!((t.stock_added, t.stock_withdrawn), (5, 3));
        // The last pause or resume decides.
        assert_eq!(t.paused, Some(true));
        assert_eq!((t.closed_at, t.latest), (Some(at(18)), at(18)));
        // No win, confirmation or cancellation among them, and no day's figure.
        assert_eq!((t.count, t.quantity, t.active), (2, 4, 4));
        assert_eq!((t.confirmed, t.cancelled, t.expired), (1, 0, 0));
        assert_eq!((t.first, t.last), (Some(at(10)), Some(at(13))));
        let day = batch.days.values().copied().collect::<Vec<_>>();
        assert_eq!(
            day,
            [DayTotals {
                count: 2,
                quantity: 4,
                confirmed: 1,
                ..DayTotals::default()
            }]
        );
    }

    #[test]
    fn a_resume_after_a_pause_leaves_the_campaign_running_and_the_earliest_close_is_kept() {
        let batch = BatchTotals::fold(&[
            control(ControlKind::Paused, None, 1),
            control(ControlKind::Resumed, None, 2),
            control(ControlKind::Closed, None, 4),
            control(ControlKind::Closed, None, 3),
        ]);
        let t = batch.campaigns[&1];
        assert_eq!(t.paused, Some(false));
        assert_eq!(t.closed_at, Some(at(3)));
        assert_eq!((t.first, t.last, t.latest), (None, None, at(3)));
        assert!(batch.days.is_empty());
    }

    #[test]
    fn a_batch_without_a_pause_or_resume_leaves_the_paused_state_alone() {
        let batch = BatchTotals::fold(&[
            win(1, WinStatus::Held, 1),
            control(ControlKind::StockChanged, Some(3), 2),
        ]);
        let t = batch.campaigns[&1];
        assert_eq!((t.paused, t.closed_at), (None, None));
        assert_eq!((t.controls, t.stock_added, t.events), (1, 3, 2));
        let batch = BatchTotals::fold(&[win(1, WinStatus::Held, 1)]);
        let t = batch.campaigns[&1];
        assert_eq!(
            (t.paused, t.controls, t.stock_added, t.stock_withdrawn),
            (None, 0, 0, 0)
        );
    }

    #[test]
    fn a_batch_without_wins_has_no_win_times_and_gives_units_back() {
        let batch = BatchTotals::fold(&[cancel(1, CancelReason::User, 5)]);
        let t = batch.campaigns[&1];
        assert_eq!((t.first, t.last, t.latest), (None, None, at(5)));
        assert_eq!((t.count, t.cancelled, t.active, t.events), (0, 1, -2, 1));
        // The cancellation counts on its own day, with no win that day.
        let days: Vec<DayTotals> = batch.days.values().copied().collect();
        assert_eq!(
            days,
            [DayTotals {
                cancelled: 1,
                ..DayTotals::default()
            }]
        );
    }
}
