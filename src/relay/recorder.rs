//! Marks published rows PUBLISHED, off the workers' path: workers hand over the ids of delivered
//! rows and go on sending; the recorder writes whatever has gathered in one statement while the
//! previous one runs (group commit of marks), so a hot key's lag is one ack plus one UPDATE, and
//! the UPDATE count does not grow with the publish rate.
//!
//! A mark that fails is retried with backoff (MySQL may be failing over); the rows stay held
//! meanwhile (`order.rs`), so this relay does not claim them again. Once a mark is committed its
//! rows are let go. If the relay stops before a mark succeeds, the next leader re-sends the rows:
//! the documented duplicate window (docs/design.md §2.4).

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;

use crate::{
    db::{sql::MAX_IDS, Db},
    relay::{order::KeyOrder, store},
};

/// Rows marked per statement at most: an `IN` list within the statement budget (`db::sql`).
const MARK_CHUNK: usize = MAX_IDS;
const RETRY_BASE: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// How long, after the workers are gone, the recorder keeps trying to write its last marks.
const FINAL_TRIES: u32 = 3;

/// Runs until every worker has dropped its sender and everything received is written (or given
/// up on after [`FINAL_TRIES`] once the queue is closed).
pub async fn run(db: Db, order: Arc<KeyOrder>, mut rx: mpsc::Receiver<Vec<i64>>) {
    let mut ids: Vec<i64> = Vec::new();
    let mut batches = Vec::new();
    while rx.recv_many(&mut batches, 1_024).await > 0 {
        ids.extend(batches.drain(..).flatten());
        while !ids.is_empty() {
            let chunk: Vec<i64> = ids.drain(..ids.len().min(MARK_CHUNK)).collect();
            if mark(&db, &chunk, &mut rx, &mut ids).await {
                order.recorded(&chunk);
            }
        }
    }
}

/// Writes one chunk, retrying on failure; ids arriving meanwhile are gathered into `more`.
/// Returns whether the mark was committed.
async fn mark(
    db: &Db,
    chunk: &[i64],
    rx: &mut mpsc::Receiver<Vec<i64>>,
    more: &mut Vec<i64>,
) -> bool {
    let mut delay = RETRY_BASE;
    let mut closed_tries = 0;
    loop {
        let Err(e) = store::mark_published(db, chunk).await else {
            return true;
        };
        // Keep the workers' queue flowing while MySQL is away.
        while let Ok(ids) = rx.try_recv() {
            more.extend(ids);
        }
        if rx.is_closed() {
            closed_tries += 1;
            if closed_tries >= FINAL_TRIES {
                tracing::warn!(error = %e, rows = chunk.len(),
                    "Could not mark published rows before stopping; the next leader re-sends them.");
                return false;
            }
        }
        tracing::warn!(error = %e, rows = chunk.len(), retry_in = ?delay, "Could not mark published rows; retrying.");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RETRY_CAP);
    }
}
