//! Keeps the workers running: each worker slot owns a bounded queue; a worker that panics is
//! restarted on the same queue after a backoff (counted in `worker_restarts`). The rows it held
//! (sent or not; their delivery reports died with it) block their keys and are settled (plain
//! PENDING in MySQL), exactly like rows that failed: the younger rows of those keys still queued are
//! dropped by the successor, and the keys are claimed again from their oldest row once nothing
//! of them is left in the pipeline (see `order.rs`). A row the crashed worker had already sent
//! may reach the topic and then be sent again: a duplicate, never a reordering.
//! A worker that does not start at boot fails the startup.

use std::{collections::HashMap, sync::Arc, time::Duration};

use backoff::backoff::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use crate::relay::{
    store::ClaimedRow,
    worker::{self, RowsInHand, WorkerContext},
};

/// Restarts slow down from this...
const RESTART_BASE: Duration = Duration::from_millis(50);
/// ...up to this.
const RESTART_CAP: Duration = Duration::from_secs(10);
/// A worker that ran this long without panicking starts the backoff over.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long a worker may take to start at boot.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts `count` supervised workers and returns the senders of their queues. Dropping the
/// senders (shutdown) lets each worker drain its queue and stop.
pub async fn start(
    ctx: Arc<WorkerContext>,
    count: usize,
    capacity: usize,
    tasks: &TaskTracker,
) -> anyhow::Result<Vec<mpsc::Sender<ClaimedRow>>> {
    let mut senders = Vec::with_capacity(count);
    let mut started = Vec::with_capacity(count);
    for index in 0..count {
        let (tx, rx) = mpsc::channel(capacity);
        senders.push(tx);
        let (ready_tx, ready_rx) = oneshot::channel();
        started.push(ready_rx);
        let ctx = ctx.clone();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let span = tracing::info_span!("relay_worker", worker = index);
        tasks.spawn(crate::shutdown::running::track(
            format!("relay worker {index}"),
            tracing::Instrument::instrument(supervise(index, ctx, rx, ready_tx), span),
        ));
    }
    for (index, ready) in started.into_iter().enumerate() {
        match tokio::time::timeout(START_TIMEOUT, ready).await {
            Ok(Ok(())) => {}
            _ => anyhow::bail!("relay worker {index} did not start"),
        }
    }
    Ok(senders)
}

async fn supervise(
    index: usize,
    ctx: Arc<WorkerContext>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<ClaimedRow>>>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut restarts = backoff::ExponentialBackoff {
        initial_interval: RESTART_BASE,
        current_interval: RESTART_BASE,
        max_interval: RESTART_CAP,
        max_elapsed_time: None,
        ..Default::default()
    };
    loop {
        let in_hand: RowsInHand = Arc::default();
        let began = tokio::time::Instant::now();
        let worker = tokio::spawn(tracing::Instrument::in_current_span(worker::run(
            ctx.clone(),
            rx.clone(),
            in_hand.clone(),
        )));
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        match worker.await {
            Ok(()) => {
                tracing::debug!(
                    worker = index,
                    "Relay worker stopped: its queue is closed and drained."
                );
                return;
            }
            Err(e) => {
                ctx.metrics.relay_worker_restarts.inc();
                let rows: HashMap<i64, String> =
                    std::mem::take(&mut *in_hand.lock().unwrap_or_else(|p| p.into_inner()));
                for (id, key) in &rows {
                    ctx.order.block(key, *id);
                }
                ctx.order
                    .settled(rows.iter().map(|(id, key)| (key.as_str(), *id)));
                if began.elapsed() > HEALTHY_AFTER {
                    restarts.reset();
                }
                let delay = restarts.next_backoff().unwrap_or(RESTART_CAP);
                tracing::error!(worker = index, error = %e, rows_let_go = rows.len(), restart_in = ?delay,
                    "Relay worker crashed; restarting it.");
                tokio::time::sleep(delay).await;
            }
        }
    }
}
