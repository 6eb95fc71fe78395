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

use crate::db::sql::{execute_for_ids, in_list, stmt, MAX_IDS};
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use crate::db::error::{self as db_error, DbErrorKind};
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
    pub event_type: String,
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
/// behind their elders in the key's worker. Candidates and held-back keys come from one
/// consistent read ([`candidates`]), so a row a transaction is still writing is not among them
/// (a late commit is claimed once it is visible); a candidate another transaction holds is
/// passed over with its key's younger rows, by the lease UPDATE failing at once
/// ([`LeaseMode::NoWait`]) or by `SKIP LOCKED`.
#[tracing::instrument(level = "debug", skip(db, blocked), fields(blocked = blocked.len()), err(level = "warn"))]
pub async fn claim(
    db: &Db,
    owner: &str,
    total: u32,
    lease: Duration,
    limit: u32,
    blocked: &[String],
    mode: LeaseMode,
) -> Result<(LedShards, Vec<ClaimedRow>), DbErr> {
    let txn = db.begin().await?;
    let shards = led_shards(&txn, owner, total).await?;
    let led = LedShards { total, shards };
    if led.shards.is_empty() {
        txn.commit().await?;
        return Ok((led, Vec::new()));
    }
    let filter = ClaimFilter::new(&led, blocked);
    let found = candidates(&txn, owner, total, &filter, limit).await?;
    let rows = if found.rows.is_empty() {
        found.rows
    } else if found.any_expired || mode == LeaseMode::LockFirst {
        lock_then_lease(&txn, owner, lease, found.rows).await?
    } else {
        match lease_unleased(&txn, owner, lease, &found.rows).await {
            Err(e) if db_error::kind(&e) == DbErrorKind::LockWaitTimeout => {
                lock_then_lease(&txn, owner, lease, found.rows).await?
            }
            leased => leased?.unwrap_or(found.rows),
        }
    };
    txn.commit().await?;
    Ok((led, rows))
}

/// How a claim leases its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// One UPDATE that fails at once on a row another transaction holds (MariaDB's
    /// `SET STATEMENT innodb_lock_wait_timeout = 0 FOR`); the locking read only when it did.
    NoWait,
    /// The locking read with `SKIP LOCKED` first, always: MySQL (no per-statement lock wait), or
    /// a server that rolls back the whole transaction on a lock wait timeout
    /// (`innodb_rollback_on_timeout`), which would take the claim's fence with it.
    LockFirst,
}

/// Which [`LeaseMode`] the server allows.
pub async fn lease_mode(db: &Db) -> Result<LeaseMode, DbErr> {
    let nowait = db
        .query_all_raw(stmt(
            "SELECT CAST(@@version LIKE '%MariaDB%' AND @@innodb_rollback_on_timeout = 0 AS SIGNED)",
            vec![],
        ))
        .await?
        .first()
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        == Some(1);
    Ok(if nowait {
        LeaseMode::NoWait
    } else {
        LeaseMode::LockFirst
    })
}

/// Leases the candidates the locking read took ([`lock_claimable`]).
async fn lock_then_lease(
    txn: &impl ConnectionTrait,
    owner: &str,
    lease: Duration,
    candidates: Vec<ClaimedRow>,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let rows = lock_claimable(txn, candidates).await?;
    lease_rows(txn, owner, lease, &rows, "").await?;
    Ok(rows)
}

/// The claim's UPDATE: leases `rows` to `owner`, each only while it is still claimable
/// (PENDING, due, its lease free or expired), [`MAX_IDS`] rows a statement. `prefix` goes before
/// each statement. Returns how many it leased.
async fn lease_rows(
    txn: &impl ConnectionTrait,
    owner: &str,
    lease: Duration,
    rows: &[ClaimedRow],
    prefix: &str,
) -> Result<u64, DbErr> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    execute_for_ids(txn, &ids, &[owner.into(), micros(lease).into()], |ids| {
        format!(
            "{prefix}UPDATE outbox_event FORCE INDEX (PRIMARY) SET lease_owner = ?, \
                 lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND WHERE id IN ({ids}) \
                 AND {CLAIMABLE}"
        )
    })
    .await
}

/// What a row must be to be claimed, checked again by the statements that lock it.
const CLAIMABLE: &str = "status = 'PENDING' \
     AND ((lease_until IS NULL AND lease_owner IS NULL) OR lease_until < UTC_TIMESTAMP(6)) \
     AND available_at <= UTC_TIMESTAMP(6)";

/// The claim's conditions beyond "due": the led shards (when not all) and the keys blocked in
/// this relay.
struct ClaimFilter {
    sql: String,
    values: Vec<Value>,
}

impl ClaimFilter {
    fn new(led: &LedShards, blocked: &[String]) -> Self {
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
        Self { sql, values }
    }
}

/// Keys held back, with the smallest id that holds each back: rows in backoff (anyone's: no owner,
/// `lease_until` their due time, see [`back_off`]) and rows leased by another relay (it may still
/// be publishing them); only a key's rows older than that one may be taken. Both are one short
/// range of `(status, lease_until, lease_owner)`, a lease or a backoff not yet run out: normally
/// empty, a few rows during faults; this relay's own rows in flight are passed over inside the
/// index.
const HELD_BACK: &str = "WITH held AS (\
     SELECT msg_key, MIN(id) AS from_id FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
     WHERE status = 'PENDING' AND lease_until >= UTC_TIMESTAMP(6) \
     AND (lease_owner IS NULL OR lease_owner <> ?) GROUP BY msg_key) ";

/// A candidate and the range it came from.
#[derive(Debug, FromQueryResult)]
struct Candidate {
    /// 1 when its lease had expired (its previous holder may still be writing its outcome) or its
    /// backoff ran out (its attempts are read again under the lock).
    expired: i32,
    #[sea_orm(nested)]
    row: ClaimedRow,
}

/// Step 1 of a claim: the candidates, by one plain (consistent, non-locking) read: two index
/// ranges of (status, lease_until, id), rows never leased (or released) in id order without
/// touching the rows in flight, and rows whose lease expired or whose backoff ran out (normally
/// none), less the rows of held-back keys ([`HELD_BACK`]); the first `limit` of both together.
///
/// One statement, so one snapshot (the pool runs READ COMMITTED, where each statement reads its
/// own): what one transaction wrote is in it entirely or not at all, and every row is seen in the
/// same state by the held-back keys and by the ranges. Read apart, a row could pass from "leased
/// by another relay, lease expired" (not holding its key, a candidate) to "in backoff" (holding
/// it, not a candidate) between the reads and be neither, its younger rows taken ahead of it: a
/// former leader writing its outcome late does exactly that (measured in a proof run, and by
/// `relay::claim::a_former_leaders_late_backoff_…`).
async fn candidates(
    txn: &impl ConnectionTrait,
    owner: &str,
    total: u32,
    filter: &ClaimFilter,
    limit: u32,
) -> Result<Candidates, DbErr> {
    let range = |expired: u8, leases: &str| {
        format!(
            "SELECT * FROM (SELECT {expired} AS expired, id, event_id, event_type, topic, msg_key, payload, headers, \
             attempts, CAST(MOD(CRC32(msg_key), ?) AS UNSIGNED) AS shard, created_at \
             FROM outbox_event o FORCE INDEX (ix_outbox_status_lease) \
             WHERE status = 'PENDING' AND {leases} AND available_at <= UTC_TIMESTAMP(6){} \
             AND NOT EXISTS (SELECT 1 FROM held WHERE held.msg_key = o.msg_key AND held.from_id < o.id) \
             ORDER BY id LIMIT ?) r{expired}",
            filter.sql
        )
    };
    let sql = format!(
        "{HELD_BACK}{} UNION ALL {}",
        range(0, "lease_until IS NULL AND lease_owner IS NULL"),
        range(1, "lease_until < UTC_TIMESTAMP(6)"),
    );
    let mut values = vec![Value::from(owner)];
    for _ in 0..2 {
        values.push(total.into());
        values.extend(filter.values.iter().cloned());
        values.push(limit.into());
    }
    let mut found = Candidate::find_by_statement(stmt(&sql, values))
        .all(txn)
        .await?;
    found.sort_by_key(|c| c.row.id);
    found.truncate(limit as usize);
    let any_expired = found.iter().any(|c| c.expired != 0);
    Ok(Candidates {
        rows: found.into_iter().map(|c| c.row).collect(),
        any_expired,
    })
}

/// The candidates of a claim, in id order.
struct Candidates {
    rows: Vec<ClaimedRow>,
    /// Whether any of them comes from an expired lease (its previous holder may still be
    /// writing its outcome: backoff, with a new attempt count).
    any_expired: bool,
}

/// Step 2 of a claim, when every candidate was never leased (or was released) and the server
/// allows [`LeaseMode::NoWait`]: the lease UPDATE (one statement per [`MAX_IDS`] candidates)
/// leases those still claimable, and fails at once (`LockWaitTimeout`) if another transaction
/// holds one of them (an admin's statement; the caller then takes the locking read's way). A
/// failure takes back what every statement of it leased (a savepoint: a later chunk failing
/// must not leave an earlier one's rows leased here, held by nothing and out of the pipeline).
/// Normally it leases every candidate, with the attempt count the read saw: only a lease holder
/// changes it, and a committed, unleased row of a shard this relay leads has none while the
/// claim holds the shard's lease row (a takeover waits for the claim). Returns `None` then. If
/// it leased fewer (a row published, redriven or deleted since the read), the claim keeps what
/// [`oldest_runs`] keeps, with the attempts read as of its own lock, and gives the rest back in
/// the same transaction.
async fn lease_unleased(
    txn: &impl ConnectionTrait,
    owner: &str,
    lease: Duration,
    candidates: &[ClaimedRow],
) -> Result<Option<Vec<ClaimedRow>>, DbErr> {
    let nowait = "SET STATEMENT innodb_lock_wait_timeout = 0 FOR ";
    // One statement changes nothing when it fails; only several need the savepoint.
    let several = candidates.len() > MAX_IDS;
    if several {
        txn.execute_unprepared("SAVEPOINT lease_unleased").await?;
    }
    let leased = match lease_rows(txn, owner, lease, candidates, nowait).await {
        Ok(leased) => leased,
        Err(e) => {
            if several {
                txn.execute_unprepared("ROLLBACK TO SAVEPOINT lease_unleased")
                    .await?;
            }
            return Err(e);
        }
    };
    if leased == candidates.len() as u64 {
        return Ok(None);
    }
    let leased = attempts_of(
        txn,
        candidates,
        |ids| {
            format!(
                "SELECT id, attempts FROM outbox_event FORCE INDEX (PRIMARY) \
                 WHERE lease_owner = ? AND status = 'PENDING' AND id IN ({ids})"
            )
        },
        &[owner.into()],
    )
    .await?;
    let (rows, give_back) = oldest_runs(candidates.to_vec(), &leased);
    release(txn, owner, Some(&give_back)).await?;
    Ok(Some(rows))
}

/// Step 2 of a claim when some candidate's lease expired (its holder may have written a backoff
/// since the read), when another transaction holds a candidate, or always in
/// [`LeaseMode::LockFirst`]: locks the candidates that are still claimable, reading their
/// attempts as of the lock. SKIP LOCKED passes over a row another transaction holds (the
/// locking read sees each row's latest commit, not one moment: with a skipping scan, rows
/// committed together could be taken partly, the younger ones first, as a commit landed between
/// two rows, which is why the candidates come from the consistent read).
async fn lock_claimable(
    txn: &impl ConnectionTrait,
    candidates: Vec<ClaimedRow>,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let locked = attempts_of(
        txn,
        &candidates,
        |ids| {
            format!(
                "SELECT id, attempts FROM outbox_event FORCE INDEX (PRIMARY) WHERE id IN ({ids}) \
                 AND {CLAIMABLE} FOR UPDATE SKIP LOCKED"
            )
        },
        &[],
    )
    .await?;
    Ok(oldest_runs(candidates, &locked).0)
}

/// `id → attempts` of the rows that `sql` (given the `IN` list's placeholders, after `values`)
/// selects among `rows`, [`MAX_IDS`] ids a statement.
async fn attempts_of(
    txn: &impl ConnectionTrait,
    rows: &[ClaimedRow],
    sql: impl Fn(&str) -> String,
    values: &[Value],
) -> Result<HashMap<i64, i32>, DbErr> {
    let mut found = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_IDS) {
        let mut chunk_values: Vec<Value> = values.to_vec();
        let ids = in_list(&mut chunk_values, chunk.iter().map(|r| Value::from(r.id)));
        for row in txn.query_all_raw(stmt(&sql(&ids), chunk_values)).await? {
            found.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        }
    }
    Ok(found)
}

/// What a claim keeps of its candidates once it knows which ones it `took` (with their attempts
/// as of then): a key whose candidate was not taken keeps only the candidates before it, so what a
/// claim takes of a key is always the oldest of its visible rows. Returns the kept rows, in id
/// order, and the ids taken but not kept.
fn oldest_runs(
    candidates: Vec<ClaimedRow>,
    took: &HashMap<i64, i32>,
) -> (Vec<ClaimedRow>, Vec<i64>) {
    let mut passed_over: HashSet<String> = HashSet::new();
    let mut rows = Vec::with_capacity(took.len());
    let mut not_kept = Vec::new();
    for mut row in candidates {
        match took.get(&row.id) {
            Some(_) if passed_over.contains(&row.msg_key) => not_kept.push(row.id),
            Some(&attempts) => {
                row.attempts = attempts;
                rows.push(row);
            }
            None => {
                passed_over.insert(row.msg_key);
            }
        }
    }
    (rows, not_kept)
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

/// Marks rows PUBLISHED, [`MAX_IDS`] a statement (the recorder hands over at most that many at
/// once). A row that is delivered is published whoever holds its lease now, so this does not
/// check the owner.
pub async fn mark_published(db: &Db, ids: &[i64]) -> Result<(), DbErr> {
    execute_for_ids(db, ids, &[], |ids| {
        format!(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'PUBLISHED', published_at = UTC_TIMESTAMP(6), \
             last_error = NULL, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'PENDING' AND id IN ({ids})"
        )
    })
    .await?;
    Ok(())
}

/// Puts a row back in backoff: due again `after` from now, lease released. The due time goes into
/// `lease_until` as well as `available_at`, with no owner: the one index the claim reads,
/// `(status, lease_until, lease_owner)`, then shows the row holding its key back until it is due
/// (a second index on `available_at` for that alone cost every insert and every mark an entry),
/// and a due row is claimable like an expired lease (docs/design.md §7). `attempt` says
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
         available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, lease_owner = NULL, \
         lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
         WHERE id = ? AND status = 'PENDING' AND lease_owner = ?",
        vec![
            i32::from(attempt).into(),
            truncate(error).into(),
            micros(after).into(),
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
/// rows, and inside a claim the rows it took but does not keep), [`MAX_IDS`] ids a statement.
/// `None` releases every row `owner` holds.
pub async fn release(
    db: &impl ConnectionTrait,
    owner: &str,
    ids: Option<&[i64]>,
) -> Result<u64, DbErr> {
    let statement = |index: &str, filter: String| {
        format!(
            "UPDATE outbox_event FORCE INDEX ({index}) SET lease_owner = NULL, lease_until = NULL \
             WHERE status = 'PENDING' AND lease_owner = ?{filter}"
        )
    };
    let Some(ids) = ids else {
        let all = statement(
            "ix_outbox_status_lease",
            " AND lease_until IS NOT NULL".into(),
        );
        return Ok(db
            .execute_raw(stmt(&all, vec![owner.into()]))
            .await?
            .rows_affected());
    };
    execute_for_ids(db, ids, &[owner.into()], |list| {
        statement("PRIMARY", format!(" AND id IN ({list})"))
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, key: &str) -> ClaimedRow {
        ClaimedRow {
            id,
            event_id: format!("e{id}"),
            event_type: "ParticipationAccepted".into(),
            topic: "t".into(),
            msg_key: key.into(),
            payload: String::new(),
            headers: String::new(),
            attempts: 0,
            shard: 0,
            created_at: chrono::NaiveDateTime::default(),
        }
    }

    #[test]
    fn a_key_keeps_only_the_rows_before_its_first_row_not_taken_and_the_rest_is_given_back() {
        let candidates = vec![
            row(1, "a"),
            row(2, "b"),
            row(3, "a"),
            row(4, "a"),
            row(5, "b"),
        ];
        // Row 3 of "a" was not taken (held, published or gone since the read); 4 was.
        let took: HashMap<i64, i32> = [(1, 0), (2, 1), (4, 2), (5, 0)].into();
        let (kept, give_back) = oldest_runs(candidates, &took);
        let kept: Vec<(i64, i32)> = kept.iter().map(|r| (r.id, r.attempts)).collect();
        assert_eq!(
            kept,
            vec![(1, 0), (2, 1), (5, 0)],
            "attempts as of the lock"
        );
        assert_eq!(give_back, vec![4], "a's row after its hole goes back");
    }

    #[test]
    fn all_taken_keeps_all_in_order_and_gives_nothing_back() {
        let candidates = vec![row(7, "a"), row(8, "b"), row(9, "a")];
        let took: HashMap<i64, i32> = [(7, 0), (8, 0), (9, 0)].into();
        let (kept, give_back) = oldest_runs(candidates, &took);
        assert_eq!(kept.iter().map(|r| r.id).collect::<Vec<_>>(), vec![7, 8, 9]);
        assert!(give_back.is_empty());
    }
}
