//! A win's rows, built in one place for a join's batch and a purchase's items alike: the win to
//! write ([`NewParticipation`]), its `participation` row and its `ParticipationAccepted` outbox
//! row (docs/design.md §2.2, §4), and a purchase's own row (§22). The event itself is built here
//! for the sync path too ([`accepted_event`]).

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use uuid::Uuid;

use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        sql::{in_list, insert_rows, insert_rows_returning, stmt},
        time::to_db,
        Txn,
    },
    events::{
        accepted::{win_message_key, WinStatus, PARTICIPATION_ACCEPTED},
        ParticipationAccepted,
    },
    gate::Entry,
    outbox::NewOutboxEvent,
};

/// A win to write: a reservation the gate made.
#[derive(Debug, Clone)]
pub struct NewParticipation {
    pub entry: Entry,
    pub sequence: i64,
    /// The generation of the gate that made the reservation: the win's row must still have it
    /// when the win commits (docs/design.md §2.1).
    pub gate_gen: i64,
    /// The campaign's points per unit, carried in the event.
    pub reward_points: i64,
    pub event_id: Uuid,
    pub topic: Arc<str>,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
    /// The campaign's confirmation window in seconds; 0: the win is final at once.
    pub confirm_within_seconds: i32,
    /// Past this moment the win must not commit: its reservation may be given back by the
    /// reconciler (`RESERVATION_TIMEOUT_MS` after it was made, less a margin for clocks). Checked
    /// under the campaign row's lock, which the reconciler takes too (docs/design.md §2.1).
    pub commit_by: std::time::Instant,
    /// The end of the campaign's window (it never changes after creation): a win whose
    /// acceptedAt would be at or past it is not written.
    pub ends_at: Option<DateTime<Utc>>,
    /// The time its reservation carries at the gate (`<reserved at ms>:<quantity>`): a commit
    /// in doubt gives back exactly that reservation ([`crate::join::in_doubt`]).
    pub reserved_at_ms: i64,
    /// The campaign's group's limit, guarded in the transaction (docs/design.md §22).
    pub group: Option<crate::group::Limit>,
}

impl NewParticipation {
    /// What the win is when it commits at `accepted_at`: held until the end of the campaign's
    /// window, or confirmed at once.
    pub fn status_at(&self, accepted_at: DateTime<Utc>) -> WinState {
        crate::win::status::at_acceptance(self.confirm_within_seconds, accepted_at)
    }
}

/// A win's state at its acceptance, and the hold's deadline when it is held.
pub type WinState = (WinStatus, Option<DateTime<Utc>>);

/// A committed win: its participation id and its `acceptedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Written {
    pub participation_id: i64,
    pub accepted_at: DateTime<Utc>,
    pub status: WinStatus,
    pub hold_expires_at: Option<DateTime<Utc>>,
}

impl Written {
    /// The win `found` in MySQL, as its transaction's answer had it (held while it has a hold's
    /// deadline, as `StoredParticipation::accepted_status` says).
    pub fn stored(found: &crate::win::store::StoredParticipation) -> Self {
        let hold_expires_at = found.hold_expires_at.map(|at| at.and_utc());
        Self {
            participation_id: found.id,
            accepted_at: found.created_at.and_utc(),
            status: match hold_expires_at {
                Some(_) => WinStatus::Held,
                None => WinStatus::Confirmed,
            },
            hold_expires_at,
        }
    }
}

/// A purchase's own row, written in its items' transaction.
#[derive(Debug, Clone)]
pub struct PurchaseRow {
    pub group_id: i64,
    pub user_id: i64,
    pub idempotency_key: Option<String>,
}

/// Inserts the purchase's row; its id, or `None` when the user's Idempotency-Key is taken
/// (another request with it committed first).
pub(super) async fn insert_purchase(
    txn: &Txn,
    p: &PurchaseRow,
    at: DateTime<Utc>,
) -> Result<Option<i64>, DbErr> {
    let inserted = txn
        .execute_raw(stmt(
            "INSERT INTO purchase (group_id, user_id, idempotency_key, created_at) \
             VALUES (?, ?, ?, ?)",
            vec![
                p.group_id.into(),
                p.user_id.into(),
                p.idempotency_key.clone().into(),
                to_db(at).into(),
            ],
        ))
        .await;
    match inserted {
        Ok(done) => i64::try_from(done.last_insert_id())
            .map(Some)
            .map_err(|e| DbErr::Custom(e.to_string())),
        Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the wins of one transaction share once the campaign rows are locked: their acceptance
/// time, and the purchase they are items of (`None` for joins).
#[derive(Debug, Clone, Copy)]
pub(super) struct Accepting {
    pub(super) at: DateTime<Utc>,
    pub(super) purchase_id: Option<i64>,
}

/// What a win's event says beyond its entry (campaign, user, quantity) and its acceptance.
#[derive(Debug, Clone, Copy)]
pub(super) struct WinFacts {
    pub(super) event_id: Uuid,
    pub(super) participation_id: i64,
    pub(super) sequence: i64,
    pub(super) reward_points: i64,
    pub(super) state: WinState,
}

/// A win's `ParticipationAccepted`, for every path that writes a win.
pub(super) fn accepted_event(
    entry: &Entry,
    facts: WinFacts,
    accepting: Accepting,
) -> ParticipationAccepted {
    let (status, hold_expires_at) = facts.state;
    ParticipationAccepted {
        event_id: facts.event_id,
        event_type: PARTICIPATION_ACCEPTED.into(),
        occurred_at: accepting.at,
        campaign_id: entry.campaign_id,
        participation_id: facts.participation_id,
        user_id: entry.user_id,
        quantity: entry.quantity,
        sequence: facts.sequence,
        reward_points: facts.reward_points,
        status,
        hold_expires_at,
        purchase_id: accepting.purchase_id,
    }
}

/// The outbox rows of `wins`: each one's `ParticipationAccepted` as it is written.
pub(super) fn accepted_events(
    wins: &[NewParticipation],
    ids: &[i64],
    states: &[WinState],
    accepting: Accepting,
) -> Vec<NewOutboxEvent> {
    wins.iter()
        .zip(ids.iter().zip(states))
        .map(|(w, (&participation_id, &state))| {
            let facts = WinFacts {
                event_id: w.event_id,
                participation_id,
                sequence: w.sequence,
                reward_points: w.reward_points,
                state,
            };
            let event = accepted_event(&w.entry, facts, accepting);
            let mut row =
                NewOutboxEvent::participation_accepted(&event, &w.topic, w.traceparent.as_deref());
            if w.entry.bucket.is_some() {
                row.msg_key = win_message_key(w.entry.campaign_id, w.entry.bucket);
            }
            row
        })
        .collect()
}

/// Inserts the participations (one statement when their number is one of the list sizes of
/// [`crate::db::sql`], as a group commit's batch is) and returns their ids in the order of `wins`.
///
/// One row: `LAST_INSERT_ID()`. Several: on MariaDB the insert returns them (`RETURNING user_id,
/// id`, no second statement); on MySQL, which has no such clause, they are read back by
/// (campaign, user) inside the transaction. Never computed from the first id, which would assume
/// `auto_increment_increment = 1` (Galera and multi-primary set-ups step by more) and consecutive
/// allocation.
pub(super) async fn insert_participations(
    txn: &Txn,
    wins: &[&NewParticipation],
    states: &[WinState],
    accepting: Accepting,
) -> Result<Inserted, DbErr> {
    let campaign_id = wins[0].entry.campaign_id;
    let created_at = to_db(accepting.at);
    let mut values: Vec<Value> = Vec::with_capacity(wins.len() * 11);
    for (w, &(status, hold_expires_at)) in wins.iter().zip(states) {
        values.extend([
            campaign_id.into(),
            w.entry.slot().bucket_or_zero().into(),
            w.entry.user_id.into(),
            w.entry.quantity.into(),
            w.sequence.into(),
            created_at.into(),
            w.idempotency_key.clone().into(),
            status.as_str().into(),
            hold_expires_at.map(to_db).into(),
            w.event_id.to_string().into(),
            accepting.purchase_id.into(),
        ]);
    }
    const HEAD: &str =
        "INSERT INTO participation (campaign_id, bucket, user_id, quantity, sequence, \
                        created_at, idempotency_key, status, hold_expires_at, event_id, purchase_id)";
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    // The session's id rides along (for a COMMIT that may end in doubt): no statement of its own.
    let found = if txn.insert_returning() {
        insert_rows_returning(
            txn,
            HEAD,
            ROW,
            " RETURNING user_id, id, CONNECTION_ID()",
            values,
        )
        .await?
    } else {
        insert_rows(txn, HEAD, ROW, "", values).await?;
        read_back(txn, campaign_id, wins).await?
    };
    // Every row carries the same session: the first one's.
    let session = found
        .first()
        .ok_or_else(|| DbErr::Custom("the insert returned no row".into()))?
        .try_get_by_index::<u64>(2)?;
    let mut by_user = HashMap::with_capacity(found.len());
    for row in found {
        by_user.insert(
            row.try_get_by_index::<i64>(0)?,
            row.try_get_by_index::<i64>(1)?,
        );
    }
    let ids = wins
        .iter()
        .map(|w| {
            by_user.get(&w.entry.user_id).copied().ok_or_else(|| {
                DbErr::Custom(format!(
                    "participation of user {} not found right after its insert",
                    w.entry.user_id
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Inserted { ids, session })
}

/// What inserting a campaign's participations gave back.
pub(super) struct Inserted {
    /// Each win's participation id, in the order given.
    pub ids: Vec<i64>,
    /// The MySQL session that holds the transaction (`CONNECTION_ID()`): a COMMIT left
    /// unanswered is settled by looking for it ([`super::in_doubt`]).
    pub session: u64,
}

/// The `(user_id, id, session)` rows of `wins`, just inserted in this transaction.
async fn read_back(
    txn: &Txn,
    campaign_id: i64,
    wins: &[&NewParticipation],
) -> Result<Vec<QueryResult>, DbErr> {
    let mut values: Vec<Value> = vec![campaign_id.into()];
    let users = in_list(
        &mut values,
        wins.iter().map(|w| Value::from(w.entry.user_id)),
    );
    txn.query_all_raw(stmt(
        &format!(
            "SELECT user_id, id, CONNECTION_ID() FROM participation WHERE campaign_id = ? AND user_id IN ({users})"
        ),
        values,
    ))
    .await
}
