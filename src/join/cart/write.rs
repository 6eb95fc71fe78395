//! A purchase's transaction (docs/design.md §22): every item's guarded decrement, the group's
//! limit over the cart, the purchase row, every item's participation and outbox row, one commit.
//! All of it commits or none does.
//!
//! The items' rows are locked in campaign order (the guarded decrements come first), so two carts
//! over the same campaigns, in whatever order their items were asked, wait for each other instead
//! of deadlocking; a join of one campaign locks one of those rows, as before. Each campaign's
//! outbox rows still take their ids under its row's lock (§2.5).

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};

use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        sql::stmt,
        time::to_db,
        Db, Txn,
    },
    group::guard::{self, Held, Take},
    hooks::Hooks,
    join::{
        guard::{guarded_decrement, Guard},
        in_doubt::{self, InDoubt},
        transaction::{
            accepted_events, insert_participations, NewParticipation, WinState, WriteError,
        },
    },
    outbox,
};

/// A cart to write: its items' wins, in the order the cart asked for them.
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub group_id: i64,
    pub user_id: i64,
    /// The group's limit (every item's campaign is in the group).
    pub limit: i32,
    pub idempotency_key: Option<String>,
    pub items: Vec<NewParticipation>,
    /// Each item's campaign's count of returns when the gate reserved it (a refusal by MySQL
    /// gives it back with it, see `Release::SoldOut`).
    pub returns_seen: Vec<i64>,
}

/// A committed purchase: its id, and its items' participation ids in cart order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPurchase {
    pub purchase_id: i64,
    pub participation_ids: Vec<i64>,
    pub accepted_at: chrono::DateTime<Utc>,
}

/// Why a purchase did not commit.
#[derive(Debug, thiserror::Error)]
pub enum PurchaseWriteError {
    /// Item `index`'s campaign refused it (too few units in MySQL, paused, closed, its window
    /// over, or the user has a win there already). Nothing was written.
    #[error("item {index} was refused: {refused}")]
    Item { index: usize, refused: WriteError },
    /// The cart would take the user past the group's limit in MySQL. Nothing was written.
    #[error("the user holds {held} units of the group already")]
    GroupLimit { held: i64 },
    /// Another request with this user's Idempotency-Key committed its purchase first.
    #[error("a purchase with this Idempotency-Key exists")]
    KeyUsed,
    /// Past an item's commit deadline (its reservation may be given back by the reconciler).
    #[error("the reservations outlived their commit deadline")]
    Stale,
    /// The COMMIT went unanswered: it may have committed.
    #[error("the commit's outcome is unknown: {}", .0.error())]
    InDoubt(std::sync::Arc<InDoubt>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Writes the purchase in one transaction.
#[tracing::instrument(level = "debug", skip_all, fields(group_id = p.group_id, user_id = p.user_id, items = p.items.len()), err(level = "debug"))]
pub async fn write(
    db: &Db,
    p: &NewPurchase,
    hooks: &dyn Hooks,
) -> Result<WrittenPurchase, PurchaseWriteError> {
    let txn = db.begin().await?;
    match write_in(&txn, p, hooks).await {
        Ok(written) => {
            let session = in_doubt::session_of(&txn).await?;
            hooks.before_commit().await;
            if let Err(e) = txn.commit().await {
                return Err(if db_error::outcome_unknown(&e) {
                    PurchaseWriteError::InDoubt(InDoubt::new(session, e))
                } else {
                    e.into()
                });
            }
            Ok(written)
        }
        Err(refused) => {
            txn.rollback().await?;
            Err(refused)
        }
    }
}

/// Everything before the commit; the caller rolls back on an error.
async fn write_in(
    txn: &Txn,
    p: &NewPurchase,
    hooks: &dyn Hooks,
) -> Result<WrittenPurchase, PurchaseWriteError> {
    let mut order: Vec<usize> = (0..p.items.len()).collect();
    order.sort_by_key(|&i| p.items[i].entry.campaign_id);
    for &index in &order {
        let w = &p.items[index];
        let guard = Guard {
            slot: w.entry.slot(),
            total: i64::from(w.entry.quantity),
            count: 1,
            max_sequence: w.sequence,
        };
        if let Err(refused) = guarded_decrement(txn, &guard, hooks).await {
            return Err(item_refused(index, refused));
        }
    }
    let now = std::time::Instant::now();
    if p.items.iter().any(|w| now > w.commit_by) {
        return Err(PurchaseWriteError::Stale);
    }
    let accepted_at = crate::db::time::precision(Utc::now());
    if let Some(index) = p
        .items
        .iter()
        .position(|w| w.ends_at.is_some_and(|end| accepted_at >= end))
    {
        return Err(PurchaseWriteError::Item {
            index,
            refused: WriteError::Closed,
        });
    }
    let units = p.items.iter().map(|w| i64::from(w.entry.quantity)).sum();
    let take = Take {
        user_id: p.user_id,
        units,
    };
    if let Held::Over { total, .. } = guard::take(txn, p.group_id, p.limit, &[take]).await? {
        return Err(PurchaseWriteError::GroupLimit {
            held: total - units,
        });
    }
    let purchase_id = insert_purchase(txn, p, accepted_at).await?;
    let items: Vec<NewParticipation> = p
        .items
        .iter()
        .map(|w| NewParticipation {
            purchase_id: Some(purchase_id),
            ..w.clone()
        })
        .collect();
    let states: Vec<WinState> = items.iter().map(|w| w.status_at(accepted_at)).collect();
    let mut ids = vec![0; items.len()];
    for &index in &order {
        let one = std::slice::from_ref(&items[index]);
        match insert_participations(txn, one, &states[index..=index], accepted_at).await {
            Ok(id) => ids[index] = id[0],
            Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
                return Err(PurchaseWriteError::Item {
                    index,
                    refused: WriteError::Duplicate,
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    let events = accepted_events(&items, &ids, &states, accepted_at);
    outbox::table::insert(txn, &events).await?;
    Ok(WrittenPurchase {
        purchase_id,
        participation_ids: ids,
        accepted_at,
    })
}

/// An item's refusal by its guarded decrement; a database failure stays one.
fn item_refused(index: usize, refused: WriteError) -> PurchaseWriteError {
    match refused {
        WriteError::Db(e) => PurchaseWriteError::Db(e),
        refused => PurchaseWriteError::Item { index, refused },
    }
}

async fn insert_purchase(
    txn: &Txn,
    p: &NewPurchase,
    at: chrono::DateTime<Utc>,
) -> Result<i64, PurchaseWriteError> {
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
            .map_err(|e| PurchaseWriteError::Db(DbErr::Custom(e.to_string()))),
        Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
            Err(PurchaseWriteError::KeyUsed)
        }
        Err(e) => Err(e.into()),
    }
}
