//! The outbox as operators see it: counts by status, the oldest due row's age, the dead-letter
//! list and redrive. [`OutboxAdmin`] is what the admin API holds; [`backlog`] feeds the outbox
//! gauges.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};

use crate::db::{sql::stmt, Db};

/// The admin operations on the outbox, over the API's pool.
#[derive(Clone)]
pub struct OutboxAdmin {
    db: Db,
}

impl OutboxAdmin {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Counts, optionally of one key (a campaign's events).
    pub async fn summary(&self, key: Option<&str>) -> Result<Summary, DbErr> {
        summary(&self.db, key).await
    }

    /// Up to `limit` DEAD rows after `after_id`, in id order.
    pub async fn dead(&self, after_id: i64, limit: u32) -> Result<Vec<DeadRow>, DbErr> {
        dead(&self.db, after_id, limit).await
    }

    /// Every DEAD row of `key` back to PENDING; returns how many.
    pub async fn redrive_key(&self, key: &str) -> Result<u64, DbErr> {
        redrive_key(&self.db, key).await
    }

    /// One DEAD event back to PENDING; `false` when no DEAD row has this id.
    pub async fn redrive(&self, event_id: &str) -> Result<bool, DbErr> {
        redrive(&self.db, event_id).await
    }
}

/// Counts for the admin summary, optionally for one campaign (`msg_key`).
#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct Summary {
    pub pending: i64,
    pub published: i64,
    pub dead: i64,
    pub oldest_due_pending_age_ms: Option<i64>,
    pub last_published_at: Option<chrono::NaiveDateTime>,
}

async fn summary(db: &Db, key: Option<&str>) -> Result<Summary, DbErr> {
    let (filter, values): (&str, Vec<Value>) = match key {
        Some(k) => (" WHERE msg_key = ?", vec![k.into()]),
        None => ("", vec![]),
    };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(status = 'PENDING'), 0) AS SIGNED) AS pending, \
         CAST(COALESCE(SUM(status = 'PUBLISHED'), 0) AS SIGNED) AS published, \
         CAST(COALESCE(SUM(status = 'DEAD'), 0) AS SIGNED) AS dead, \
         CAST(TIMESTAMPDIFF(MICROSECOND, MIN(CASE WHEN status = 'PENDING' AND available_at <= UTC_TIMESTAMP(6) \
              THEN available_at END), UTC_TIMESTAMP(6)) DIV 1000 AS SIGNED) AS oldest_due_pending_age_ms, \
         MAX(published_at) AS last_published_at \
         FROM outbox_event{filter}"
    );
    Ok(Summary::find_by_statement(stmt(&sql, values))
        .one(db)
        .await?
        .unwrap_or_default())
}

/// What the outbox gauges show (`firstcome_outbox_rows`, `firstcome_outbox_oldest_due_age_seconds`).
#[derive(Debug, Clone, Default, FromQueryResult)]
pub struct Backlog {
    pub pending: i64,
    pub published: i64,
    pub dead: i64,
    /// Microseconds the oldest due PENDING row has waited; `None` when none is due.
    pub oldest_due_age_us: Option<i64>,
}

/// Counts by status and the oldest due row's age, read from `(status, lease_until, lease_owner)`
/// only (no table rows but one): PENDING and DEAD are short ranges of it. A due row is either
/// never in backoff (the range without `lease_until`, in id order: its first row, the oldest
/// written, gives its `available_at`; rows a relay has in flight are in it too, since rows are
/// not leased, so this is the age of the oldest row not yet published) or a backoff (or an
/// earlier version's row lease) that ran out (the range of `lease_until` before now: its first
/// entry, due since then). The PUBLISHED count walks that status's range of the index,
/// which holds what `OUTBOX_RETENTION_HOURS` keeps; it runs on a timer, never per scrape.
pub async fn backlog(db: &Db) -> Result<Backlog, DbErr> {
    let count = |status: &str| {
        format!(
            "(SELECT COUNT(*) FROM outbox_event FORCE INDEX (ix_outbox_status_lease) WHERE status = '{status}')"
        )
    };
    let unleased = "(SELECT available_at FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
         WHERE status = 'PENDING' AND lease_until IS NULL AND lease_owner IS NULL \
         AND available_at <= UTC_TIMESTAMP(6) ORDER BY id LIMIT 1)";
    let ran_out =
        "(SELECT MIN(lease_until) FROM outbox_event FORCE INDEX (ix_outbox_status_lease) \
         WHERE status = 'PENDING' AND lease_until < UTC_TIMESTAMP(6))";
    let sql = format!(
        "SELECT CAST({} AS SIGNED) AS pending, CAST({} AS SIGNED) AS published, CAST({} AS SIGNED) AS dead, \
         CAST(TIMESTAMPDIFF(MICROSECOND, COALESCE(LEAST(u, r), u, r), UTC_TIMESTAMP(6)) AS SIGNED) \
         AS oldest_due_age_us FROM (SELECT {unleased} AS u, {ran_out} AS r) due",
        count("PENDING"),
        count("PUBLISHED"),
        count("DEAD"),
    );
    Ok(Backlog::find_by_statement(stmt(&sql, vec![]))
        .one(db)
        .await?
        .unwrap_or_default())
}

/// A DEAD row, for the admin list.
#[derive(Debug, Clone, FromQueryResult)]
pub struct DeadRow {
    pub id: i64,
    pub event_id: String,
    pub topic: String,
    pub msg_key: String,
    pub event_type: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: chrono::NaiveDateTime,
}

async fn dead(db: &Db, after_id: i64, limit: u32) -> Result<Vec<DeadRow>, DbErr> {
    DeadRow::find_by_statement(stmt(
        "SELECT id, event_id, topic, msg_key, event_type, attempts, last_error, created_at FROM outbox_event \
         WHERE status = 'DEAD' AND id > ? ORDER BY id LIMIT ?",
        vec![after_id.into(), limit.into()],
    ))
    .all(db)
    .await
}

/// Every DEAD row of one key (a campaign) → PENDING with attempts reset, in one statement;
/// returns how many. They are published in id order like any other rows of the key.
async fn redrive_key(db: &Db, key: &str) -> Result<u64, DbErr> {
    let res = db
        .execute_raw(stmt(
            "UPDATE outbox_event SET status = 'PENDING', attempts = 0, available_at = UTC_TIMESTAMP(6), \
             lease_owner = NULL, lease_until = NULL WHERE status = 'DEAD' AND msg_key = ?",
            vec![key.into()],
        ))
        .await?;
    Ok(res.rows_affected())
}

/// DEAD → PENDING with attempts reset; `false` when no DEAD row has this event id.
async fn redrive(db: &Db, event_id: &str) -> Result<bool, DbErr> {
    let res = db
        .execute_raw(stmt(
            "UPDATE outbox_event SET status = 'PENDING', attempts = 0, available_at = UTC_TIMESTAMP(6), \
             lease_owner = NULL, lease_until = NULL WHERE event_id = ? AND status = 'DEAD'",
            vec![event_id.into()],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}
