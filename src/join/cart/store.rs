//! A purchase read back: by id (its answer, the confirm and cancel of a whole purchase), or by
//! its user's Idempotency-Key (a retried request answered with the purchase it wrote). Its row
//! is written with its items (`write::rows::PurchaseRow`).

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    db::sql::stmt,
    win::store::{self, StoredParticipation},
};

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

impl StoredPurchase {
    /// The purchase as its request answered it when it committed: every item in the state it
    /// was accepted in (`StoredParticipation::into_accepted`), as a retry of its key expects.
    pub fn into_accepted(mut self) -> Self {
        self.items = self.items.into_iter().map(|p| p.into_accepted()).collect();
        self
    }
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
