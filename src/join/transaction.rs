//! The participation transaction: one or more wins of one campaign, their outbox events and the
//! guarded stock decrement, committed together or not at all (docs/design.md §2.2, §6 step 3).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use uuid::Uuid;

use super::guard::{decrement_buckets, guarded_decrement, Guard, Part};
use crate::hooks::Hooks;
use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        sql::{in_list, insert_rows, insert_rows_returning, stmt},
        time::to_db,
        Db, Txn,
    },
    events::{
        accepted::{win_message_key, WinStatus, PARTICIPATION_ACCEPTED},
        ParticipationAccepted,
    },
    gate::Entry,
    group::guard::{self, Held, Take},
    join::in_doubt::{self, InDoubt},
    outbox::{self, NewOutboxEvent},
};

/// A win to write: a reservation the gate made.
#[derive(Debug, Clone)]
pub struct NewParticipation {
    pub entry: Entry,
    pub sequence: i64,
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
    /// The purchase (cart) the win is an item of, once its row is written; `None` for a join.
    pub purchase_id: Option<i64>,
}

impl NewParticipation {
    /// What the win is when it commits at `accepted_at`: held until the end of the campaign's
    /// window, or confirmed at once.
    pub fn status_at(&self, accepted_at: DateTime<Utc>) -> WinState {
        crate::win::status::at_acceptance(self.confirm_within_seconds, accepted_at)
    }
}

/// A win's state at its acceptance, and the hold's deadline when it is held.
pub(super) type WinState = (WinStatus, Option<DateTime<Utc>>);

/// A committed win: its participation id and its `acceptedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub participation_id: i64,
    pub accepted_at: DateTime<Utc>,
    pub status: WinStatus,
    pub hold_expires_at: Option<DateTime<Utc>>,
}

/// Why the transaction did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// UNIQUE(campaign_id, user_id): the user (one of them, in a batch) already won (Redis did not
    /// know, e.g. after a reload).
    #[error("the user already has a participation in this campaign")]
    Duplicate,
    /// The guarded decrement matched no row: MySQL has less stock than Redis believed. The
    /// stock is read with the campaign's `control_seq` (the live controls it includes).
    #[error("the campaign has {remaining_stock} units left in MySQL")]
    SoldOut {
        remaining_stock: i64,
        control_seq: i64,
    },
    /// The campaign is paused in MySQL (a pause the gate has not received yet: it reaches the
    /// gate within ~1 s, longer when Redis is slow, and MySQL decides meanwhile).
    #[error("the campaign is paused")]
    Paused,
    /// The campaign was closed in MySQL (likewise), or its window ended before the win reached
    /// the campaign row's lock.
    #[error("the campaign is closed")]
    Closed,
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The batch's task ended before answering (a panic): the transaction may have committed.
    #[error("the group commit ended without an answer")]
    Unanswered,
    /// The COMMIT was sent and not answered (a deadline, a broken connection): it may have
    /// committed. Every member of the batch shares the one settlement, which says which.
    #[error("the commit's outcome is unknown: {}", .0.error())]
    InDoubt(Arc<InDoubt>),
    /// A win reached the campaign row's lock past its `commit_by` (its instance was stopped, or
    /// MySQL stalled): the reconciler may have given its reservation back, so it is not written.
    #[error("the reservation outlived its commit deadline")]
    Stale,
    /// A batch over several buckets of a campaign: one of its buckets refused its part (too few
    /// units, or paused or closed). Nothing was written; the group commit writes the batch's
    /// wins one by one, each answered by its own bucket's guard.
    #[error("a bucket refused its part of the batch")]
    BatchRefused,
    /// The win would take its user past the group's limit in MySQL (`group_holding`), which the
    /// gate had not seen (docs/design.md §22). Nothing was written. In a batch of several wins
    /// the batch answers [`WriteError::BatchRefused`] and each win is written alone.
    #[error("the user holds {held} of the group's {limit} units already")]
    GroupLimit { limit: i32, held: i64 },
}

/// Writes one win: [`write_all`] with one member.
pub async fn write(
    db: &Db,
    p: &NewParticipation,
    hooks: &dyn Hooks,
) -> Result<Written, WriteError> {
    let written = write_all(db, std::slice::from_ref(p), hooks).await?;
    Ok(written[0])
}

/// The outbox rows of a batch's wins: each win's `ParticipationAccepted` as it is written.
pub(super) fn accepted_events(
    wins: &[NewParticipation],
    ids: &[i64],
    states: &[WinState],
    accepted_at: DateTime<Utc>,
) -> Vec<NewOutboxEvent> {
    wins.iter()
        .zip(ids.iter().zip(states))
        .map(|(w, (&participation_id, &(status, hold_expires_at)))| {
            let event = ParticipationAccepted {
                event_id: w.event_id,
                event_type: PARTICIPATION_ACCEPTED.into(),
                occurred_at: accepted_at,
                campaign_id: w.entry.campaign_id,
                participation_id,
                user_id: w.entry.user_id,
                quantity: w.entry.quantity,
                sequence: w.sequence,
                reward_points: w.reward_points,
                status,
                hold_expires_at,
                purchase_id: w.purchase_id,
            };
            let mut row =
                NewOutboxEvent::participation_accepted(&event, &w.topic, w.traceparent.as_deref());
            if w.entry.bucket.is_some() {
                row.msg_key = win_message_key(w.entry.campaign_id, w.entry.bucket);
            }
            row
        })
        .collect()
}

/// Writes the wins of one campaign (`wins` is not empty, all of one campaign, distinct users) in
/// one transaction: one guarded decrement of their total quantity, one multi-row insert of
/// their participations, one of their outbox rows, one commit. All commit or none does; the
/// answers come back in the order of `wins`.
///
/// The guarded `UPDATE campaign` runs first, as docs/design.md §6 orders it: it takes the campaign
/// row's lock, so a campaign's transactions take their ids and commit one after another, and
/// its outbox rows become visible in id order (the relay then publishes them in exactly that
/// order). A bucketed campaign's batch decrements its buckets' rows instead, in one statement,
/// ascending (`guard::decrement_buckets`): each bucket's ids follow its row's commits. A refused
/// decrement also costs no insert.
#[tracing::instrument(level = "debug", skip_all, fields(campaign_id = wins[0].entry.campaign_id, wins = wins.len()), err(level = "debug"))]
pub async fn write_all(
    db: &Db,
    wins: &[NewParticipation],
    hooks: &dyn Hooks,
) -> Result<Vec<Written>, WriteError> {
    let campaign_id = wins[0].entry.campaign_id;
    debug_assert!(wins.iter().all(|w| w.entry.campaign_id == campaign_id));
    let txn = db.begin().await?;
    let decremented = match parts(wins) {
        Decrement::One(guard) => guarded_decrement(&txn, &guard, hooks).await,
        Decrement::Buckets(parts) => decrement_buckets(&txn, campaign_id, &parts).await,
    };
    if let Err(refused) = decremented {
        txn.rollback().await?;
        return Err(refused);
    }
    // The campaign row's lock is held from here to the commit; the reconciler takes it before
    // it gives a reservation back. A win past its deadline may have lost its reservation already.
    let now = std::time::Instant::now();
    if wins.iter().any(|w| now > w.commit_by) {
        txn.rollback().await?;
        return Err(WriteError::Stale);
    }
    // The wins are the guarded decrement: its time, taken under the row's lock so that it
    // follows commit order, is their acceptedAt.
    let accepted_at = crate::db::time::precision(Utc::now());
    // The gate refuses a join past the window's end, but one it let through just before may
    // reach the lock after it: the window is judged at the acceptedAt the win would carry.
    if wins
        .iter()
        .any(|w| w.ends_at.is_some_and(|end| accepted_at >= end))
    {
        txn.rollback().await?;
        return Err(WriteError::Closed);
    }

    if let Err(refused) = guard_group(&txn, wins).await {
        txn.rollback().await?;
        return Err(refused);
    }
    // What each win is at its acceptance: held until its deadline, or confirmed.
    let states: Vec<WinState> = wins.iter().map(|w| w.status_at(accepted_at)).collect();
    let ids = match insert_participations(&txn, wins, &states, accepted_at).await {
        Ok(ids) => ids,
        Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
            txn.rollback().await?;
            return Err(WriteError::Duplicate);
        }
        Err(e) => return Err(e.into()),
    };

    let events = accepted_events(wins, &ids, &states, accepted_at);
    outbox::table::insert(&txn, &events).await?;

    // Only a COMMIT can end in doubt: on any earlier failure the transaction is dropped
    // unfinished and never commits. The session's id lets the settlement end it for certain.
    let session = in_doubt::session_of(&txn).await?;
    hooks.before_commit().await;
    if let Err(e) = txn.commit().await {
        return Err(if db_error::outcome_unknown(&e) {
            WriteError::InDoubt(InDoubt::new(session, e))
        } else {
            e.into()
        });
    }
    Ok(ids
        .into_iter()
        .zip(states)
        .map(|(participation_id, (status, hold_expires_at))| Written {
            participation_id,
            accepted_at,
            status,
            hold_expires_at,
        })
        .collect())
}

/// The group's limit over the wins' users (a campaign's wins share its group).
pub(super) async fn guard_group(txn: &Txn, wins: &[NewParticipation]) -> Result<(), WriteError> {
    let Some(limit) = wins[0].group else {
        return Ok(());
    };
    let takes: Vec<Take> = wins
        .iter()
        .map(|w| Take {
            user_id: w.entry.user_id,
            units: i64::from(w.entry.quantity),
        })
        .collect();
    match guard::take(txn, limit.group_id, limit.per_user, &takes).await? {
        Held::Within => Ok(()),
        Held::Over { .. } if wins.len() > 1 => Err(WriteError::BatchRefused),
        Held::Over { total, .. } => Err(WriteError::GroupLimit {
            limit: limit.per_user,
            held: total - i64::from(wins[0].entry.quantity),
        }),
    }
}

/// What a transaction's wins take: one row's units (the campaign's, or one bucket's), or
/// several buckets' of a bucketed campaign, ascending.
enum Decrement {
    One(Guard),
    Buckets(Vec<Part>),
}

/// `wins`' units by the row they come from.
fn parts(wins: &[NewParticipation]) -> Decrement {
    let mut by_slot: BTreeMap<Option<u16>, Part> = BTreeMap::new();
    for w in wins {
        let bucket = w.entry.bucket;
        let part = by_slot.entry(bucket).or_insert(Part {
            bucket: bucket.unwrap_or(0),
            total: 0,
            count: 0,
            max_sequence: 0,
        });
        part.total += i64::from(w.entry.quantity);
        part.count += 1;
        part.max_sequence = part.max_sequence.max(w.sequence);
    }
    if by_slot.len() == 1 {
        let part = by_slot.into_values().next().unwrap_or(Part {
            bucket: 0,
            total: 0,
            count: 0,
            max_sequence: 0,
        });
        return Decrement::One(Guard {
            slot: wins[0].entry.slot(),
            total: part.total,
            count: part.count,
            max_sequence: part.max_sequence,
        });
    }
    Decrement::Buckets(by_slot.into_values().collect())
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
    wins: &[NewParticipation],
    states: &[WinState],
    accepted_at: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    let campaign_id = wins[0].entry.campaign_id;
    let created_at = to_db(accepted_at);
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
            w.purchase_id.into(),
        ]);
    }
    const HEAD: &str =
        "INSERT INTO participation (campaign_id, bucket, user_id, quantity, sequence, \
                        created_at, idempotency_key, status, hold_expires_at, event_id, purchase_id)";
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    if let [one] = wins {
        let inserted = insert_rows(txn, HEAD, ROW, "", values).await?;
        let id = i64::try_from(inserted[0].last_insert_id())
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        debug_assert_eq!(one.entry.campaign_id, campaign_id);
        return Ok(vec![id]);
    }
    let found = if txn.insert_returning() {
        insert_rows_returning(txn, HEAD, ROW, " RETURNING user_id, id", values).await?
    } else {
        insert_rows(txn, HEAD, ROW, "", values).await?;
        read_back(txn, campaign_id, wins).await?
    };
    let mut by_user = HashMap::with_capacity(found.len());
    for row in found {
        by_user.insert(
            row.try_get_by_index::<i64>(0)?,
            row.try_get_by_index::<i64>(1)?,
        );
    }
    wins.iter()
        .map(|w| {
            by_user.get(&w.entry.user_id).copied().ok_or_else(|| {
                DbErr::Custom(format!(
                    "participation of user {} not found right after its insert",
                    w.entry.user_id
                ))
            })
        })
        .collect()
}

/// The `(user_id, id)` rows of `wins`, just inserted in this transaction.
async fn read_back(
    txn: &Txn,
    campaign_id: i64,
    wins: &[NewParticipation],
) -> Result<Vec<QueryResult>, DbErr> {
    let mut values: Vec<Value> = vec![campaign_id.into()];
    let users = in_list(
        &mut values,
        wins.iter().map(|w| Value::from(w.entry.user_id)),
    );
    txn.query_all_raw(stmt(
        &format!(
            "SELECT user_id, id FROM participation WHERE campaign_id = ? AND user_id IN ({users})"
        ),
        values,
    ))
    .await
}
