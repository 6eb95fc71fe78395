//! `consumer_inbox`: the dedupe record (docs/design.md §5). Written in the transaction that applies the
//! effect, so "applied" and "recorded" cannot disagree.

use crate::db::sql::{fits, in_list, insert_rows, stmt, value_bytes};
use std::{collections::HashSet, time::Duration};

use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

/// Rows recorded per call of `insert_rows` (which cuts them again by bytes).
const CHUNK: usize = 1_000;

/// Which of `event_ids` this consumer already applied.
pub async fn applied(
    conn: &impl ConnectionTrait,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut found = HashSet::new();
    // Event ids as text, as many as fit one statement's bytes (`db::sql`): 256 a statement.
    let per_statement = fits(value_bytes(&Value::from(Uuid::nil().to_string())));
    for chunk in event_ids.chunks(per_statement) {
        let mut values: Vec<Value> = vec![consumer.into()];
        let ids = in_list(
            &mut values,
            chunk.iter().map(|id| Value::from(id.to_string())),
        );
        let rows = conn
            .query_all_raw(stmt(
                &format!(
                    "SELECT event_id FROM consumer_inbox WHERE consumer = ? AND event_id IN ({ids})"
                ),
                values,
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get_by_index(0)?;
            if let Ok(id) = id.parse() {
                found.insert(id);
            }
        }
    }
    Ok(found)
}

/// Records `event_ids` as applied. A plain INSERT: if another member applied one of them
/// meanwhile (a rebalance overlap), the duplicate key fails the whole transaction, which is
/// retried and then skips it.
pub async fn record(
    conn: &impl ConnectionTrait,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<(), DbErr> {
    for chunk in event_ids.chunks(CHUNK) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
        for id in chunk {
            values.push(consumer.into());
            values.push(id.to_string().into());
        }
        insert_rows(
            conn,
            "INSERT INTO consumer_inbox (consumer, event_id, processed_at)",
            "(?, ?, UTC_TIMESTAMP(6))",
            "",
            values,
        )
        .await?;
    }
    Ok(())
}

/// Deletes up to `limit` of this consumer's rows older than `retention`; returns how many.
pub async fn clean(
    conn: &impl ConnectionTrait,
    consumer: &str,
    retention: Duration,
    limit: u32,
) -> Result<u64, DbErr> {
    let micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    let res = conn
        .execute_raw(stmt(
            "DELETE FROM consumer_inbox WHERE consumer = ? \
             AND processed_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND LIMIT ?",
            vec![consumer.into(), micros.into(), limit.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}
