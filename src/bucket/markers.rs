//! The `gate_transfer` markers (docs/design.md §21): units a bucket's row gained (or lost, to a
//! withdrawal) in a committed transfer that its gate may not have yet. Written with the
//! transfer ([`super::store`]); the transfer's own call gives the gate the units and deletes
//! the marker, and the marker loop (`upkeep::markers`) gives whatever a crash or a Redis
//! failure left, as it does for `gate_return` (§14).

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::db::sql::stmt;

/// A `gate_transfer` marker: units a bucket's row gained that its gate may not have yet.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct GateTransfer {
    pub transfer_id: i64,
    pub campaign_id: i64,
    pub bucket: i16,
    pub units: i64,
}

/// Up to `limit` markers after `after` (a transfer id), oldest first.
pub async fn pending_gate_transfers(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u32,
) -> Result<Vec<GateTransfer>, DbErr> {
    GateTransfer::find_by_statement(stmt(
        "SELECT transfer_id, campaign_id, bucket, units FROM gate_transfer WHERE transfer_id > ? \
         ORDER BY transfer_id LIMIT ?",
        vec![after.into(), limit.into()],
    ))
    .all(db)
    .await
}

/// Deletes a marker once the gate has its units.
pub async fn forget_gate_transfer(
    db: &impl ConnectionTrait,
    transfer_id: i64,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "DELETE FROM gate_transfer WHERE transfer_id = ?",
        vec![transfer_id.into()],
    ))
    .await?;
    Ok(())
}

/// How many of the campaign's transfers a gate may still lack (their markers).
pub async fn owed_transfers(db: &impl ConnectionTrait, campaign_id: i64) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT COUNT(*) FROM gate_transfer WHERE campaign_id = ?",
            vec![campaign_id.into()],
        ))
        .await?;
    match row {
        Some(row) => row.try_get_by_index(0),
        None => Ok(0),
    }
}
