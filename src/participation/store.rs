//! SQL of the participation path: the one transaction that writes a win and its outbox event,
//! and participation lookups.

use crate::db::sql::stmt;
use crate::db::Db;
use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use super::entry::Entry;
use crate::{
    campaign::repo::naive,
    db::error::{self as db_error, DbErrorKind},
    outbox::{self, event::PARTICIPATION_ACCEPTED, NewOutboxEvent, ParticipationAccepted},
};

/// A win to write.
#[derive(Debug, Clone)]
pub struct NewParticipation<'a> {
    pub entry: Entry,
    pub sequence: i64,
    /// The campaign's points per unit, carried in the event.
    pub reward_points: i64,
    pub event_id: Uuid,
    pub topic: &'a str,
    pub traceparent: Option<&'a str>,
}

/// Why the transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// UNIQUE(campaign_id, user_id): the user already won (Redis did not know, e.g. after a reload).
    #[error("the user already has a participation in this campaign")]
    Duplicate,
    /// The guarded decrement matched no row: MySQL has less stock than Redis believed.
    #[error("the campaign has {remaining_stock} units left in MySQL")]
    SoldOut { remaining_stock: i64 },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Writes participation + outbox row and decrements the stock, in one transaction.
///
/// The guarded `UPDATE campaign` runs first, as DESIGN.md §6 orders it: it takes the campaign
/// row's lock, so a campaign's transactions take their ids and commit one after another, and
/// its outbox rows become visible in id order (the relay then publishes them in exactly that
/// order). A sold-out answer also costs no insert.
#[tracing::instrument(level = "debug", skip_all, fields(campaign_id = p.entry.campaign_id, user_id = p.entry.user_id), err(level = "debug"))]
pub async fn write(db: &Db, p: &NewParticipation<'_>) -> Result<(i64, DateTime<Utc>), WriteError> {
    let txn = db.begin().await?;
    let updated_at = naive(crate::campaign::db_precision(Utc::now()));

    let updated = txn
        .execute_raw(stmt(
            "UPDATE campaign SET remaining_stock = remaining_stock - ?, accepted_count = accepted_count + 1, updated_at = ? \
             WHERE id = ? AND remaining_stock >= ?",
            vec![
                p.entry.quantity.into(),
                updated_at.into(),
                p.entry.campaign_id.into(),
                p.entry.quantity.into(),
            ],
        ))
        .await?;
    if updated.rows_affected() == 0 {
        let remaining_stock = txn
            .query_one_raw(stmt(
                "SELECT remaining_stock FROM campaign WHERE id = ?",
                vec![p.entry.campaign_id.into()],
            ))
            .await?
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        txn.rollback().await?;
        return Err(WriteError::SoldOut { remaining_stock });
    }
    // The win is the guarded decrement: its time is the participation's acceptedAt.
    let accepted_at = crate::campaign::db_precision(Utc::now());
    let created_at = naive(accepted_at);

    let inserted = txn
        .execute_raw(stmt(
            "INSERT INTO participation (campaign_id, user_id, quantity, sequence, created_at) VALUES (?, ?, ?, ?, ?)",
            vec![
                p.entry.campaign_id.into(),
                p.entry.user_id.into(),
                p.entry.quantity.into(),
                p.sequence.into(),
                created_at.into(),
            ],
        ))
        .await;
    let participation_id = match inserted {
        Ok(res) => i64::try_from(res.last_insert_id()).map_err(|e| DbErr::Custom(e.to_string()))?,
        Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
            txn.rollback().await?;
            return Err(WriteError::Duplicate);
        }
        Err(e) => return Err(e.into()),
    };

    let event = ParticipationAccepted {
        event_id: p.event_id,
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: accepted_at,
        campaign_id: p.entry.campaign_id,
        participation_id,
        user_id: p.entry.user_id,
        quantity: p.entry.quantity,
        sequence: p.sequence,
        reward_points: p.reward_points,
    };
    outbox::table::insert(
        &txn,
        &[NewOutboxEvent::participation_accepted(
            &event,
            p.topic,
            p.traceparent,
        )],
    )
    .await?;

    txn.commit().await?;
    Ok((participation_id, accepted_at))
}

/// A stored participation with its event id (`None` once cleanup removed the outbox row).
#[derive(Debug, Clone, FromQueryResult)]
pub struct StoredParticipation {
    pub id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
    pub created_at: NaiveDateTime,
    pub event_id: Option<String>,
}

const SELECT: &str =
    "SELECT p.id, p.campaign_id, p.user_id, p.quantity, p.sequence, p.created_at, \
     (SELECT o.event_id FROM outbox_event o WHERE o.aggregate_type = 'participation' \
      AND o.aggregate_id = CAST(p.id AS CHAR) LIMIT 1) AS event_id FROM participation p";

/// A campaign's participations in id (commit) order, a page at a time.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn list(
    db: &impl ConnectionTrait,
    campaign_id: i64,
    after_id: i64,
    limit: u32,
) -> Result<Vec<StoredParticipation>, DbErr> {
    StoredParticipation::find_by_statement(stmt(
        &format!("{SELECT} WHERE p.campaign_id = ? AND p.id > ? ORDER BY p.id LIMIT ?"),
        vec![campaign_id.into(), after_id.into(), limit.into()],
    ))
    .all(db)
    .await
}

#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn find(
    db: &impl ConnectionTrait,
    campaign_id: i64,
    user_id: i64,
) -> Result<Option<StoredParticipation>, DbErr> {
    StoredParticipation::find_by_statement(stmt(
        &format!("{SELECT} WHERE p.campaign_id = ? AND p.user_id = ?"),
        vec![campaign_id.into(), user_id.into()],
    ))
    .one(db)
    .await
}
