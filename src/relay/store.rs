//! SQL of the relay: claim due rows, record outcomes (batched marks; backoff and DEAD fenced by
//! the shard lease), and clean up (the admin views are in `admin.rs`). Time comparisons use the
//! database clock (`UTC_TIMESTAMP(6)`), so instances with skewed clocks still agree on leases and
//! due times.
//!
//! Rows are not leased one by one: the shard lease is the fence (docs/design.md §7). A claim
//! writes nothing; the rows this relay has claimed and not yet settled are held in its memory
//! (`order.rs`) and left out of its claims by id.
//!
//! Every UPDATE names its index (`FORCE INDEX`). Left to itself the optimizer reaches rows by
//! `id` through the `status` index (PENDING rows are few), and so reads every PENDING row,
//! including rows that participation transactions are still writing: the UPDATE then waits on
//! their locks (up to `innodb_lock_wait_timeout`), and a long transaction stalls the relay.
//! Through the primary key (rows by id) an UPDATE reads only the rows it changes.

use crate::db::sql::{execute_for_ids, stmt};
use std::time::Duration;

use crate::{
    db::Db,
    relay::{
        candidates::{self, ClaimFilter},
        order::ClaimView,
    },
};
use sea_orm::{ConnectionTrait, DbErr};

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A row handed to a worker.
/// Decoded by position, in the claim's column order (`candidates`).
#[derive(Debug, Clone)]
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

/// Share-locks `owner`'s live lease rows among `shards` until the transaction ends (a takeover
/// by another instance cannot commit meanwhile) and returns their shards.
async fn led_shards(
    txn: &impl ConnectionTrait,
    owner: &str,
    shards: ShardsAsked,
) -> Result<Vec<u32>, DbErr> {
    let (filter, value) = match shards {
        ShardsAsked::Below(total) => ("shard < ?", total),
        ShardsAsked::One(shard) => ("shard = ?", shard),
    };
    let rows = txn
        .query_all_raw(stmt(
            &format!(
                "SELECT shard FROM relay_shard WHERE owner = ? AND {filter} \
                 AND lease_until > UTC_TIMESTAMP(6) ORDER BY shard LOCK IN SHARE MODE"
            ),
            vec![owner.into(), value.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<i32>(0).map(|s| s as u32))
        .collect()
}

/// Which lease rows [`led_shards`] reads.
#[derive(Clone, Copy)]
enum ShardsAsked {
    /// Every shard (a claim).
    Below(u32),
    /// One shard (an outcome's fence).
    One(u32),
}

/// Claims up to `limit` due rows of the shards `owner` leads, in id order. It writes nothing:
/// what it returns is held in this relay's memory until settled (`order.rs`).
///
/// Fencing: the shards come from `relay_shard` inside this transaction, share-locked, so an
/// instance whose lease ran out claims nothing, however late its claim loop runs, and a takeover
/// waits for a running claim. Only the shard's leader writes a PENDING row's backoff or DEAD
/// mark, under the same lock ([`back_off`]), so the attempts a claim reads stay true while it
/// leads.
///
/// Per-key order: a row is not taken while an older row of its key is in backoff (or leased by
/// a relay of an earlier version), nor while its key is blocked in this relay (`view.blocked`).
/// The rows this relay holds (`view.held`) are left out by id, so only their younger rows are
/// taken: they queue behind their elders in the key's worker. Candidates and held-back keys come
/// from one consistent read ([`candidates::read`]), so a row a transaction is still writing is not
/// among them (a late commit is claimed once it is visible).
#[tracing::instrument(level = "debug", skip(db, view), fields(blocked = view.blocked.len(), held_runs = view.held.runs.len()), err(level = "warn"))]
pub async fn claim(
    db: &Db,
    owner: &str,
    total: u32,
    limit: u32,
    view: &ClaimView,
) -> Result<Vec<ClaimedRow>, DbErr> {
    let txn = db.begin().await?;
    let shards = led_shards(&txn, owner, ShardsAsked::Below(total)).await?;
    let led = LedShards { total, shards };
    let rows = if led.shards.is_empty() {
        Vec::new()
    } else {
        candidates::read(&txn, total, &ClaimFilter::new(&led, view), limit).await?
    };
    txn.commit().await?;
    Ok(rows)
}

/// Marks rows PUBLISHED, [`MAX_IDS`](crate::db::sql::MAX_IDS) a statement (the recorder hands
/// over at most that many at once). A row that is delivered is published whoever leads its shard
/// now, so this is not fenced. The publish time goes into `lease_until` as well as
/// `published_at` (no row of a status other than PENDING is ever leased): the index
/// `(status, lease_until, lease_owner)` then holds the PUBLISHED rows in the order they were
/// published, and the cleanup reads the ones past the retention as one range
/// ([`delete_published`]), as a row in backoff shows its due time there.
pub async fn mark_published(db: &Db, ids: &[i64]) -> Result<(), DbErr> {
    execute_for_ids(db, ids, &[], |ids| {
        format!(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'PUBLISHED', published_at = UTC_TIMESTAMP(6), \
             last_error = NULL, lease_owner = NULL, lease_until = UTC_TIMESTAMP(6) \
             WHERE status = 'PENDING' AND id IN ({ids})"
        )
    })
    .await?;
    Ok(())
}

/// Puts a row back in backoff: due again `after` from now. The due time goes into `lease_until`
/// as well as `available_at`, with no owner: the one index the claim reads,
/// `(status, lease_until, lease_owner)`, then shows the row holding its key back until it is due
/// (a second index on `available_at` for that alone cost every insert and every mark an entry),
/// and a due row is claimable (docs/design.md §7). `attempt` says whether the failure counts
/// against `RELAY_MAX_ATTEMPTS` (a broker answered with an error) or not (no broker answered: the
/// outage policy). Only while `owner` still leads the row's shard ([`fenced`]): a relay whose
/// lease ran out does not overwrite its successor's work. Returns whether it was written.
pub async fn back_off(
    db: &Db,
    row: &ClaimedRow,
    owner: &str,
    after: Duration,
    attempt: bool,
    error: &str,
) -> Result<bool, DbErr> {
    fenced(
        db,
        owner,
        row.shard,
        stmt(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET attempts = attempts + ?, last_error = ?, \
             available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, lease_owner = NULL, \
             lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
             WHERE id = ? AND status = 'PENDING'",
            vec![
                i32::from(attempt).into(),
                truncate(error).into(),
                micros(after).into(),
                micros(after).into(),
                row.id.into(),
            ],
        ),
    )
    .await
}

/// Marks a dead-lettered row DEAD (after its DLQ message was acknowledged), while `owner` still
/// leads its shard ([`fenced`]). Returns whether it was written.
pub async fn mark_dead(
    db: &Db,
    row: &ClaimedRow,
    owner: &str,
    attempts: i32,
    error: &str,
) -> Result<bool, DbErr> {
    fenced(
        db,
        owner,
        row.shard,
        stmt(
            "UPDATE outbox_event FORCE INDEX (PRIMARY) SET status = 'DEAD', attempts = ?, last_error = ?, \
             lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'PENDING'",
            vec![attempts.into(), truncate(error).into(), row.id.into()],
        ),
    )
    .await
}

/// Runs `update` only while `owner` holds a live lease on `shard`, in one transaction with that
/// lease row share-locked: a takeover waits for it, and once a takeover has committed the update
/// is not run. The shard lease is the fence a row lease used to be; only the leader writes a
/// PENDING row's backoff or DEAD mark. Returns whether it ran.
async fn fenced(
    db: &Db,
    owner: &str,
    shard: u32,
    update: sea_orm::Statement,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let leads = !led_shards(&txn, owner, ShardsAsked::One(shard))
        .await?
        .is_empty();
    if leads {
        txn.execute_raw(update).await?;
    }
    txn.commit().await?;
    Ok(leads)
}

/// Deletes up to `batch` PUBLISHED rows published more than `retention` ago; returns how many.
///
/// It reads what it deletes: the range of `(status, lease_until, lease_owner)` where the mark put
/// each PUBLISHED row by its publish time ([`mark_published`]), in that index's order. (In id
/// order, every statement read and sorted every PUBLISHED row, those inside the retention too: a
/// pass every minute read the whole retained outbox, and deleting n rows read about n² ÷ 2
/// batch.) Rows marked before the mark stamped them (`lease_until` NULL) come first in that
/// order, by id; they are read each pass until the retention has taken them all.
pub async fn delete_published(db: &Db, retention: Duration, batch: u32) -> Result<u64, DbErr> {
    let res = db
        .execute_raw(delete_published_statement(retention, batch))
        .await?;
    Ok(res.rows_affected())
}

/// The statement of [`delete_published`] (public for the test that reads its plan).
pub fn delete_published_statement(retention: Duration, batch: u32) -> sea_orm::Statement {
    let past = micros(retention);
    stmt(
        "DELETE FROM outbox_event WHERE status = 'PUBLISHED' \
         AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND) \
         AND published_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND \
         ORDER BY lease_until, lease_owner, id LIMIT ?",
        vec![past.into(), past.into(), batch.into()],
    )
}

/// `last_error` is TEXT; keep it well inside.
fn truncate(error: &str) -> String {
    error.chars().take(4_000).collect()
}
