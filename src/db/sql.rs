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

use std::ops::Range;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, Statement, Value};

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

/// `0..n` cut into consecutive ranges whose lengths are list sizes, largest first (a thousand
/// rows: 768, 192, 32, 8).
pub fn pieces(n: usize) -> impl Iterator<Item = Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let size = size_at_most(n - start);
        (size > 0).then(|| {
            start += size;
            start - size..start
        })
    })
}

/// A multi-row `INSERT`: `{head} VALUES {row}, {row}, …{tail}` for the rows in `values` (each
/// `row`'s `?`s in order, the same number per row), in [`pieces`]. Returns each statement's
/// result, in order.
pub async fn insert_rows(
    conn: &impl ConnectionTrait,
    head: &str,
    row: &str,
    tail: &str,
    values: Vec<Value>,
) -> Result<Vec<ExecResult>, DbErr> {
    let width = row.matches('?').count().max(1);
    let rows = values.len() / width;
    let mut values = values.into_iter();
    let mut results = Vec::new();
    for piece in pieces(rows) {
        let sql = format!("{head} VALUES {}{tail}", vec![row; piece.len()].join(", "));
        let piece_values: Vec<Value> = values.by_ref().take(piece.len() * width).collect();
        results.push(conn.execute_raw(stmt(&sql, piece_values)).await?);
    }
    Ok(results)
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
