//! The `purchase` table: a purchase's row written with its items (`join::transaction`), and
//! read back by id (its answer, the confirm and cancel of a whole purchase) or by its user's
//! Idempotency-Key (a retried request answered with the purchase it wrote).

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        sql::stmt,
        time::to_db,
        Txn,
    },
    win::store::{self, StoredParticipation},
};

/// A purchase's own row, written in its items' transaction.
#[derive(Debug, Clone)]
pub struct PurchaseRow {
    pub group_id: i64,
    pub user_id: i64,
    pub idempotency_key: Option<String>,
}

/// Inserts the purchase's row; its id, or `None` when the user's Idempotency-Key is taken
/// (another request with it committed first).
pub async fn insert_purchase(
    txn: &Txn,
    p: &PurchaseRow,
    at: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let inserted = txn
        .execute_raw(stmt(
            "INSERT INTO purchase (group_id, user_id, idempotency_key, created_at) \
             VALUES (?, ?, ?, ?)",
            vec![
                p.group_id.into(),
                p.user_id.into(),
                p.idempotency_key.clone().into(),
                to_db(at).into(),
            ],
        ))
        .await;
    match inserted {
        Ok(done) => i64::try_from(done.last_insert_id())
            .map(Some)
            .map_err(|e| DbErr::Custom(e.to_string())),
        Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => Ok(None),
        Err(e) => Err(e),
    }
}

/// A purchase as stored, with its items.
#[derive(Debug, Clone)]
pub struct StoredPurchase {
    pub id: i64,
    pub group_id: i64,
    pub user_id: i64,
    pub idempotency_key: Option<String>,
    pub created_at: NaiveDateTime,
    /// In campaign order.
    pub items: Vec<StoredParticipation>,
}

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    group_id: i64,
    user_id: i64,
    idempotency_key: Option<String>,
    created_at: NaiveDateTime,
}

const SELECT: &str = "SELECT id, group_id, user_id, idempotency_key, created_at FROM purchase";

/// Purchase `id`, with its items.
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<StoredPurchase>, DbErr> {
    let row = Row::find_by_statement(stmt(&format!("{SELECT} WHERE id = ?"), vec![id.into()]))
        .one(db)
        .await?;
    with_items(db, row).await
}

/// The purchase `user_id` wrote with `key`, with its items.
pub async fn find_by_key(
    db: &impl ConnectionTrait,
    user_id: i64,
    key: &str,
) -> Result<Option<StoredPurchase>, DbErr> {
    let row = Row::find_by_statement(stmt(
        &format!("{SELECT} WHERE user_id = ? AND idempotency_key = ?"),
        vec![user_id.into(), key.into()],
    ))
    .one(db)
    .await?;
    with_items(db, row).await
}

async fn with_items(
    db: &impl ConnectionTrait,
    row: Option<Row>,
) -> Result<Option<StoredPurchase>, DbErr> {
    let Some(r) = row else {
        return Ok(None);
    };
    let items = store::of_purchase(db, r.id).await?;
    Ok(Some(StoredPurchase {
        id: r.id,
        group_id: r.group_id,
        user_id: r.user_id,
        idempotency_key: r.idempotency_key,
        created_at: r.created_at,
        items,
    }))
}

impl StoredPurchase {
    /// Whether it holds exactly these (campaign, quantity) items.
    pub fn holds(&self, items: &[(i64, i32)]) -> bool {
        let mut asked: Vec<(i64, i32)> = items.to_vec();
        asked.sort_unstable();
        let stored: Vec<(i64, i32)> = self
            .items
            .iter()
            .map(|p| (p.campaign_id, p.quantity))
            .collect();
        asked == stored
    }
}
