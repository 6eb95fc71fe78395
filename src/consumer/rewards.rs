//! The rewards consumer: grants `rewardPoints × quantity` to each winner once the win is final,
//! and takes it back when a final win is refunded (docs/design.md §11, §14), once per event
//! (`reward_grant`, one row per event that moves points, and the running balance in
//! `reward_account`), and the query behind `GET /api/v1/users/{userId}/rewards`.
//!
//! What moves points:
//! - `ParticipationAccepted` with status `CONFIRMED` (a campaign without a confirmation window):
//!   grants. A `HELD` win grants nothing yet;
//! - `ParticipationConfirmed`: grants (the held win is final now);
//! - `ParticipationCancelled` with `previousStatus` `CONFIRMED` (an admin's refund): a grant of
//!   minus the points, keyed by the cancelling event's id. A cancelled or expired hold takes
//!   nothing back: nothing was granted.
//!
//! A campaign's controls (`CampaignStockChanged`, `CampaignPaused`, `CampaignResumed`,
//! `CampaignClosed`) move nothing and write no grant row: they are about no win.
//!
//! Exactly once, with no inbox row: `reward_grant`'s primary key is the event id, and it is this
//! consumer's record of what it applied (`Record::Effect`). A redelivered event that moves points
//! fails on its grant row's key and is skipped; one that moves none wrote nothing and changes
//! nothing when applied again. So a win costs the grant and the balance, not a third row.

use crate::db::sql::{insert_rows, stmt};
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::{
    consumer::{Delivered, Handler, Record},
    db::{Db, Txn},
    events::{accepted::WinStatus, ParticipationEvent},
};

pub struct RewardsHandler;

/// The points `event` moves: positive to grant, negative to take back, `None` when it moves
/// none (no grant row either). The API bounds both factors (≤ 10⁹ points per unit, ≤ 10⁷
/// units), so the product fits; saturating keeps a hand-made event from failing the batch
/// forever.
fn points(event: &ParticipationEvent) -> Option<i64> {
    // A control is about no win: it moves nothing.
    let win = event.participation()?;
    let total = win.reward_points.saturating_mul(i64::from(win.quantity));
    match event {
        ParticipationEvent::Accepted(e) if e.status == WinStatus::Confirmed => Some(total),
        // Held: granted on its confirmation, if it comes.
        ParticipationEvent::Accepted(_) => None,
        ParticipationEvent::Confirmed(_) => Some(total),
        // A refund takes back what the confirmation (or the final win) granted. The contract
        // keeps both factors non-negative, so the negation cannot overflow.
        ParticipationEvent::Cancelled(e) if e.previous_status == WinStatus::Confirmed => {
            Some(-total)
        }
        ParticipationEvent::Cancelled(_) => None,
        ParticipationEvent::Campaign(_) => None,
    }
}

#[async_trait]
impl Handler for RewardsHandler {
    fn record(&self) -> Record {
        Record::Effect {
            table: "reward_grant",
        }
    }

    async fn apply(&self, txn: &Txn, events: &[Delivered]) -> Result<(), DbErr> {
        // Every event that moves points gets its grant row, also at 0 points (a campaign without
        // rewards): "granted" is then a fact per final win.
        let mut values: Vec<Value> = Vec::with_capacity(events.len() * 4);
        let mut per_user: BTreeMap<i64, i64> = BTreeMap::new();
        for d in events {
            let e = &d.event;
            let (Some(p), Some(win)) = (points(e), e.participation()) else {
                continue;
            };
            values.extend([
                e.event_id().to_string().into(),
                win.user_id.into(),
                e.campaign_id().into(),
                p.into(),
            ]);
            let balance = per_user.entry(win.user_id).or_insert(0);
            *balance = balance.saturating_add(p);
        }
        insert_rows(
            txn,
            "INSERT INTO reward_grant (event_id, user_id, campaign_id, points, granted_at)",
            "(?, ?, ?, ?, UTC_TIMESTAMP(6))",
            "",
            values,
        )
        .await?;
        let mut values: Vec<Value> = Vec::with_capacity(per_user.len() * 2);
        for (user, p) in &per_user {
            values.extend([(*user).into(), (*p).into()]);
        }
        insert_rows(
            txn,
            "INSERT INTO reward_account (user_id, points, updated_at)",
            "(?, ?, UTC_TIMESTAMP(6))",
            " ON DUPLICATE KEY UPDATE points = points + VALUES(points), updated_at = VALUES(updated_at)",
            values,
        )
        .await?;
        Ok(())
    }
}

/// The rewards endpoint's read, over the API's pool.
#[derive(Clone)]
pub struct RewardsView {
    db: Db,
}

impl RewardsView {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A user's balance (0 when unknown) and their latest `limit` grants.
    pub async fn user(&self, user_id: i64, limit: u32) -> Result<(i64, Vec<Grant>), DbErr> {
        user(&self.db, user_id, limit).await
    }
}

/// One grant, newest first.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Grant {
    pub campaign_id: i64,
    pub points: i64,
    pub event_id: String,
    pub granted_at: NaiveDateTime,
}

/// A user's balance (0 when unknown) and their latest `limit` grants.
#[tracing::instrument(level = "debug", skip(db), err)]
async fn user(
    db: &impl ConnectionTrait,
    user_id: i64,
    limit: u32,
) -> Result<(i64, Vec<Grant>), DbErr> {
    let balance = db
        .query_one_raw(stmt(
            "SELECT points FROM reward_account WHERE user_id = ?",
            vec![user_id.into()],
        ))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    let grants = Grant::find_by_statement(stmt(
        "SELECT campaign_id, points, event_id, granted_at FROM reward_grant \
         WHERE user_id = ? ORDER BY granted_at DESC, event_id DESC LIMIT ?",
        vec![user_id.into(), limit.into()],
    ))
    .all(db)
    .await?;
    Ok((balance, grants))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;
    use crate::events::{
        accepted::PARTICIPATION_ACCEPTED,
        control::{CampaignChanged, ControlKind},
        lifecycle::{
            CancelReason, ParticipationCancelled, ParticipationConfirmed, PARTICIPATION_CANCELLED,
            PARTICIPATION_CONFIRMED,
        },
        ParticipationAccepted,
    };

    fn accepted(status: WinStatus) -> ParticipationEvent {
        ParticipationEvent::Accepted(ParticipationAccepted {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_ACCEPTED.into(),
            occurred_at: DateTime::default(),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            sequence: 1,
            reward_points: 10,
            status,
            hold_expires_at: None,
            purchase_id: None,
        })
    }

    fn cancelled(reason: CancelReason, previous_status: WinStatus) -> ParticipationEvent {
        ParticipationEvent::Cancelled(ParticipationCancelled {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CANCELLED.into(),
            occurred_at: DateTime::default(),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reason,
            previous_status,
            reward_points: 10,
            purchase_id: None,
        })
    }

    #[test]
    fn points_move_when_a_win_becomes_final_and_back_when_a_final_win_is_refunded() {
        let confirmed = ParticipationEvent::Confirmed(ParticipationConfirmed {
            event_id: Uuid::now_v7(),
            event_type: PARTICIPATION_CONFIRMED.into(),
            occurred_at: DateTime::default(),
            campaign_id: 1,
            participation_id: 2,
            user_id: 3,
            quantity: 2,
            reward_points: 10,
            purchase_id: None,
        });
        assert_eq!(points(&accepted(WinStatus::Confirmed)), Some(20));
        assert_eq!(points(&accepted(WinStatus::Held)), None);
        assert_eq!(points(&confirmed), Some(20));
        let refund = cancelled(CancelReason::Admin, WinStatus::Confirmed);
        assert_eq!(points(&refund), Some(-20));
        for reason in [
            CancelReason::User,
            CancelReason::Admin,
            CancelReason::Expired,
        ] {
            assert_eq!(
                points(&cancelled(reason, WinStatus::Held)),
                None,
                "{reason:?}"
            );
        }
    }

    #[test]
    fn a_campaign_control_moves_no_points() {
        for (kind, delta) in [
            (ControlKind::StockChanged, Some(5)),
            (ControlKind::StockChanged, Some(-5)),
            (ControlKind::Paused, None),
            (ControlKind::Resumed, None),
            (ControlKind::Closed, None),
        ] {
            let control = ParticipationEvent::Campaign(CampaignChanged {
                event_id: Uuid::now_v7(),
                event_type: kind.event_type().into(),
                occurred_at: DateTime::default(),
                campaign_id: 1,
                control_seq: 1,
                changed_by: "ops".into(),
                delta,
                total_stock: 10,
                remaining_stock: 5,
            });
            assert_eq!(points(&control), None, "{kind:?}");
        }
    }
}
