//! The expiry sweeper, on every instance (docs/design.md §14): every quarter second, held wins
//! past their deadline become EXPIRED (each by its own guarded transaction, so a win expires once
//! however many instances sweep), and units MySQL took back that the gate may still lack are
//! given to it (the `gate_return` markers a crash or a Redis failure left), as are the live
//! controls it may lack (the `gate_control` markers, docs/design.md §15).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    campaign::control::CampaignControls,
    db::Db,
    win::{lifecycle::LifecycleService, state_change},
};

/// How often a sweep runs: a hold expires at most about this late.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Holds expired, and markers settled, per sweep at most.
const SWEEP_BATCH: u32 = 200;

/// Sweeps until `stop`.
pub async fn run(
    lifecycle: LifecycleService,
    controls: CampaignControls,
    db: Db,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        sweep(&lifecycle, &db).await;
        if let Err(e) = controls.apply_pending(SWEEP_BATCH).await {
            tracing::warn!(error = %e, "Could not read the controls the gate may lack.");
        }
    }
    tracing::debug!("Expiry sweeper stopped.");
}

async fn sweep(lifecycle: &LifecycleService, db: &Db) {
    match state_change::due_holds(db, SWEEP_BATCH).await {
        Ok(due) => {
            for id in due {
                match lifecycle.expire(id).await {
                    Ok(true) => tracing::debug!(participation_id = id, "Hold expired."),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, participation_id = id,
                            "Could not expire a hold; the next sweep tries again.");
                        break;
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "Could not read the holds that are due."),
    }
    if let Err(e) = lifecycle.return_pending(SWEEP_BATCH).await {
        tracing::warn!(error = %e, "Could not read the units the gate is owed.");
    }
}
