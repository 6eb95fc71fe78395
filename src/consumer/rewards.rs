//! The rewards consumer: grants `rewardPoints × quantity` to each winner, once per event
//! (`reward_grant`, one row per event, and the running balance in `reward_account`), and the
//! query behind `GET /api/v1/users/{userId}/rewards`.

use crate::db::sql::{insert_rows, stmt};
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use super::{Delivered, Handler};
use crate::db::{Db, Txn};

pub struct RewardsHandler;

/// Points of one event. The API bounds both factors (≤ 10⁹ points per unit, ≤ 10⁷ units), so
/// the product fits; saturating keeps a hand-made event from failing the batch forever.
fn points(d: &Delivered) -> i64 {
    d.event
        .reward_points
        .saturating_mul(i64::from(d.event.quantity))
}

#[async_trait]
impl Handler for RewardsHandler {
    async fn apply(&self, txn: &Txn, events: &[Delivered]) -> Result<(), DbErr> {
        // Every event gets its grant row, also at 0 points: "granted" is then a fact per event.
        let mut values: Vec<Value> = Vec::with_capacity(events.len() * 4);
        let mut per_user: BTreeMap<i64, i64> = BTreeMap::new();
        for d in events {
            let p = points(d);
            values.extend([
                d.event.event_id.to_string().into(),
                d.event.user_id.into(),
                d.event.campaign_id.into(),
                p.into(),
            ]);
            let balance = per_user.entry(d.event.user_id).or_insert(0);
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
