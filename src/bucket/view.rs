//! What operators see of a bucketed campaign's balance (docs/design.md §21): each bucket's row
//! beside its gate, and the pool. The rows are MySQL's (the truth: units not sold, reserved ones
//! included); a gate's free units are Redis's (what its joins can reserve now).

use sea_orm::{ConnectionTrait, DbErr};

use crate::{
    bucket::{
        markers,
        store::{self, BucketRow},
    },
    db::{sql::stmt, Db},
    gate::{Gate, Slot},
};

/// One bucket: its row and its gate's free units (`None`: not loaded, or Redis unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketBalance {
    pub row: BucketRow,
    pub gate_stock: Option<i64>,
}

/// A campaign's buckets and its pool, read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// `campaign.remaining_stock` of a bucketed campaign: the units no bucket was dealt yet.
    pub pool: i64,
    /// Transfers committed whose units a gate may not have yet.
    pub transfers_owed: i64,
    pub buckets: Vec<BucketBalance>,
}

/// The balance of the buckets of campaign `campaign_id`, of `buckets` buckets (in `group`, whose
/// hash tag its keys take); an unbucketed campaign has none (its pool is its stock).
pub async fn read(
    db: &Db,
    gate: &Gate,
    (campaign_id, group, buckets): (i64, Option<i64>, u16),
) -> Result<Balance, DbErr> {
    let rows = store::rows(db, campaign_id).await?;
    let slots: Vec<Slot> = rows
        .iter()
        .map(|r| {
            Slot::new(
                campaign_id,
                group,
                buckets,
                u16::try_from(r.bucket).unwrap_or(0),
            )
        })
        .collect();
    let mut free = gate.free_units(&slots).await;
    free.sort_by_key(|(slot, _)| *slot);
    let pool = store::pool(db, campaign_id).await?;
    let transfers_owed = markers::owed_transfers(db, campaign_id).await?;
    Ok(Balance {
        pool,
        transfers_owed,
        buckets: rows
            .into_iter()
            .zip(free)
            .map(|(row, (_, gate_stock))| BucketBalance { row, gate_stock })
            .collect(),
    })
}

/// What a bucketed campaign's waiting room needs of it (docs/design.md §21): its free units (the
/// pool plus every bucket's row, one snapshot; units reserved and not committed count as free)
/// and whether it is paused or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub free: i64,
    pub paused: bool,
    pub closed: bool,
}

/// Campaign `campaign_id`'s [`Standing`], read now in one statement (`None`: no such campaign).
pub async fn standing(db: &Db, campaign_id: i64) -> Result<Option<Standing>, DbErr> {
    let read = stmt(
        &format!(
            "SELECT {}, CAST(c.paused <> 0 AS SIGNED), CAST(c.closed_at IS NOT NULL AS SIGNED) \
             FROM campaign c WHERE c.id = ?",
            store::CAMPAIGN_REMAINING
        ),
        vec![campaign_id.into()],
    );
    let Some(row) = db.query_one_raw(read).await? else {
        return Ok(None);
    };
    let (paused, closed): (i64, i64) = (row.try_get_by_index(1)?, row.try_get_by_index(2)?);
    Ok(Some(Standing {
        free: row.try_get_by_index(0)?,
        paused: paused != 0,
        closed: closed != 0,
    }))
}
