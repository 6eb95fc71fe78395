//! The guarded decrement (docs/design.md §2.1, §6 step 3, §21): the one statement of a
//! participation transaction that takes its wins' units, from the campaign's row or from its
//! bucket's, refused when the row has too few, the campaign is paused or closed, or the row's
//! gate generation is no longer the one the wins' reservations carry (their gate was lost and
//! rebuilt); and the read that says why it was refused. A batch of a bucketed campaign's wins from several buckets takes
//! each bucket's units in one statement, all of them or none ([`decrement_buckets`]).

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbErr};

use crate::{
    db::{
        sql::{in_list, size_at_least, stmt},
        time::to_db,
        Txn,
    },
    gate::Slot,
    hooks::Hooks,
    write::error::WriteError,
};

/// How often the guarded decrement is tried again when the read that explains its refusal finds
/// the campaign open with the units (a resume or a return committed between the two).
const GUARD_ATTEMPTS: u32 = 4;

/// What a transaction's guarded decrement takes: `total` units for `count` wins from the slot's
/// row (the campaign's, or a bucket's, whose highest sequence becomes at least `max_sequence`),
/// made by the gate of generation `gate_gen` ([`MIXED_GENERATIONS`] when they were not all).
pub(super) struct Guard {
    pub(super) slot: Slot,
    pub(super) total: i64,
    pub(super) count: i64,
    pub(super) max_sequence: i64,
    pub(super) gate_gen: i64,
}

/// The generation of a batch whose wins' reservations come from gates of several generations:
/// no row has it (a row's `gate_gen` starts at 0 and only grows), so the batch is refused and
/// its wins are written one by one, each judged by its own generation.
pub(super) const MIXED_GENERATIONS: i64 = -1;

impl Guard {
    /// The decrement: on the campaign's row, or on the bucket's row, which carries the
    /// campaign's pause and close (a win of a bucketed campaign locks no campaign-wide row).
    fn statement(&self) -> sea_orm::Statement {
        let now = to_db(Utc::now());
        match self.slot.bucket {
            None => stmt(
                "UPDATE campaign SET remaining_stock = remaining_stock - ?, accepted_count = accepted_count + ?, updated_at = ? \
                 WHERE id = ? AND remaining_stock >= ? AND paused = 0 AND closed_at IS NULL AND gate_gen = ?",
                vec![
                    self.total.into(),
                    self.count.into(),
                    now.into(),
                    self.slot.campaign_id.into(),
                    self.total.into(),
                    self.gate_gen.into(),
                ],
            ),
            Some(bucket) => stmt(
                "UPDATE campaign_bucket SET remaining_stock = remaining_stock - ?, accepted_count = accepted_count + ?, \
                 max_sequence = GREATEST(max_sequence, ?) \
                 WHERE campaign_id = ? AND bucket = ? AND remaining_stock >= ? AND paused = 0 AND closed = 0 \
                 AND gate_gen = ?",
                vec![
                    self.total.into(),
                    self.count.into(),
                    self.max_sequence.into(),
                    self.slot.campaign_id.into(),
                    bucket.into(),
                    self.total.into(),
                    self.gate_gen.into(),
                ],
            ),
        }
    }
}

/// The guarded decrement of the slot's stock by `total` units for `count` wins; on a refusal,
/// why (another gate generation, closed, paused, or fewer units than asked, read with its
/// `control_seq`).
///
/// The pool runs READ COMMITTED: the read that explains a refusal sees a newer state than the
/// decrement did. A campaign that was paused for the decrement and resumed for the read would
/// answer SOLD_OUT with its units free (or set the gate's stock from that read): when the read
/// finds nothing to refuse, the decrement is tried again instead.
pub(super) async fn guarded_decrement(
    txn: &Txn,
    guard: &Guard,
    hooks: &dyn Hooks,
) -> Result<(), WriteError> {
    for _ in 0..GUARD_ATTEMPTS {
        let updated = txn.execute_raw(guard.statement()).await?;
        if updated.rows_affected() > 0 {
            return Ok(());
        }
        hooks.after_refused_decrement().await;
        if let Some(refused) = refusal(txn, guard).await? {
            return Err(refused);
        }
    }
    Err(WriteError::Db(DbErr::Custom(format!(
        "{} changed under its guarded decrement {GUARD_ATTEMPTS} times",
        guard.slot
    ))))
}

/// Why the guarded decrement matched no row, read now: the row's gate generation is not the
/// wins' (their gate was lost: judged first, since nothing else about them counts then), the
/// campaign is closed, paused, or has fewer than `total` units (read with its `control_seq`,
/// the live controls that stock includes); `None` when it is open with the units (it changed
/// since the decrement read it). A campaign that is gone has no units: SOLD_OUT at (0, 0).
async fn refusal(txn: &Txn, guard: &Guard) -> Result<Option<WriteError>, DbErr> {
    let (slot, total) = (guard.slot, guard.total);
    let read = match slot.bucket {
        None => stmt(
            "SELECT remaining_stock, control_seq, CAST(paused <> 0 AS SIGNED), \
             CAST(closed_at IS NOT NULL AS SIGNED), gate_gen FROM campaign WHERE id = ?",
            vec![slot.campaign_id.into()],
        ),
        Some(bucket) => stmt(
            "SELECT b.remaining_stock, c.control_seq, CAST(b.paused <> 0 AS SIGNED), \
             CAST(b.closed <> 0 AS SIGNED), b.gate_gen FROM campaign_bucket b JOIN campaign c ON c.id = b.campaign_id \
             WHERE b.campaign_id = ? AND b.bucket = ?",
            vec![slot.campaign_id.into(), bucket.into()],
        ),
    };
    let Some(row) = txn.query_one_raw(read).await? else {
        return Ok(Some(WriteError::SoldOut {
            remaining_stock: 0,
            control_seq: 0,
        }));
    };
    let (paused, closed): (i64, i64) = (row.try_get_by_index(2)?, row.try_get_by_index(3)?);
    let remaining_stock: i64 = row.try_get_by_index(0)?;
    let row_gen: i64 = row.try_get_by_index(4)?;
    Ok(if row_gen != guard.gate_gen {
        Some(WriteError::GateLost { row_gen })
    } else if closed != 0 {
        Some(WriteError::Closed)
    } else if paused != 0 {
        Some(WriteError::Paused)
    } else if remaining_stock < total {
        Some(WriteError::SoldOut {
            remaining_stock,
            control_seq: row.try_get_by_index(1)?,
        })
    } else {
        None
    })
}

/// One bucket's share of a batch over several buckets: `total` units for `count` wins, the
/// highest sequence among them, their gate's generation (or [`MIXED_GENERATIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Part {
    pub(super) bucket: u16,
    pub(super) total: i64,
    pub(super) count: i64,
    pub(super) max_sequence: i64,
    pub(super) gate_gen: i64,
}

/// Buckets per statement of [`decrement_buckets`]: eleven values a bucket, about 7 KiB of them,
/// inside `db::sql::STATEMENT_BYTES`.
const BUCKETS_PER_STATEMENT: usize = 64;

/// The guarded decrement of several buckets of campaign `campaign_id` at once, `parts` in
/// ascending bucket order (the lock order of every transaction on bucket rows, so batches and
/// transfers never deadlock): each bucket's row gives its part, unless it has too few units, the
/// campaign is paused or closed there, or the row's gate generation is not the part's. `BatchRefused` when any bucket refused: the caller
/// rolls the whole transaction back, and the batch's wins are written one by one, each judged by
/// its own bucket's guard.
pub(super) async fn decrement_buckets(
    txn: &Txn,
    campaign_id: i64,
    parts: &[Part],
) -> Result<(), WriteError> {
    debug_assert!(parts.windows(2).all(|w| w[0].bucket < w[1].bucket));
    for chunk in parts.chunks(BUCKETS_PER_STATEMENT) {
        let updated = txn
            .execute_raw(buckets_statement(campaign_id, chunk))
            .await?;
        if updated.rows_affected() < chunk.len() as u64 {
            return Err(WriteError::BatchRefused);
        }
    }
    Ok(())
}

/// One `UPDATE` of `parts`' rows, each by its own part (`CASE bucket …`), the list padded to a
/// list size of `db::sql` by repeating the last part (the same statement text for nearby
/// counts; a repeated `WHEN` or `IN` member changes nothing).
fn buckets_statement(campaign_id: i64, parts: &[Part]) -> sea_orm::Statement {
    let mut padded = parts.to_vec();
    if let Some(&last) = parts.last() {
        padded.resize(size_at_least(parts.len()), last);
    }
    let case = |values: &mut Vec<sea_orm::Value>, of: fn(&Part) -> i64| {
        for p in &padded {
            values.extend([p.bucket.into(), of(p).into()]);
        }
        format!(
            "CASE bucket {} END",
            vec!["WHEN ? THEN ?"; padded.len()].join(" ")
        )
    };
    let mut values = Vec::with_capacity(padded.len() * 11 + 1);
    let minus = case(&mut values, |p| p.total);
    let plus = case(&mut values, |p| p.count);
    let highest = case(&mut values, |p| p.max_sequence);
    values.push(campaign_id.into());
    for p in &padded {
        values.push(p.bucket.into());
    }
    let listed = vec!["?"; padded.len()].join(", ");
    let enough = case(&mut values, |p| p.total);
    let generation = case(&mut values, |p| p.gate_gen);
    stmt(
        &format!(
            "UPDATE campaign_bucket SET remaining_stock = remaining_stock - {minus}, \
             accepted_count = accepted_count + {plus}, max_sequence = GREATEST(max_sequence, {highest}) \
             WHERE campaign_id = ? AND bucket IN ({listed}) AND paused = 0 AND closed = 0 \
             AND remaining_stock >= {enough} AND gate_gen = {generation}"
        ),
        values,
    )
}

/// Locks the rows of `buckets` (ascending) of campaign `campaign_id` that no other transaction
/// holds, and says which (ascending): `SELECT … FOR UPDATE SKIP LOCKED` never waits. A batch
/// then takes the units of those buckets only, and its wins of the others wait for the lane's
/// next batch instead of waiting here on another writer's row (docs/design.md §23 "Writers on
/// one row"). The lock order argument stands: this statement waits for nothing, and the
/// decrement that follows touches only rows it locked.
pub(super) async fn lock_free_buckets(
    txn: &Txn,
    campaign_id: i64,
    buckets: &[u16],
) -> Result<Vec<u16>, DbErr> {
    let mut values = vec![campaign_id.into()];
    let listed = in_list(&mut values, buckets.iter().map(|&b| b.into()));
    let rows = txn
        .query_all_raw(stmt(
            &format!(
                "SELECT CAST(bucket AS SIGNED) FROM campaign_bucket WHERE campaign_id = ? \
                 AND bucket IN ({listed}) ORDER BY bucket FOR UPDATE SKIP LOCKED"
            ),
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let bucket: i64 = row.try_get_by_index(0)?;
            u16::try_from(bucket)
                .map_err(|_| DbErr::Custom(format!("bucket {bucket} out of range")))
        })
        .collect()
}
