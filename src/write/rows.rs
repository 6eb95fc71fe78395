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

/// A win to write: a reservation the gate made. The same value crosses to its campaign's writer
/// on another instance (`writer::wire`): one spelling of a win.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewParticipation {
    pub entry: Entry,
    pub sequence: i64,
    /// The generation of the gate that made the reservation: the win's row must still have it
    /// when the win commits (docs/design.md §2.1).
    pub gate_gen: i64,
    /// The campaign's points per unit, carried in the event.
    pub reward_points: i64,
    pub event_id: Uuid,
    #[serde(with = "arc_str")]
    pub topic: Arc<str>,
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
    /// The campaign's confirmation window in seconds; 0: the win is final at once.
    pub confirm_within_seconds: i32,
    /// Past this moment the win must not commit: its reservation may be given back by the
    /// reconciler (`RESERVATION_TIMEOUT_MS` after it was made, less a margin for clocks). Checked
    /// under the campaign row's lock, which the reconciler takes too (docs/design.md §2.1).
    /// Crosses to another instance as the same moment on its clock ([`commit_by_ms`]).
    #[serde(with = "commit_by_ms")]
    pub commit_by: std::time::Instant,
    /// The end of the campaign's window (it never changes after creation): a win whose
    /// acceptedAt would be at or past it is not written.
    pub ends_at: Option<DateTime<Utc>>,
    /// The time its reservation carries at the gate (`<reserved at ms>:<quantity>`): a commit
    /// in doubt gives back exactly that reservation ([`crate::write::in_doubt`]).
    pub reserved_at_ms: i64,
    /// The campaign's group's limit, guarded in the transaction (docs/design.md §22). Never
    /// crosses: a win under a group's limit is written where it was reserved.
    #[serde(skip)]
    pub group: Option<crate::group::Limit>,
}

/// A shared string across instances, as its text.
mod arc_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }
}

/// A win's commit deadline across instances: epoch milliseconds of the same moment, turned back
/// into a moment of the reading instance's clock (passed already when it is), so a writer refuses
/// the win (`Stale`) past the moment its origin counts on. The instances' clocks agree within the
/// margin the reconciler already relies on (a quarter of `RESERVATION_TIMEOUT_MS`, docs/design.md
/// §2.1); a time left would have grown by the time the win waited in the writer's inbox.
pub(crate) mod commit_by_ms {
    use std::time::{Duration, Instant};

    use chrono::Utc;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Instant, s: S) -> Result<S::Ok, S::Error> {
        let left = at.saturating_duration_since(Instant::now());
        let left_ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
        s.serialize_i64(Utc::now().timestamp_millis().saturating_add(left_ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instant, D::Error> {
        let left_ms = i64::deserialize(d)?.saturating_sub(Utc::now().timestamp_millis());
        let now = Instant::now();
        // A deadline no clock can hold is treated as passed: the win is refused, never written late.
        Ok(now
            .checked_add(Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)))
            .unwrap_or(now))
    }
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
pub(crate) struct Accepting {
    pub(crate) at: DateTime<Utc>,
    pub(crate) purchase_id: Option<i64>,
}

/// What a win's event says beyond its entry (campaign, user, quantity) and its acceptance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WinFacts {
    pub(crate) event_id: Uuid,
    pub(crate) participation_id: i64,
    pub(crate) sequence: i64,
    pub(crate) reward_points: i64,
    pub(crate) state: WinState,
}

/// A win's `ParticipationAccepted`, for every path that writes a win.
pub(crate) fn accepted_event(
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

/// A win for unit tests: one unit of `campaign_id` for `user_id` (its sequence too), in
/// `bucket`, due in five seconds; a test changes what it is about. The one literal of a win
/// outside the code that makes wins, so a field added to it is added here once.
#[cfg(test)]
pub(crate) fn test_win(campaign_id: i64, user_id: i64, bucket: Option<u16>) -> NewParticipation {
    NewParticipation {
        entry: Entry {
            campaign_id,
            user_id,
            quantity: 1,
            bucket,
            group: None,
        },
        sequence: user_id,
        gate_gen: 1,
        reward_points: 0,
        event_id: Uuid::now_v7(),
        topic: Arc::from("t"),
        traceparent: None,
        idempotency_key: None,
        confirm_within_seconds: 0,
        commit_by: std::time::Instant::now() + std::time::Duration::from_secs(5),
        ends_at: None,
        reserved_at_ms: 0,
        group: None,
    }
}
