//! The participation transaction, the one way a win is written (docs/design.md §2.2, §6 step 3,
//! §22, §23): a campaign's group-commit batch, or a purchase's items with its purchase row. The
//! participation rows first, before any stock row is locked; then each campaign's guarded stock
//! decrement (campaign order: the lock order of every transaction on those rows), the deadlines
//! judged under those locks, the group's limit, the outbox rows ([`super::rows`]), one commit;
//! all of it or none, and a COMMIT left unanswered is reported in doubt for the one settlement
//! ([`super::in_doubt`]).

use std::{collections::BTreeMap, sync::atomic::AtomicU64, time::Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;

use super::{
    error::{Refused, WriteError},
    guard::{
        decrement_buckets, guarded_decrement, lock_free_buckets, Guard, Part, MIXED_GENERATIONS,
    },
    rows::{
        accepted_events, insert_participations, insert_purchase, Accepting, NewParticipation,
        PurchaseRow, WinState, Written,
    },
};
use crate::hooks::Hooks;
use crate::{
    db::{
        error::{self as db_error, DbErrorKind},
        Db, Txn,
    },
    group::guard::{self, Held, Take},
    outbox,
    write::in_doubt::InDoubt,
};

/// Where the transactions add up how long they held their stock rows, in seconds: from the
/// guarded decrement (or the bucket rows' lock) to COMMIT's answer, refusals and failures too
/// (`firstcome_write_row_hold_seconds_total`; docs/design.md §10 "Serial sections").
pub type Holds = Counter<f64, AtomicU64>;

/// Adds the time since `since`, if the rows were locked at all, to `holds`.
fn held(holds: &Holds, since: Option<Instant>) {
    if let Some(since) = since {
        holds.inc_by(since.elapsed().as_secs_f64());
    }
}

/// A committed write: each win's answer in the order given, and the purchase's id if it was one.
#[derive(Debug)]
pub struct Committed {
    pub wins: Vec<Written>,
    pub purchase_id: Option<i64>,
}

/// Writes one win: [`write_all`] with one member.
pub async fn write(
    db: &Db,
    p: &NewParticipation,
    holds: &Holds,
    hooks: &dyn Hooks,
) -> Result<Written, WriteError> {
    let written = write_all(db, std::slice::from_ref(p), holds, hooks).await?;
    Ok(written[0])
}

/// Writes the wins of one campaign (`wins` is not empty, all of one campaign, distinct users) in
/// one transaction: one guarded decrement of their total quantity, one multi-row insert of
/// their participations, one of their outbox rows, one commit. All commit or none does; the
/// answers come back in the order of `wins`.
///
/// The participations are inserted before the guarded `UPDATE campaign`, so the campaign row's
/// lock is held only for what must follow it (docs/design.md §23 "The transaction"): the
/// deadlines, the group's limit, the outbox rows and the COMMIT. The outbox rows come after the
/// lock, so a campaign's transactions take their outbox ids and commit one after another, and
/// its outbox rows become visible in id order (the relay then publishes them in exactly that
/// order). A bucketed campaign's batch decrements its buckets' rows instead, in one statement,
/// ascending (`guard::decrement_buckets`): each bucket's outbox ids follow its row's commits.
#[tracing::instrument(level = "debug", skip_all, fields(campaign_id = wins[0].entry.campaign_id, wins = wins.len()), err(level = "debug"))]
pub async fn write_all(
    db: &Db,
    wins: &[NewParticipation],
    holds: &Holds,
    hooks: &dyn Hooks,
) -> Result<Vec<Written>, WriteError> {
    debug_assert!(wins
        .iter()
        .all(|w| w.entry.campaign_id == wins[0].entry.campaign_id));
    answers(write_wins(db, wins, None, holds, hooks).await)
}

/// Writes `wins` (not empty; several campaigns only with `purchase`, one user's items) and the
/// purchase row they make up, if any, in one transaction.
pub async fn write_wins(
    db: &Db,
    wins: &[NewParticipation],
    purchase: Option<&PurchaseRow>,
    holds: &Holds,
    hooks: &dyn Hooks,
) -> Result<Committed, Refused> {
    let txn = db.begin().await?;
    // `write_in` says when its guarded decrement began: the rows are held from there.
    let mut locked = None;
    let written = write_in(&txn, wins, purchase, hooks, &mut locked).await;
    let finished = finish(txn, written, hooks).await;
    held(holds, locked);
    finished
}

/// What [`write_free`] did: which wins it took (their bucket rows were free), and what became
/// of those, in order. A win not taken was not written.
pub struct Free {
    pub taken: Vec<bool>,
    pub written: Result<Vec<Written>, WriteError>,
}

impl Free {
    /// Every one of `count` wins taken, with one outcome for them all.
    fn every(count: usize, written: Result<Vec<Written>, WriteError>) -> Self {
        Self {
            taken: vec![true; count],
            written,
        }
    }
}

/// Writes a batch of one bucketed campaign's wins of several buckets as [`write_all`] does, but
/// only the wins whose bucket rows no other transaction holds ([`lock_free_buckets`]); the
/// others are not written and go back to their lane for its next batch, so two writers of one
/// campaign do not wait on each other's rows (docs/design.md §23). A failure before the rows
/// are known is every win's.
pub async fn write_free(
    db: &Db,
    wins: &[NewParticipation],
    holds: &Holds,
    hooks: &dyn Hooks,
) -> Free {
    let buckets: Vec<u16> = (wins.iter().filter_map(|w| w.entry.bucket))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let txn = match db.begin().await {
        Ok(txn) => txn,
        Err(e) => return Free::every(wins.len(), Err(e.into())),
    };
    // The rows are held from the `SELECT … FOR UPDATE SKIP LOCKED` on.
    let since = Instant::now();
    let free = write_free_in(txn, wins, &buckets, hooks, since).await;
    held(holds, Some(since));
    free
}

/// [`write_free`] once its transaction began: the free bucket rows locked, their wins written.
async fn write_free_in(
    txn: Txn,
    wins: &[NewParticipation],
    buckets: &[u16],
    hooks: &dyn Hooks,
    since: Instant,
) -> Free {
    let every = |written| Free::every(wins.len(), written);
    // On an error the transaction is dropped unfinished: it never commits.
    let free = match lock_free_buckets(&txn, wins[0].entry.campaign_id, buckets).await {
        Ok(free) => free,
        Err(e) => return every(Err(e.into())),
    };
    let taken: Vec<bool> = (wins.iter())
        .map(|w| w.entry.bucket.is_some_and(|b| free.contains(&b)))
        .collect();
    if free.len() == buckets.len() {
        let written = write_in(&txn, wins, None, hooks, &mut Some(since)).await;
        return every(finished(txn, written, hooks).await);
    }
    if free.is_empty() {
        // Nothing was written; a failed ROLLBACK leaves the transaction to be dropped, which
        // rolls it back too.
        let _ = txn.rollback().await;
        return Free {
            taken,
            written: Ok(Vec::new()),
        };
    }
    let subset: Vec<NewParticipation> = (wins.iter().zip(&taken))
        .filter(|(_, &t)| t)
        .map(|(w, _)| w.clone())
        .collect();
    let written = write_in(&txn, &subset, None, hooks, &mut Some(since)).await;
    Free {
        taken,
        written: finished(txn, written, hooks).await,
    }
}

/// [`finish`]ed, as one campaign's wins' answers.
async fn finished(
    txn: Txn,
    written: Result<(Committed, u64), Refused>,
    hooks: &dyn Hooks,
) -> Result<Vec<Written>, WriteError> {
    answers(finish(txn, written, hooks).await)
}

/// One campaign's wins' answers from a transaction's outcome.
fn answers(outcome: Result<Committed, Refused>) -> Result<Vec<Written>, WriteError> {
    outcome
        .map(|committed| committed.wins)
        .map_err(|refused| refused.error)
}

/// Commits what `written` wrote in `txn`, or rolls it back on a refusal. Only a COMMIT can end
/// in doubt: on any earlier failure the transaction is dropped unfinished and never commits.
/// The session's id, which lets the settlement end it for certain, came back with the
/// participations' insert (docs/design.md §23).
async fn finish(
    txn: Txn,
    written: Result<(Committed, u64), Refused>,
    hooks: &dyn Hooks,
) -> Result<Committed, Refused> {
    let (committed, session) = match written {
        Ok(written) => written,
        Err(refused) => {
            txn.rollback().await?;
            return Err(refused);
        }
    };
    hooks.before_commit().await;
    if let Err(e) = txn.commit().await {
        return Err(Refused::whole(if db_error::outcome_unknown(&e) {
            WriteError::InDoubt(InDoubt::new(session, e))
        } else {
            e.into()
        }));
    }
    Ok(committed)
}

/// Everything before the commit, and the transaction's session id; the caller rolls back on a
/// refusal. `locked` is set when the first guarded decrement begins: from then on the stock
/// rows are held; given set, the rows are held already (`write_free`).
///
/// The participations go in first, before any stock row is locked: they are most of a batch's
/// work inside MySQL (a multi-row insert with its unique key checked), and nothing about them
/// needs the lock, so another transaction of the campaign (another lane's batch, a writer on
/// another instance, a control) may hold the row meanwhile. Their ids are then not in commit
/// order across transactions of one campaign; the outbox ids, taken under the lock, are
/// (docs/design.md §2.5, §23). Every transaction that locks a participation and a stock row
/// locks the participation first (a confirmation, a cancel, an expiry, this one), so they never
/// wait on each other in a cycle.
async fn write_in(
    txn: &Txn,
    wins: &[NewParticipation],
    purchase: Option<&PurchaseRow>,
    hooks: &dyn Hooks,
    locked: &mut Option<Instant>,
) -> Result<(Committed, u64), Refused> {
    // The win's acceptedAt: when its write began, before the row's lock, and so before the
    // guarded decrement that decides it (the window is judged again under the lock, below).
    let at = crate::db::time::precision(Utc::now());
    let purchase_id = match purchase {
        Some(p) => Some(
            insert_purchase(txn, p, at)
                .await?
                .ok_or(WriteError::KeyUsed)?,
        ),
        None => None,
    };
    let accepting = Accepting { at, purchase_id };
    // What each win is at its acceptance: held until its deadline, or confirmed.
    let states: Vec<WinState> = wins.iter().map(|w| w.status_at(at)).collect();
    let campaigns = by_campaign(wins);
    let (ids, session) = insert_wins(txn, wins.len(), &campaigns, &states, accepting).await?;
    let events = accepted_events(wins, &ids, &states, accepting);
    // Rows held already (a batch over free bucket rows) gain nothing from staging: their outbox
    // rows go in as they are.
    let events = match locked {
        Some(_) => outbox::table::Staged::unstaged(&events),
        None => outbox::table::stage(txn, &events).await?,
    };
    locked.get_or_insert_with(Instant::now);
    for members in &campaigns {
        if let Err(error) = decrement(txn, members, hooks).await {
            let index = members[0].0;
            return Err(Refused { index, error });
        }
    }
    under_locks(txn, wins).await?;
    events.insert(txn).await?;
    let wins = (ids.into_iter().zip(states))
        .map(|(participation_id, (status, hold_expires_at))| Written {
            participation_id,
            accepted_at: at,
            status,
            hold_expires_at,
        })
        .collect();
    Ok((Committed { wins, purchase_id }, session))
}

/// Each campaign's participations, one multi-row insert a campaign: their ids in the order of
/// the wins (`count` of them), and the transaction's session id. A user who already won makes
/// the campaign's first win's refusal `Duplicate` (the batch then goes one win at a time).
async fn insert_wins(
    txn: &Txn,
    count: usize,
    campaigns: &[Members<'_>],
    states: &[WinState],
    accepting: Accepting,
) -> Result<(Vec<i64>, u64), Refused> {
    let mut ids = vec![0; count];
    let mut session = 0;
    for members in campaigns {
        let own: Vec<WinState> = members.iter().map(|&(i, _)| states[i]).collect();
        let list: Vec<&NewParticipation> = members.iter().map(|&(_, w)| w).collect();
        match insert_participations(txn, &list, &own, accepting).await {
            Ok(inserted) => {
                for (&(i, _), id) in members.iter().zip(inserted.ids) {
                    ids[i] = id;
                }
                session = inserted.session;
            }
            Err(e) if db_error::kind(&e) == DbErrorKind::UniqueViolation => {
                let index = members[0].0;
                return Err(Refused {
                    index,
                    error: WriteError::Duplicate,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((ids, session))
}

/// What is judged once the stock rows are locked (held from here to the commit; the reconciler
/// takes them before it gives a reservation back): a win past its deadline may have lost its
/// reservation; a win the gate let through just before the window's end may reach the lock
/// after it, and is then not written; the group's limit.
async fn under_locks(txn: &Txn, wins: &[NewParticipation]) -> Result<(), Refused> {
    let now = Instant::now();
    if wins.iter().any(|w| now > w.commit_by) {
        return Err(Refused::whole(WriteError::Stale));
    }
    let at = crate::db::time::precision(Utc::now());
    if let Some(index) = wins.iter().position(|w| w.ends_at.is_some_and(|e| at >= e)) {
        return Err(Refused {
            index,
            error: WriteError::Closed,
        });
    }
    guard_group(txn, wins).await.map_err(Refused::whole)
}

/// A campaign's wins, with their places in the list given.
type Members<'a> = Vec<(usize, &'a NewParticipation)>;

/// `wins` by campaign, in campaign order (the order their rows are locked in).
fn by_campaign(wins: &[NewParticipation]) -> Vec<Members<'_>> {
    let mut by: BTreeMap<i64, Members<'_>> = BTreeMap::new();
    for (i, w) in wins.iter().enumerate() {
        by.entry(w.entry.campaign_id).or_default().push((i, w));
    }
    by.into_values().collect()
}

/// One campaign's guarded decrement: its one row's (the campaign's, or one bucket's), or its
/// buckets' rows, ascending.
async fn decrement(txn: &Txn, members: &Members<'_>, hooks: &dyn Hooks) -> Result<(), WriteError> {
    match parts(members) {
        Decrement::One(guard) => guarded_decrement(txn, &guard, hooks).await,
        Decrement::Buckets(campaign_id, parts) => decrement_buckets(txn, campaign_id, &parts).await,
    }
}

/// The group's limit over the wins' users (the wins share their group): each user's units
/// together, one user's purchase as much as a batch of several users' joins.
async fn guard_group(txn: &Txn, wins: &[NewParticipation]) -> Result<(), WriteError> {
    let Some(limit) = wins[0].group else {
        return Ok(());
    };
    let mut units: BTreeMap<i64, i64> = BTreeMap::new();
    for w in wins {
        *units.entry(w.entry.user_id).or_default() += i64::from(w.entry.quantity);
    }
    let takes: Vec<Take> = (units.iter())
        .map(|(&user_id, &units)| Take { user_id, units })
        .collect();
    match guard::take(txn, limit.group_id, limit.per_user, &takes).await? {
        Held::Within => Ok(()),
        Held::Over { .. } if takes.len() > 1 => Err(WriteError::BatchRefused),
        Held::Over { total, .. } => Err(WriteError::GroupLimit {
            limit: limit.per_user,
            held: total - takes[0].units,
        }),
    }
}

/// What one campaign's wins take: one row's units (the campaign's, or one bucket's), or
/// several buckets' of a bucketed campaign, ascending.
enum Decrement {
    One(Guard),
    Buckets(i64, Vec<Part>),
}

/// A campaign's wins' units by the row they come from.
fn parts(members: &Members<'_>) -> Decrement {
    let mut by_slot: BTreeMap<Option<u16>, Part> = BTreeMap::new();
    for &(_, w) in members {
        let bucket = w.entry.bucket;
        let part = by_slot.entry(bucket).or_insert(Part {
            bucket: bucket.unwrap_or(0),
            total: 0,
            count: 0,
            max_sequence: 0,
            gate_gen: w.gate_gen,
        });
        part.total += i64::from(w.entry.quantity);
        part.count += 1;
        part.max_sequence = part.max_sequence.max(w.sequence);
        if part.gate_gen != w.gate_gen {
            part.gate_gen = MIXED_GENERATIONS;
        }
    }
    let first = members[0].1;
    if let [(_, part)] = by_slot.iter().collect::<Vec<_>>()[..] {
        return Decrement::One(Guard {
            slot: first.entry.slot(),
            total: part.total,
            count: part.count,
            max_sequence: part.max_sequence,
            gate_gen: part.gate_gen,
        });
    }
    Decrement::Buckets(first.entry.campaign_id, by_slot.into_values().collect())
}
