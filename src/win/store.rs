//! Participation lookups: by user, and a campaign's participations a page at a time. The one
//! write is the transaction in [`crate::write::transaction`].

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    db::sql::{in_list, stmt, MAX_IDS},
    win::status::ParticipationStatus,
};

/// A stored participation with the id of the event that announced it (`None` for a win of the
/// synchronous baseline, which writes no outbox row, and for a win older than the column whose
/// outbox row cleanup had removed).
#[derive(Debug, Clone, FromQueryResult, serde::Serialize, serde::Deserialize)]
pub struct StoredParticipation {
    pub id: i64,
    pub campaign_id: i64,
    pub user_id: i64,
    pub quantity: i32,
    pub sequence: i64,
    pub created_at: NaiveDateTime,
    pub event_id: Option<String>,
    /// The `Idempotency-Key` of the join that wrote it, if it had one.
    pub idempotency_key: Option<String>,
    /// `HELD`, `CONFIRMED`, `CANCELLED` or `EXPIRED` (see `ParticipationStatus`).
    pub status: String,
    pub hold_expires_at: Option<NaiveDateTime>,
    /// The purchase (cart) it is an item of (docs/design.md §22).
    pub purchase_id: Option<i64>,
}

impl StoredParticipation {
    /// The status its join answered when it committed: `HELD` (until `hold_expires_at`) when it
    /// was won with a confirmation window, else `CONFIRMED`. A retry with the join's
    /// Idempotency-Key, or an answer found after a lost one, gives the original 201 body
    /// (docs/design.md §3), not what became of the win since (confirmed, cancelled,
    /// expired), which reads of the win show.
    pub fn accepted_status(&self) -> ParticipationStatus {
        match self.hold_expires_at {
            Some(_) => ParticipationStatus::Held,
            None => ParticipationStatus::Confirmed,
        }
    }

    /// Whether this row is the win whose event is `event_id`: a row of the same campaign and
    /// user may be another win of theirs (an earlier one).
    pub fn is_event(&self, event_id: uuid::Uuid) -> bool {
        (self.event_id.as_deref()).and_then(|id| uuid::Uuid::parse_str(id).ok()) == Some(event_id)
    }

    /// The win as its join answered it ([`Self::accepted_status`]).
    pub fn into_accepted(mut self) -> Self {
        self.status = self.accepted_status().as_str().to_owned();
        self
    }
}

const SELECT: &str =
    "SELECT p.id, p.campaign_id, p.user_id, p.quantity, p.sequence, p.created_at, p.idempotency_key, p.status, p.hold_expires_at, \
     p.event_id, p.purchase_id FROM participation p";

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

/// A purchase's items, in campaign order.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn of_purchase(
    db: &impl ConnectionTrait,
    purchase_id: i64,
) -> Result<Vec<StoredParticipation>, DbErr> {
    StoredParticipation::find_by_statement(stmt(
        &format!("{SELECT} WHERE p.purchase_id = ? ORDER BY p.campaign_id"),
        vec![purchase_id.into()],
    ))
    .all(db)
    .await
}

/// The participations of `users` in a campaign (those that exist), [`MAX_IDS`] users a statement.
#[tracing::instrument(level = "debug", skip_all, fields(campaign_id, users = users.len()), err)]
pub async fn find_users(
    db: &impl ConnectionTrait,
    campaign_id: i64,
    users: &[i64],
) -> Result<Vec<StoredParticipation>, DbErr> {
    let mut found = Vec::with_capacity(users.len());
    for chunk in users.chunks(MAX_IDS) {
        let mut values = vec![campaign_id.into()];
        let list = in_list(&mut values, chunk.iter().map(|&u| u.into()));
        found.extend(
            StoredParticipation::find_by_statement(stmt(
                &format!("{SELECT} WHERE p.campaign_id = ? AND p.user_id IN ({list})"),
                values,
            ))
            .all(db)
            .await?,
        );
    }
    Ok(found)
}
