//! The claim's read (docs/design.md §7): which due PENDING rows a claim takes, in id order, left
//! out the rows of keys held back by an older row (in backoff, or leased by a relay of an earlier
//! version), the keys blocked in this relay and the ids it holds.
//!
//! Two statements give the same rows. [`full`] reads the held-back keys and the candidates
//! together (a CTE, two ranges materialized as ids, joined back): its optimization and temporary
//! tables cost MariaDB about half a millisecond a claim, whatever it finds. [`steady`] is the
//! common case alone, one index range read in id order with the payload, under a guard, in the
//! same statement, that no PENDING row holds its key back; when that guard holds, the held-back
//! keys and the second range (backoff run out) are empty in that snapshot, so it returns what
//! [`full`] would. A claim tries [`steady`] first and reads with [`full`] only when it found
//! nothing and a row holds its key back (faults, backoff).

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult, Value};

use crate::{
    db::sql::{in_list, size_at_least, stmt},
    relay::{
        held::HeldRuns,
        order::ClaimView,
        store::{ClaimedRow, LedShards},
    },
};

/// The rows a claim takes ([`steady`], then [`full`] if it took none while a row holds its key
/// back).
pub(super) async fn read(
    txn: &impl ConnectionTrait,
    total: u32,
    filter: &ClaimFilter,
    limit: u32,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let rows = steady(txn, total, filter, limit).await?;
    // Rows found: the guard held, so they are [`full`]'s. None found: either nothing is due, or
    // a row held its key back then; only the second needs the full read (a snapshot of its own,
    // consistent in itself like every claim).
    if !rows.is_empty() || !any_held_back(txn).await? {
        return Ok(rows);
    }
    full(txn, total, filter, limit).await
}

/// The columns a claim returns; `?` is `RELAY_SHARDS`.
const COLUMNS: &str = "o.id, o.event_id, o.event_type, o.topic, o.msg_key, o.payload, o.headers, \
     o.attempts, CAST(MOD(CRC32(o.msg_key), ?) AS UNSIGNED) AS shard, o.created_at";

/// A claimed row by the position of its column in [`COLUMNS`]: by name (the derive) each column
/// of each row cost a formatted name and a search (3.8k instructions a row under callgrind).
impl FromQueryResult for ClaimedRow {
    fn from_query_result(row: &QueryResult, _prefix: &str) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.try_get_by_index(0)?,
            event_id: row.try_get_by_index(1)?,
            event_type: row.try_get_by_index(2)?,
            topic: row.try_get_by_index(3)?,
            msg_key: row.try_get_by_index(4)?,
            payload: row.try_get_by_index(5)?,
            headers: row.try_get_by_index(6)?,
            attempts: row.try_get_by_index(7)?,
            shard: row.try_get_by_index(8)?,
            created_at: row.try_get_by_index(9)?,
        })
    }
}

/// The PENDING rows that hold their key back (in backoff, or leased by a relay of an earlier
/// version): one short range of the lease index. The quick read's guard and the check before the
/// full read must mean the same rows, so both use this (the subquery's own alias keeps it apart
/// from the claim's `o`).
const HOLDING_BACK: &str = "FROM outbox_event h FORCE INDEX (ix_outbox_status_lease) \
     WHERE h.status = 'PENDING' AND h.lease_until IS NOT NULL";

/// The rows never in backoff, in id order, when no PENDING row holds its key back, by one read:
/// the guard (an uncorrelated subquery over the lease index, evaluated once: with a row in
/// backoff the statement is an impossible WHERE and returns nothing) and the range see one
/// snapshot. No temporary table: the range is read in id order and stops at `limit`.
async fn steady(
    txn: &impl ConnectionTrait,
    total: u32,
    filter: &ClaimFilter,
    limit: u32,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let sql = format!(
        "SELECT {COLUMNS} FROM outbox_event o FORCE INDEX (ix_outbox_status_lease) \
         WHERE status = 'PENDING' AND lease_until IS NULL AND lease_owner IS NULL \
         AND available_at <= UTC_TIMESTAMP(6){} \
         AND NOT EXISTS (SELECT 1 {HOLDING_BACK}) ORDER BY id LIMIT ?",
        filter.sql
    );
    let mut values = Vec::with_capacity(2 + filter.values.len());
    values.push(total.into());
    values.extend(filter.values.iter().cloned());
    values.push(limit.into());
    ClaimedRow::find_by_statement(stmt(&sql, values))
        .all(txn)
        .await
}

/// Whether a PENDING row holds its key back ([`HOLDING_BACK`]).
async fn any_held_back(txn: &impl ConnectionTrait) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(stmt(
            &format!("SELECT EXISTS (SELECT 1 {HOLDING_BACK}) AS held"),
            vec![],
        ))
        .await?;
    Ok(row.map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))? != 0)
}

/// The claim's conditions beyond "due": the led shards (when not all), the keys blocked in this
/// relay, and the ids it holds (as runs, each an `id < ? OR id > ?` the range optimizer cuts out
/// of the index scan, so a claim does not read the rows in flight).
pub(super) struct ClaimFilter {
    sql: String,
    values: Vec<Value>,
}

impl ClaimFilter {
    pub(super) fn new(led: &LedShards, view: &ClaimView) -> Self {
        let mut values: Vec<Value> = Vec::new();
        let mut sql = String::new();
        if led.shards.len() < led.total as usize {
            values.push(led.total.into());
            let shards = in_list(&mut values, led.shards.iter().map(|s| Value::from(*s)));
            sql.push_str(&format!(" AND MOD(CRC32(msg_key), ?) IN ({shards})"));
        }
        if !view.blocked.is_empty() {
            let keys = in_list(
                &mut values,
                view.blocked.iter().map(|k| Value::from(k.as_str())),
            );
            sql.push_str(&format!(" AND msg_key NOT IN ({keys})"));
        }
        held_filter(&view.held, &mut sql, &mut values);
        Self { sql, values }
    }
}

/// Appends the held runs to a claim's conditions, padded (by repeating the last run) to a list
/// size of `db::sql`, so the statement texts stay few.
fn held_filter(held: &HeldRuns, sql: &mut String, values: &mut Vec<Value>) {
    if let Some(below) = held.below {
        sql.push_str(" AND id < ?");
        values.push(below.into());
    }
    let Some(&last) = held.runs.last() else {
        return;
    };
    let padded = held
        .runs
        .iter()
        .copied()
        .chain(std::iter::repeat(last))
        .take(size_at_least(held.runs.len()));
    for (first, end) in padded {
        sql.push_str(" AND (id < ? OR id > ?)");
        values.push(first.into());
        values.push(end.into());
    }
}

/// Keys held back, with the smallest id that holds each back: rows in backoff (no owner,
/// `lease_until` their due time, see [`back_off`]), and rows a relay of an earlier version
/// leased (with an owner) whose lease has not run out; only a key's rows older than that one
/// may be taken. One short range of `(status, lease_until, lease_owner)`: normally empty, a few
/// rows during faults.
const HELD_BACK: &str = "WITH held AS (\
     SELECT msg_key, MIN(id) AS from_id FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
     WHERE status = 'PENDING' AND lease_until >= UTC_TIMESTAMP(6) GROUP BY msg_key) ";

/// The candidates of a claim whatever is held back, by one plain (consistent, non-locking) read: two index ranges of
/// `(status, lease_until, lease_owner, id)`, rows never in backoff in id order (skipping the
/// held runs inside the index), and rows whose backoff (or an earlier version's lease) ran out
/// (normally none), less the rows of held-back keys ([`HELD_BACK`]); the first `limit` of both
/// together, in id order.
///
/// One statement, so one snapshot (the pool runs READ COMMITTED, where each statement reads its
/// own): what one transaction wrote is in it entirely or not at all, and every row is seen in the
/// same state by the held-back keys and by the ranges. Read apart, a row could pass from "due"
/// (not holding its key, a candidate) to "in backoff" (holding it, not a candidate) between the
/// reads and be neither, its younger rows taken ahead of it (measured in a proof run, when
/// row leases still let a former leader write that backoff).
///
/// The two ranges (each an `ORDER BY … LIMIT`, so MariaDB materializes it) carry ids only, and
/// the rows are read by primary key after them, in the same statement: with the payload's TEXT
/// in them they were on-disk temporary tables, three a claim, their files created and removed
/// each time (docs/design.md §7).
async fn full(
    txn: &impl ConnectionTrait,
    total: u32,
    filter: &ClaimFilter,
    limit: u32,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let range = |leases: &str| {
        format!(
            "SELECT id FROM (SELECT id FROM outbox_event o FORCE INDEX (ix_outbox_status_lease) \
             WHERE status = 'PENDING' AND {leases} AND available_at <= UTC_TIMESTAMP(6){} \
             AND NOT EXISTS (SELECT 1 FROM held WHERE held.msg_key = o.msg_key AND held.from_id < o.id) \
             ORDER BY id LIMIT ?) r",
            filter.sql
        )
    };
    let sql = format!(
        "{HELD_BACK}SELECT {COLUMNS} \
         FROM ({} UNION ALL {}) c STRAIGHT_JOIN outbox_event o ON o.id = c.id",
        range("lease_until IS NULL AND lease_owner IS NULL"),
        range("lease_until < UTC_TIMESTAMP(6)"),
    );
    let mut values = Vec::with_capacity(1 + 2 * (filter.values.len() + 1));
    values.push(total.into());
    for _ in 0..2 {
        values.extend(filter.values.iter().cloned());
        values.push(limit.into());
    }
    let mut found = ClaimedRow::find_by_statement(stmt(&sql, values))
        .all(txn)
        .await?;
    found.sort_by_key(|r| r.id);
    found.truncate(limit as usize);
    Ok(found)
}
