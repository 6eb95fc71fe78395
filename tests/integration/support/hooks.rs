//! The one place where tests reach into production internals that exist for tests: the
//! participation service's counters and reconciler (`gate_loads`, `group_commit_queued`,
//! `reconcile`), the metrics registry, the relay's fault hooks (`relay::faults::Faults`) and the
//! application's embedded broker. When those production APIs change, this file is what follows.

use std::{sync::Arc, time::Duration};

use firstcome::{kafka::EmbeddedBroker, startup::Application};
use tokio::sync::RwLockWriteGuard;

use crate::{spawn::TestApp, wait::wait_until};

/// The application's embedded broker, taken before it runs (`None` when the settings name
/// `KAFKA_BOOTSTRAP_SERVERS`).
pub fn embedded_broker(app: &Application) -> Option<Arc<EmbeddedBroker>> {
    app.embedded_broker()
}

impl TestApp {
    /// Waits until `n` wins are queued in the app's group commit for `campaign_id`.
    pub async fn wait_for_queued_wins(&self, campaign_id: i64, n: usize) {
        wait_until(
            &format!("{n} wins to queue for the next group commit"),
            Duration::from_secs(20),
            || async { self.state.participations.group_commit_queued(campaign_id) == n },
        )
        .await;
    }

    /// Transactions and wins the outbox path committed through group commit
    /// (`firstcome_group_commit_batch_size` count and sum).
    pub fn group_commits(&self) -> (u64, u64) {
        let text = self.state.metrics.encode();
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
        self.state.participations.gate_loads()
    }

    /// Runs the app's reconciler once over reservations older than `older_than`; returns how
    /// many it gave back.
    pub async fn reconcile(&self, older_than: Duration) -> u64 {
        self.state
            .participations
            .reconcile(older_than)
            .await
            .expect("reconcile")
    }

    fn relay_faults(&self) -> &firstcome::relay::faults::Faults {
        &self.relay.as_ref().expect("relay").faults
    }

    /// The next relay worker to meet a row with message key `key` panics (once).
    pub fn panic_relay_worker_at(&self, key: &str) {
        *self.relay_faults().panic_on_key.lock().expect("lock") = Some(key.into());
    }

    /// Whether the panic set by `panic_relay_worker_at` has fired.
    pub fn relay_worker_panicked(&self) -> bool {
        self.relay_faults()
            .panic_on_key
            .lock()
            .expect("lock")
            .is_none()
    }

    /// While held, the relay's claim loop freezes after its next claim that takes rows.
    pub async fn pause_relay_claims(&self) -> RwLockWriteGuard<'_, ()> {
        self.relay_faults().pause_claims.write().await
    }

    /// While held, the relay's lease renewals stop (its leases run out).
    pub async fn pause_relay_renewals(&self) -> RwLockWriteGuard<'_, ()> {
        self.relay_faults().pause_renewals.write().await
    }
}
