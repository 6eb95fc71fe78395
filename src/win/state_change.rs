//! The SQL of a participation's state changes (docs/design.md §14): lock the row, then change it
//! with a guard on the state it was locked in; a change that closes a win gives its units back to
//! `remaining_stock` and writes its `gate_return` marker in the same transaction. The deadline of a
//! hold is compared with the database's clock, so the confirm endpoint and every instance's
//! sweeper agree on which side of it they are.

use chrono::NaiveDateTime;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    db::{sql::stmt, Db, Txn},
    win::status::ParticipationStatus,
};

/// A participation row locked for a state change.
#[derive(Debug, Clone)]
pub struct Locked {
    pub id: i64,
    pub campaign_id: i64,
    /// The win's bucket (0 when its campaign is not bucketed, docs/design.md §21).
    pub bucket: i16,
    pub user_id: i64,
    pub quantity: i32,
    pub status: ParticipationStatus,
    /// The hold's deadline has not passed (always true for a win that is not held).
    pub in_time: bool,
    /// The purchase it is an item of (docs/design.md §22): its changes are the purchase's.
    pub purchase_id: Option<i64>,
}

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    campaign_id: i64,
    bucket: i16,
    user_id: i64,
    quantity: i32,
    status: String,
    in_time: i32,
    purchase_id: Option<i64>,
}

const LOCK: &str = "SELECT id, campaign_id, bucket, user_id, quantity, status, \
     CAST(hold_expires_at IS NULL OR hold_expires_at > UTC_TIMESTAMP(6) AS SIGNED) AS in_time, \
     purchase_id FROM participation";

fn locked(row: Option<Row>) -> Option<Locked> {
    row.map(|r| Locked {
        id: r.id,
        campaign_id: r.campaign_id,
        bucket: r.bucket,
        user_id: r.user_id,
        quantity: r.quantity,
        status: ParticipationStatus::parse(&r.status),
        in_time: r.in_time != 0,
        purchase_id: r.purchase_id,
    })
}

/// The user's participation in the campaign, locked until the transaction ends.
pub async fn lock(txn: &Txn, campaign_id: i64, user_id: i64) -> Result<Option<Locked>, DbErr> {
    let sql = format!("{LOCK} WHERE campaign_id = ? AND user_id = ? FOR UPDATE");
    let row = Row::find_by_statement(stmt(&sql, vec![campaign_id.into(), user_id.into()]))
        .one(txn)
        .await?;
    Ok(locked(row))
}

/// A purchase's items, locked until the transaction ends, in campaign order (the order every
/// transaction over several campaigns takes their rows in).
pub async fn lock_purchase(txn: &Txn, purchase_id: i64) -> Result<Vec<Locked>, DbErr> {
    let sql = format!("{LOCK} WHERE purchase_id = ? ORDER BY campaign_id FOR UPDATE");
    let rows = Row::find_by_statement(stmt(&sql, vec![purchase_id.into()]))
        .all(txn)
        .await?;
    Ok(rows.into_iter().filter_map(|r| locked(Some(r))).collect())
}

/// A participation by id, locked until the transaction ends.
pub async fn lock_by_id(txn: &Txn, id: i64) -> Result<Option<Locked>, DbErr> {
    let sql = format!("{LOCK} WHERE id = ? FOR UPDATE");
    let row = Row::find_by_statement(stmt(&sql, vec![id.into()]))
        .one(txn)
        .await?;
    Ok(locked(row))
}

/// HELD → CONFIRMED, if the hold's deadline has still not passed; returns when it was confirmed
/// (`confirmed_at`, the database's clock), or `None` when the deadline passed after the row was
/// locked (the caller expires it instead).
///
/// The campaign row is locked first, as every transaction that writes an event of the campaign
/// does before it takes an outbox id (docs/design.md §2.5): a campaign's ids then commit in id
/// order, which the relay's per-key order rests on. Without it, two confirmations (or a
/// confirmation and a join) could commit their ids out of order. That lock may be waited for
/// (the campaign's group commit holds it), so the deadline is checked again by the `UPDATE`
/// itself: a confirmation never takes effect past the deadline, however long the wait (the
/// proof run saw one confirmed 151 ms late, checked only when the row was locked).
///
/// In a bucketed campaign the win's events are keyed by its bucket, and the bucket's row is the
/// lock its wins take (docs/design.md §21): that row is locked instead.
pub async fn confirm(
    txn: &Txn,
    win: &Locked,
    bucketed: bool,
) -> Result<Option<NaiveDateTime>, DbErr> {
    let order_lock = if bucketed {
        stmt(
            "SELECT bucket FROM campaign_bucket WHERE campaign_id = ? AND bucket = ? FOR UPDATE",
            vec![win.campaign_id.into(), win.bucket.into()],
        )
    } else {
        stmt(
            "SELECT id FROM campaign WHERE id = ? FOR UPDATE",
            vec![win.campaign_id.into()],
        )
    };
    txn.execute_raw(order_lock).await?;
    let res = txn
        .execute_raw(stmt(
            "UPDATE participation SET status = 'CONFIRMED', confirmed_at = UTC_TIMESTAMP(6) \
             WHERE id = ? AND status = 'HELD' \
             AND (hold_expires_at IS NULL OR hold_expires_at > UTC_TIMESTAMP(6))",
            vec![win.id.into()],
        ))
        .await?;
    // The row is locked HELD: matching nothing means its deadline has passed.
    if res.rows_affected() == 0 {
        return Ok(None);
    }
    expect_one(res.rows_affected(), win.id)?;
    let row = txn
        .query_one_raw(stmt(
            "SELECT confirmed_at FROM participation WHERE id = ?",
            vec![win.id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("participation {}", win.id)))?;
    Ok(Some(row.try_get_by_index(0)?))
}

/// HELD or CONFIRMED → `to` (CANCELLED or EXPIRED): `units` (the win's quantity) go back to the
/// campaign's stock (a bucketed campaign's: the win's bucket's row) and a `gate_return` marker
/// says the gate (the bucket's) must get the win's quantity too.
pub async fn close(
    txn: &Txn,
    win: &Locked,
    bucketed: bool,
    (to, reason): (ParticipationStatus, &str),
    units: i32,
) -> Result<(), DbErr> {
    let res = txn
        .execute_raw(stmt(
            "UPDATE participation SET status = ?, cancelled_at = UTC_TIMESTAMP(6), cancel_reason = ? \
             WHERE id = ? AND status IN ('HELD', 'CONFIRMED')",
            vec![to.as_str().into(), reason.into(), win.id.into()],
        ))
        .await?;
    expect_one(res.rows_affected(), win.id)?;
    let back = if bucketed {
        stmt(
            "UPDATE campaign_bucket SET remaining_stock = remaining_stock + ? \
             WHERE campaign_id = ? AND bucket = ?",
            vec![units.into(), win.campaign_id.into(), win.bucket.into()],
        )
    } else {
        stmt(
            "UPDATE campaign SET remaining_stock = remaining_stock + ?, updated_at = UTC_TIMESTAMP(6) WHERE id = ?",
            vec![units.into(), win.campaign_id.into()],
        )
    };
    txn.execute_raw(back).await?;
    txn.execute_raw(stmt(
        "INSERT INTO gate_return (participation_id, campaign_id, bucket, quantity, created_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
        vec![
            win.id.into(),
            win.campaign_id.into(),
            win.bucket.into(),
            win.quantity.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The row was locked in the state the guard names; anything else is a bug worth an error.
fn expect_one(rows: u64, id: i64) -> Result<(), DbErr> {
    match rows {
        1 => Ok(()),
        n => Err(DbErr::Custom(format!(
            "participation {id}: the guarded state change matched {n} rows"
        ))),
    }
}

/// Up to `limit` held wins past their deadline, oldest deadline first (the sweeper's work).
pub async fn due_holds(db: &Db, limit: u32) -> Result<Vec<i64>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT id FROM participation FORCE INDEX (ix_participation_hold) \
             WHERE status = 'HELD' AND hold_expires_at <= UTC_TIMESTAMP(6) \
             ORDER BY hold_expires_at LIMIT ?",
            vec![limit.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index(0)).collect()
}

/// A `gate_return` marker: units MySQL took back that the gate may not have yet.
#[derive(Debug, Clone, FromQueryResult)]
pub struct PendingReturn {
    pub participation_id: i64,
    pub campaign_id: i64,
    /// The win's bucket (0 when its campaign is not bucketed).
    pub bucket: i16,
    pub quantity: i32,
    pub created_at: NaiveDateTime,
}

/// Where a marker sits in the order the loop reads them: `(created_at, participation_id)`,
/// unique (the key is `participation_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnKey(NaiveDateTime, i64);

impl PendingReturn {
    pub fn key(&self) -> ReturnKey {
        ReturnKey(self.created_at, self.participation_id)
    }
}

/// The first `limit` markers after `after` (from the oldest without it).
pub async fn pending_returns(
    db: &Db,
    after: Option<&ReturnKey>,
    limit: u32,
) -> Result<Vec<PendingReturn>, DbErr> {
    const SELECT: &str =
        "SELECT participation_id, campaign_id, bucket, quantity, created_at FROM gate_return";
    const ORDER: &str = "ORDER BY created_at, participation_id LIMIT ?";
    let statement = match after {
        None => stmt(&format!("{SELECT} {ORDER}"), vec![limit.into()]),
        Some(ReturnKey(at, id)) => stmt(
            &format!("{SELECT} WHERE (created_at, participation_id) > (?, ?) {ORDER}"),
            vec![(*at).into(), (*id).into(), limit.into()],
        ),
    };
    PendingReturn::find_by_statement(statement).all(db).await
}

/// The gate has the marker's units: forget it.
pub async fn forget_return(db: &Db, participation_id: i64) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM gate_return WHERE participation_id = ?",
        vec![participation_id.into()],
    ))
    .await?;
    Ok(())
}
