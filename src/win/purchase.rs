//! A purchase's items change together (docs/design.md §22): confirmed, cancelled or expired as a
//! whole, in one transaction over every item's row (locked in campaign order). The rule of one
//! win, applied to each item, decides; a hold past its deadline on any item expires every held
//! item; any other refusal refuses the whole purchase. A confirm or cancel of one item, and the
//! sweeper's expiry of one, come here too.

use crate::{
    events::lifecycle::CancelReason,
    gate::Reached,
    outbox::table,
    win::{
        lifecycle::{
            cancel_rule, confirm_rule, confirmed_event, expire, win_row, Caller, Decision,
            LifecycleError, LifecycleService,
        },
        state_change::{self, Locked},
        status::ParticipationStatus,
    },
};

/// Why one pass did not finish.
enum Pass {
    /// A confirmation found the deadline passed while it waited for a campaign's row: the pass
    /// is rolled back and run again, expiring every held item.
    ExpiredMidway,
    Failed(LifecycleError),
}

impl From<sea_orm::DbErr> for Pass {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Failed(e.into())
    }
}

impl LifecycleService {
    /// Confirms every item of the purchase (before the hold's deadline).
    pub async fn confirm_purchase(
        &self,
        purchase_id: i64,
        traceparent: Option<String>,
    ) -> Result<(), LifecycleError> {
        self.change_purchase(purchase_id, traceparent.as_deref(), &confirm_rule)
            .await
            .map(|_| ())
    }

    /// Cancels every item of the purchase: a held one by its user, a confirmed one (a refund)
    /// by an admin. Whether every item's units reached the gate before the answer.
    pub async fn cancel_purchase(
        &self,
        purchase_id: i64,
        caller: Caller,
        traceparent: Option<String>,
    ) -> Result<Reached, LifecycleError> {
        self.change_purchase(purchase_id, traceparent.as_deref(), &cancel_rule(caller))
            .await
            // Nothing given back: nothing for the gate to have.
            .map(|gate| gate.unwrap_or(Reached::Now))
    }

    pub(super) async fn change_purchase(
        &self,
        purchase_id: i64,
        traceparent: Option<&str>,
        decide: &(impl Fn(&Locked) -> Decision + ?Sized),
    ) -> Result<Option<Reached>, LifecycleError> {
        match self
            .purchase_pass(purchase_id, traceparent, decide, false)
            .await
        {
            Ok(answer) => answer,
            Err(Pass::ExpiredMidway) => {
                match self
                    .purchase_pass(purchase_id, traceparent, decide, true)
                    .await
                {
                    Ok(answer) => answer,
                    Err(Pass::ExpiredMidway) => Err(LifecycleError::HoldExpired),
                    Err(Pass::Failed(e)) => Err(e),
                }
            }
            Err(Pass::Failed(e)) => Err(e),
        }
    }

    /// One transaction over the purchase; its answer, or why it must run again.
    async fn purchase_pass(
        &self,
        purchase_id: i64,
        traceparent: Option<&str>,
        decide: &(impl Fn(&Locked) -> Decision + ?Sized),
        expire_all: bool,
    ) -> Result<Result<Option<Reached>, LifecycleError>, Pass> {
        let txn = self.db.begin().await?;
        let wins = state_change::lock_purchase(&txn, purchase_id).await?;
        if wins.is_empty() {
            txn.rollback().await?;
            return Ok(Err(LifecycleError::NotFound));
        }
        let mut decisions: Vec<Decision> = wins.iter().map(decide).collect();
        let expiring = expire_all || decisions.iter().any(expires);
        if expiring {
            decisions = wins.iter().map(expire_held).collect();
        } else if let Some(refusal) = decisions.iter().find_map(refusal) {
            txn.rollback().await?;
            self.give_back_closed(&wins).await?;
            return Ok(Err(refusal));
        }
        let mut campaigns = Vec::with_capacity(wins.len());
        for (win, decision) in wins.iter().zip(&decisions) {
            let campaign = self.campaign(win.campaign_id).await?;
            match decision {
                Decision::Keep(_) => {}
                Decision::Confirm => {
                    let bucketed = campaign.buckets > 1;
                    let Some(at) = state_change::confirm(&txn, win, bucketed).await? else {
                        txn.rollback().await?;
                        return Err(Pass::ExpiredMidway);
                    };
                    let event = confirmed_event(win, &campaign, at);
                    let row = win_row(&event, win, &campaign, &self.sink.topic, traceparent);
                    table::insert(&txn, &[row]).await?;
                }
                Decision::Close(to, reason, _) => {
                    self.close(&txn, win, &campaign, *to, *reason, traceparent)
                        .await?;
                }
            }
            campaigns.push(campaign);
        }
        txn.commit().await?;
        self.sink.wakeup.notify_one();
        let mut gate = None;
        for ((win, decision), campaign) in wins.iter().zip(&decisions).zip(&campaigns) {
            // A closed item answered again gives its units back again, as a single win does:
            // the call that closed it may still be between its commit and its gate call.
            if matches!(decision, Decision::Close(..)) || win.status.is_closed() {
                let reached = self.give_back(win, campaign).await;
                gate = Some(gate.map_or(reached, |g: Reached| g.and(reached)));
            }
        }
        Ok(match expiring {
            true => Err(LifecycleError::HoldExpired),
            false => Ok(gate),
        })
    }

    /// Before a refusal is answered: the units of items closed earlier are in the gate (as a
    /// single win's are, see `LifecycleService::change`).
    async fn give_back_closed(&self, wins: &[Locked]) -> Result<(), Pass> {
        for win in wins {
            if win.status.is_closed() {
                let campaign = self.campaign(win.campaign_id).await?;
                self.give_back(win, &campaign).await;
            }
        }
        Ok(())
    }
}

/// Whether the decision is an expiry, or the answer of an expired item.
fn expires(decision: &Decision) -> bool {
    matches!(
        decision,
        Decision::Close(_, CancelReason::Expired, _)
            | Decision::Keep(Err(LifecycleError::HoldExpired))
    )
}

/// Every held item expires; the others stay as they are.
fn expire_held(win: &Locked) -> Decision {
    match win.status {
        ParticipationStatus::Held => expire(),
        _ => Decision::Keep(Err(LifecycleError::HoldExpired)),
    }
}

/// The refusal a decision answers with, if it is one.
fn refusal(decision: &Decision) -> Option<LifecycleError> {
    match decision {
        Decision::Keep(Err(e)) | Decision::Close(_, _, Err(e)) => Some(match e {
            LifecycleError::NotFound => LifecycleError::NotFound,
            LifecycleError::HoldExpired => LifecycleError::HoldExpired,
            LifecycleError::Cancelled => LifecycleError::Cancelled,
            LifecycleError::AlreadyConfirmed => LifecycleError::AlreadyConfirmed,
            LifecycleError::Db(e) => LifecycleError::Db(sea_orm::DbErr::Custom(e.to_string())),
        }),
        _ => None,
    }
}
