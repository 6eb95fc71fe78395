//! Keeps the workers running: each worker slot owns a bounded queue; a worker that panics is
//! restarted on the same queue after a backoff (counted in `worker_restarts`), and the rows it
//! held are released so they are claimed again at once instead of after their lease.
//! A worker that does not start at boot fails the startup.

use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use backoff::backoff::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::{
    store::{self, ClaimedRow},
    worker::{self, Held, InFlight, WorkerContext},
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
        tasks.spawn(supervise(index, ctx, rx, ready_tx));
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
    // Survives restarts: keys held back by the crashed worker stay held for its successor.
    let held: Held = Arc::default();
    loop {
        let in_flight: InFlight = Arc::new(Mutex::new(Vec::new()));
        let began = tokio::time::Instant::now();
        let worker = tokio::spawn(worker::run(
            ctx.clone(),
            rx.clone(),
            in_flight.clone(),
            held.clone(),
        ));
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
                ctx.metrics.worker_restarts.fetch_add(1, Ordering::Relaxed);
                let rows: Vec<(i64, String)> =
                    std::mem::take(&mut *in_flight.lock().unwrap_or_else(|p| p.into_inner()));
                // The crashed batch goes back to the claim; the younger rows of its keys, queued
                // behind it, must not overtake it.
                for (id, key) in &rows {
                    worker::hold(&held, key, *id);
                }
                let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
                if let Err(db) = store::release(&ctx.db, &ctx.owner, Some(&ids)).await {
                    tracing::warn!(error = %db, "Could not release a crashed worker's rows; they return after their lease.");
                }
                if began.elapsed() > HEALTHY_AFTER {
                    restarts.reset();
                }
                let delay = restarts.next_backoff().unwrap_or(RESTART_CAP);
                tracing::error!(worker = index, error = %e, rows_released = ids.len(), restart_in = ?delay,
                    "Relay worker crashed; restarting it.");
                tokio::time::sleep(delay).await;
                ctx.claimer_wakeup.notify_one();
            }
        }
    }
}
