//! The one place where tests reach inside a running application (docs/design.md §19): through
//! the one seam, `firstcome::hooks::Hooks`, injected at build as [`TestHooks`] (the relay's
//! faults: a worker panic at a key, a frozen claim loop, stopped lease renewals; and the
//! [`HoldPoint`]s where a test holds one request), and through `startup::testing`'s reads: the
//! embedded broker, the relay's handle, and a probe of the participation service's counters, its
//! reconciler, the drift audit and the metrics registry.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use firstcome::{
    config::Settings,
    hooks::Hooks,
    kafka::EmbeddedBroker,
    relay::RelayHandle,
    startup::{testing::Probe, Application},
};
use tokio::sync::{RwLock, RwLockWriteGuard};

use crate::{spawn::TestApp, wait::wait_until};

/// The application's test hooks: the relay's failure points and the hold points, inert unless a
/// test sets or arms them.
#[derive(Default)]
pub struct TestHooks {
    /// A worker panics once when it meets a row with this message key.
    panic_on_key: Mutex<Option<String>>,
    /// Held for writing, it freezes the claim loop after its next claim that takes rows, before
    /// it hands them out. With `pause_renewals` too: a paused instance.
    pause_claims: RwLock<()>,
    /// Held for writing, it stops the lease renewals (the leases run out).
    pause_renewals: RwLock<()>,
    /// A win's write after its guarded decrement matched no row, before it reads why.
    pub refusal: HoldPoint,
    /// A win's batch right before its COMMIT.
    pub commit: HoldPoint,
    /// A handed-over win written on its campaign's writer, before the reply to its origin.
    pub handover_reply: HoldPoint,
    /// A steal's transfer between bucket rows right before its COMMIT.
    pub steal: HoldPoint,
    /// A gate rebuild inside its MySQL snapshot, between reading the stock and reading the
    /// returned wins.
    pub rebuild: HoldPoint,
    /// A gate rebuild after it filled the winners set, before it writes the campaign's state.
    pub rebuild_load: HoldPoint,
    /// A refused join's read of what MySQL owes the gate, before it reads.
    pub owed_read: HoldPoint,
    /// A join refused SOLD_OUT while reservations are in flight, before it waits for them.
    pub in_flight_wait: HoldPoint,
    /// A live control that changed nothing, before it answers.
    pub kept_control: HoldPoint,
    /// A live control committed, before its call to the gate.
    pub gate_control: HoldPoint,
}

#[async_trait]
impl Hooks for TestHooks {
    fn before_send(&self, key: &str) {
        let mut slot = self.panic_on_key.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_deref() == Some(key) {
            *slot = None;
            drop(slot);
            panic!("injected relay worker panic at key {key}");
        }
    }

    async fn after_claim(&self) {
        drop(self.pause_claims.read().await);
    }

    async fn before_renewal(&self) {
        drop(self.pause_renewals.read().await);
    }

    async fn after_refused_decrement(&self) {
        self.refusal.reached().await;
    }

    async fn before_handover_reply(&self) {
        self.handover_reply.reached().await;
    }

    async fn before_commit(&self) {
        self.commit.reached().await;
    }

    async fn before_steal_commit(&self) {
        self.steal.reached().await;
    }

    async fn in_rebuild_snapshot(&self) {
        self.rebuild.reached().await;
    }

    async fn before_rebuild_load(&self) {
        self.rebuild_load.reached().await;
    }

    async fn before_owed_read(&self) {
        self.owed_read.reached().await;
    }

    async fn before_in_flight_wait(&self) {
        self.in_flight_wait.reached().await;
    }

    async fn before_kept_control_answer(&self) {
        self.kept_control.reached().await;
    }

    async fn before_gate_control(&self) {
        self.gate_control.reached().await;
    }
}

impl TestHooks {
    /// The next relay worker to meet a row with message key `key` panics (once).
    pub fn panic_worker_at(&self, key: &str) {
        *self.panic_on_key.lock().expect("lock") = Some(key.into());
    }

    /// Whether the panic set by `panic_worker_at` has fired.
    pub fn worker_panicked(&self) -> bool {
        self.panic_on_key.lock().expect("lock").is_none()
    }

    /// While held, the relay's claim loop freezes after its next claim that takes rows.
    pub async fn pause_claims(&self) -> RwLockWriteGuard<'_, ()> {
        self.pause_claims.write().await
    }

    /// While held, the relay's lease renewals stop (its leases run out).
    pub async fn pause_renewals(&self) -> RwLockWriteGuard<'_, ()> {
        self.pause_renewals.write().await
    }
}

/// What a test keeps of the inside of an application it built.
pub struct Inside {
    /// `None` when the settings name `KAFKA_BOOTSTRAP_SERVERS`.
    pub broker: Option<Arc<EmbeddedBroker>>,
    pub relay: Option<RelayHandle>,
    pub hooks: Arc<TestHooks>,
    pub probe: Probe,
}

/// Builds the application with [`TestHooks`] as its hooks, and takes what tests read inside it
/// before it is moved into its server.
pub async fn build(settings: Settings) -> (Application, Inside) {
    let hooks = Arc::new(TestHooks::default());
    let app = Application::builder(settings)
        .hooks(hooks.clone())
        .build()
        .await
        .expect("build application");
    let inside = Inside {
        broker: app.embedded_broker(),
        relay: app.relay(),
        hooks,
        probe: app.probe(),
    };
    (app, inside)
}

impl TestApp {
    /// Waits until `n` wins are queued in the app's group commit for `campaign_id`.
    pub async fn wait_for_queued_wins(&self, campaign_id: i64, n: usize) {
        wait_until(
            &format!("{n} wins to queue for the next group commit"),
            Duration::from_secs(20),
            || async { self.probe.group_commit_queued(campaign_id) == n },
        )
        .await;
    }

    /// Transactions and wins the outbox path committed through group commit
    /// (`firstcome_group_commit_batch_size` count and sum).
    pub fn group_commits(&self) -> (u64, u64) {
        (
            self.metric("firstcome_group_commit_batch_size_count"),
            self.metric("firstcome_group_commit_batch_size_sum"),
        )
    }

    /// The value of the app's metric series `name` (no labels), 0 when it has none yet.
    pub fn metric(&self, name: &str) -> u64 {
        (self.probe.metrics_text().lines())
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse::<f64>().expect("a number")) as u64
    }

    /// How many times the app loaded a campaign into the Redis gate.
    pub fn gate_loads(&self) -> u64 {
        self.probe.gate_loads()
    }

    /// Runs the app's reconciler once over reservations older than `older_than`; returns how
    /// many it gave back.
    pub async fn reconcile(&self, older_than: Duration) -> u64 {
        self.probe.reconcile(older_than).await.expect("reconcile")
    }

    /// The next relay worker to meet a row with message key `key` panics (once).
    pub fn panic_relay_worker_at(&self, key: &str) {
        self.hooks.panic_worker_at(key);
    }

    /// Whether the panic set by `panic_relay_worker_at` has fired.
    pub fn relay_worker_panicked(&self) -> bool {
        self.hooks.worker_panicked()
    }

    /// While held, the relay's claim loop freezes after its next claim that takes rows.
    pub async fn pause_relay_claims(&self) -> RwLockWriteGuard<'_, ()> {
        self.hooks.pause_claims().await
    }

    /// While held, the relay's lease renewals stop (its leases run out).
    pub async fn pause_relay_renewals(&self) -> RwLockWriteGuard<'_, ()> {
        self.hooks.pause_renewals().await
    }
}

/// A point where a test holds one request of a running application (in this process) until it
/// lets it go: the next request to reach it once armed waits there, and only that one. Two
/// steps that real time could interleave are thereby put in the order a test needs.
#[derive(Default)]
pub struct HoldPoint {
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    released: tokio::sync::Notify,
}

impl HoldPoint {
    /// The next request to reach the point waits there.
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Called by the application at the point: waits for [`HoldPoint::release`] if armed.
    pub async fn reached(&self) {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.reached.notify_one();
            self.released.notified().await;
        }
    }

    /// Until a request waits at the point.
    pub async fn wait_reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the waiting request go on.
    pub fn release(&self) {
        self.released.notify_one();
    }
}
