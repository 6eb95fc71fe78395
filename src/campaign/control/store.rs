//! The SQL of live controls (docs/design.md §15): lock the campaign row, change it and take the
//! next control number, write the audit row and the gate's marker; and the marker loop's and the
//! audit trail's reads.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::{
    bucket::store::{self as bucket_store, Moved, RowState},
    db::{sql::stmt, time::to_db, Db, Txn},
};

/// The campaign row as a control locks it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct LockedCampaign {
    pub total_stock: i64,
    /// The campaign's units not sold: a bucketed campaign's pool plus its bucket rows.
    pub remaining_stock: i64,
    /// `campaign.remaining_stock`: all of it, or a bucketed campaign's undealt pool.
    pub pool: i64,
    pub buckets: i16,
    pub paused: bool,
    pub closed_at: Option<NaiveDateTime>,
    pub ends_at: Option<NaiveDateTime>,
    pub control_seq: i64,
}

impl LockedCampaign {
    /// Closed early, or past its window's end at `now`.
    pub fn ended(&self, now: DateTime<Utc>) -> bool {
        self.closed_at.is_some() || self.ends_at.is_some_and(|end| end.and_utc() <= now)
    }
}

/// The campaign, locked until the transaction ends (every writer of a campaign's events takes
/// this lock before its outbox id: docs/design.md §2.5).
/// A bucketed campaign's bucket rows are locked too (after the campaign's: the order every
/// transfer keeps), their units counted in `remaining_stock`.
pub async fn lock(txn: &Txn, campaign_id: i64) -> Result<Option<LockedCampaign>, DbErr> {
    let locked = LockedCampaign::find_by_statement(stmt(
        "SELECT total_stock, remaining_stock, remaining_stock AS pool, buckets, paused, closed_at, \
         ends_at, control_seq FROM campaign WHERE id = ? FOR UPDATE",
        vec![campaign_id.into()],
    ))
    .one(txn)
    .await?;
    match locked {
        Some(mut locked) if locked.buckets > 1 => {
            locked.remaining_stock += bucket_store::lock_rows(txn, campaign_id).await?;
            Ok(Some(locked))
        }
        other => Ok(other),
    }
}

/// What a control writes to the campaign row.
#[derive(Debug, Clone, Copy)]
pub enum RowChange {
    /// Both totals move by the delta; guarded so that the stock never goes below zero.
    Stock(i64),
    Paused(bool),
    Closed(DateTime<Utc>),
}

/// Changes the locked row and sets its control number to `seq`. In a bucketed campaign
/// (docs/design.md §21) added units go to the pool, withdrawn ones come from the pool and then
/// from the bucket rows (returned: each bucket's gate must give them up), and a pause, a resume
/// or a close is written to every bucket row too.
pub async fn change(
    txn: &Txn,
    locked: &LockedCampaign,
    (campaign_id, seq): (i64, i64),
    change: RowChange,
) -> Result<Vec<Moved>, DbErr> {
    let bucketed = locked.buckets > 1;
    let mut moves = Vec::new();
    let (set, mut values): (&str, Vec<sea_orm::Value>) = match change {
        RowChange::Stock(delta) if bucketed && delta < 0 => {
            let from_pool = locked.pool.min(-delta);
            moves = bucket_store::withdraw(txn, campaign_id, -delta - from_pool).await?;
            (
                "total_stock = total_stock + ?, remaining_stock = remaining_stock - ?",
                vec![delta.into(), from_pool.into()],
            )
        }
        RowChange::Stock(delta) => (
            "total_stock = total_stock + ?, remaining_stock = remaining_stock + ?",
            vec![delta.into(), delta.into()],
        ),
        RowChange::Paused(paused) => ("paused = ?", vec![paused.into()]),
        RowChange::Closed(at) => ("closed_at = ?", vec![to_db(at).into()]),
    };
    values.extend([seq.into(), campaign_id.into()]);
    let sql = format!(
        "UPDATE campaign SET {set}, control_seq = ?, updated_at = UTC_TIMESTAMP(6) \
         WHERE id = ? AND remaining_stock >= 0"
    );
    let res = txn.execute_raw(stmt(&sql, values)).await?;
    if res.rows_affected() != 1 {
        return Err(DbErr::Custom(format!(
            "campaign {campaign_id}: the locked control matched {} rows",
            res.rows_affected()
        )));
    }
    match change {
        RowChange::Paused(paused) if bucketed => {
            bucket_store::set_state(txn, campaign_id, RowState::Paused(paused)).await?
        }
        RowChange::Closed(_) if bucketed => {
            bucket_store::set_state(txn, campaign_id, RowState::Closed).await?
        }
        _ => {}
    }
    Ok(moves)
}

/// One control, as the audit trail and the gate's marker keep it.
#[derive(Debug, Clone)]
pub struct ControlRow {
    pub campaign_id: i64,
    pub seq: i64,
    /// `ControlKind::as_str`.
    pub kind: &'static str,
    /// Units added or withdrawn (stock changes only).
    pub delta: Option<i64>,
    pub total_stock: i64,
    pub remaining_stock: i64,
    pub admin: String,
    pub event_id: String,
    /// The admin's `Idempotency-Key`, when the call had one.
    pub idempotency_key: Option<String>,
    pub at: DateTime<Utc>,
}

/// The audit row and the gate's marker, in the control's transaction.
pub async fn record(txn: &Txn, row: &ControlRow) -> Result<(), DbErr> {
    txn.execute_raw(stmt(
        "INSERT INTO campaign_control (campaign_id, seq, kind, delta, total_stock, remaining_stock, \
         admin, event_id, idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            row.campaign_id.into(),
            row.seq.into(),
            row.kind.into(),
            row.delta.into(),
            row.total_stock.into(),
            row.remaining_stock.into(),
            row.admin.clone().into(),
            row.event_id.clone().into(),
            row.idempotency_key.clone().into(),
            to_db(row.at).into(),
        ],
    ))
    .await?;
    txn.execute_raw(stmt(
        "INSERT INTO gate_control (campaign_id, seq, kind, delta, created_at) \
         VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
        vec![
            row.campaign_id.into(),
            row.seq.into(),
            row.kind.into(),
            row.delta.unwrap_or(0).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// What an earlier control of the campaign with this `Idempotency-Key` did: its kind and delta.
pub async fn by_key(
    txn: &Txn,
    campaign_id: i64,
    key: &str,
) -> Result<Option<(String, Option<i64>)>, DbErr> {
    let row = txn
        .query_one_raw(stmt(
            "SELECT kind, delta FROM campaign_control WHERE campaign_id = ? AND idempotency_key = ?",
            vec![campaign_id.into(), key.into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .transpose()
}

/// A `gate_control` marker: a committed control the gate may not have yet.
#[derive(Debug, Clone, FromQueryResult)]
pub struct PendingControl {
    pub campaign_id: i64,
    pub seq: i64,
    pub kind: String,
    pub delta: i64,
    pub created_at: NaiveDateTime,
}

/// Where a marker sits in the order the marker loop reads them: `(created_at, campaign_id, seq)`,
/// unique (the key is `(campaign_id, seq)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerKey(NaiveDateTime, i64, i64);

impl PendingControl {
    pub fn key(&self) -> MarkerKey {
        MarkerKey(self.created_at, self.campaign_id, self.seq)
    }
}

/// The first `limit` markers after `after` (from the oldest without it).
pub async fn pending(
    db: &Db,
    after: Option<&MarkerKey>,
    limit: u32,
) -> Result<Vec<PendingControl>, DbErr> {
    const SELECT: &str = "SELECT campaign_id, seq, kind, delta, created_at FROM gate_control";
    const ORDER: &str = "ORDER BY created_at, campaign_id, seq LIMIT ?";
    let statement = match after {
        None => stmt(&format!("{SELECT} {ORDER}"), vec![limit.into()]),
        Some(MarkerKey(at, campaign_id, seq)) => stmt(
            &format!("{SELECT} WHERE (created_at, campaign_id, seq) > (?, ?, ?) {ORDER}"),
            vec![
                (*at).into(),
                (*campaign_id).into(),
                (*seq).into(),
                limit.into(),
            ],
        ),
    };
    PendingControl::find_by_statement(statement).all(db).await
}

/// The markers of campaign `campaign_id` up to control number `upto`, in number order: the
/// controls committed that its gates may still lack.
pub async fn pending_of(
    db: &Db,
    campaign_id: i64,
    upto: i64,
) -> Result<Vec<PendingControl>, DbErr> {
    PendingControl::find_by_statement(stmt(
        "SELECT campaign_id, seq, kind, delta, created_at FROM gate_control \
         WHERE campaign_id = ? AND seq <= ? ORDER BY seq",
        vec![campaign_id.into(), upto.into()],
    ))
    .all(db)
    .await
}

/// The gate has the control: forget its marker.
pub async fn forget(db: &Db, campaign_id: i64, seq: i64) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM gate_control WHERE campaign_id = ? AND seq = ?",
        vec![campaign_id.into(), seq.into()],
    ))
    .await?;
    Ok(())
}

/// One row of a campaign's audit trail.
#[derive(Debug, Clone, FromQueryResult)]
pub struct HistoryRow {
    pub seq: i64,
    pub kind: String,
    pub delta: Option<i64>,
    pub total_stock: i64,
    pub remaining_stock: i64,
    pub admin: String,
    pub event_id: String,
    pub created_at: NaiveDateTime,
}

/// Up to `limit` controls of the campaign after number `after`, oldest first.
pub async fn history(
    db: &Db,
    campaign_id: i64,
    after: i64,
    limit: u32,
) -> Result<Vec<HistoryRow>, DbErr> {
    HistoryRow::find_by_statement(stmt(
        "SELECT seq, kind, delta, total_stock, remaining_stock, admin, event_id, created_at \
         FROM campaign_control WHERE campaign_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        vec![campaign_id.into(), after.into(), limit.into()],
    ))
    .all(db)
    .await
}
