//! The one place that says what a database error means, by MySQL/MariaDB error number (and by
//! sqlx's error kind for failures that never reached the server), never by message text.
//!
//! Callers decide with [`DbErrorKind`]: a deadlock victim or a lock-wait timeout did nothing and
//! can run again; a unique violation is an answer (a duplicate), not a fault; a lost connection
//! means the server may or may not have applied the statement.

use sea_orm::{sqlx, DbErr, RuntimeErr, SqlxMySqlError};

/// What a database error means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// 1213 `ER_LOCK_DEADLOCK`: the transaction was rolled back to break a deadlock.
    Deadlock,
    /// 1205 `ER_LOCK_WAIT_TIMEOUT`: the statement waited longer than `innodb_lock_wait_timeout`.
    LockWaitTimeout,
    /// 1062 `ER_DUP_ENTRY` (and 1586, its variant with a key name): a unique key already holds
    /// the value.
    UniqueViolation,
    /// The connection broke or could not be had: I/O errors, TLS, a closed or exhausted pool,
    /// or the server going away (1053 shutdown, 1927 connection killed, 2006/2013 lost).
    ConnectionLost,
    /// 1317 `ER_QUERY_INTERRUPTED` / 3024 `ER_QUERY_TIMEOUT` / 1969 (MariaDB
    /// `max_statement_time` exceeded): the server stopped the statement; or the client's own
    /// deadline ([`crate::db::deadline`]) passed with no answer. Either way the statement may or
    /// may not have been applied.
    StatementTimeout,
    /// 1366 `ER_TRUNCATED_WRONG_VALUE_FOR_FIELD` (a string the column's character set cannot
    /// hold), 1406 `ER_DATA_TOO_LONG`, 1264 `ER_WARN_DATA_OUT_OF_RANGE`: a value the caller gave
    /// that the column cannot store. Nothing was written; the caller's input, not an outage.
    BadValue,
    /// Anything else (a bug, a schema problem).
    Other,
}

impl DbErrorKind {
    /// A deadlock victim and a lock-wait timeout rolled back and can be tried again as they are.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Deadlock | Self::LockWaitTimeout | Self::ConnectionLost | Self::StatementTimeout
        )
    }
}

/// A failure after which the statement (or the transaction's COMMIT) may or may not have been
/// applied: the deadline passed or the connection broke with the request sent. A pool that had
/// no connection to give sent nothing.
pub fn outcome_unknown(e: &DbErr) -> bool {
    !matches!(e, DbErr::ConnectionAcquire(_))
        && matches!(
            kind(e),
            DbErrorKind::StatementTimeout | DbErrorKind::ConnectionLost
        )
}

/// A connection the pool handed out turned out broken: the server closed it, or the socket
/// failed (not a deadline, and not a pool that had no connection to give). Whatever was sent on
/// it may have reached the server; only a caller that sent nothing that matters (a `BEGIN`) may
/// simply try again.
pub fn connection_broke(e: &DbErr) -> bool {
    if matches!(e, DbErr::ConnectionAcquire(_)) {
        return false;
    }
    if let Some(number) = mysql_error_number(e) {
        return matches!(number, 1053 | 1927 | 2006 | 2013);
    }
    matches!(
        sqlx_error(e),
        Some(sqlx::Error::Io(io)) if io.kind() != std::io::ErrorKind::TimedOut
    )
}

fn sqlx_error(e: &DbErr) -> Option<&sqlx::Error> {
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

/// The server's error number, when the server answered with an error.
pub fn mysql_error_number(e: &DbErr) -> Option<u16> {
    sqlx_error(e)?
        .as_database_error()?
        .try_downcast_ref::<SqlxMySqlError>()
        .map(|e| e.number())
}

/// Classifies a database error.
pub fn kind(e: &DbErr) -> DbErrorKind {
    if matches!(e, DbErr::ConnectionAcquire(_)) {
        return DbErrorKind::ConnectionLost;
    }
    if let Some(number) = mysql_error_number(e) {
        return match number {
            1213 => DbErrorKind::Deadlock,
            1205 => DbErrorKind::LockWaitTimeout,
            1062 | 1586 => DbErrorKind::UniqueViolation,
            1053 | 1927 | 2006 | 2013 => DbErrorKind::ConnectionLost,
            1317 | 3024 | 1969 => DbErrorKind::StatementTimeout,
            1366 | 1406 | 1264 => DbErrorKind::BadValue,
            _ => DbErrorKind::Other,
        };
    }
    match sqlx_error(e) {
        Some(sqlx::Error::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
            DbErrorKind::StatementTimeout
        }
        Some(
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
        ) => DbErrorKind::ConnectionLost,
        _ => DbErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    fn elapsed_here() -> DbErr {
        crate::db::deadline::elapsed(Duration::from_secs(1))
    }

    #[test]
    fn errors_without_a_server_answer_are_classified_by_kind() {
        let io = DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"),
        ))));
        assert_eq!(kind(&io), DbErrorKind::ConnectionLost);
        assert!(connection_broke(&io));
        assert!(
            !connection_broke(&elapsed_here()),
            "a deadline is not a broken connection"
        );
        let pool = DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)));
        assert_eq!(kind(&pool), DbErrorKind::ConnectionLost);
        assert!(!connection_broke(&pool), "no connection was had");
        assert!(kind(&pool).is_transient());
        // Text that looks like a deadlock is not one: only the error number counts.
        let custom = DbErr::Custom("Deadlock found (1213)".into());
        assert_eq!(kind(&custom), DbErrorKind::Other);
        assert!(!kind(&custom).is_transient());
    }
}
