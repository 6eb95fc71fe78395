//! A deadline on every database call (docs/design.md §2.9).
//!
//! [`Db`] wraps the pool and [`Txn`] a transaction (both a [`Bounded`], which implements sea-orm's
//! `ConnectionTrait`), so repositories take them wherever they took a `DatabaseConnection`, and every statement,
//! `BEGIN`, `COMMIT` and `ROLLBACK` runs under `DB_STATEMENT_TIMEOUT_MS`. Past it the call fails
//! with a `TimedOut` I/O error ([`crate::db::error::DbErrorKind::StatementTimeout`]) and its future is
//! dropped. What happens to the connection then is [`crate::db::pool`]'s release probe: the pool
//! closes it unless it answers a ping promptly, so a connection to a server that stopped
//! answering is never handed out again. A transaction dropped unfinished is rolled back by
//! sea-orm (the rollback is sent before the connection returns to the pool).
//!
//! The server enforces the same limit from its side (`max_statement_time` /
//! `innodb_lock_wait_timeout`, set per session in [`crate::db::pool`]), so a statement abandoned here
//! also stops there and releases its locks.

use std::{future::Future, io, sync::Arc, time::Duration};

use sea_orm::{
    sqlx, AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, RuntimeErr, Statement, TransactionTrait,
};

/// The error a call gets when its deadline passes.
pub fn elapsed(limit: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sqlx::Error::Io(
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("MySQL did not answer within {limit:?} (DB_STATEMENT_TIMEOUT_MS)"),
        ),
    ))))
}

async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(elapsed(limit)))
}

/// A connection (the pool, or a transaction) with a deadline on each call.
#[derive(Clone, Debug)]
pub struct Bounded<C> {
    inner: C,
    limit: Duration,
    /// The server answers `INSERT … RETURNING` (MariaDB; MySQL has no such clause).
    returning: bool,
}

/// The connection pool, with a deadline on each call. Cheap to clone.
pub type Db = Bounded<DatabaseConnection>;

/// A transaction with a deadline on each statement. Dropped without `commit`, it rolls back.
pub type Txn = Bounded<DatabaseTransaction>;

impl Db {
    pub fn new(pool: DatabaseConnection, statement_timeout: Duration) -> Self {
        Self {
            inner: pool,
            limit: statement_timeout,
            returning: false,
        }
    }

    /// Says whether the server answers `INSERT … RETURNING` ([`crate::db::pool::connect`] asks it;
    /// MariaDB does, MySQL does not). Off, multi-row inserts read their ids back instead.
    #[must_use]
    pub fn with_insert_returning(mut self, returning: bool) -> Self {
        self.returning = returning;
        self
    }

    /// The sqlx pool underneath, for its connection counts (`/metrics`).
    pub fn mysql_pool(&self) -> &sqlx::MySqlPool {
        self.inner.get_mysql_connection_pool()
    }

    /// Starts a transaction whose every statement has the same deadline.
    pub async fn begin(&self) -> Result<Txn, DbErr> {
        let inner = self.begin_live(|| self.inner.begin()).await?;
        Ok(Bounded {
            inner,
            limit: self.limit,
            returning: self.returning,
        })
    }

    /// Starts a read-only transaction whose statements all read one snapshot (REPEATABLE READ,
    /// taken at its first read). The pool's sessions run READ COMMITTED, where each statement
    /// reads a snapshot of its own: reads that must agree with each other (a gate rebuild's stock
    /// and the returned wins it includes) take this instead.
    pub async fn begin_snapshot(&self) -> Result<Txn, DbErr> {
        let inner = self
            .begin_live(|| {
                self.inner.begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
            })
            .await?;
        Ok(Bounded {
            inner,
            limit: self.limit,
            returning: self.returning,
        })
    }

    /// `begin`, on another connection when the one the pool gave was found broken at `BEGIN`,
    /// all within the one deadline. The pool hands out a connection used a moment ago without a
    /// ping ([`crate::db::pool::PINGED_RECENTLY`]), and one the server dropped since (a restart, a
    /// failover, a killed session) fails its first statement; nothing ran on it, so starting
    /// again elsewhere is safe. Each broken connection is closed on its way back to the pool, so
    /// the tries are bounded by the pool's size as well.
    async fn begin_live<F, Fut>(&self, begin: F) -> Result<DatabaseTransaction, DbErr>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<DatabaseTransaction, DbErr>>,
    {
        bounded(self.limit, async {
            loop {
                match begin().await {
                    Err(e) if crate::db::error::connection_broke(&e) => {
                        tracing::debug!(error = %e, "A pooled connection was broken at BEGIN; trying another.");
                    }
                    started => return started,
                }
            }
        })
        .await
    }

    /// One round trip (`SELECT 1`): the readiness probes' check that MySQL answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        use sea_orm::ConnectionTrait;
        self.execute_unprepared("SELECT 1").await.map(|_| ())
    }
}

impl<C> Bounded<C> {
    /// `DB_STATEMENT_TIMEOUT_MS`: the deadline of each call.
    pub fn statement_timeout(&self) -> Duration {
        self.limit
    }

    /// Whether the server answers `INSERT … RETURNING` (see [`Db::with_insert_returning`]).
    pub fn insert_returning(&self) -> bool {
        self.returning
    }
}

impl Txn {
    pub async fn commit(self) -> Result<(), DbErr> {
        bounded(self.limit, self.inner.commit()).await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        bounded(self.limit, self.inner.rollback()).await
    }
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send> ConnectionTrait for Bounded<C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        bounded(self.limit, self.inner.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        bounded(self.limit, self.inner.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        bounded(self.limit, self.inner.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        bounded(self.limit, self.inner.query_all_raw(stmt)).await
    }
}
