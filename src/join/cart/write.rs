//! A purchase's transaction (docs/design.md §22): its items' wins and its purchase row, written
//! by the one transaction every win takes ([`transaction::write_wins`]): every item's guarded
//! decrement in campaign order (two carts over the same campaigns, in whatever order their items
//! were asked, wait for each other instead of deadlocking), the group's limit over the cart, the
//! rows, one commit. All of it commits or none does.

use chrono::Utc;
use sea_orm::DbErr;

use crate::{
    db::Db,
    hooks::Hooks,
    join::{
        cart::store::PurchaseRow,
        in_doubt::InDoubt,
        transaction::{self, NewParticipation, Refused, WriteError},
    },
};

/// A cart to write: its items' wins, in the order the cart asked for them (each carries the
/// group's limit), and the purchase's own row.
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub row: PurchaseRow,
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
    #[error("the user holds {held} of the group's {limit} units already")]
    GroupLimit { limit: i32, held: i64 },
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
#[tracing::instrument(level = "debug", skip_all, fields(group_id = p.row.group_id, user_id = p.row.user_id, items = p.items.len()), err(level = "debug"))]
pub async fn write(
    db: &Db,
    p: &NewPurchase,
    hooks: &dyn Hooks,
) -> Result<WrittenPurchase, PurchaseWriteError> {
    let committed = transaction::write_wins(db, &p.items, Some(&p.row), hooks)
        .await
        .map_err(refused)?;
    let purchase_id = committed
        .purchase_id
        .ok_or_else(|| DbErr::Custom("a purchase committed without its row".into()))?;
    Ok(WrittenPurchase {
        purchase_id,
        participation_ids: committed.wins.iter().map(|w| w.participation_id).collect(),
        accepted_at: committed.wins[0].accepted_at,
    })
}

/// The transaction's refusal as the purchase's.
fn refused(Refused { index, error }: Refused) -> PurchaseWriteError {
    match error {
        WriteError::Db(e) => PurchaseWriteError::Db(e),
        WriteError::GroupLimit { limit, held } => PurchaseWriteError::GroupLimit { limit, held },
        WriteError::KeyUsed => PurchaseWriteError::KeyUsed,
        WriteError::Stale => PurchaseWriteError::Stale,
        WriteError::InDoubt(doubt) => PurchaseWriteError::InDoubt(doubt),
        refused => PurchaseWriteError::Item { index, refused },
    }
}
