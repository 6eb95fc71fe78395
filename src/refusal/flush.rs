//! The task that adds this instance's refusal counts to `campaign_refusal` twice a second,
//! and once more when the service stops. A failed write keeps the counts for the next try (logged
//! once per outage): MySQL down for a minute delays the counts, it does not lose them.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{
    consumer::stats::series,
    db::Db,
    refusal::{store, RefusalCounter},
};

/// Flushes between two deletions of the chart's old slots (a minute).
const FORGET_EVERY: u64 = 120;

/// How often the counts move to MySQL: what "current within about a second" rests on (half a
/// second, so that a count is in MySQL well within it).
pub const EVERY: Duration = Duration::from_millis(500);

pub async fn run(db: Db, counter: Arc<RefusalCounter>, stop: CancellationToken) {
    let mut failing = false;
    let mut dropped = 0;
    let mut flushes: u64 = 0;
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
            Ok(added) => {
                if failing {
                    tracing::info!("Refusal counts are written again.");
                    failing = false;
                }
                chart(&db, &added, &mut flushes).await;
            }
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

/// The chart's share of a flush (`campaign_series`, docs/design.md §20): the refusals written, in
/// the slot of now; and once a minute, slots past their hour deleted. A failure loses a point of
/// the chart, never a count of `campaign_refusal` (those are written already).
async fn chart(db: &Db, added: &std::collections::BTreeMap<i64, i64>, flushes: &mut u64) {
    if let Err(e) = series::add_refused(db, added, Utc::now()).await {
        tracing::debug!(error = %e, "Could not add the refusals to the live chart's slots.");
    }
    *flushes += 1;
    if *flushes % FORGET_EVERY == 0 {
        if let Err(e) = series::forget_old(db, Utc::now()).await {
            tracing::debug!(error = %e, "Could not delete the live chart's old slots.");
        }
    }
}
