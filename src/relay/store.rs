//! SQL of the relay: claim due rows with a lease, record outcomes in batches, release leases,
//! and clean up (the admin views are in `admin.rs`). Time comparisons use the database clock (`UTC_TIMESTAMP(6)`),
//! so instances with skewed clocks still agree on leases and due times.
//!
//! Every UPDATE names its index (`FORCE INDEX`). Left to itself the optimizer reaches rows by
//! `id` through the `status` index (PENDING rows are few), and so reads every PENDING row,
//! including rows that participation transactions are still writing: the UPDATE then waits on
//! their locks (up to `innodb_lock_wait_timeout`), and a long transaction stalls the relay.
//! Through the primary key (rows by id) or `(status, lease_until)` (rows by owner, always
//! leased) an UPDATE reads only the rows it changes.

use crate::db::sql::{in_list, size_at_least, stmt};
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use crate::db::Db;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A row handed to a worker.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ClaimedRow {
    pub id: i64,
    pub event_id: String,
    pub topic: String,
    pub msg_key: String,
    pub payload: String,
    pub headers: String,
    pub attempts: i32,
    /// The shard of `msg_key` (`CRC32(msg_key) MOD RELAY_SHARDS`, computed by MySQL).
    pub shard: u32,
    /// When the row was written (its age bounds how long it may keep retrying).
    pub created_at: chrono::NaiveDateTime,
}

/// The claim's view of what this instance leads: the shards whose lease row it holds, read and
/// share-locked inside the claim transaction (fencing, docs/design.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedShards {
    pub total: u32,
    pub shards: Vec<u32>,
}

/// Keys held back, with the smallest id that holds each back: rows in backoff (anyone's), and
/// rows leased by another relay (it may still be publishing them). Both are short index ranges
/// ((status, available_at), (status, lease_until, lease_owner)): normally empty, a few rows
/// during faults; this relay's own rows in flight are passed over inside the index.
async fn held_back(txn: &impl ConnectionTrait, owner: &str) -> Result<Vec<(String, i64)>, DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            "SELECT msg_key, MIN(id) FROM outbox_event \
             WHERE status = 'PENDING' AND available_at > UTC_TIMESTAMP(6) GROUP BY msg_key \
             UNION ALL \
             SELECT msg_key, MIN(id) FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
             WHERE status = 'PENDING' AND lease_until >= UTC_TIMESTAMP(6) AND lease_owner <> ? GROUP BY msg_key",
            vec![owner.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// The shards `owner` holds a live lease on, share-locked until the transaction ends: a takeover
/// by another instance cannot commit while this claim runs.
async fn led_shards(
    txn: &impl ConnectionTrait,
    owner: &str,
    total: u32,
) -> Result<Vec<u32>, DbErr> {
    let rows = txn
        .query_all_raw(stmt(
            "SELECT shard FROM relay_shard WHERE owner = ? AND shard < ? AND lease_until > UTC_TIMESTAMP(6) \
             ORDER BY shard LOCK IN SHARE MODE",
            vec![owner.into(), total.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<i32>(0).map(|s| s as u32))
        .collect()
}

/// Claims up to `limit` due rows of the shards `owner` leads, in id order, and leases them.
///
/// Fencing: the shards come from `relay_shard` inside this transaction, so an instance whose
/// lease ran out claims nothing, however late its claim loop runs.
///
/// Per-key order: a row is not taken while an older row of its key is in backoff or leased by
/// another relay, nor while its key is `blocked` in this relay (see `order.rs`). Rows of a key
/// that this relay has in flight are leased, so only the younger ones are taken: they queue
/// behind their elders in the key's worker. `SKIP LOCKED` passes over rows that a transaction
/// still writing holds (a late commit is claimed once it is visible).
#[tracing::instrument(level = "debug", skip(db, blocked), fields(blocked = blocked.len()), err(level = "warn"))]
pub async fn claim(
    db: &Db,
    owner: &str,
    total: u32,
    lease: Duration,
    limit: u32,
    blocked: &[String],
) -> Result<(LedShards, Vec<ClaimedRow>), DbErr> {
    let txn = db.begin().await?;
    let shards = led_shards(&txn, owner, total).await?;
    let led = LedShards { total, shards };
    if led.shards.is_empty() {
        txn.commit().await?;
        return Ok((led, Vec::new()));
    }
    let held = held_back(&txn, owner).await?;
    let filter = ClaimFilter::new(&led, blocked, &held);
    let candidates = candidates(&txn, total, &filter, limit).await?;
    if candidates.is_empty() {
        txn.commit().await?;
        return Ok((led, Vec::new()));
    }
    let rows = lock_claimable(&txn, candidates).await?;
    if !rows.is_empty() {
        let mut values: Vec<Value> = vec![owner.into(), micros(lease).into()];
        let ids = in_list(&mut values, rows.iter().map(|r| Value::from(r.id)));
        txn.execute_raw(stmt(
            &format!(
                "UPDATE outbox_event FORCE INDEX (PRIMARY) SET lease_owner = ?, \
                 lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND WHERE id IN ({ids})"
            ),
            values,
        ))
        .await?;
    }
    txn.commit().await?;
    Ok((led, rows))
}

/// The claim's conditions beyond "due": the led shards (when not all), keys blocked in this
/// relay, and the keys held back (only rows older than the holding one may be taken).
struct ClaimFilter {
    sql: String,
    values: Vec<Value>,
}

impl ClaimFilter {
    fn new(led: &LedShards, blocked: &[String], held: &[(String, i64)]) -> Self {
        let mut values: Vec<Value> = Vec::new();
        let mut sql = String::new();
        if led.shards.len() < led.total as usize {
            values.push(led.total.into());
            let shards = in_list(&mut values, led.shards.iter().map(|s| Value::from(*s)));
            sql.push_str(&format!(" AND MOD(CRC32(msg_key), ?) IN ({shards})"));
        }
        if !blocked.is_empty() {
            let keys = in_list(&mut values, blocked.iter().map(|k| Value::from(k.as_str())));
            sql.push_str(&format!(" AND msg_key NOT IN ({keys})"));
        }
        if let Some(last) = held.last() {
            // Padded like an `IN` list (the last term repeated), for a shared statement text.
            let n = size_at_least(held.len());
            sql.push_str(&format!(
                " AND NOT ({})",
                vec!["(msg_key = ? AND id > ?)"; n].join(" OR ")
            ));
            for (key, id) in held.iter().chain(std::iter::repeat(last)).take(n) {
                values.push(key.as_str().into());
                values.push((*id).into());
            }
        }
        Self { sql, values }
    }
}

/// Step 1 of a claim: the candidates, by a plain (consistent, non-locking) read: two index ranges of
/// (status, lease_until, id), rows never leased (or released) in id order without touching the
/// rows in flight, and rows whose lease expired (normally none); the first `limit` of both
/// together. What one transaction wrote is in it entirely or not at all.
async fn candidates(
    txn: &impl ConnectionTrait,
    total: u32,
    filter: &ClaimFilter,
    limit: u32,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let mut candidates: Vec<ClaimedRow> = Vec::new();
    for leases in [
        "lease_until IS NULL AND lease_owner IS NULL",
        "lease_until < UTC_TIMESTAMP(6)",
    ] {
        let sql = format!(
            "SELECT id, event_id, topic, msg_key, payload, headers, attempts, \
             CAST(MOD(CRC32(msg_key), ?) AS UNSIGNED) AS shard, created_at \
             FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
             WHERE status = 'PENDING' AND {leases} AND available_at <= UTC_TIMESTAMP(6){} \
             ORDER BY id LIMIT ?",
            filter.sql
        );
        let mut values = vec![Value::from(total)];
        values.extend(filter.values.iter().cloned());
        values.push(limit.into());
        candidates.extend(
            ClaimedRow::find_by_statement(stmt(&sql, values))
                .all(txn)
                .await?,
        );
    }
    candidates.sort_by_key(|r| r.id);
    candidates.truncate(limit as usize);
    Ok(candidates)
}

/// Step 2 of a claim: locks the candidates that are still claimable. SKIP LOCKED passes over a row another
/// transaction holds (the locking read sees each row's latest commit, not one moment: with a
/// skipping scan, rows committed together could be taken partly, the younger ones first, as a
/// commit landed between two rows). A key whose candidate was passed over keeps only the
/// candidates before it: what a claim takes of a key is always the oldest of its visible rows.
async fn lock_claimable(
    txn: &impl ConnectionTrait,
    candidates: Vec<ClaimedRow>,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let mut values: Vec<Value> = Vec::with_capacity(size_at_least(candidates.len()));
    let ids = in_list(&mut values, candidates.iter().map(|r| Value::from(r.id)));
    // With each row's attempts as of the lock (the candidates' read may be a moment older).
    let locked: HashMap<i64, i32> = txn
        .query_all_raw(stmt(
            &format!(
                "SELECT id, attempts FROM outbox_event FORCE INDEX (PRIMARY) WHERE id IN ({ids}) \
                 AND status = 'PENDING' \
                 AND ((lease_until IS NULL AND lease_owner IS NULL) OR lease_until < UTC_TIMESTAMP(6)) \
                 AND available_at <= UTC_TIMESTAMP(6) FOR UPDATE SKIP LOCKED"
            ),
            values,
        ))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<Result<_, DbErr>>()?;
    let mut passed_over: HashSet<String> = HashSet::new();
    let mut rows = Vec::with_capacity(locked.len());
    for mut row in candidates {
        if passed_over.contains(&row.msg_key) {
            continue;
        }
        match locked.get(&row.id) {
            Some(&attempts) => {
                row.attempts = attempts;
                rows.push(row);
            }
            None => {
                passed_over.insert(row.msg_key);
            }
        }
    }
    Ok(rows)
}

/// Extends the leases of the rows `owner` holds in the shards it leads (called with each shard
/// lease renewal): a row in flight through a long Kafka outage stays this relay's, and stops
/// being so together with its shard.
pub async fn renew_row_leases(
    db: &Db,
    owner: &str,
    led: &LedShards,
    lease: Duration,
) -> Result<u64, DbErr> {
    if led.shards.is_empty() {
        return Ok(0);
    }
    let mut values: Vec<Value> = vec![micros(lease).into(), owner.into(), led.total.into()];
    let shards = in_list(&mut values, led.shards.iter().map(|s| Value::from(*s)));
    let res = db
        .execute_raw(stmt(
            &format!(
                "UPDATE outbox_event FORCE INDEX (ix_outbox_status_lease) \
                 SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
                 WHERE status = 'PENDING' AND lease_until IS NOT NULL AND lease_owner = ? \
                 AND MOD(CRC32(msg_key), ?) IN ({shards})"
            ),
            values,
        ))
        .await?;
    Ok(res.rows_affected())
}

/// Marks rows PUBLISHED in one statement. A row that is delivered is published whoever holds
/// its lease now, so this does not check the owner.
pub async fn mark_published(db: &Db, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut values: Vec<Value> = Vec::with_capacity(size_at_least(ids.len()));
    let ids = in_list(&mut values, ids.iter().map(|id| Value::from(*id)));
    db.execute_raw(stmt(
        &format!(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'PUBLISHED', published_at = UTC_TIMESTAMP(6), \
             last_error = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'PENDING' AND id IN ({ids})"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Puts a row back in backoff: due again `after` from now, lease released. `attempt` says
/// whether the failure counts against `RELAY_MAX_ATTEMPTS` (a broker answered with an error) or
/// not (no broker answered: the outage policy). Only while `owner` still holds the row: a relay
/// whose lease expired does not overwrite its successor's work.
pub async fn back_off(
    db: &Db,
    id: i64,
    owner: &str,
    after: Duration,
    attempt: bool,
    error: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE outbox_event FORCE INDEX (PRIMARY) SET attempts = attempts + ?, last_error = ?, \
         available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, lease_owner = NULL, lease_until = NULL \
         WHERE id = ? AND status = 'PENDING' AND lease_owner = ?",
        vec![
            i32::from(attempt).into(),
            truncate(error).into(),
            micros(after).into(),
            id.into(),
            owner.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Marks a dead-lettered row DEAD (after its DLQ message was acknowledged).
pub async fn mark_dead(
    db: &Db,
    id: i64,
    owner: &str,
    attempts: i32,
    error: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'DEAD', attempts = ?, last_error = ?, \
         lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'PENDING' AND lease_owner = ?",
        vec![attempts.into(), truncate(error).into(), id.into(), owner.into()],
    ))
    .await?;
    Ok(())
}

/// Gives leases back without counting an attempt (shutdown, dropped rows, a crashed worker's
/// rows). `None` releases every row `owner` holds.
pub async fn release(db: &Db, owner: &str, ids: Option<&[i64]>) -> Result<u64, DbErr> {
    let mut values: Vec<Value> = vec![owner.into()];
    let (index, filter) = match ids {
        None => (
            "ix_outbox_status_lease",
            " AND lease_until IS NOT NULL".to_string(),
        ),
        Some([]) => return Ok(0),
        Some(ids) => {
            let ids = in_list(&mut values, ids.iter().map(|id| Value::from(*id)));
            ("PRIMARY", format!(" AND id IN ({ids})"))
        }
    };
    let res = db
        .execute_raw(stmt(
            &format!(
                "UPDATE outbox_event FORCE INDEX ({index}) SET lease_owner = NULL, lease_until = NULL \
                 WHERE status = 'PENDING' AND lease_owner = ?{filter}"
            ),
            values,
        ))
        .await?;
    Ok(res.rows_affected())
}

/// Deletes up to `batch` PUBLISHED rows older than `retention`; returns how many.
pub async fn delete_published(db: &Db, retention: Duration, batch: u32) -> Result<u64, DbErr> {
    let res = db
        .execute_raw(stmt(
            "DELETE FROM outbox_event WHERE status = 'PUBLISHED' \
             AND published_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY id LIMIT ?",
            vec![micros(retention).into(), batch.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// `last_error` is TEXT; keep it well inside.
fn truncate(error: &str) -> String {
    error.chars().take(4_000).collect()
}
