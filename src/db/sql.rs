//! Small helpers for the plain SQL the repositories write: a MySQL statement with its values,
//! `?` lists for `IN (…)` and multi-row `VALUES`, and the value a `DATETIME(6)` column keeps.
//!
//! # Statement shapes
//!
//! sqlx keeps each connection's prepared statements in a cache of 100, keyed by the SQL text. A
//! text it has not seen is prepared; one pushed out is closed with `COM_STMT_CLOSE`, a packet the
//! server does not answer. sqlx 0.9 leaves Nagle's algorithm on (sqlx issue #4335), so the next
//! command, sent right behind that unanswered packet, waits for the server's delayed ACK: 40 ms
//! on Linux. Measured under a big campaign: a fifth of the group commit's statements waited so,
//! and the campaign's wins per second doubled once they stopped.
//!
//! A list whose length is written into the SQL (`IN (?, ?, …)`, multi-row `VALUES`) therefore
//! takes its length from a small set of [sizes](size_at_most): 1, 2, 3, 4, 6, 8, 12, 16, 24, …
//! (2^k and 3·2^k, 22 of them up to 2,048). An `IN` list is padded up to one by repeating its last
//! value ([`in_list`]); rows are written in [`pieces`] of those sizes; a group commit batch takes
//! a size's worth of its queue. A connection then sees a few dozen texts, and the cache never
//! pushes one out.
//!
//! # Statement bytes
//!
//! The same delayed ACK waits behind any command larger than what the socket takes in one write.
//! A new TCP socket's send buffer is 16 KiB on Linux (`net.ipv4.tcp_wmem`'s middle value), so a
//! larger command goes out as a 16 KiB segment plus a remainder that Nagle holds until the
//! server acknowledges the first; the server, holding half a command and nothing to answer yet,
//! acknowledges it 40 ms later. Measured on a leasing `UPDATE … WHERE id IN (…)`: 2,048 ids
//! (about 20 KiB of parameters) took 36 µs a row, 1,536 ids (15 KiB) 15 µs a row; the relay's
//! drain went from 17k to 25k rows/s once its lists stayed under it. So a statement carries at
//! most [`STATEMENT_BYTES`] of values: id lists go in chunks of [`MAX_IDS`], and [`insert_rows`]
//! cuts its pieces by their bytes as well as by count.

use std::ops::Range;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement, Value};

/// The most bytes of values one statement should carry: below the 16 KiB a new socket writes at
/// once, with room for the SQL text and the packet's own header.
pub const STATEMENT_BYTES: usize = 12 * 1024;

/// The most `BIGINT` ids in one `IN` list: 8 bytes each plus 2 of type as parameters, about
/// 10 KiB, inside [`STATEMENT_BYTES`]. A longer list is sent in chunks of this size.
pub const MAX_IDS: usize = 1_024;

/// About what `value` adds to a statement's packet as a parameter: 2 bytes of type, then 8 for a
/// number or a time, or the bytes of a text with their length prefix.
pub fn value_bytes(value: &Value) -> usize {
    2 + match value {
        Value::String(Some(s)) => s.len() + 2,
        Value::Bytes(Some(b)) => b.len() + 2,
        Value::Json(Some(j)) => j.to_string().len() + 2,
        _ => 8,
    }
}

/// How many values of `bytes` each fit in one statement beside others of the same kind: the
/// largest list size within [`STATEMENT_BYTES`], at least 1.
pub fn fits(bytes: usize) -> usize {
    size_at_most((STATEMENT_BYTES / bytes.max(1)).max(1))
}

/// A MySQL statement with positional values.
pub fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::MySql, sql, values)
}

/// `?, ?, …` for `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The largest list size that is at most `n` (`n` ≥ 1; 0 for 0).
pub fn size_at_most(n: usize) -> usize {
    if n < 2 {
        return n;
    }
    let power = 1 << (usize::BITS - 1 - n.leading_zeros()); // the largest 2^k ≤ n
    let three_halves = power + power / 2;
    if three_halves <= n {
        three_halves
    } else {
        power
    }
}

/// The smallest list size that is at least `n`.
pub fn size_at_least(n: usize) -> usize {
    let at_most = size_at_most(n);
    if at_most == n {
        return n;
    }
    // The sizes after 2^k are 3·2^(k-1) and 2^(k+1); after 3·2^(k-1), 2^(k+1).
    if at_most.is_power_of_two() && at_most >= 2 {
        at_most + at_most / 2
    } else {
        (at_most / 3) * 4
    }
}

/// Appends `items` to `values`, padded to [`size_at_least`] their number by repeating the last
/// one, and returns the placeholders for them: `IN (…)` with an unchanged meaning and a shared
/// statement text. An empty `items` gives an empty list (the caller must not write `IN ()`).
pub fn in_list(values: &mut Vec<Value>, items: impl IntoIterator<Item = Value>) -> String {
    let start = values.len();
    values.extend(items);
    let n = values.len() - start;
    if let Some(last) = values.last().cloned().filter(|_| n > 0) {
        values.resize(start + size_at_least(n), last);
    }
    placeholders(values.len() - start)
}

/// Runs `sql` (given an `IN` list's placeholders, its values after `values`) once per
/// [`MAX_IDS`] of `ids`, so no statement passes [`STATEMENT_BYTES`]; returns the rows affected
/// by all of them. Not atomic by itself: inside a transaction, the caller decides what a failure
/// between two statements leaves.
pub async fn execute_for_ids(
    conn: &impl ConnectionTrait,
    ids: &[i64],
    values: &[Value],
    sql: impl Fn(&str) -> String,
) -> Result<u64, DbErr> {
    let mut affected = 0;
    for chunk in ids.chunks(MAX_IDS) {
        let mut chunk_values = values.to_vec();
        let list = in_list(&mut chunk_values, chunk.iter().map(|id| Value::from(*id)));
        affected += conn
            .execute_raw(stmt(&sql(&list), chunk_values))
            .await?
            .rows_affected();
    }
    Ok(affected)
}

/// `0..n` cut into consecutive ranges whose lengths are list sizes, largest first (a thousand
/// rows: 768, 192, 32, 8).
pub fn pieces(n: usize) -> impl Iterator<Item = Range<usize>> {
    pieces_of_at_most(n, usize::MAX)
}

/// [`pieces`], none longer than `cap` (itself cut down to a list size): a thousand rows at most
/// 16 a piece are 62 pieces of 16 and one of 8.
pub fn pieces_of_at_most(n: usize, cap: usize) -> impl Iterator<Item = Range<usize>> {
    let cap = size_at_most(cap.max(1));
    let mut start = 0;
    std::iter::from_fn(move || {
        let size = size_at_most((n - start).min(cap));
        (size > 0).then(|| {
            start += size;
            start - size..start
        })
    })
}

/// A multi-row `INSERT`: `{head} VALUES {row}, {row}, …{tail}` for the rows in `values` (each
/// `row`'s `?`s in order, the same number per row), in [`pieces`] of at most [`STATEMENT_BYTES`]
/// (sized by the largest row). Returns each statement's result, in order.
pub async fn insert_rows(
    conn: &impl ConnectionTrait,
    head: &str,
    row: &str,
    tail: &str,
    values: Vec<Value>,
) -> Result<Vec<ExecResult>, DbErr> {
    let mut results = Vec::new();
    for (sql, piece) in insert_statements(head, row, tail, values) {
        results.push(conn.execute_raw(stmt(&sql, piece)).await?);
    }
    Ok(results)
}

/// [`insert_rows`] with a `tail` that returns rows (MariaDB's `RETURNING …`): the rows of every
/// piece, in order.
pub async fn insert_rows_returning(
    conn: &impl ConnectionTrait,
    head: &str,
    row: &str,
    tail: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    let mut rows = Vec::new();
    for (sql, piece) in insert_statements(head, row, tail, values) {
        rows.extend(conn.query_all_raw(stmt(&sql, piece)).await?);
    }
    Ok(rows)
}

/// How many statements [`insert_rows`] sends for `values`, rows of `width` values each.
pub fn insert_statement_count(width: usize, values: &[Value]) -> usize {
    row_pieces(width.max(1), values).count()
}

/// The rows of a multi-row insert (`width` values each) in pieces of at most [`STATEMENT_BYTES`],
/// sized by the largest row.
fn row_pieces(width: usize, values: &[Value]) -> impl Iterator<Item = Range<usize>> {
    let widest = values
        .chunks(width)
        .map(|row| row.iter().map(value_bytes).sum::<usize>())
        .max()
        .unwrap_or(0);
    pieces_of_at_most(values.len() / width, fits(widest))
}

/// The statements of a multi-row insert and their values, piece by piece.
fn insert_statements(
    head: &str,
    row: &str,
    tail: &str,
    values: Vec<Value>,
) -> Vec<(String, Vec<Value>)> {
    let width = row.matches('?').count().max(1);
    let pieces: Vec<Range<usize>> = row_pieces(width, &values).collect();
    let mut values = values.into_iter();
    pieces
        .into_iter()
        .map(|piece| {
            let sql = format!("{head} VALUES {}{tail}", vec![row; piece.len()].join(", "));
            (sql, values.by_ref().take(piece.len() * width).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_and_their_three_halves() {
        let sizes: Vec<usize> = (1..=100).map(size_at_most).collect();
        let mut distinct = sizes.clone();
        distinct.dedup();
        assert_eq!(distinct, [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96]);
        for n in 1..=5_000 {
            let (low, high) = (size_at_most(n), size_at_least(n));
            assert!(low <= n && n <= high, "{n}: {low} {high}");
            assert_eq!(size_at_most(high), high, "{n}: {high} is a size");
            assert!(3 * low >= 2 * n, "{n}: at most a third left over");
            assert!(3 * n >= 2 * high, "{n}: at most a third of padding");
        }
        assert_eq!(
            (1..=2_048)
                .map(size_at_most)
                .collect::<std::collections::HashSet<_>>()
                .len(),
            22
        );
    }

    #[test]
    fn capped_pieces_cover_every_row_once_in_list_sizes_within_the_cap() {
        for (n, cap) in [
            (1_000, 16),
            (1_000, 17),
            (5, 1),
            (0, 8),
            (2_049, 1_024),
            (7, 0),
        ] {
            let ranges: Vec<Range<usize>> = pieces_of_at_most(n, cap).collect();
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next, "{n}/{cap}: consecutive");
                assert!(r.len() <= cap.max(1), "{n}/{cap}: {r:?} over the cap");
                assert_eq!(size_at_most(r.len()), r.len(), "{n}/{cap}: {r:?} is a size");
                next = r.end;
            }
            assert_eq!(next, n, "{n}/{cap}: every row");
        }
        assert_eq!(pieces_of_at_most(1_000, 16).count(), 63);
    }

    #[test]
    fn an_id_list_and_a_rows_worth_of_payload_stay_inside_the_statement_budget() {
        assert!(MAX_IDS * value_bytes(&Value::from(1i64)) + 1_024 <= STATEMENT_BYTES);
        let event = Value::from("x".repeat(700));
        let rows = fits(value_bytes(&event));
        assert_eq!(rows, 16);
        assert!(rows * value_bytes(&event) <= STATEMENT_BYTES);
        assert_eq!(
            fits(STATEMENT_BYTES * 4),
            1,
            "a row larger than the budget goes alone"
        );
    }

    #[test]
    fn in_lists_repeat_their_last_value() {
        let mut values: Vec<Value> = vec!["owner".into()];
        let sql = in_list(&mut values, [5i64, 6, 7, 9, 11].map(Value::from));
        assert_eq!(sql, "?, ?, ?, ?, ?, ?");
        assert_eq!(values.len(), 7);
        assert_eq!(values[6], Value::from(11i64));
        let mut empty = Vec::new();
        assert_eq!(in_list(&mut empty, []), "");
        assert!(empty.is_empty());
    }

    #[test]
    fn pieces_cover_every_row_once() {
        for n in 0..=3_000 {
            let mut next = 0;
            for piece in pieces(n) {
                assert_eq!(piece.start, next);
                assert_eq!(size_at_most(piece.len()), piece.len());
                next = piece.end;
            }
            assert_eq!(next, n);
        }
        assert_eq!(
            pieces(1_000).map(|p| p.len()).collect::<Vec<_>>(),
            [768, 192, 32, 8]
        );
    }
}
