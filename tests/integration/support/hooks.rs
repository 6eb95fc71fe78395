//! The one place where tests reach inside a running application, through the two doors it has
//! for them (docs/design.md §19): the relay's hooks, injected at build as [`Faults`] (a worker
//! panic at a key, a frozen claim loop, stopped lease renewals), and `startup::testing` (feature
//! `test-hooks`): the embedded broker, the relay's handle, and a probe of the participation
//! service's counters, its reconciler and the metrics registry.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use firstcome::{
    config::Settings,
    kafka::EmbeddedBroker,
    relay::{hooks::RelayHooks, RelayHandle},
    startup::{testing::Probe, Application},
};
use tokio::sync::{RwLock, RwLockWriteGuard};

use crate::{spawn::TestApp, wait::wait_until};

/// The relay's failure points; inert unless a test sets them.
#[derive(Default)]
pub struct Faults {
    /// A worker panics once when it meets a row with this message key.
    panic_on_key: Mutex<Option<String>>,
    /// Held for writing, it freezes the claim loop after its next claim that takes rows, before
    /// it hands them out. With `pause_renewals` too: a paused instance.
    pause_claims: RwLock<()>,
    /// Held for writing, it stops the lease renewals (the leases run out).
    pause_renewals: RwLock<()>,
}

#[async_trait]
impl RelayHooks for Faults {
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
}

impl Faults {
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
    pub faults: Arc<Faults>,
    pub probe: Probe,
}

/// Builds the application with [`Faults`] as its relay's hooks, and takes what tests read
/// inside it before it is moved into its server.
pub async fn build(settings: Settings) -> (Application, Inside) {
    let faults = Arc::new(Faults::default());
    let app = Application::builder(settings)
        .relay_hooks(faults.clone())
        .build()
        .await
        .expect("build application");
    let inside = Inside {
        broker: app.embedded_broker(),
        relay: app.relay(),
        faults,
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
        let text = self.probe.metrics_text();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .map_or(0.0, |v| v.parse::<f64>().expect("a number")) as u64
        };
        (
            value("firstcome_group_commit_batch_size_count"),
            value("firstcome_group_commit_batch_size_sum"),
        )
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
        self.faults.panic_worker_at(key);
    }

    /// Whether the panic set by `panic_relay_worker_at` has fired.
    pub fn relay_worker_panicked(&self) -> bool {
        self.faults.worker_panicked()
    }

    /// While held, the relay's claim loop freezes after its next claim that takes rows.
    pub async fn pause_relay_claims(&self) -> RwLockWriteGuard<'_, ()> {
        self.faults.pause_claims().await
    }

    /// While held, the relay's lease renewals stop (its leases run out).
    pub async fn pause_relay_renewals(&self) -> RwLockWriteGuard<'_, ()> {
        self.faults.pause_renewals().await
    }
}
