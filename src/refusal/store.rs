//! The `campaign_refusal` table (migration 31): refused joins per campaign, UTC day and reason,
//! added to by every instance's flush and read by the campaign endpoints, the live stream and the
//! period statistics.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::{
    db::{
        sql::{in_list, insert_rows, stmt},
        Db,
    },
    refusal::counter::CountKey,
};

/// A campaign's refusals so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalTotals {
    pub total: i64,
    /// By error code; codes never answered are absent.
    pub by_reason: BTreeMap<String, i64>,
}

/// One row of the table, summed as the query asked.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct RefusalRow {
    pub campaign_id: i64,
    pub day: NaiveDate,
    pub reason: String,
    pub refused_count: i64,
}

#[derive(Debug, Clone, FromQueryResult)]
struct TotalRow {
    campaign_id: i64,
    reason: String,
    refused_count: i64,
}

/// Adds `counts` to the table. Counts of ids that name no campaign are dropped here: a flood of
/// made-up ids leaves no rows behind. Rows are written in key order, one statement per piece.
/// Answers the refusals written, per campaign.
pub async fn add(
    db: &impl ConnectionTrait,
    counts: &BTreeMap<CountKey, i64>,
) -> Result<BTreeMap<i64, i64>, DbErr> {
    let mut added = BTreeMap::new();
    if counts.is_empty() {
        return Ok(added);
    }
    let mut ids: Vec<i64> = counts.keys().map(|(id, _, _)| *id).collect();
    ids.dedup();
    let mut values = Vec::new();
    let list = in_list(&mut values, ids.iter().map(|id| Value::from(*id)));
    let existing: Vec<i64> = db
        .query_all_raw(stmt(
            &format!("SELECT id FROM campaign WHERE id IN ({list})"),
            values,
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<Result<_, _>>()?;
    let mut rows: Vec<Value> = Vec::with_capacity(counts.len() * 4);
    for ((id, day, reason), n) in counts {
        if existing.contains(id) {
            *added.entry(*id).or_insert(0) += *n;
            rows.extend([
                (*id).into(),
                (*day).into(),
                reason.as_str().into(),
                (*n).into(),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(added);
    }
    insert_rows(
        db,
        "INSERT INTO campaign_refusal (campaign_id, day, reason, refused_count)",
        "(?, ?, ?, ?)",
        " ON DUPLICATE KEY UPDATE refused_count = refused_count + VALUES(refused_count)",
        rows,
    )
    .await?;
    Ok(added)
}

/// The totals of `ids` (one indexed range per campaign); campaigns without refusals get zeros.
pub async fn totals(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, RefusalTotals>, DbErr> {
    let mut out: HashMap<i64, RefusalTotals> = ids
        .iter()
        .map(|id| (*id, RefusalTotals::default()))
        .collect();
    if ids.is_empty() {
        return Ok(out);
    }
    let mut values = Vec::new();
    let list = in_list(&mut values, ids.iter().map(|id| Value::from(*id)));
    let rows = TotalRow::find_by_statement(stmt(
        &format!(
            "SELECT campaign_id, reason, CAST(SUM(refused_count) AS SIGNED) AS refused_count \
             FROM campaign_refusal WHERE campaign_id IN ({list}) GROUP BY campaign_id, reason"
        ),
        values,
    ))
    .all(db)
    .await?;
    for row in rows {
        let totals = out.entry(row.campaign_id).or_default();
        totals.total += row.refused_count;
        totals.by_reason.insert(row.reason, row.refused_count);
    }
    Ok(out)
}

/// Every campaign's refusals per day and reason from `from` to `to`, both included.
pub async fn days(
    db: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<RefusalRow>, DbErr> {
    RefusalRow::find_by_statement(stmt(
        "SELECT campaign_id, day, reason, refused_count FROM campaign_refusal \
         WHERE day >= ? AND day <= ? ORDER BY day, campaign_id, reason",
        vec![from.into(), to.into()],
    ))
    .all(db)
    .await
}

/// The reads, over the API's pool.
#[derive(Clone)]
pub struct RefusalView {
    db: Db,
}

impl RefusalView {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn totals(&self, ids: &[i64]) -> Result<HashMap<i64, RefusalTotals>, DbErr> {
        totals(&self.db, ids).await
    }

    pub async fn one(&self, id: i64) -> Result<RefusalTotals, DbErr> {
        Ok(totals(&self.db, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default())
    }

    pub async fn days(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<RefusalRow>, DbErr> {
        days(&self.db, from, to).await
    }
}
