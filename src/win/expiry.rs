//! The expiry sweeper, on every instance (docs/design.md §14): every quarter second, held wins
//! past their deadline become EXPIRED (each by its own guarded transaction, so a win expires once
//! however many instances sweep), their units back in MySQL and, by the expiry's own call, in the
//! gate; what a crash or a Redis failure kept from the gate, the marker loop gives it
//! (`crate::upkeep::markers`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    db::Db,
    win::{lifecycle::LifecycleService, state_change},
};

/// How often a sweep runs: a hold expires at most about this late.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Holds expired per sweep at most.
const SWEEP_BATCH: u32 = 200;

/// Sweeps until `stop`.
pub async fn run(lifecycle: LifecycleService, db: Db, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        sweep(&lifecycle, &db).await;
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
}
