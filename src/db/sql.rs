//! Small helpers for the plain SQL the repositories write: a MySQL statement with its values,
//! `?` lists for `IN (…)` and multi-row `VALUES`, and the value a `DATETIME(6)` column keeps.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{DbBackend, Statement, Value};

/// A MySQL statement with positional values.
pub fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::MySql, sql, values)
}

/// `?, ?, …` for `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `t` as a `DATETIME(6)` column stores it: UTC, truncated to the microsecond.
pub fn datetime(t: DateTime<Utc>) -> NaiveDateTime {
    crate::campaign::db_precision(t).naive_utc()
}
