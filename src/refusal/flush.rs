//! The task that adds this instance's refusal counts to `campaign_refusal` twice a second,
//! and once more when the service stops. A failed write keeps the counts for the next try (logged
//! once per outage): MySQL down for a minute delays the counts, it does not lose them.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    db::Db,
    refusal::{store, RefusalCounter},
};

/// How often the counts move to MySQL: what "current within about a second" rests on (half a
/// second, so that a count is in MySQL well within it).
pub const EVERY: Duration = Duration::from_millis(500);

pub async fn run(db: Db, counter: Arc<RefusalCounter>, stop: CancellationToken) {
    let mut failing = false;
    let mut dropped = 0;
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(EVERY) => false,
        };
        let counts = counter.take();
        if counter.dropped() > dropped {
            dropped = counter.dropped();
            tracing::warn!(dropped, "Refusals of more campaigns than the counter keeps between two flushes were not counted.");
        }
        match store::add(&db, &counts).await {
            Ok(()) if failing => {
                tracing::info!("Refusal counts are written again.");
                failing = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "Could not write the refusal counts; they are kept for the next try.");
                    failing = true;
                }
                if !stopping {
                    counter.restore(counts);
                }
            }
        }
        if stopping {
            break;
        }
    }
}
