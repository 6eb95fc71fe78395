//! Commits in doubt (docs/design.md §2.1, §18.1): a transaction (a join's batch, or a purchase's
//! items) whose COMMIT was sent and never answered (MySQL hung, a failover reset the connection) may or may not have committed, and its
//! reservations hold units at the gate until someone knows which.
//!
//! Before, nobody knew until the reconciler looked, `RESERVATION_TIMEOUT_MS` later (60 s then):
//! a MySQL failover in a sale's first minute withheld the units of every batch in flight through
//! the whole peak, answering SOLD_OUT with units unsold (a campaign of 300 ended at 299). Now
//! the batch remembers its session (`CONNECTION_ID()`, read inside the transaction), and once
//! MySQL answers again on another connection, [`InDoubt`]'s settlement
//! 1. ends that session if it still exists (`KILL CONNECTION`) and waits until it is gone, so its
//!    transaction has either committed or rolled back and can no longer do anything else;
//! 2. reads which of the batch's wins exist, by their event ids;
//! 3. closes the committed wins' reservations and gives back exactly the others' units
//!    (`lua/release.lua`, by each reservation's value: a unit never comes back twice).
//!
//! It tries again every 200 ms at most (`db::session::RetryPause`) until MySQL answers, so the units are back
//! within about a quarter second of MySQL answering again (the bound is 2 s). Each member's
//! request waits for the verdict up to the statement deadline and answers from it (a win found
//! is that request's win); a request that stops waiting answers 503, and the settlement goes on.
//!
//! Which session is ended, and how: `db::session`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use sea_orm::DbErr;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    db::{
        session::{end_session, RetryPause},
        Db,
    },
    gate::{reservation_value, Entry, Gate, GateError, Release},
    win::store::{self, StoredParticipation},
};

/// A transaction whose COMMIT's outcome is unknown; shared by its members' answers.
#[derive(Debug)]
pub struct InDoubt {
    /// The server's id of the session that sent the COMMIT.
    session: u64,
    /// Why the outcome is unknown (the deadline, the broken connection).
    error: DbErr,
    /// The verdict per member (campaign, user), once the settlement has it; the members'
    /// requests wait on it.
    verdict: watch::Sender<Option<Arc<Verdicts>>>,
}

/// Each member's verdict, by (campaign, user).
type Verdicts = HashMap<(i64, i64), Verdict>;

/// What the settlement found for one member.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// The win committed: this is it.
    Committed(StoredParticipation),
    /// The user already had another win (the gate had lost track of it): this one was not
    /// written; its units went back, the user stays recorded.
    Earlier(i64),
    /// Nothing was written; the units and the user went back to the gate.
    NotCommitted,
}

/// A member of the batch in doubt, as the settlement needs it.
#[derive(Debug, Clone)]
pub struct Member {
    pub entry: Entry,
    pub event_id: Uuid,
    /// The reservation's time (`<reserved at ms>:<quantity>` names it at the gate).
    pub reserved_at_ms: i64,
}

impl InDoubt {
    pub fn new(session: u64, error: DbErr) -> Arc<Self> {
        Arc::new(Self {
            session,
            error,
            verdict: watch::Sender::new(None),
        })
    }

    /// A settlement made elsewhere (a campaign's writer settled the commit it sent, docs/design.md
    /// §21): its verdict for the one win `key` (campaign, user), or none known (`None`: the
    /// request answers 503 at once, and what stays open is the reconciler's).
    pub fn decided(error: DbErr, key: (i64, i64), verdict: Option<Verdict>) -> Arc<Self> {
        Self::settled_elsewhere(error, verdict.map(|v| (key, v)).into_iter().collect())
    }

    fn settled_elsewhere(error: DbErr, verdicts: Verdicts) -> Arc<Self> {
        Arc::new(Self {
            session: 0,
            error,
            verdict: watch::Sender::new(Some(Arc::new(verdicts))),
        })
    }

    /// The verdicts known so far (none while the settlement runs).
    fn known(&self) -> Vec<((i64, i64), Verdict)> {
        let known = self.verdict.borrow();
        let verdicts = known.iter().flat_map(|v| v.iter());
        verdicts.map(|(key, v)| (*key, v.clone())).collect()
    }

    /// Why the outcome was unknown.
    pub fn error(&self) -> &DbErr {
        &self.error
    }

    /// Settles the batch in a task of its own, trying until MySQL answers. Called once, by
    /// whoever ran the batch.
    pub fn settle(self: &Arc<Self>, db: Db, gate: Gate, members: Vec<Member>) {
        let this = self.clone();
        let campaign_id = members.first().map_or(0, |m| m.entry.campaign_id);
        tracing::warn!(campaign_id, session = self.session, wins = members.len(), error = %self.error,
            "A commit's outcome is unknown; settling it as soon as MySQL answers.");
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut pause = RetryPause::new();
            loop {
                match this.settle_once(&db, &gate, &members).await {
                    Ok(verdicts) => {
                        let committed = verdicts
                            .values()
                            .filter(|v| matches!(v, Verdict::Committed(_)))
                            .count();
                        tracing::warn!(
                            campaign_id,
                            session = this.session,
                            committed,
                            given_back = verdicts.len() - committed,
                            after_ms = started.elapsed().as_millis() as u64,
                            "Settled a commit that was in doubt."
                        );
                        this.verdict.send_replace(Some(Arc::new(verdicts)));
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, campaign_id, session = this.session,
                            "Could not settle a commit in doubt yet; trying again.");
                        pause.wait().await;
                    }
                }
            }
        });
    }

    /// The verdict for `user_id`'s win in `campaign_id`, waiting for it at most `within`;
    /// `None` if it is not known by then (the settlement goes on without the caller).
    pub async fn verdict(
        &self,
        campaign_id: i64,
        user_id: i64,
        within: Duration,
    ) -> Option<Verdict> {
        let mut seen = self.verdict.subscribe();
        let known = tokio::time::timeout(within, seen.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?;
        known.as_ref()?.get(&(campaign_id, user_id)).cloned()
    }

    /// One attempt: end the session, read the wins, close or give back each reservation.
    async fn settle_once(
        &self,
        db: &Db,
        gate: &Gate,
        members: &[Member],
    ) -> Result<Verdicts, SettleError> {
        end_session(db, self.session).await?;
        let mut found = stored(db, members).await?;
        let mut verdicts = HashMap::with_capacity(members.len());
        // Per gate state: a batch of a bucketed campaign holds wins of several buckets, a
        // purchase wins of several campaigns.
        let mut committed: HashMap<crate::gate::Slot, Vec<crate::gate::Committed>> = HashMap::new();
        for m in members {
            let key = (m.entry.campaign_id, m.entry.user_id);
            let verdict = match found.remove(&key) {
                Some(p) if p.is_event(m.event_id) => {
                    committed
                        .entry(m.entry.slot())
                        .or_default()
                        .push((&m.entry).into());
                    Verdict::Committed(p)
                }
                Some(earlier) => {
                    give_back(gate, m, Release::KeepUser).await?;
                    Verdict::Earlier(earlier.id)
                }
                None => {
                    give_back(gate, m, Release::Expire).await?;
                    Verdict::NotCommitted
                }
            };
            verdicts.insert(key, verdict);
        }
        for (slot, users) in committed {
            gate.settle(slot, &users).await?;
        }
        Ok(verdicts)
    }
}

/// The members' participations MySQL has, by (campaign, user): one read per campaign.
async fn stored(
    db: &Db,
    members: &[Member],
) -> Result<HashMap<(i64, i64), StoredParticipation>, DbErr> {
    let mut users: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for m in members {
        users
            .entry(m.entry.campaign_id)
            .or_default()
            .push(m.entry.user_id);
    }
    let mut found = HashMap::with_capacity(members.len());
    for (campaign_id, users) in users {
        for p in store::find_users(db, campaign_id, &users).await? {
            found.insert((p.campaign_id, p.user_id), p);
        }
    }
    Ok(found)
}

/// A member's reservation back at the gate, only while it is still exactly that reservation.
async fn give_back(gate: &Gate, m: &Member, how: Release) -> Result<(), GateError> {
    let reservation = reservation_value(m.reserved_at_ms, m.entry.quantity);
    gate.release(&m.entry, None, how, &reservation).await?;
    Ok(())
}

/// Why one attempt at settling failed (a batch's, a steal's: `join::steal_in_doubt`); the next
/// attempt starts again from the top.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettleError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Gate(#[from] GateError),
}

/// A commit in doubt as it crosses from a campaign's writer to the win's origin
/// (`writer::wire`): why it was in doubt and the verdicts the writer's settlement reached before
/// it replied (it settles first); read back as a settlement made elsewhere
/// ([`InDoubt::decided`]), so the origin answers from the verdict and gives nothing back twice.
/// The session stays behind: only its own instance ends it.
pub(crate) mod across {
    use std::sync::Arc;

    use sea_orm::DbErr;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{InDoubt, Verdict};

    #[derive(Serialize, Deserialize)]
    struct Across {
        error: String,
        verdicts: Vec<((i64, i64), Verdict)>,
    }

    pub fn serialize<S: Serializer>(doubt: &Arc<InDoubt>, s: S) -> Result<S::Ok, S::Error> {
        let error = crate::write::error::db_text::text(&doubt.error);
        Across {
            error,
            verdicts: doubt.known(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<InDoubt>, D::Error> {
        let Across { error, verdicts } = Across::deserialize(d)?;
        let verdicts = verdicts.into_iter().collect();
        Ok(InDoubt::settled_elsewhere(DbErr::Custom(error), verdicts))
    }
}
