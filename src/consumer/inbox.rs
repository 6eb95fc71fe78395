//! `consumer_inbox`: the dedupe record (docs/design.md §5). Written in the transaction that applies the
//! effect, so "applied" and "recorded" cannot disagree.

use crate::db::sql::{fits, in_list, insert_rows, stmt, value_bytes};
use std::{
    collections::HashSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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
    found(
        conn,
        "SELECT event_id FROM consumer_inbox WHERE consumer = ? AND event_id IN",
        Some(consumer),
        event_ids,
    )
    .await
}

/// Which of `event_ids` have a row in `table`, a handler's own record (`Record::Effect`): its
/// column `event_id` holds the id as text.
pub async fn recorded_in(
    conn: &impl ConnectionTrait,
    table: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let select = format!("SELECT event_id FROM {table} WHERE event_id IN");
    found(conn, &select, None, event_ids).await
}

/// The ids of `event_ids` that `select` (ending in `IN`, its one placeholder before the list
/// being `consumer` when given) finds.
async fn found(
    conn: &impl ConnectionTrait,
    select: &str,
    consumer: Option<&str>,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut found = HashSet::new();
    // Event ids as text, as many as fit one statement's bytes (`db::sql`): 256 a statement.
    let per_statement = fits(value_bytes(&Value::from(Uuid::nil().to_string())));
    for chunk in event_ids.chunks(per_statement) {
        let mut values: Vec<Value> = consumer.into_iter().map(Value::from).collect();
        let ids = in_list(
            &mut values,
            chunk.iter().map(|id| Value::from(id.to_string())),
        );
        let rows = conn
            .query_all_raw(stmt(&format!("{select} ({ids})"), values))
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
///
/// The table has no index on `processed_at` (every applied event would pay an entry in it for
/// this alone): the delete walks the primary key `(consumer, event_id)` up to the first UUIDv7 of
/// the cut-off's millisecond ([`v7_floor`]), a UUIDv7's text sorting by its time, and still
/// deletes a row only once it was processed `retention` ago, so an event applied long after it
/// was created keeps its row for the whole retention too. An id that is not a UUIDv7 (the
/// contract requires one, docs/design.md §2.4) may sort past every cut-off and is then kept.
pub async fn clean(
    conn: &impl ConnectionTrait,
    consumer: &str,
    retention: Duration,
    limit: u32,
) -> Result<u64, DbErr> {
    let micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
    let cut_off = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(UNIX_EPOCH);
    let res = conn
        .execute_raw(stmt(
            "DELETE FROM consumer_inbox WHERE consumer = ? AND event_id < ? \
             AND processed_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND LIMIT ?",
            vec![
                consumer.into(),
                v7_floor(cut_off).into(),
                micros.into(),
                limit.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// The smallest UUIDv7 text of `at`'s millisecond: every UUIDv7 of an earlier millisecond sorts
/// below it, byte-wise and case-insensitively (its first 12 hex digits are the Unix time in ms).
fn v7_floor(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::{NoContext, Timestamp};

    #[test]
    fn the_v7_floor_of_a_millisecond_sorts_between_the_ids_before_it_and_those_of_it() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let floor = v7_floor(at);
        let id = |ms: u64| {
            Uuid::new_v7(Timestamp::from_unix(
                NoContext,
                ms / 1000,
                (ms % 1000) as u32 * 1_000_000,
            ))
            .to_string()
        };
        assert!(id(1_764_000_000_122) < floor, "{floor}");
        assert!(id(1_764_000_000_122).to_uppercase() < floor.to_uppercase());
        assert!(floor <= id(1_764_000_000_123), "{floor}");
        assert!(floor < id(1_764_000_000_124));
        assert_eq!(v7_floor(UNIX_EPOCH), "00000000-0000-0000-0000-000000000000");
    }
}
