//! A win after its acceptance (docs/design.md §14): confirm a hold, cancel a hold (the user) or a
//! confirmed win (an admin: a refund), expire a hold past its deadline (the sweeper). Each change is
//! one transaction on the locked row ([`state_change`](crate::win::state_change)) with its outbox
//! event; one that closes a win gives its units back to MySQL's stock there, and then to the
//! gate, exactly once ([`Gate::return_units`], retried from the `gate_return` markers).

use std::sync::Arc;

use chrono::{NaiveDateTime, Utc};
use sea_orm::DbErr;
use uuid::Uuid;

use crate::hooks::Hooks;
use crate::outbox::Sink;
use crate::{
    campaign::{Campaign, CampaignCache},
    db::{
        error::{self as db_error, DbErrorKind},
        Db, Txn,
    },
    events::{
        accepted::{win_message_key, WinStatus},
        lifecycle::{
            CancelReason, ParticipationCancelled, ParticipationConfirmed, ParticipationMessage,
            PARTICIPATION_CANCELLED, PARTICIPATION_CONFIRMED,
        },
    },
    gate::{sold_out::SoldOutMemo, Gate, Reached, Returned, Slot},
    outbox::{table, NewOutboxEvent},
    win::{
        state_change::{self, Locked},
        status::ParticipationStatus,
        store::{self, StoredParticipation},
    },
};

/// Who asks for a cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The winner: a held win only.
    User,
    /// An admin: also a confirmed win (a refund).
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the user has no participation in this campaign")]
    NotFound,
    #[error("the hold expired before it was confirmed")]
    HoldExpired,
    #[error("the participation was cancelled")]
    Cancelled,
    #[error("the participation is confirmed; only an admin can cancel it")]
    AlreadyConfirmed,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a state change decided, inside its transaction.
pub(super) enum Decision {
    /// Nothing to write; the answer as is.
    Keep(Result<(), LifecycleError>),
    Confirm,
    Close(
        ParticipationStatus,
        CancelReason,
        Result<(), LifecycleError>,
    ),
}

/// A changed win as stored, and whether the units it gave back reached the gate before the
/// answer (`None`: it gave none back).
#[derive(Debug)]
pub struct Changed {
    pub win: StoredParticipation,
    pub gate: Option<Reached>,
}

/// Confirms, cancels and expires wins. Cheap to clone.
#[derive(Clone)]
pub struct LifecycleService {
    pub(super) db: Db,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    /// Where a win's later events go: the topic, and the relay's wakeup after a commit.
    pub(super) sink: Sink,
    /// Forgotten once a closed win's units are back at the gate: a join sent after the answer
    /// asks Redis (docs/design.md §18.1).
    sold_out: Arc<SoldOutMemo>,
    /// The test seam (`crate::hooks`): a crash before the gate return, the planted bug.
    hooks: Arc<dyn Hooks>,
}

impl LifecycleService {
    pub fn new(
        db: Db,
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        (sink, sold_out): (Sink, Arc<SoldOutMemo>),
        hooks: Arc<dyn Hooks>,
    ) -> Self {
        Self {
            hooks,
            db,
            gate,
            campaigns,
            sink,
            sold_out,
        }
    }

    /// HELD → CONFIRMED before the deadline; CONFIRMED again is answered as is. Past the deadline
    /// the hold expires here (whether or not a sweeper got to it) and the answer is HOLD_EXPIRED.
    pub async fn confirm(
        &self,
        campaign_id: i64,
        user_id: i64,
        traceparent: Option<String>,
    ) -> Result<Changed, LifecycleError> {
        self.change(campaign_id, user_id, traceparent, confirm_rule)
            .await
    }

    /// A held win (before its deadline) → CANCELLED (`USER`, or `ADMIN` when an admin asks); a
    /// confirmed win → CANCELLED (`ADMIN`) for an admin only. A cancelled win is answered as is.
    pub async fn cancel(
        &self,
        campaign_id: i64,
        user_id: i64,
        caller: Caller,
        traceparent: Option<String>,
    ) -> Result<Changed, LifecycleError> {
        self.change(campaign_id, user_id, traceparent, cancel_rule(caller))
            .await
    }

    /// The sweeper's step: one held win past its deadline → EXPIRED. `false` when it was no
    /// longer held (confirmed or cancelled in time, or another instance expired it).
    pub async fn expire(&self, participation_id: i64) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let Some(win) = state_change::lock_by_id(&txn, participation_id).await? else {
            txn.rollback().await?;
            return Ok(false);
        };
        if win.status != ParticipationStatus::Held || win.in_time {
            txn.rollback().await?;
            return Ok(false);
        }
        // A purchase's hold expires as a whole: its items share the deadline.
        if let Some(purchase_id) = win.purchase_id {
            txn.rollback().await?;
            return match self.change_purchase(purchase_id, None, &|_| expire()).await {
                Ok(_) | Err(LifecycleError::HoldExpired) => Ok(true),
                Err(LifecycleError::Db(e)) => Err(e),
                Err(_) => Ok(false),
            };
        }
        let campaign = self.campaign(win.campaign_id).await?;
        let reason = CancelReason::Expired;
        self.close(
            &txn,
            &win,
            &campaign,
            ParticipationStatus::Expired,
            reason,
            None,
        )
        .await?;
        txn.commit().await?;
        self.sink.wakeup.notify_one();
        self.give_back(&win, &campaign).await;
        Ok(true)
    }

    /// Locks the user's win, lets `decide` choose, writes the change with its event, and answers
    /// with the win as stored. A deadlock victim is tried once more (it wrote nothing).
    async fn change(
        &self,
        campaign_id: i64,
        user_id: i64,
        traceparent: Option<String>,
        decide: impl Fn(&Locked) -> Decision,
    ) -> Result<Changed, LifecycleError> {
        let mut attempt = self
            .change_once(campaign_id, user_id, traceparent.as_deref(), &decide)
            .await;
        if matches!(&attempt, Err(LifecycleError::Db(e)) if db_error::kind(e) == DbErrorKind::Deadlock)
        {
            attempt = self
                .change_once(campaign_id, user_id, traceparent.as_deref(), &decide)
                .await;
        }
        let gate = attempt?;
        let win = store::find(&self.db, campaign_id, user_id)
            .await?
            .ok_or(LifecycleError::NotFound)?;
        Ok(Changed { win, gate })
    }

    async fn change_once(
        &self,
        campaign_id: i64,
        user_id: i64,
        traceparent: Option<&str>,
        decide: &impl Fn(&Locked) -> Decision,
    ) -> Result<Option<Reached>, LifecycleError> {
        let txn = self.db.begin().await?;
        let Some(win) = state_change::lock(&txn, campaign_id, user_id).await? else {
            txn.rollback().await?;
            return Err(LifecycleError::NotFound);
        };
        // An item of a purchase changes with the whole purchase (docs/design.md §22).
        if let Some(purchase_id) = win.purchase_id {
            txn.rollback().await?;
            return self.change_purchase(purchase_id, traceparent, decide).await;
        }
        let campaign = self.campaign(campaign_id).await?;
        let answer = match decide(&win) {
            Decision::Keep(answer) => {
                txn.rollback().await?;
                // A closed win answered again (a repeated cancel, a confirm too late): its units
                // reach the gate before the answer, as they do after the change that closed it.
                // The call that closed it may still be between its commit and its gate call,
                // and this answer must not tell the client the units are back before the sale
                // has them (a join after it would be told SOLD_OUT; the proof run saw it).
                let gate = match win.status.is_closed() {
                    true => Some(self.give_back(&win, &campaign).await),
                    false => None,
                };
                return answer.map(|()| gate);
            }
            Decision::Confirm => {
                match state_change::confirm(&txn, &win, campaign.buckets > 1).await? {
                    Some(confirmed_at) => {
                        let event = confirmed_event(&win, &campaign, confirmed_at);
                        let row = win_row(&event, &win, &campaign, &self.sink.topic, traceparent);
                        table::insert(&txn, &[row]).await?;
                        None
                    }
                    // The deadline passed while the campaign's row was waited for: it expires now.
                    None => {
                        self.close(
                            &txn,
                            &win,
                            &campaign,
                            ParticipationStatus::Expired,
                            CancelReason::Expired,
                            traceparent,
                        )
                        .await?;
                        Some(Err(LifecycleError::HoldExpired))
                    }
                }
            }
            Decision::Close(to, reason, answer) => {
                self.close(&txn, &win, &campaign, to, reason, traceparent)
                    .await?;
                Some(answer)
            }
        };
        txn.commit().await?;
        self.sink.wakeup.notify_one();
        match answer {
            None => Ok(None),
            Some(answer) => {
                let gate = self.give_back(&win, &campaign).await;
                answer.map(|()| Some(gate))
            }
        }
    }

    /// Closes `win` inside `txn`: its state, the units back to MySQL's stock, the gate's marker,
    /// and the `ParticipationCancelled` event.
    pub(super) async fn close(
        &self,
        txn: &Txn,
        win: &Locked,
        campaign: &Campaign,
        to: ParticipationStatus,
        reason: CancelReason,
        traceparent: Option<&str>,
    ) -> Result<(), DbErr> {
        let units = self.hooks.units_back_to_mysql(win.quantity);
        let bucketed = campaign.buckets > 1;
        state_change::close(txn, win, bucketed, (to, reason.as_str()), units).await?;
        let event = cancelled_event(win, campaign, reason);
        let row = win_row(&event, win, campaign, &self.sink.topic, traceparent);
        table::insert(txn, &[row]).await
    }

    /// After the commit: the units to the gate at once (the marker's loop retries a failure).
    pub(super) async fn give_back(&self, win: &Locked, campaign: &Campaign) -> Reached {
        self.hooks.before_gate_return();
        let epoch = crate::campaign::gate_epoch(campaign);
        let slot = win_slot(win, campaign);
        let reached = match self
            .gate
            .return_units(slot, win.id, i64::from(win.quantity), epoch)
            .await
        {
            Ok(Returned::Added | Returned::AlreadyBack) => {
                if let Err(e) = state_change::forget_return(&self.db, win.id).await {
                    tracing::debug!(error = %e, "Could not delete a settled gate_return marker.");
                }
                Reached::Now
            }
            // No gate state: its next load reads MySQL, which has the units.
            Ok(Returned::NotLoaded) => Reached::Now,
            Err(e) => {
                tracing::warn!(error = %e, campaign_id = win.campaign_id, participation_id = win.id,
                    "Could not give units back to the gate; the gate_return loop will.");
                Reached::Later
            }
        };
        // After the gate call: a sell-out this instance saw before it is not repeated.
        self.sold_out.forget(win.campaign_id);
        reached
    }

    pub(super) async fn campaign(&self, id: i64) -> Result<Arc<Campaign>, DbErr> {
        self.campaigns
            .get(&self.db, id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("campaign {id}")))
    }
}

/// The gate state a win's units return to: its bucket's in a bucketed campaign.
fn win_slot(win: &Locked, campaign: &Campaign) -> Slot {
    campaign.slot(u16::try_from(win.bucket).unwrap_or(0))
}

/// The outbox row of a win's later event: keyed like the win's own (docs/design.md §21).
pub(super) fn win_row(
    event: &impl ParticipationMessage,
    win: &Locked,
    campaign: &Campaign,
    topic: &str,
    traceparent: Option<&str>,
) -> NewOutboxEvent {
    let mut row = NewOutboxEvent::participation(event, topic, traceparent);
    let slot = win_slot(win, campaign);
    if slot.bucket.is_some() {
        row.msg_key = win_message_key(slot.campaign_id, slot.bucket);
    }
    row
}

/// What a confirmation does to a win in each state.
pub(super) fn confirm_rule(win: &Locked) -> Decision {
    match (win.status, win.in_time) {
        (ParticipationStatus::Held, true) => Decision::Confirm,
        (ParticipationStatus::Held, false) => expire(),
        (ParticipationStatus::Confirmed, _) => Decision::Keep(Ok(())),
        (ParticipationStatus::Cancelled, _) => Decision::Keep(Err(LifecycleError::Cancelled)),
        (ParticipationStatus::Expired, _) => Decision::Keep(Err(LifecycleError::HoldExpired)),
    }
}

/// What `caller`'s cancellation does to a win in each state.
pub(super) fn cancel_rule(caller: Caller) -> impl Fn(&Locked) -> Decision + Copy {
    let reason = match caller {
        Caller::User => CancelReason::User,
        Caller::Admin => CancelReason::Admin,
    };
    let cancelled = ParticipationStatus::Cancelled;
    move |win| match (win.status, win.in_time, caller) {
        (ParticipationStatus::Held, true, _) => Decision::Close(cancelled, reason, Ok(())),
        (ParticipationStatus::Held, false, _) => expire(),
        (ParticipationStatus::Confirmed, _, Caller::Admin) => {
            Decision::Close(cancelled, reason, Ok(()))
        }
        (ParticipationStatus::Confirmed, _, Caller::User) => {
            Decision::Keep(Err(LifecycleError::AlreadyConfirmed))
        }
        (ParticipationStatus::Cancelled, _, _) => Decision::Keep(Ok(())),
        (ParticipationStatus::Expired, _, _) => Decision::Keep(Err(LifecycleError::HoldExpired)),
    }
}

/// A hold past its deadline, met by a confirm or a cancel: it expires now.
pub(super) fn expire() -> Decision {
    Decision::Close(
        ParticipationStatus::Expired,
        CancelReason::Expired,
        Err(LifecycleError::HoldExpired),
    )
}

/// The event of a confirmation, occurring when the database confirmed it (within the deadline).
pub(super) fn confirmed_event(
    win: &Locked,
    campaign: &Campaign,
    confirmed_at: NaiveDateTime,
) -> ParticipationConfirmed {
    ParticipationConfirmed {
        event_id: Uuid::now_v7(),
        event_type: PARTICIPATION_CONFIRMED.into(),
        occurred_at: crate::db::time::precision(confirmed_at.and_utc()),
        campaign_id: win.campaign_id,
        participation_id: win.id,
        user_id: win.user_id,
        quantity: win.quantity,
        reward_points: campaign.reward_points,
        purchase_id: win.purchase_id,
    }
}

fn cancelled_event(
    win: &Locked,
    campaign: &Campaign,
    reason: CancelReason,
) -> ParticipationCancelled {
    ParticipationCancelled {
        event_id: Uuid::now_v7(),
        event_type: PARTICIPATION_CANCELLED.into(),
        occurred_at: crate::db::time::precision(Utc::now()),
        campaign_id: win.campaign_id,
        participation_id: win.id,
        user_id: win.user_id,
        quantity: win.quantity,
        reason,
        previous_status: match win.status {
            ParticipationStatus::Confirmed => WinStatus::Confirmed,
            _ => WinStatus::Held,
        },
        reward_points: campaign.reward_points,
        purchase_id: win.purchase_id,
    }
}
