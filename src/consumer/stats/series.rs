//! A campaign's recent activity in 5-second slots (`campaign_series`, docs/design.md §20), so
//! that the live view draws a sale's last five minutes whenever its page was opened (issue 73: a
//! chart that began when the page opened showed a sale two minutes earlier as flat).
//!
//! Two writers: the stats consumer adds its wins, each event once in the transaction that
//! applies it, in the slot of its `occurredAt`; each instance's refusal flush adds the joins it
//! refused since the last flush, in the slot of the flush (half a second late at most), and
//! deletes slots older than [`KEEP`]. Counts are statistics, as the refusal counts are: a flush
//! whose write here fails drops its share of the chart, never a count of `campaign_refusal`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::db::{
    sql::{insert_rows, stmt},
    time::to_db,
};

/// A slot's length, seconds.
pub const SLOT_SECS: i64 = 5;

/// How long slots are kept: the live view reads the last five minutes.
pub const KEEP: chrono::Duration = chrono::Duration::hours(1);

/// Old slots deleted per statement at most (one statement a flush).
const FORGET_BATCH: u64 = 5_000;

/// The slot `at` falls in: its start, in whole seconds.
pub fn slot_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp().div_euclid(SLOT_SECS) * SLOT_SECS;
    DateTime::from_timestamp(secs, 0).unwrap_or(at)
}

/// One slot of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Point {
    /// The slot's start.
    pub slot: NaiveDateTime,
    pub wins: i64,
    pub refused: i64,
}

/// Adds a batch's wins, counted per campaign and slot (the stats consumer's fold), in the
/// consumer's transaction.
pub async fn add_wins(
    txn: &impl ConnectionTrait,
    wins: &BTreeMap<(i64, DateTime<Utc>), i64>,
) -> Result<(), DbErr> {
    add(txn, wins.iter().map(|(&k, &n)| (k, (n, 0)))).await
}

/// Adds refused joins, counted per campaign, to the slot of `at`.
pub async fn add_refused(
    db: &impl ConnectionTrait,
    refused: &BTreeMap<i64, i64>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let slot = slot_of(at);
    add(db, refused.iter().map(|(&id, &n)| ((id, slot), (0, n)))).await
}

async fn add(
    db: &impl ConnectionTrait,
    counts: impl Iterator<Item = ((i64, DateTime<Utc>), (i64, i64))>,
) -> Result<(), DbErr> {
    let mut values: Vec<Value> = Vec::new();
    for ((id, slot), (wins, refused)) in counts {
        values.extend([id.into(), to_db(slot).into(), wins.into(), refused.into()]);
    }
    if values.is_empty() {
        return Ok(());
    }
    insert_rows(
        db,
        "INSERT INTO campaign_series (campaign_id, slot, wins, refused)",
        "(?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE wins = wins + VALUES(wins), refused = refused + VALUES(refused)",
        values,
    )
    .await?;
    Ok(())
}

/// Deletes slots older than [`KEEP`] before `now` (a bounded batch); how many went.
pub async fn forget_old(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let res = db
        .execute_raw(stmt(
            "DELETE FROM campaign_series WHERE slot < ? LIMIT ?",
            vec![to_db(now - KEEP).into(), FORGET_BATCH.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// The campaign's slots from `since` on, oldest first (slots with nothing are absent).
pub async fn recent(
    db: &impl ConnectionTrait,
    campaign_id: i64,
    since: DateTime<Utc>,
) -> Result<Vec<Point>, DbErr> {
    Point::find_by_statement(stmt(
        "SELECT slot, wins, refused FROM campaign_series \
         WHERE campaign_id = ? AND slot >= ? ORDER BY slot",
        vec![campaign_id.into(), to_db(slot_of(since)).into()],
    ))
    .all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_starts_on_a_multiple_of_five_seconds() {
        let at = |s: i64, ms: u32| DateTime::from_timestamp(s, ms * 1_000_000).expect("a time");
        assert_eq!(slot_of(at(1_000, 0)), at(1_000, 0));
        assert_eq!(slot_of(at(1_004, 999)), at(1_000, 0));
        assert_eq!(slot_of(at(1_005, 1)), at(1_005, 0));
        assert_eq!(slot_of(at(-1, 0)), at(-5, 0));
    }
}
