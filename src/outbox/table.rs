//! The `outbox_event` INSERT: the only place that writes outbox rows. The relay's claim and
//! outcome SQL lives with the relay (`relay/store.rs`).

use sea_orm::{ConnectionTrait, DbErr, Value};
use uuid::Uuid;

use crate::db::sql::{insert_rows, insert_statement_count, stmt};

use crate::events::{
    accepted::{ParticipationAccepted, AGGREGATE_PARTICIPATION},
    control::{CampaignChanged, AGGREGATE_CAMPAIGN},
    headers,
    lifecycle::ParticipationMessage,
};

/// `outbox_event.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Published,
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Published => "PUBLISHED",
            Self::Dead => "DEAD",
        }
    }
}

/// An outbox row to write.
#[derive(Debug, Clone)]
pub struct NewOutboxEvent {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub topic: String,
    pub msg_key: String,
    /// The message value, sent as is.
    pub payload: String,
    /// The message headers as stored (a JSON object).
    pub headers: String,
    pub status: OutboxStatus,
}

impl NewOutboxEvent {
    /// The row announcing a win: the event's JSON and headers, keyed by campaign.
    pub fn participation_accepted(
        event: &ParticipationAccepted,
        topic: &str,
        traceparent: Option<&str>,
    ) -> Self {
        Self::participation(event, topic, traceparent)
    }

    /// The row of any event of a participation (accepted, confirmed, cancelled): its JSON and
    /// headers, keyed by campaign, aggregated under the participation.
    pub fn participation(
        event: &impl ParticipationMessage,
        topic: &str,
        traceparent: Option<&str>,
    ) -> Self {
        Self {
            event_id: event.event_id(),
            aggregate_type: AGGREGATE_PARTICIPATION.into(),
            aggregate_id: event.participation_id().to_string(),
            event_type: event.event_type().into(),
            topic: topic.into(),
            msg_key: event.key(),
            payload: event.json(),
            headers: headers::stored(traceparent),
            status: OutboxStatus::Pending,
        }
    }

    /// The row of a campaign control's event: keyed by campaign like its participations' events
    /// (so it keeps its place among them), aggregated under the campaign.
    pub fn campaign(event: &CampaignChanged, topic: &str, traceparent: Option<&str>) -> Self {
        Self {
            event_id: event.event_id,
            aggregate_type: AGGREGATE_CAMPAIGN.into(),
            aggregate_id: event.campaign_id.to_string(),
            event_type: event.event_type.clone(),
            topic: topic.into(),
            msg_key: event.key(),
            payload: event.json(),
            headers: headers::stored(traceparent),
            status: OutboxStatus::Pending,
        }
    }
}

/// The columns an outbox row is written with, in the order of [`row_values`].
const COLUMNS: &str =
    "event_id, aggregate_type, aggregate_id, event_type, topic, msg_key, payload, headers, status";

/// How many [`COLUMNS`] there are.
const WIDTH: usize = 9;

/// `row`'s values for [`COLUMNS`].
fn row_values(row: &NewOutboxEvent) -> [Value; WIDTH] {
    [
        row.event_id.to_string().into(),
        row.aggregate_type.clone().into(),
        row.aggregate_id.clone().into(),
        row.event_type.clone().into(),
        row.topic.clone().into(),
        row.msg_key.clone().into(),
        row.payload.clone().into(),
        row.headers.clone().into(),
        row.status.as_str().into(),
    ]
}

/// Writes `rows` in one multi-row INSERT, due now. `created_at` is the database's clock inside
/// the caller's transaction, after the campaign lock: the commit time to within a statement
/// (the relay's lag is measured from it).
pub async fn insert(conn: &impl ConnectionTrait, rows: &[NewOutboxEvent]) -> Result<(), DbErr> {
    insert_values(conn, values_of(rows)).await
}

/// Every value of `rows`, row after row.
fn values_of(rows: &[NewOutboxEvent]) -> Vec<Value> {
    rows.iter().flat_map(row_values).collect()
}

/// [`insert`] of rows already turned into their values.
async fn insert_values(conn: &impl ConnectionTrait, values: Vec<Value>) -> Result<(), DbErr> {
    if values.is_empty() {
        return Ok(());
    }
    insert_rows(
        conn,
        &format!("INSERT INTO outbox_event ({COLUMNS}, attempts, available_at, created_at)"),
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        "",
        values,
    )
    .await?;
    Ok(())
}

/// The session's staging table (created with each connection, `crate::db::pool`): a batch's
/// outbox rows written before its stock rows are locked, then copied into `outbox_event` under
/// the lock by one statement ([`Staged::insert`]). A row is as `outbox_event` would take it;
/// `seq` is its place in the batch. A session's rows are its own and outlive its transactions:
/// a batch overwrites the places it uses and reads only those, so nothing is ever deleted. Its
/// columns are `outbox_event`'s as the migrations made them (written out, not `LIKE`: a pool may
/// connect before the migrations ran): a migration that changes one changes it here too.
pub const STAGE_TABLE: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS outbox_stage (
    seq            INT          NOT NULL,
    event_id       CHAR(36)     CHARACTER SET ascii NOT NULL,
    aggregate_type VARCHAR(64)  NOT NULL,
    aggregate_id   VARCHAR(64)  NOT NULL,
    event_type     VARCHAR(128) NOT NULL,
    topic          VARCHAR(249) NOT NULL,
    msg_key        VARCHAR(255) NOT NULL,
    payload        MEDIUMTEXT   NOT NULL,
    headers        TEXT         NOT NULL,
    status         VARCHAR(16)  NOT NULL,
    PRIMARY KEY (seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// Outbox rows ready to be written under a lock in as few round trips as they allow: kept to be
/// inserted as they are when they fit in one statement, or already in the session's staging
/// table when they would take several (docs/design.md §23 "The transaction").
pub enum Staged {
    /// The rows' values, for one INSERT.
    Values(Vec<Value>),
    /// How many rows wait in the staging table.
    InStage(usize),
}

/// Readies `rows` for [`Staged::insert`] in the same transaction: rows that would take more than
/// one `INSERT` are written to the staging table now (the statements the lock no longer waits
/// for), each at its place in `rows`.
pub async fn stage(conn: &impl ConnectionTrait, rows: &[NewOutboxEvent]) -> Result<Staged, DbErr> {
    let values = values_of(rows);
    if insert_statement_count(WIDTH, &values) <= 1 {
        return Ok(Staged::Values(values));
    }
    // Each row's values moved behind its place, none copied.
    let count = rows.len();
    let mut staged: Vec<Value> = Vec::with_capacity(values.len() + count);
    let mut values = values.into_iter();
    for seq in 0..count {
        staged.push(i32::try_from(seq).unwrap_or(i32::MAX).into());
        staged.extend(values.by_ref().take(WIDTH));
    }
    insert_rows(
        conn,
        &format!("REPLACE INTO outbox_stage (seq, {COLUMNS})"),
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "",
        staged,
    )
    .await?;
    Ok(Staged::InStage(count))
}

impl Staged {
    /// `rows` to be inserted as they are, nothing staged (their stock rows are held already).
    pub fn unstaged(rows: &[NewOutboxEvent]) -> Self {
        Self::Values(values_of(rows))
    }

    /// Writes the rows into `outbox_event`, due now, in their order: one statement ([`insert`]'s
    /// `created_at` and `available_at` alike, the clock read under the caller's lock).
    pub async fn insert(self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        let count = match self {
            Self::Values(values) => return insert_values(conn, values).await,
            Self::InStage(count) => count,
        };
        let sql = format!(
            "INSERT INTO outbox_event ({COLUMNS}, attempts, available_at, created_at) \
             SELECT {COLUMNS}, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM outbox_stage \
             WHERE seq < ? ORDER BY seq"
        );
        let count = i32::try_from(count).unwrap_or(i32::MAX);
        conn.execute_raw(stmt(&sql, vec![count.into()])).await?;
        Ok(())
    }
}
