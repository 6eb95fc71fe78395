//! Ending a session whose transaction's outcome is unknown (docs/design.md §18.1): a COMMIT sent
//! and never answered, or a transaction cut off by a deadline while its statements may still run
//! on the server. Once MySQL answers again, [`end_session`] kills that session if it is still
//! there and waits until it is gone: from then on its transaction has either committed or rolled
//! back and can do nothing else, so what MySQL holds is the final word. Those who settle such a
//! transaction (`write::in_doubt`, a steal's `join::steal_in_doubt`) try again after each
//! [`RetryPause`] until MySQL answers.
//!
//! Which session is ended: a thread id is only the server's counter, which a restart begins
//! again, so a session is killed only if it belongs to this service's user and database (a
//! server restart ended the session in doubt anyway; killing another session of ours makes its
//! own work in doubt, settled the same way).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr, Value};

use crate::db::{error as db_error, sql::stmt, Db};

/// The first wait between two attempts at settling, doubled up to [`RETRY_LONGEST`].
const RETRY_FIRST: Duration = Duration::from_millis(25);
/// The longest wait between two attempts: after MySQL answers again, the settlement is done
/// within about this long plus the attempt itself.
const RETRY_LONGEST: Duration = Duration::from_millis(200);
/// How often the ended session is looked for until it is gone.
const GONE_POLL: Duration = Duration::from_millis(10);

/// The pause between two attempts at settling a transaction in doubt: [`RETRY_FIRST`],
/// doubling up to [`RETRY_LONGEST`].
pub struct RetryPause(Duration);

impl RetryPause {
    pub fn new() -> Self {
        Self(RETRY_FIRST)
    }

    /// Sleeps the current pause, and doubles the next one.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(RETRY_LONGEST);
    }
}

impl Default for RetryPause {
    fn default() -> Self {
        Self::new()
    }
}

/// Ends session `session` if it is still there and ours, and returns once it is gone: from then
/// on its transaction can neither commit nor roll back any more.
pub async fn end_session(db: &Db, session: u64) -> Result<(), DbErr> {
    if !still_there(db, session).await? {
        return Ok(());
    }
    // An integer the server gave us, never a client's value.
    match db
        .execute_unprepared(&format!("KILL CONNECTION {session}"))
        .await
    {
        Ok(_) => {}
        // 1094 ER_NO_SUCH_THREAD: it ended between the two statements.
        Err(e) if db_error::mysql_error_number(&e) == Some(1094) => return Ok(()),
        Err(e) => return Err(e),
    }
    let deadline = std::time::Instant::now() + db.statement_timeout();
    while still_there(db, session).await? {
        if std::time::Instant::now() > deadline {
            return Err(DbErr::Custom(format!(
                "session {session} was killed but has not ended yet"
            )));
        }
        tokio::time::sleep(GONE_POLL).await;
    }
    Ok(())
}

/// Whether session `session` is still there and ours (this service's user, on its database).
async fn still_there(db: &Db, session: u64) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE ID = ? AND USER = SUBSTRING_INDEX(USER(), '@', 1) AND DB <=> DATABASE()",
            vec![Value::from(session)],
        ))
        .await?;
    Ok(row.map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))? > 0)
}
