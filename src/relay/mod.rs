//! The outbox relay (docs/design.md §7): publishes committed outbox rows to Kafka.
//!
//! # Layout
//! - [`leadership`]: one active relay per shard, elected with lease rows in MySQL (the fence:
//!   rows are not leased one by one); its live status is what `/health/ready` reports.
//! - [`claim`]: the claim loop: claims due rows of the led shards (fenced inside the claim
//!   transaction) and hands them to workers; `candidates.rs` is the claim's read.
//! - [`order`]: per-key order through failures, lost leases and panics (the proof is there),
//!   and the rows this relay holds (claimed, their outcome not yet in MySQL); [`held`] names
//!   them to the claims.
//! - [`worker`]: pipelined produces, dead letters, outcome recording; `in_flight.rs` tracks
//!   what a worker has sent, `produce.rs` produces one row.
//! - [`recorder`]: marks published rows in batches, off the workers' path.
//! - [`supervisor`]: bounded queues, panic restarts with backoff, fail-fast start.
//! - [`classify`]: the one error classifier (Published / Wait / Retry / DeadLetter) and the
//!   outage policy.
//! - [`store`]: the SQL of claiming and recording.
//! - [`admin`]: the outbox as operators see it (summary, dead letters, redrive).
//! - [`cleanup`]: deletes PUBLISHED rows past the retention.
//!
//! [`RelayBuilder::start`] returns a [`RelayHandle`]; [`RelayHandle::shutdown`] stops it and
//! [`RelayHandle::wait`] returns when it has stopped. The stop sequence, in one place
//! ([`Relay::stop`]): stop claiming → close the queues → workers send what they hold and wait for
//! its delivery reports (at most `drain_timeout`, then the producers' queues are purged and
//! those rows go back to MySQL) → the recorder writes the last marks → release shard leases.

pub mod admin;
pub mod backlog_metrics;
mod candidates;
pub mod claim;
pub mod classify;
pub mod cleanup;
pub mod held;
mod in_flight;
pub mod leadership;
pub mod order;
mod produce;
pub mod recorder;
pub mod store;
pub mod supervisor;
pub mod worker;

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, watch, Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::hooks::Hooks;
pub use crate::telemetry::metrics::Metrics;
use crate::{config::RelaySettings, db::Db, kafka::Producers, shutdown::running};
use claim::ClaimLoop;
use classify::RetryPolicy;
use leadership::{Leadership, LeadershipStatus, ShardLeases};
use order::KeyOrder;
use worker::WorkerContext;

/// Recorder queue bound, in batches of ids.
const RECORDER_QUEUE: usize = 1_024;

/// A running relay. Cloning shares it.
#[derive(Clone)]
pub struct RelayHandle {
    /// This instance's name in lease columns.
    pub owner: String,
    /// The keys and rows in this relay's pipeline.
    order: Arc<KeyOrder>,
    /// This instance's shard leadership, live (for `/health/ready` and the admin summary).
    pub leadership: Arc<LeadershipStatus>,
    /// Cancelled to stop the relay; a child of the application's root token.
    stop: CancellationToken,
    /// Every task of the relay; closed once started, so `wait` returns when they have all ended.
    tasks: TaskTracker,
}

impl RelayHandle {
    /// Starts the stop sequence (idempotent). The application's root token does the same.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Returns when every task of the relay has ended.
    pub async fn wait(&self) {
        self.tasks.wait().await;
    }

    /// Rows this relay holds: claimed, their outcome not yet in MySQL (`order.rs`).
    pub fn rows_held(&self) -> usize {
        self.order.held()
    }
}

pub struct RelayDeps {
    pub db: Db,
    pub producers: Producers,
    /// Notified after each participation commit (and when a blocked key opens again).
    pub wakeup: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// How long the stop sequence waits for delivery reports before purging the producers.
    pub drain_timeout: Duration,
    /// How long a row may wait for Kafka's answer before the producer is purged
    /// (`KAFKA_MESSAGE_TIMEOUT_MS`).
    pub stuck_after: Duration,
}

/// Builds a relay and starts it: `RelayBuilder::new(settings, deps).start(&parent)`, with
/// [`RelayBuilder::hooks`] for a test that steps into it.
pub struct RelayBuilder<'a> {
    settings: &'a RelaySettings,
    deps: RelayDeps,
    hooks: Arc<dyn Hooks>,
}

impl<'a> RelayBuilder<'a> {
    pub fn new(settings: &'a RelaySettings, deps: RelayDeps) -> Self {
        Self {
            settings,
            deps,
            hooks: crate::hooks::none(),
        }
    }

    /// The points where a test steps in (none by default).
    pub fn hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Starts the relay: workers first (an error if they cannot start), then leadership, the
    /// claim loop and cleanup, all stopped by `parent` (or [`RelayHandle::shutdown`]).
    pub async fn start(self, parent: &CancellationToken) -> anyhow::Result<RelayHandle> {
        let (settings, deps) = (self.settings, &self.deps);
        let (lead_tx, lead_rx) = watch::channel(Leadership::none());
        let shared = Shared {
            owner: instance_name(),
            hooks: self.hooks.clone(),
            order: Arc::new(KeyOrder::new(deps.wakeup.clone())),
            leadership: lead_rx,
        };
        tracing::info!(owner = %shared.owner, host = %std::env::var("HOSTNAME").unwrap_or_default(),
            "Relay starting; its shard leases name it by this owner.");
        let status = Arc::new(LeadershipStatus::new(
            &shared.owner,
            settings.shards,
            shared.leadership.clone(),
        ));
        let (recorder_tx, recorder_rx) = mpsc::channel(RECORDER_QUEUE);
        // Workers stop on their own when their queue closes; this token only tells them that
        // outcomes that cannot be written may now be left to the lease.
        let workers_stopping = CancellationToken::new();
        let ctx = worker_context(settings, deps, &shared, recorder_tx, &workers_stopping);
        let workers = TaskTracker::new();
        let senders =
            supervisor::start(ctx, settings.workers, settings.channel_capacity, &workers).await?;
        workers.close();
        let leases = shard_leases(settings, deps, &shared);
        leases.ensure_rows().await?;
        let claims = claim_loop(settings, deps, &shared);

        let stop = parent.child_token();
        let tasks = TaskTracker::new();
        let recorder = tasks.spawn(running::track(
            "relay recorder",
            recorder::run(deps.db.clone(), shared.order.clone(), recorder_rx)
                .instrument(tracing::info_span!("relay_recorder")),
        ));
        tasks.spawn(running::track(
            "relay cleanup",
            cleanup::run(
                deps.db.clone(),
                settings.retention,
                settings.cleanup_batch,
                stop.clone(),
            )
            .instrument(tracing::info_span!("relay_cleanup")),
        ));
        let leadership_stop = CancellationToken::new();
        let leadership = tasks.spawn(running::track(
            "relay shard leadership",
            leases
                .run(lead_tx, status.clone(), leadership_stop.clone())
                .instrument(tracing::info_span!("relay_leadership")),
        ));
        let relay = Relay {
            producers: self.deps.producers,
            drain_timeout: self.deps.drain_timeout,
            workers,
            workers_stopping,
            recorder,
            leadership_stop,
            leadership,
        };
        let claim_stop = stop.clone();
        tasks.spawn(running::track(
            "relay claims, then the relay's stop sequence",
            async move {
                claims.run(senders, claim_stop).await;
                relay.stop().await;
            }
            .instrument(tracing::info_span!("relay_claims", owner = %shared.owner)),
        ));
        tasks.close();
        Ok(RelayHandle {
            owner: shared.owner.clone(),
            order: shared.order.clone(),
            leadership: status,
            stop,
            tasks,
        })
    }
}

/// What every part of one relay instance shares.
struct Shared {
    /// This instance's name in lease columns.
    owner: String,
    hooks: Arc<dyn Hooks>,
    order: Arc<KeyOrder>,
    /// The shards this instance leads, as the leadership task last saw them.
    leadership: watch::Receiver<Leadership>,
}

/// Twelve random hex digits (48 bits), logged with the host name when the relay starts. Short
/// since the time every claimed row was written with it (row leases; docs/design.md §7).
fn instance_name() -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    id[id.len() - 12..].to_string()
}

fn worker_context(
    settings: &RelaySettings,
    deps: &RelayDeps,
    shared: &Shared,
    recorder: mpsc::Sender<Vec<i64>>,
    stopping: &CancellationToken,
) -> Arc<WorkerContext> {
    Arc::new(WorkerContext {
        db: deps.db.clone(),
        producers: deps.producers.clone(),
        owner: shared.owner.clone(),
        policy: RetryPolicy {
            max_attempts: settings.max_attempts,
            base: settings.backoff_base,
            cap: settings.backoff_cap,
            max_age: settings.max_retry_age,
        },
        batch_size: settings.batch_size as usize,
        max_in_flight: settings.max_in_flight,
        stuck_after: deps.stuck_after,
        order: shared.order.clone(),
        leadership: shared.leadership.clone(),
        recorder,
        stop: stopping.clone(),
        hooks: shared.hooks.clone(),
        metrics: deps.metrics.clone(),
    })
}

fn shard_leases(settings: &RelaySettings, deps: &RelayDeps, shared: &Shared) -> ShardLeases {
    ShardLeases {
        db: deps.db.clone(),
        owner: shared.owner.clone(),
        total: settings.shards,
        lease: settings.lease,
        hooks: shared.hooks.clone(),
        shards_led: deps.metrics.relay_shards_led.clone(),
    }
}

fn claim_loop(settings: &RelaySettings, deps: &RelayDeps, shared: &Shared) -> ClaimLoop {
    ClaimLoop {
        db: deps.db.clone(),
        owner: shared.owner.clone(),
        batch: settings.batch_size,
        poll: settings.poll_interval,
        interval: settings.claim_interval,
        shards: settings.shards,
        order: shared.order.clone(),
        wakeup: deps.wakeup.clone(),
        leadership: shared.leadership.clone(),
        hooks: shared.hooks.clone(),
    }
}

/// What the stop sequence needs after the claim loop has ended.
struct Relay {
    producers: Producers,
    drain_timeout: Duration,
    /// The supervised workers; they end when their queues are closed and drained.
    workers: TaskTracker,
    /// Tells workers that outcomes that cannot be written may be given up.
    workers_stopping: CancellationToken,
    /// Ends when the last worker dropped its sender and the last marks are written.
    recorder: tokio::task::JoinHandle<()>,
    /// Leadership outlives everything that publishes: shards are released last.
    leadership_stop: CancellationToken,
    leadership: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// The queues are closed (the claim loop dropped its senders): let the workers finish, purge
    /// what Kafka did not acknowledge in time, write the last marks, give the shards back.
    async fn stop(self) {
        tracing::info!("Relay stopping: no more claims; waiting for deliveries in flight.");
        if tokio::time::timeout(self.drain_timeout, self.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?self.drain_timeout,
                "Kafka did not acknowledge every row in time; purging the producer, those rows go back to the outbox.");
            self.workers_stopping.cancel();
            crate::kafka::producer::purge(self.producers.main.get()).await;
            crate::kafka::producer::purge(self.producers.dlq.get()).await;
            if tokio::time::timeout(Duration::from_secs(2), self.workers.wait())
                .await
                .is_err()
            {
                tracing::warn!("Relay workers did not stop after the purge; their rows stay PENDING for the next leader.");
            }
        }
        self.workers_stopping.cancel();
        // Published rows must be marked before the shard leases go, or they would be sent again.
        if tokio::time::timeout(Duration::from_secs(5), self.recorder)
            .await
            .is_err()
        {
            tracing::warn!(
                "The recorder did not finish; the next leader re-sends the unmarked rows."
            );
        }
        self.leadership_stop.cancel();
        let _ = self.leadership.await;
        tracing::info!("Relay stopped.");
    }
}
