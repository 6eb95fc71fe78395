//! Settlement: after the gate, the reservation ends one way or the other before the client hears
//! back. The win is written in its transaction ([`super::transaction`], shared with other wins
//! of the campaign by [`super::batcher`]); a commit settles the
//! reservation and wakes the relay; any failure compensates in Redis; a commit whose answer was
//! lost is resolved by asking MySQL whether the win is there.

use std::time::Duration;

use sea_orm::DbErr;
use uuid::Uuid;

use super::{
    join::{Accepted, JoinError, JoinRequest},
    service::{ParticipationService, RELEASE_ATTEMPTS},
    store,
    transaction::{NewParticipation, WriteError, Written},
};
use crate::{
    db::error::{self as db_error, DbErrorKind},
    gate::Release,
    metrics::{registry::PathLabels, ParticipationPath},
};

impl ParticipationService {
    pub(super) async fn commit_or_compensate(
        &self,
        req: JoinRequest,
        sequence: i64,
        reward_points: i64,
    ) -> Result<Accepted, JoinError> {
        let event_id = Uuid::now_v7();
        let participation = NewParticipation {
            entry: req.entry,
            sequence,
            reward_points,
            event_id,
            topic: self.topic.clone(),
            traceparent: req.trace.map(|t| t.to_string()),
        };
        let mut written = self.write(participation.clone()).await;
        if matches!(&written, Err(WriteError::Db(e)) if db_error::kind(e) == DbErrorKind::Deadlock)
        {
            // InnoDB chose this transaction as a deadlock victim: it did nothing, try it once more.
            written = self.write(participation).await;
        }
        match written {
            Ok(Written {
                participation_id,
                accepted_at,
            }) => {
                // The batch settled the reservation in Redis already (see `batcher`).
                self.relay_wakeup.notify_one();
                Ok(Accepted::new(
                    &req,
                    participation_id,
                    sequence,
                    event_id,
                    accepted_at,
                ))
            }
            Err(WriteError::Duplicate) => {
                self.compensate(&req, Release::KeepUser).await;
                Err(self.already(&req).await)
            }
            Err(WriteError::SoldOut { remaining_stock }) => {
                self.compensate(&req, Release::SoldOut { remaining_stock })
                    .await;
                Err(JoinError::SoldOut)
            }
            Err(WriteError::Db(e)) if db_error::outcome_unknown(&e) => {
                self.resolve_unknown(req, e).await
            }
            Err(unanswered @ WriteError::Unanswered) => {
                self.resolve_unknown(req, DbErr::Custom(unanswered.to_string()))
                    .await
            }
            Err(WriteError::Db(e)) => {
                tracing::warn!(error = %e, campaign_id = req.entry.campaign_id, user_id = req.entry.user_id,
                    "The participation transaction failed; releasing the reservation.");
                self.compensate(&req, Release::Undo).await;
                Err(e.into())
            }
        }
    }

    /// One win's write through its campaign's group commit, timed from queueing to the answer.
    pub(super) async fn write(
        &self,
        participation: NewParticipation,
    ) -> Result<Written, WriteError> {
        let started = std::time::Instant::now();
        let written = self.group_commit.write(participation).await;
        self.metrics
            .transaction_duration
            .get_or_create(&PathLabels {
                path: ParticipationPath::Outbox.as_str(),
            })
            .observe(started.elapsed().as_secs_f64());
        written
    }

    /// The transaction's answer was lost (deadline, broken connection): it may have committed.
    /// MySQL says which. A win found there is the caller's win; no row means nothing was
    /// written and the reservation is given back. If MySQL cannot say either (still down), the
    /// reservation stays open and the reconciler decides once MySQL answers, so Redis never
    /// gives back stock that MySQL has sold.
    pub(super) async fn resolve_unknown(
        &self,
        req: JoinRequest,
        e: DbErr,
    ) -> Result<Accepted, JoinError> {
        let entry = req.entry;
        match store::find(&self.db, entry.campaign_id, entry.user_id).await {
            Ok(Some(found)) if found.quantity == entry.quantity => {
                tracing::info!(
                    campaign_id = entry.campaign_id,
                    user_id = entry.user_id,
                    "The participation committed although its answer was lost."
                );
                if let Err(e) = self.gate.settle(entry.campaign_id, &[entry.user_id]).await {
                    tracing::debug!(error = %e, "Could not close the reservation; the reconciler will.");
                }
                let event_id = found
                    .event_id
                    .as_deref()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .unwrap_or_default();
                Ok(Accepted::new(
                    &req,
                    found.id,
                    found.sequence,
                    event_id,
                    found.created_at.and_utc(),
                ))
            }
            Ok(Some(other)) => {
                // An earlier win of this user (the gate had lost track of it).
                self.compensate(&req, Release::KeepUser).await;
                Err(JoinError::AlreadyParticipated {
                    participation_id: Some(other.id),
                })
            }
            Ok(None) => {
                tracing::warn!(error = %e, campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation transaction failed; releasing the reservation.");
                self.compensate(&req, Release::Undo).await;
                Err(e.into())
            }
            Err(lookup) => {
                tracing::warn!(error = %e, lookup = %lookup, campaign_id = entry.campaign_id, user_id = entry.user_id,
                    "The participation transaction's outcome is unknown; the reconciler settles its reservation.");
                Err(e.into())
            }
        }
    }

    /// Gives a reservation back. Retried a few times; if Redis stays unreachable the reservation
    /// is leaked (Redis then undercounts the stock until its keys are rebuilt) and logged.
    pub(super) async fn compensate(&self, req: &JoinRequest, how: Release) {
        let mut delay = Duration::from_millis(20);
        for attempt in 1..=RELEASE_ATTEMPTS {
            match self.gate.release(&req.entry, how.clone()).await {
                Ok(_) => return,
                Err(e) if attempt == RELEASE_ATTEMPTS => {
                    tracing::error!(error = %e, campaign_id = req.entry.campaign_id, user_id = req.entry.user_id, ?how,
                        "Compensation failed; the reconciler gives the reservation back later.");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }
}
