//! The `gate_control` marker loop (docs/design.md §15): every instance gives the gate the
//! committed controls a crash or a Redis failure kept from it, as the expiry sweeper's second
//! task. `lua/control.lua` applies each exactly once, in any order, so a marker may be settled by
//! several instances, or by the control's own call racing this loop.

use chrono::Utc;
use sea_orm::DbErr;

use crate::{
    campaign::{
        control::{store, store::PendingControl, CampaignControls},
        Window,
    },
    events::control::ControlKind,
    gate::{Applied, GateControl, GateError},
};

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

impl CampaignControls {
    /// Gives the gate up to `limit` committed controls it may not have yet (markers a crash or a
    /// Redis failure left behind); returns how many markers were settled. Each call reads the
    /// `limit` markers after those the previous call visited, and starts from the oldest again
    /// once it reached the last, so every marker is visited however many wait for their gate
    /// state to be loaded.
    pub async fn apply_pending(&self, limit: u32) -> Result<usize, DbErr> {
        let from = self.pending_from.after();
        let markers = store::pending(&self.db, from.as_ref(), limit).await?;
        let read = markers.len();
        let (mut visited, mut settled, mut stopped) = (from, 0, false);
        for marker in markers {
            match self.settle(&marker).await? {
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
        self.pending_from.passed(visited, read, limit, stopped);
        Ok(settled)
    }

    /// Gives the gate one marker's control.
    async fn settle(&self, marker: &PendingControl) -> Result<MarkerOutcome, DbErr> {
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
        let control = GateControl::of(kind, marker.delta);
        let epoch = crate::campaign::gate_epoch(&campaign);
        match self
            .gate
            .apply_control(campaign.id, marker.seq, control, epoch)
            .await
        {
            Ok(Applied::Applied | Applied::AlreadyApplied) => {
                store::forget(&self.db, campaign.id, marker.seq).await?;
                Ok(MarkerOutcome::Settled)
            }
            // Not loaded: kept until the keys are back (a rebuild that read MySQL before the
            // control needs it), or the campaign is over.
            Ok(Applied::NotLoaded) if campaign.window(Utc::now()) == Window::Ended => {
                store::forget(&self.db, campaign.id, marker.seq).await?;
                Ok(MarkerOutcome::Settled)
            }
            Ok(Applied::NotLoaded) => Ok(MarkerOutcome::Kept),
            Err(e) => Ok(MarkerOutcome::GateFailed(e)),
        }
    }
}
