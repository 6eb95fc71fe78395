//! Live controls of a running campaign (docs/design.md §15): add or withdraw stock, pause,
//! resume, close. Each is one transaction on the locked campaign row that takes the campaign's
//! next control number, writes the audit row (`campaign_control`), the gate's marker
//! (`gate_control`) and the outbox event; after the commit the gate gets the control
//! (`lua/control.lua`, exactly once, in any order), and the marker loop of every instance retries
//! what a crash or a Redis failure left. MySQL's guard keeps Exactly-N whatever the gate believes
//! meanwhile: a withdrawal takes only units that are unsold at its commit.

mod decide;
pub mod gate_sync;
pub mod store;

use std::sync::Arc;

use chrono::Utc;
use sea_orm::DbErr;
use uuid::Uuid;

use decide::{decide, Decision};
pub use decide::{Control, ControlError};
use gate_sync::Given;
pub use store::HistoryRow;
use store::{ControlRow, LockedCampaign};

use crate::hooks::Hooks;
use crate::outbox::Sink;
use crate::{
    bucket::{
        store::Moved,
        view::{self as bucket_view, Balance},
    },
    campaign::{
        repo::{self, CampaignWithCount},
        Campaign, CampaignCache,
    },
    db::Db,
    events::control::{CampaignChanged, ControlKind},
    gate::{sold_out::SoldOutMemo, Gate, Reached, Returned},
    outbox::{table, NewOutboxEvent},
    telemetry::metrics::{registry::ControlLabels, Metrics},
};

/// One control as an admin asked for it.
#[derive(Debug, Clone)]
pub struct ControlRequest {
    pub campaign_id: i64,
    pub control: Control,
    /// The name of the admin token that asked.
    pub admin: String,
    /// Makes a retry safe: a control already applied with this key is answered, not applied
    /// again.
    pub idempotency_key: Option<String>,
    /// The request's span, carried by the event.
    pub traceparent: Option<String>,
}

/// Runs the controls and hands the gate what they committed. Cheap to clone.
#[derive(Clone)]
pub struct CampaignControls {
    db: Db,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    sold_out: Arc<SoldOutMemo>,
    /// Where the controls' events go: the topic, and the relay's wakeup after a commit.
    sink: Sink,
    metrics: Arc<Metrics>,
    /// The test seam (`crate::hooks`): a hold before a kept answer, a crash before the gate.
    hooks: Arc<dyn Hooks>,
}

impl CampaignControls {
    /// `campaigns` and `sold_out` are the participation path's: a control updates both here.
    pub fn new(
        db: Db,
        gate: Gate,
        campaigns: Arc<CampaignCache>,
        sold_out: Arc<SoldOutMemo>,
        sink: Sink,
        metrics: Arc<Metrics>,
        hooks: Arc<dyn Hooks>,
    ) -> Self {
        // Every kind's series from the start, at 0, so a rate over it is defined before the
        // first control.
        for kind in ControlKind::ALL {
            metrics
                .campaign_controls
                .get_or_create(&ControlLabels {
                    kind: kind.as_str(),
                })
                .inc_by(0);
        }
        Self {
            db,
            gate,
            campaigns,
            sold_out,
            sink,
            metrics,
            hooks,
        }
    }

    /// Applies `control` for the admin named `admin`; answers the campaign as this control left
    /// it. Asking for what is already so (pause a paused campaign, resume a running one, close an
    /// ended one), or retrying with an applied `Idempotency-Key`, writes nothing and answers the
    /// campaign as it was when that was decided (read under the row lock, so a control that
    /// commits just after is never in the answer of one that did nothing). Beside it, whether the
    /// control reached the gate before this answer (`None`: nothing was written).
    #[tracing::instrument(level = "debug", skip_all, fields(campaign_id = req.campaign_id, control = ?req.control, admin = %req.admin))]
    pub async fn apply(
        &self,
        req: ControlRequest,
    ) -> Result<(CampaignWithCount, Option<Reached>), ControlError> {
        let control = req.control;
        let campaign_id = req.campaign_id;
        let committed = match self.commit(req).await? {
            Committed::Kept(answer) => {
                // The controls this answer reports reach the gate before it does (another
                // control's call may still be on its way).
                let upto = (campaign_id, answer.campaign.control_seq);
                let reached =
                    gate_sync::catch_up(&self.db, &self.gate, &self.campaigns, upto).await?;
                self.hooks.before_kept_control_answer().await;
                self.campaigns.insert(answer.campaign.clone()).await;
                return Ok((answer, reached));
            }
            Committed::Applied(committed) => *committed,
        };
        self.applied(&committed);
        self.hooks.before_gate_control().await;
        let ControlCommit {
            seq,
            kind,
            delta,
            answer,
            withdrawn,
            ..
        } = committed;
        let reached = self
            .to_gate(
                &answer.campaign,
                seq,
                (kind, delta.unwrap_or(0)),
                &withdrawn,
            )
            .await;
        if matches!(control, Control::Stock(1..) | Control::Resume) {
            self.sold_out.forget(campaign_id);
        }
        // The cache takes the campaign as it is now (a later control may have committed since).
        match repo::find(&self.db, campaign_id).await {
            Ok(Some(latest)) => {
                self.campaigns.insert(latest.campaign).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, campaign_id, "Could not refresh the cached campaign after a control.")
            }
        }
        Ok((answer, Some(reached)))
    }

    /// A committed control's wake-up of the relay, its count and its log line.
    fn applied(&self, committed: &ControlCommit) {
        self.sink.wakeup.notify_one();
        self.metrics
            .campaign_controls
            .get_or_create(&ControlLabels {
                kind: committed.kind.as_str(),
            })
            .inc();
        tracing::info!(
            campaign_id = committed.answer.campaign.id,
            seq = committed.seq,
            kind = committed.kind.as_str(),
            delta = committed.delta,
            admin = committed.admin,
            "Campaign control applied."
        );
    }

    /// The control's transaction: the campaign row locked, the decision, the change, the audit
    /// row and the outbox event, and the campaign read back before the commit — so the answer
    /// is this control's result (its `controlCount` its own number), never a later one's.
    async fn commit(&self, req: ControlRequest) -> Result<Committed, ControlError> {
        let ControlRequest {
            campaign_id,
            control,
            admin,
            idempotency_key,
            traceparent,
        } = req;
        let now = crate::db::time::precision(Utc::now());
        let txn = self.db.begin().await?;
        let locked = store::lock(&txn, campaign_id)
            .await?
            .ok_or(ControlError::NotFound(campaign_id))?;
        let replayed = match &idempotency_key {
            Some(key) => store::by_key(&txn, campaign_id, key).await?,
            None => None,
        };
        let decision = match replayed {
            // A retry of a control that was applied (its answer may have been lost).
            Some((kind, delta)) if (kind.as_str(), delta) == control.recorded() => Decision::Keep,
            Some((kind, _)) => return Err(ControlError::KeyReused { kind }),
            None => decide(&locked, control, now)?,
        };
        let (change, kind, delta) = match decision {
            Decision::Keep => {
                let answer = repo::find(&txn, campaign_id)
                    .await?
                    .ok_or(ControlError::NotFound(campaign_id))?;
                txn.rollback().await?;
                return Ok(Committed::Kept(answer));
            }
            Decision::Change(change, kind, delta) => (change, kind, delta),
        };
        let seq = locked.control_seq + 1;
        let withdrawn = store::change(&txn, &locked, (campaign_id, seq), change).await?;
        // Units a withdrawal takes from bucket rows leave their gates before the commit, so that
        // a reservation refused by a row and set from a reading that already counts the
        // withdrawal is never lowered by it a second time (docs/design.md §21).
        let gates = self.withdraw_at_gates(campaign_id, &withdrawn).await;
        let change = Change {
            campaign_id,
            seq,
            kind,
            delta,
            now,
        };
        let written = self
            .record(
                &txn,
                &locked,
                &change,
                (admin.as_str(), idempotency_key, traceparent),
            )
            .await;
        let answer = match written {
            Ok(answer) => answer,
            Err(e) => {
                self.undo_at_gates(gates.as_deref(), &withdrawn).await;
                return Err(e);
            }
        };
        if let Err(e) = txn.commit().await {
            // A commit in doubt may have taken the units: its marker then says so, and the drift
            // audit repairs a gate left short if it did not.
            if !crate::db::error::outcome_unknown(&e) {
                self.undo_at_gates(gates.as_deref(), &withdrawn).await;
            }
            return Err(e.into());
        }
        Ok(Committed::Applied(Box::new(ControlCommit {
            seq,
            kind,
            delta,
            admin: admin.as_str().to_string(),
            answer,
            withdrawn,
        })))
    }

    /// The control's audit row and outbox event, and the campaign as it leaves it.
    async fn record(
        &self,
        txn: &crate::db::Txn,
        locked: &LockedCampaign,
        change: &Change,
        (admin, idempotency_key, traceparent): (&str, Option<String>, Option<String>),
    ) -> Result<CampaignWithCount, ControlError> {
        let Change {
            campaign_id,
            seq,
            kind,
            delta,
            now,
        } = *change;
        let moved = delta.unwrap_or(0);
        let event = CampaignChanged {
            event_id: Uuid::now_v7(),
            event_type: kind.event_type().into(),
            occurred_at: now,
            campaign_id,
            control_seq: seq,
            changed_by: admin.into(),
            delta,
            total_stock: locked.total_stock + moved,
            remaining_stock: locked.remaining_stock + moved,
        };
        store::record(
            txn,
            &ControlRow {
                campaign_id,
                seq,
                kind: kind.as_str(),
                delta,
                total_stock: event.total_stock,
                remaining_stock: event.remaining_stock,
                admin: admin.into(),
                event_id: event.event_id.to_string(),
                idempotency_key,
                at: now,
            },
        )
        .await?;
        let row = NewOutboxEvent::campaign(&event, &self.sink.topic, traceparent.as_deref());
        table::insert(txn, &[row]).await?;
        repo::find(txn, campaign_id)
            .await?
            .ok_or(ControlError::NotFound(campaign_id))
    }

    /// Takes a withdrawal's units out of each bucket's gate (once: the transfer's id marks it);
    /// the campaign read for its gates, or `None` when there was nothing to take or it could not
    /// be read (the markers then apply the withdrawal after the commit).
    async fn withdraw_at_gates(
        &self,
        campaign_id: i64,
        withdrawn: &[Moved],
    ) -> Option<Arc<Campaign>> {
        if withdrawn.is_empty() {
            return None;
        }
        let campaign = self
            .campaigns
            .get(&self.db, campaign_id)
            .await
            .ok()
            .flatten()?;
        let epoch = crate::campaign::gate_epoch(&campaign);
        for moved in withdrawn {
            let slot = campaign.slot(moved.bucket);
            if let Err(e) = self
                .gate
                .give_transfer(slot, moved.transfer_id, moved.units, epoch)
                .await
            {
                tracing::warn!(error = %e, campaign_id, bucket = moved.bucket,
                    "Could not take withdrawn units out of a bucket's gate; its marker will.");
            }
        }
        Some(campaign)
    }

    /// A withdrawal that did not commit gives its gates their units back.
    async fn undo_at_gates(&self, campaign: Option<&Campaign>, withdrawn: &[Moved]) {
        let Some(campaign) = campaign else {
            return;
        };
        let epoch = crate::campaign::gate_epoch(campaign);
        for moved in withdrawn {
            let slot = campaign.slot(moved.bucket);
            if let Err(e) = self
                .gate
                .undo_transfer(slot, moved.transfer_id, moved.units, epoch)
                .await
            {
                tracing::warn!(error = %e, campaign_id = campaign.id, bucket = moved.bucket,
                    "Could not give a failed withdrawal's units back to a bucket's gate; the drift audit will.");
            }
        }
    }

    /// The balance of a campaign's buckets (docs/design.md §21); `None` when the campaign does
    /// not exist.
    pub async fn buckets(&self, campaign_id: i64) -> Result<Option<(Campaign, Balance)>, DbErr> {
        let Some(found) = repo::find(&self.db, campaign_id).await? else {
            return Ok(None);
        };
        let c = &found.campaign;
        let balance =
            bucket_view::read(&self.db, &self.gate, (c.id, c.group_id, c.buckets)).await?;
        Ok(Some((found.campaign, balance)))
    }

    /// Up to `limit` of the campaign's controls after number `after`, oldest first; `None` when
    /// the campaign does not exist.
    pub async fn history(
        &self,
        campaign_id: i64,
        after: i64,
        limit: u32,
    ) -> Result<Option<Vec<HistoryRow>>, DbErr> {
        if repo::find(&self.db, campaign_id).await?.is_none() {
            return Ok(None);
        }
        store::history(&self.db, campaign_id, after, limit)
            .await
            .map(Some)
    }

    /// After the commit: the control to the gate at once, to every bucket's of a bucketed
    /// campaign, with the units a withdrawal took from each (the marker loop retries a failure).
    async fn to_gate(
        &self,
        campaign: &Campaign,
        seq: i64,
        (kind, delta): (ControlKind, i64),
        withdrawn: &[Moved],
    ) -> Reached {
        let (campaign_id, epoch) = (campaign.id, crate::campaign::gate_epoch(campaign));
        let mut reached = Reached::Now;
        for moved in withdrawn {
            let slot = campaign.slot(moved.bucket);
            let given = self
                .gate
                .give_transfer(slot, moved.transfer_id, moved.units, epoch)
                .await;
            match given {
                Ok(Returned::Added | Returned::AlreadyBack) => {
                    if let Err(e) =
                        crate::bucket::markers::forget_gate_transfer(&self.db, moved.transfer_id)
                            .await
                    {
                        tracing::debug!(error = %e, "Could not delete a settled gate_transfer marker.");
                    }
                }
                Ok(Returned::NotLoaded) => {}
                Err(e) => {
                    tracing::warn!(error = %e, campaign_id, bucket = moved.bucket,
                        "Could not give a transfer to a bucket's gate; its marker will.");
                    reached = Reached::Later;
                }
            }
        }
        let given = gate_sync::give(&self.db, &self.gate, campaign, (seq, kind, delta)).await;
        match given {
            Ok(Given::Settled | Given::NotLoaded) => {}
            Ok(Given::Failed(e)) => {
                tracing::warn!(error = %e, campaign_id, seq,
                    "Could not give a control to the gate; the gate_control loop will.");
                return Reached::Later;
            }
            Err(e) => {
                tracing::debug!(error = %e, "Could not delete a settled gate_control marker.");
            }
        }
        reached
    }
}

/// What a control's transaction did.
enum Committed {
    /// Nothing written: the control was already so, or is a retry of one applied (same
    /// idempotency key and request). The campaign as read under the lock.
    Kept(CampaignWithCount),
    Applied(Box<ControlCommit>),
}

/// What a control changes, as its audit row and event say it.
#[derive(Debug, Clone, Copy)]
struct Change {
    campaign_id: i64,
    seq: i64,
    kind: ControlKind,
    delta: Option<i64>,
    now: chrono::DateTime<Utc>,
}

/// A control committed: its number, kind and delta, who applied it, and the campaign as it left it.
struct ControlCommit {
    seq: i64,
    kind: ControlKind,
    delta: Option<i64>,
    admin: String,
    answer: CampaignWithCount,
    /// Units a withdrawal took from a bucketed campaign's bucket rows, for their gates.
    withdrawn: Vec<Moved>,
}
