//! Deletes PUBLISHED rows past the retention, in small batches so no statement holds many locks
//! or runs long. DEAD rows stay until an admin redrives them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{db::Db, relay::store};

/// How often cleanup runs.
const EVERY: Duration = Duration::from_secs(60);

pub async fn run(db: Db, retention: Duration, batch: u32, stop: CancellationToken) {
    loop {
        let mut deleted = 0;
        loop {
            match store::delete_published(&db, retention, batch).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(batch) || stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Outbox cleanup failed; will try again.");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "Deleted published outbox rows past the retention.");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
