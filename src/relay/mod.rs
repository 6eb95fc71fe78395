//! The outbox relay (DESIGN.md §7): publishes committed outbox rows to Kafka.
//!
//! # Layout
//! - [`leadership`]: one active relay per shard, elected with lease rows in MySQL.
//! - [`store`]: claim with `FOR UPDATE SKIP LOCKED` and a lease, batched outcome updates, admin SQL.
//! - [`worker`]: pipelined produces, dead letters, outcome recording.
//! - [`supervisor`]: bounded queues, panic restarts with backoff, fail-fast start.
//! - [`classify`]: the one error classifier (Published / Retry / DeadLetter).
//! - [`cleanup`]: deletes PUBLISHED rows past the retention.
//!
//! Wake-ups: the participation path notifies after each commit; polling (`RELAY_POLL_INTERVAL_MS`)
//! finds rows of other instances and retries coming due; a worker notifies after recording a
//! batch, since the next rows of its keys became claimable.
//!
//! Shutdown (in [`run`]): stop claiming → close the queues → workers drain and record → flush
//! the producers → release row leases → release shard leases.

pub mod classify;
pub mod cleanup;
pub mod leadership;
pub mod store;
pub mod supervisor;
pub mod worker;

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::metrics::Metrics;
use crate::{config::RelaySettings, kafka::Producers, state::Components};
use classify::RetryPolicy;
use leadership::{Leadership, ShardLeases};
use store::ClaimedRow;
use worker::{Faults, WorkerContext};

/// What the application keeps of a running relay.
#[derive(Clone)]
pub struct RelayHandle {
    /// This instance's name in lease columns.
    pub owner: String,
    /// Failure points for tests.
    pub faults: Arc<Faults>,
}

pub struct RelayDeps {
    pub db: DatabaseConnection,
    pub producers: Producers,
    /// Notified after each participation commit (and by workers after each batch).
    pub wakeup: Arc<Notify>,
    pub components: Arc<Components>,
    pub metrics: Arc<Metrics>,
    /// How long shutdown may spend flushing the producers.
    pub flush_timeout: Duration,
}

/// Starts the relay: workers first (an error if they cannot start), then the claim loop,
/// leadership and cleanup, all tied to `stop`.
pub async fn start(
    settings: &RelaySettings,
    deps: RelayDeps,
    stop: CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<RelayHandle> {
    let owner = format!(
        "{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "firstcome".into()),
        uuid::Uuid::now_v7().simple()
    )
    .chars()
    .take(64)
    .collect::<String>();
    let faults = Arc::new(Faults::default());
    let ctx = Arc::new(WorkerContext {
        db: deps.db.clone(),
        producers: deps.producers.clone(),
        owner: owner.clone(),
        policy: RetryPolicy {
            max_attempts: settings.max_attempts,
            base: settings.backoff_base,
            cap: settings.backoff_cap,
        },
        batch_size: settings.batch_size as usize,
        hold_for: settings.lease,
        claimer_wakeup: deps.wakeup.clone(),
        faults: faults.clone(),
        metrics: deps.metrics.clone(),
    });
    let workers = TaskTracker::new();
    let senders =
        supervisor::start(ctx, settings.workers, settings.channel_capacity, &workers).await?;

    let leases = ShardLeases {
        db: deps.db.clone(),
        owner: owner.clone(),
        total: settings.shards,
        lease: settings.lease,
    };
    leases.ensure_rows().await?;
    let (lead_tx, lead_rx) = watch::channel(Leadership::none());

    let loop_settings = ClaimLoop {
        db: deps.db.clone(),
        owner: owner.clone(),
        lease: settings.lease,
        batch: settings.batch_size,
        poll: settings.poll_interval,
    };
    tasks.spawn(cleanup::run(
        deps.db.clone(),
        settings.retention,
        settings.cleanup_batch,
        stop.clone(),
    ));
    tasks.spawn(run(
        loop_settings,
        deps,
        senders,
        workers,
        leases,
        lead_tx,
        lead_rx,
        stop,
    ));
    Ok(RelayHandle { owner, faults })
}

struct ClaimLoop {
    db: DatabaseConnection,
    owner: String,
    lease: Duration,
    batch: u32,
    poll: Duration,
}

/// The worker a key always goes to.
fn worker_for(key: &str, workers: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % workers as u64) as usize
}

#[allow(clippy::too_many_arguments)]
async fn run(
    cl: ClaimLoop,
    deps: RelayDeps,
    senders: Vec<mpsc::Sender<ClaimedRow>>,
    workers: TaskTracker,
    leases: ShardLeases,
    lead_tx: watch::Sender<Leadership>,
    mut lead_rx: watch::Receiver<Leadership>,
    stop: CancellationToken,
) {
    // Leadership outlives the claim loop: shards are released only after the workers finished.
    let leadership_stop = CancellationToken::new();
    let leadership =
        tokio::spawn(leases.run(lead_tx, deps.components.clone(), leadership_stop.clone()));

    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = deps.wakeup.notified() => {}
            _ = lead_rx.changed() => {}
            _ = tokio::time::sleep(cl.poll) => {}
        }
        let Some(shards) = lead_rx.borrow().current().cloned() else {
            continue;
        };
        // Claim until a short batch: a burst drains without waiting for the next wake-up.
        loop {
            let rows = match store::claim(&cl.db, &cl.owner, &shards, cl.lease, cl.batch).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "Claiming outbox rows failed; will retry at the next poll.");
                    break;
                }
            };
            let short = rows.len() < cl.batch as usize;
            for row in rows {
                let worker = worker_for(&row.msg_key, senders.len());
                if senders[worker].send(row).await.is_err() {
                    tracing::error!(
                        worker,
                        "A relay worker queue is closed; stopping the claim loop."
                    );
                    break;
                }
            }
            if short || stop.is_cancelled() {
                break;
            }
        }
    }

    tracing::info!("Relay stopping: no more claims; draining worker queues.");
    drop(senders);
    workers.close();
    workers.wait().await;
    let producers = deps.producers.clone();
    let flush_timeout = deps.flush_timeout;
    let flushed = tokio::task::spawn_blocking(move || {
        producers
            .main
            .flush(flush_timeout)
            .and_then(|()| producers.dlq.flush(flush_timeout))
    })
    .await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!("The Kafka producers did not flush in time; unacknowledged rows are retried after their lease.");
    }
    match store::release(&cl.db, &cl.owner, None).await {
        Ok(n) if n > 0 => tracing::info!(rows = n, "Released row leases."),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "Could not release row leases; they expire on their own.")
        }
    }
    leadership_stop.cancel();
    let _ = leadership.await;
    deps.components.set_relay("stopped");
    tracing::info!("Relay stopped.");
}
