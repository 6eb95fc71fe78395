//! The buckets' MySQL rows (docs/design.md §21): each bucket's stock is one `campaign_bucket` row,
//! the guard its wins decrement; a bucketed campaign's `campaign.remaining_stock` is the pool
//! not dealt yet. Units move between rows by transfers, each one transaction that also records it
//! (`bucket_transfer`) and tells the destination's gate (`gate_transfer`, the durable path
//! `gate_return` markers take, docs/design.md §14).
//!
//! Locks are taken in one order, so no two of these transactions deadlock: the campaign row
//! (the pool; a control) before bucket rows, bucket rows in ascending bucket order. A win locks
//! only its bucket's row.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};
use uuid::Uuid;

use crate::{
    db::{
        sql::{insert_rows, stmt},
        time::to_db,
        Db, Txn,
    },
    hooks::Hooks,
};

/// One bucket's row, as the admin view shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct BucketRow {
    pub bucket: i16,
    /// Units dealt to the bucket and neither sold nor moved out (reserved ones included).
    pub remaining_stock: i64,
    /// Wins committed in the bucket.
    pub accepted_count: i64,
    /// Units transferred in (from the pool or a sibling) and out (to a sibling) so far.
    pub units_in: i64,
    pub units_out: i64,
}

/// A committed transfer: the units the destination's gate is now owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub transfer_id: i64,
    pub bucket: u16,
    pub units: i64,
}

/// What a transfer from a sibling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steal {
    Moved(Moved),
    /// Past its deadline under the rows' locks: the units the sibling's gate set aside may be
    /// given back already ([`take_committed`]), so nothing moved.
    Stale,
    /// The sibling's row has fewer units than its gate set aside (the gate ran ahead of MySQL):
    /// nothing moved; the drift audit reconciles the two.
    Short,
}

/// Writes the rows of a new bucketed campaign, `slices[b]` units in bucket `b`, in the
/// campaign's own creation transaction.
pub async fn insert_rows_for(txn: &Txn, campaign_id: i64, slices: &[i64]) -> Result<(), DbErr> {
    let values = slices
        .iter()
        .enumerate()
        .flat_map(|(bucket, &units)| {
            let bucket = i16::try_from(bucket).unwrap_or(i16::MAX);
            [campaign_id.into(), bucket.into(), units.into()]
        })
        .collect::<Vec<Value>>();
    insert_rows(
        txn,
        "INSERT INTO campaign_bucket (campaign_id, bucket, remaining_stock)",
        "(?, ?, ?)",
        "",
        values,
    )
    .await?;
    Ok(())
}

/// Moves up to `want` units from the pool to `bucket`: `None` when the pool is empty (then only
/// siblings have units). One transaction: the pool's row lock, the bucket's, the record and the
/// gate's marker.
#[tracing::instrument(level = "debug", skip(db), err)]
pub async fn refill(
    db: &Db,
    campaign_id: i64,
    bucket: u16,
    want: i64,
) -> Result<Option<Moved>, DbErr> {
    // Once the pool is empty every dry bucket asks; a plain read spares them the pool's lock
    // (units a control adds meanwhile are seen by the campaign's snapshot, and asked for again).
    if pool(db, campaign_id).await? <= 0 {
        return Ok(None);
    }
    let txn = db.begin().await?;
    let pool: i64 = scalar(
        &txn,
        "SELECT remaining_stock FROM campaign WHERE id = ? AND buckets > 1 FOR UPDATE",
        vec![campaign_id.into()],
    )
    .await?
    .unwrap_or(0);
    let units = want.min(pool);
    if units <= 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    txn.execute_raw(stmt(
        "UPDATE campaign SET remaining_stock = remaining_stock - ? WHERE id = ?",
        vec![units.into(), campaign_id.into()],
    ))
    .await?;
    let moved = move_in(&txn, campaign_id, None, bucket, units, None).await?;
    txn.commit().await?;
    Ok(Some(moved))
}

/// A steal that failed: its session when MySQL had named it (from then on the transfer may
/// have written, or even committed, until that session is gone: `db::session`); `None` when it
/// failed before its first lock, having written nothing.
#[derive(Debug, thiserror::Error)]
#[error("MySQL: {error}")]
pub struct StealFailed {
    pub session: Option<u64>,
    #[source]
    pub error: DbErr,
}

/// Moves `units` from sibling `from` to `to`: the units `from`'s gate set aside under `take_id`
/// (so no join can reserve them there meanwhile). Refused past `commit_by`, judged under both
/// rows' locks, which whoever gives a leaked take back takes first. The rows' lock also names
/// the session, so a failure after it can be settled for certain (`join::steal_in_doubt`).
#[tracing::instrument(level = "debug", skip(db, hooks), err)]
pub async fn steal(
    db: &Db,
    campaign_id: i64,
    (from, to): (u16, u16),
    (units, take_id): (i64, Uuid),
    commit_by: std::time::Instant,
    hooks: &dyn Hooks,
) -> Result<Steal, StealFailed> {
    if from == to || units <= 0 {
        return Ok(Steal::Short);
    }
    let before = |error| StealFailed {
        session: None,
        error,
    };
    let txn = db.begin().await.map_err(before)?;
    let locked = txn
        .query_all_raw(stmt(
            "SELECT CAST(CONNECTION_ID() AS SIGNED) FROM campaign_bucket \
             WHERE campaign_id = ? AND bucket IN (?, ?) ORDER BY bucket FOR UPDATE",
            vec![campaign_id.into(), from.into(), to.into()],
        ))
        .await
        .map_err(before)?;
    let session = match locked.first() {
        Some(row) => Some(row.try_get_by_index::<i64>(0).map_err(before)?),
        None => None,
    }
    .and_then(|id| u64::try_from(id).ok());
    let failed = move |error| StealFailed { session, error };
    if std::time::Instant::now() > commit_by {
        txn.rollback().await.map_err(failed)?;
        return Ok(Steal::Stale);
    }
    let taken = txn
        .execute_raw(stmt(
            "UPDATE campaign_bucket SET remaining_stock = remaining_stock - ?, units_out = units_out + ? \
             WHERE campaign_id = ? AND bucket = ? AND remaining_stock >= ?",
            vec![units.into(), units.into(), campaign_id.into(), from.into(), units.into()],
        ))
        .await
        .map_err(failed)?;
    if taken.rows_affected() == 0 {
        txn.rollback().await.map_err(failed)?;
        return Ok(Steal::Short);
    }
    let moved = move_in(&txn, campaign_id, Some(from), to, units, Some(take_id))
        .await
        .map_err(failed)?;
    hooks.before_steal_commit().await;
    txn.commit().await.map_err(failed)?;
    Ok(Steal::Moved(moved))
}

/// The destination's half of a transfer: its row gains the units, the transfer is recorded and
/// the gate's marker written.
async fn move_in(
    txn: &Txn,
    campaign_id: i64,
    from: Option<u16>,
    to: u16,
    units: i64,
    take_id: Option<Uuid>,
) -> Result<Moved, DbErr> {
    txn.execute_raw(stmt(
        "UPDATE campaign_bucket SET remaining_stock = remaining_stock + ?, units_in = units_in + ? \
         WHERE campaign_id = ? AND bucket = ?",
        vec![units.into(), units.into(), campaign_id.into(), to.into()],
    ))
    .await?;
    record_move(txn, campaign_id, (from, Some(to)), to, units, take_id).await
}

/// Records a move of `units` between `(from, to)` (`None`: the pool, or out of the campaign)
/// and leaves bucket `gate`'s gate a marker of what it must add (negative: take away).
async fn record_move(
    txn: &Txn,
    campaign_id: i64,
    (from, to): (Option<u16>, Option<u16>),
    gate: u16,
    units: i64,
    take_id: Option<Uuid>,
) -> Result<Moved, DbErr> {
    let now = to_db(Utc::now());
    let id = txn
        .execute_raw(stmt(
            "INSERT INTO bucket_transfer (campaign_id, from_bucket, to_bucket, units, take_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                campaign_id.into(),
                from.into(),
                to.into(),
                units.abs().into(),
                take_id.map(|t| t.as_bytes().to_vec()).into(),
                now.into(),
            ],
        ))
        .await?
        .last_insert_id();
    let transfer_id = i64::try_from(id).map_err(|e| DbErr::Custom(e.to_string()))?;
    txn.execute_raw(stmt(
        "INSERT INTO gate_transfer (transfer_id, campaign_id, bucket, units, created_at) \
         VALUES (?, ?, ?, ?, ?)",
        vec![
            transfer_id.into(),
            campaign_id.into(),
            gate.into(),
            units.into(),
            now.into(),
        ],
    ))
    .await?;
    Ok(Moved {
        transfer_id,
        bucket: gate,
        units,
    })
}

/// The campaign's state as its bucket rows carry it for the wins' guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Paused(bool),
    Closed,
}

/// Writes a pause, a resume or a close to every bucket row, in the control's transaction (which
/// holds the campaign row's lock): a win committing after it is refused by its bucket's guard.
pub async fn set_state(txn: &Txn, campaign_id: i64, state: RowState) -> Result<(), DbErr> {
    let (set, value) = match state {
        RowState::Paused(paused) => ("paused = ?", paused),
        RowState::Closed => ("closed = ?", true),
    };
    txn.execute_raw(stmt(
        &format!("UPDATE campaign_bucket SET {set} WHERE campaign_id = ?"),
        vec![value.into(), campaign_id.into()],
    ))
    .await?;
    Ok(())
}

/// The units of every bucket row, summed, the rows locked until the transaction ends (a
/// control's: its withdrawal may take from them, and its answer counts them).
pub async fn lock_rows(txn: &Txn, campaign_id: i64) -> Result<i64, DbErr> {
    Ok(scalar(
        txn,
        "SELECT CAST(COALESCE(SUM(remaining_stock), 0) AS SIGNED) FROM campaign_bucket \
         WHERE campaign_id = ? FOR UPDATE",
        vec![campaign_id.into()],
    )
    .await?
    .unwrap_or(0))
}

/// Withdraws `units` from the bucket rows (locked by [`lock_rows`]), the fullest first, each
/// guarded against going below zero; each bucket's gate follows by a `gate_transfer` marker of
/// negative units. Returns the moves (units negative). The caller checked the rows hold them.
pub async fn withdraw(txn: &Txn, campaign_id: i64, units: i64) -> Result<Vec<Moved>, DbErr> {
    let rows = rows(txn, campaign_id).await?;
    let mut by_fullest: Vec<&BucketRow> = rows.iter().filter(|r| r.remaining_stock > 0).collect();
    by_fullest.sort_by_key(|r| (std::cmp::Reverse(r.remaining_stock), r.bucket));
    let (mut rest, mut moves) = (units, Vec::new());
    for row in by_fullest {
        if rest == 0 {
            break;
        }
        let take = rest.min(row.remaining_stock);
        let bucket = u16::try_from(row.bucket).unwrap_or(0);
        let taken = txn
            .execute_raw(stmt(
                "UPDATE campaign_bucket SET remaining_stock = remaining_stock - ?, units_out = units_out + ? \
                 WHERE campaign_id = ? AND bucket = ? AND remaining_stock >= ?",
                vec![take.into(), take.into(), campaign_id.into(), bucket.into(), take.into()],
            ))
            .await?;
        if taken.rows_affected() != 1 {
            return Err(DbErr::Custom(format!(
                "campaign {campaign_id} bucket {bucket}: the locked row lacked {take} units"
            )));
        }
        moves.push(record_move(txn, campaign_id, (Some(bucket), None), bucket, -take, None).await?);
        rest -= take;
    }
    if rest > 0 {
        return Err(DbErr::Custom(format!(
            "campaign {campaign_id}: the bucket rows lacked {rest} units to withdraw"
        )));
    }
    Ok(moves)
}

/// Whether the units a sibling's gate set aside under `take_id` were moved by a committed
/// transfer, judged under the sibling's row lock: once this says no, no transfer of them can
/// commit any more (theirs is past its deadline, [`steal`]), so the gate may have them back.
pub async fn take_committed(
    db: &Db,
    campaign_id: i64,
    from: u16,
    take_id: Uuid,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    txn.query_all_raw(stmt(
        "SELECT bucket FROM campaign_bucket WHERE campaign_id = ? AND bucket = ? FOR UPDATE",
        vec![campaign_id.into(), from.into()],
    ))
    .await?;
    let found = scalar(
        &txn,
        "SELECT COUNT(*) FROM bucket_transfer WHERE take_id = ?",
        vec![take_id.as_bytes().to_vec().into()],
    )
    .await?;
    txn.commit().await?;
    Ok(found.unwrap_or(0) > 0)
}

/// The campaign's free units in MySQL at one instant: the pool plus every bucket's row (units
/// reserved at a gate and not committed yet count as there), read in one statement, one
/// consistent snapshot. 0 means the whole campaign had no unit at that instant.
pub async fn campaign_remaining(db: &impl ConnectionTrait, campaign_id: i64) -> Result<i64, DbErr> {
    Ok(scalar(
        db,
        &format!("SELECT {CAMPAIGN_REMAINING} FROM campaign c WHERE c.id = ?"),
        vec![campaign_id.into()],
    )
    .await?
    .unwrap_or(0))
}

/// The campaign `c`'s pool plus every bucket's row, as one column of a `SELECT … FROM campaign c`.
pub const CAMPAIGN_REMAINING: &str =
    "CAST(c.remaining_stock + COALESCE((SELECT SUM(b.remaining_stock) \
     FROM campaign_bucket b WHERE b.campaign_id = c.id), 0) AS SIGNED)";

/// Every bucket's row of a campaign, in bucket order (none for an unbucketed campaign).
pub async fn rows(db: &impl ConnectionTrait, campaign_id: i64) -> Result<Vec<BucketRow>, DbErr> {
    BucketRow::find_by_statement(stmt(
        "SELECT bucket, remaining_stock, accepted_count, units_in, units_out FROM campaign_bucket \
         WHERE campaign_id = ? ORDER BY bucket",
        vec![campaign_id.into()],
    ))
    .all(db)
    .await
}

/// `campaign.remaining_stock`: a bucketed campaign's undealt pool.
pub async fn pool(db: &impl ConnectionTrait, campaign_id: i64) -> Result<i64, DbErr> {
    Ok(scalar(
        db,
        "SELECT remaining_stock FROM campaign WHERE id = ?",
        vec![campaign_id.into()],
    )
    .await?
    .unwrap_or(0))
}

/// One integer (or none) from a one-column query.
async fn scalar(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<i64>, DbErr> {
    match conn.query_one_raw(stmt(sql, values)).await? {
        Some(row) => Ok(Some(row.try_get_by_index(0)?)),
        None => Ok(None),
    }
}
