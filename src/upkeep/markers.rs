//! The marker loop, on every instance (docs/design.md §14, §15): what MySQL committed and the
//! gate may still lack, because a crash or a Redis failure came between the commit and the gate
//! call. A closed win's units (`gate_return` markers, §14) and a live control (`gate_control`
//! markers, §15) are each written with their change in one transaction; the change's own call
//! then gives them to the gate and deletes the marker, and this loop, four times a second, gives
//! the gate whatever a marker still names. `lua/return.lua` and `lua/control.lua` apply each
//! exactly once, in any order, so a marker may be settled by several instances, or by the
//! change's own call racing this loop. A bucketed campaign's transfers (`gate_transfer`,
//! docs/design.md §21) take the same path: a unit moved between rows reaches its gate once.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::DbErr;
use tokio_util::sync::CancellationToken;

use crate::{
    bucket::markers as transfer_markers,
    campaign::{
        control::{
            gate_sync::{self, Given},
            store::{self, MarkerKey, PendingControl},
        },
        Campaign, CampaignCache, Window,
    },
    db::{marker_cursor::MarkerCursor, Db},
    events::control::ControlKind,
    gate::{Gate, GateError, Returned},
    win::state_change::{self, ReturnKey},
};

/// How often the loop runs: what the gate lacks reaches it at most about this late.
pub const EVERY: Duration = Duration::from_millis(250);

/// Markers settled per kind and pass at most.
const BATCH: u32 = 200;

/// The gate's side of the markers; cheap to clone.
#[derive(Clone)]
pub struct Markers {
    db: Db,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    /// Where this instance's `gate_return` pass reads next (owned by this loop).
    returns_from: Arc<MarkerCursor<ReturnKey>>,
    /// Where this instance's `gate_control` pass reads next (owned by this loop).
    controls_from: Arc<MarkerCursor<MarkerKey>>,
    /// Where this instance's `gate_transfer` pass reads next (a transfer id; owned by this loop).
    transfers_from: Arc<MarkerCursor<i64>>,
}

/// Runs the loop until `stop`.
pub async fn run(markers: Markers, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
        if let Err(e) = markers.return_pending(BATCH).await {
            tracing::warn!(error = %e, "Could not read the units the gate is owed.");
        }
        if let Err(e) = markers.apply_pending(BATCH).await {
            tracing::warn!(error = %e, "Could not read the controls the gate may lack.");
        }
        if let Err(e) = markers.transfer_pending(BATCH).await {
            tracing::warn!(error = %e, "Could not read the transfers the buckets' gates may lack.");
        }
    }
    tracing::debug!("Marker loop stopped.");
}

/// What a marker of units owed to a gate comes to once the gate answered.
#[derive(Debug, PartialEq, Eq)]
enum Owed {
    /// The gate has the units, or the campaign is over: the marker goes.
    Forget,
    /// Not loaded: no stock to add to; kept until the keys are back (a rebuild that read MySQL
    /// before the units moved needs it), or the campaign is over (past its end or closed early:
    /// nothing loads its keys again).
    Keep,
    /// Redis failed: the marker stays, and the pass stops until its next sweep.
    Stop,
}

fn owed(given: &Result<Returned, GateError>, campaign: &Campaign) -> Owed {
    match given {
        Ok(Returned::Added | Returned::AlreadyBack) => Owed::Forget,
        Ok(Returned::NotLoaded) if campaign.window(Utc::now()) == Window::Ended => Owed::Forget,
        Ok(Returned::NotLoaded) => Owed::Keep,
        Err(_) => Owed::Stop,
    }
}

/// What the marker loop did with one marker.
enum MarkerOutcome {
    /// The gate has the control (or the campaign is over): marker deleted.
    Settled,
    /// An unknown kind, or a campaign that no longer exists: marker deleted, nothing applied.
    Dropped,
    /// The campaign's gate state is not loaded: the marker stays.
    Kept,
    /// Redis failed: the marker stays, and the loop stops until its next sweep.
    GateFailed(GateError),
}

impl Markers {
    pub fn new(db: Db, gate: Gate, campaigns: Arc<CampaignCache>) -> Self {
        Self {
            db,
            gate,
            campaigns,
            returns_from: Arc::default(),
            controls_from: Arc::default(),
            transfers_from: Arc::default(),
        }
    }

    /// Gives the gate the units of up to `limit` closed wins it may not have yet (markers left by
    /// a crash or a Redis failure after the commit); returns how many markers were settled. Each
    /// call reads on after the markers the previous one visited ([`MarkerCursor`]), so markers
    /// waiting for their campaign's keys never hide the ones behind them.
    pub async fn return_pending(&self, limit: u32) -> Result<usize, DbErr> {
        let from = self.returns_from.after();
        let markers = state_change::pending_returns(&self.db, from.as_ref(), limit).await?;
        let read = markers.len();
        let (mut visited, mut settled, mut stopped) = (from, 0, false);
        for marker in markers {
            let key = marker.key();
            let Some(campaign) = self.campaigns.get(&self.db, marker.campaign_id).await? else {
                state_change::forget_return(&self.db, marker.participation_id).await?;
                visited = Some(key);
                continue;
            };
            let epoch = crate::campaign::gate_epoch(&campaign);
            match self
                .gate
                .return_units(
                    campaign.slot(marker.bucket as u16),
                    marker.participation_id,
                    i64::from(marker.quantity),
                    epoch,
                )
                .await
            {
                given if owed(&given, &campaign) == Owed::Keep => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Could not return units to the gate; will retry.");
                    stopped = true;
                    break;
                }
                Ok(_) => {
                    state_change::forget_return(&self.db, marker.participation_id).await?;
                    settled += 1;
                }
            }
            visited = Some(key);
        }
        self.returns_from.passed(visited, read, limit, stopped);
        Ok(settled)
    }

    /// Gives the gate up to `limit` committed controls it may not have yet (markers a crash or a
    /// Redis failure left behind); returns how many markers were settled. Each call reads the
    /// `limit` markers after those the previous call visited, and starts from the oldest again
    /// once it reached the last, so every marker is visited however many wait for their gate
    /// state to be loaded.
    pub async fn apply_pending(&self, limit: u32) -> Result<usize, DbErr> {
        let from = self.controls_from.after();
        let markers = store::pending(&self.db, from.as_ref(), limit).await?;
        let read = markers.len();
        let (mut visited, mut settled, mut stopped) = (from, 0, false);
        for marker in markers {
            match self.apply_marker(&marker).await? {
                MarkerOutcome::Settled => settled += 1,
                MarkerOutcome::Dropped | MarkerOutcome::Kept => {}
                MarkerOutcome::GateFailed(e) => {
                    tracing::debug!(error = %e, "Could not apply a control to the gate; will retry.");
                    stopped = true;
                    break;
                }
            }
            visited = Some(marker.key());
        }
        self.controls_from.passed(visited, read, limit, stopped);
        Ok(settled)
    }

    /// Gives the buckets' gates up to `limit` committed transfers they may not have yet (a crash
    /// or a Redis failure between a transfer's commit and its gate call, docs/design.md §21);
    /// returns how many markers were settled. Reads on like the other passes.
    pub async fn transfer_pending(&self, limit: u32) -> Result<usize, DbErr> {
        let from = self.transfers_from.after();
        let markers =
            transfer_markers::pending_gate_transfers(&self.db, from.unwrap_or(0), limit).await?;
        let read = markers.len();
        let (mut visited, mut settled, mut stopped) = (from, 0, false);
        for marker in markers {
            let Some(campaign) = self.campaigns.get(&self.db, marker.campaign_id).await? else {
                transfer_markers::forget_gate_transfer(&self.db, marker.transfer_id).await?;
                visited = Some(marker.transfer_id);
                continue;
            };
            let slot = campaign.slot(marker.bucket as u16);
            let epoch = crate::campaign::gate_epoch(&campaign);
            match self
                .gate
                .give_transfer(slot, marker.transfer_id, marker.units, epoch)
                .await
            {
                given if owed(&given, &campaign) == Owed::Keep => {}
                Err(e) => {
                    tracing::debug!(error = %e, "Could not give a transfer to a gate; will retry.");
                    stopped = true;
                    break;
                }
                Ok(_) => {
                    transfer_markers::forget_gate_transfer(&self.db, marker.transfer_id).await?;
                    settled += 1;
                }
            }
            visited = Some(marker.transfer_id);
        }
        self.transfers_from.passed(visited, read, limit, stopped);
        Ok(settled)
    }

    /// Gives the gate one marker's control.
    async fn apply_marker(&self, marker: &PendingControl) -> Result<MarkerOutcome, DbErr> {
        let Some(kind) = ControlKind::parse(&marker.kind) else {
            tracing::error!(
                kind = marker.kind,
                campaign_id = marker.campaign_id,
                "A gate_control marker of an unknown kind; dropped."
            );
            store::forget(&self.db, marker.campaign_id, marker.seq).await?;
            return Ok(MarkerOutcome::Dropped);
        };
        let Some(campaign) = self.campaigns.get(&self.db, marker.campaign_id).await? else {
            store::forget(&self.db, marker.campaign_id, marker.seq).await?;
            return Ok(MarkerOutcome::Dropped);
        };
        // Every bucket's gate acts on a control (docs/design.md §21): settled once all have it.
        let control = (marker.seq, kind, marker.delta);
        Ok(
            match gate_sync::give(&self.db, &self.gate, &campaign, control).await? {
                Given::Settled => MarkerOutcome::Settled,
                // Not loaded: kept until the keys are back (a rebuild that read MySQL before the
                // control needs it), or the campaign is over.
                Given::NotLoaded => MarkerOutcome::Kept,
                Given::Failed(e) => MarkerOutcome::GateFailed(e),
            },
        )
    }
}
