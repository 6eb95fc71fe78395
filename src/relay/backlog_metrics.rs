//! Keeps `firstcome_outbox_rows{status}` and `firstcome_outbox_oldest_due_age_seconds` current:
//! one indexed query ([`crate::relay::admin::backlog`]) every `METRICS_OUTBOX_REFRESH_MS`, so a
//! scrape costs MySQL nothing and many scrapers cost no more than one.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{
    db::Db,
    relay::admin,
    telemetry::metrics::{registry::StatusLabels, Metrics},
};

/// Refreshes the gauges now and every `every` until `stop` is cancelled. A failed read keeps the
/// last values (logged once per outage).
pub async fn run(db: Db, metrics: Arc<Metrics>, every: Duration, stop: CancellationToken) {
    let mut failing = false;
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            read = admin::backlog(&db) => read,
        };
        match read {
            Ok(b) => {
                // The age first: whoever sees the new counts sees an age at least as new.
                let age = b.oldest_due_age_us.unwrap_or(0).max(0) as f64 / 1e6;
                metrics.outbox_oldest_due_age.set(age);
                for (status, rows) in [
                    ("PENDING", b.pending),
                    ("PUBLISHED", b.published),
                    ("DEAD", b.dead),
                ] {
                    metrics
                        .outbox_rows
                        .get_or_create(&StatusLabels { status })
                        .set(rows);
                }
                if failing {
                    tracing::info!("Outbox gauges are current again.");
                    failing = false;
                }
            }
            Err(e) if !failing => {
                tracing::warn!(error = %e, "Could not read the outbox backlog; /metrics keeps the last values.");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
