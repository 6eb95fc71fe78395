//! What the crate's own tests read from a built application, and nothing else does (feature
//! `test-hooks`, which only the crate's dev-dependency on itself turns on): the embedded broker
//! they inject Kafka faults through, the relay whose owner they compare, and a [`Probe`] of the
//! counters they synchronize on and a reconciler pass, which outlives the application being moved into its server.

use std::sync::Arc;

use crate::{
    config::consumers::ConsumerName,
    consumer::{ConsumerHandle, ConsumerReport},
    db::Db,
    join::ParticipationService,
    kafka::EmbeddedBroker,
    relay::RelayHandle,
    startup::Application,
    telemetry::metrics::Metrics,
    upkeep::drift::DriftAudit,
};

impl Application {
    /// The embedded Kafka broker, when one was started.
    pub fn embedded_broker(&self) -> Option<Arc<EmbeddedBroker>> {
        self.embedded.clone()
    }

    /// The running relay, when enabled.
    pub fn relay(&self) -> Option<RelayHandle> {
        self.relay.clone()
    }

    pub fn probe(&self) -> Probe {
        Probe {
            kept_control: self.apis.7.controls.kept_answer_hold(),
            participations: self.apis.2.participations.clone(),
            metrics: self.metrics.clone(),
            db: self.apis.0.db.clone(),
            consumers: self.apis.0.consumers.clone(),
            drift: self.drift.clone(),
        }
    }
}

/// Reads inside a running application. Cheap to clone.
#[derive(Clone)]
pub struct Probe {
    kept_control: Arc<HoldPoint>,
    participations: ParticipationService,
    metrics: Arc<Metrics>,
    db: Db,
    consumers: Vec<ConsumerHandle>,
    drift: DriftAudit,
}

impl Probe {
    /// Gate rebuilds this instance has run that read MySQL.
    pub fn gate_loads(&self) -> u64 {
        self.participations.gate_loads()
    }

    /// Wins of the campaign queued for its next group-commit transaction.
    pub fn group_commit_queued(&self, campaign_id: i64) -> usize {
        self.participations.group_commit_queued(campaign_id)
    }

    /// One pass of the reconciler over reservations older than `older_than`; how many it gave
    /// back.
    pub async fn reconcile(
        &self,
        older_than: std::time::Duration,
    ) -> Result<u64, crate::join::JoinError> {
        self.participations.reconciler().run_once(older_than).await
    }

    /// The API's own pool (to check how its connections are set up).
    pub fn api_pool(&self) -> Db {
        self.db.clone()
    }

    /// The live report of a consumer running in the application.
    pub fn consumer(&self, name: ConsumerName) -> Option<Arc<ConsumerReport>> {
        self.consumers
            .iter()
            .find(|c| c.report.name == name)
            .map(|c| c.report.clone())
    }

    /// One drift audit of every campaign now, as the audit loop runs one: it sets
    /// `firstcome_gate_drift_units` and repairs nothing (a repair needs two audits in a row).
    pub async fn audit_drift(&self) {
        self.drift.audit_once().await;
    }

    /// Where a gate rebuild waits inside its MySQL snapshot, between reading the stock and
    /// reading the returned wins, once armed.
    pub fn rebuild_hold(&self) -> Arc<HoldPoint> {
        self.participations.rebuild_hold()
    }

    /// Where a refused join's read of what MySQL owes the gate waits before it reads, once armed.
    pub fn owed_read_hold(&self) -> Arc<HoldPoint> {
        self.participations.owed_read_hold()
    }

    /// What a join the gate refused at `refused_at` learns from the campaign's markers: whether
    /// a read ran for it, and whether it began after the refusal (only then may the sold-out
    /// memo repeat the join's SOLD_OUT).
    pub async fn give_owed(
        &self,
        campaign_id: i64,
        refused_at: std::time::Instant,
    ) -> Result<crate::upkeep::loader::Owed, String> {
        self.participations.give_owed(campaign_id, refused_at).await
    }

    /// Where a gate rebuild waits after it filled the winners set, before it writes the
    /// campaign's state, once armed.
    pub fn rebuild_load_hold(&self) -> Arc<HoldPoint> {
        self.participations.rebuild_load_hold()
    }

    /// Where a win's write waits after its guarded decrement matched no row, before it reads
    /// why, once armed.
    pub fn refusal_hold(&self) -> Arc<HoldPoint> {
        self.participations.refusal_hold()
    }

    /// Where a win's batch waits right before its COMMIT, once armed.
    pub fn commit_hold(&self) -> Arc<HoldPoint> {
        self.participations.commit_hold()
    }

    /// Where a live control that changed nothing waits before it answers, once armed.
    pub fn kept_control_hold(&self) -> Arc<HoldPoint> {
        self.kept_control.clone()
    }

    /// The application's metrics, as `/metrics` shows them.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
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

    /// Called by the service at the point: waits for [`HoldPoint::release`] if armed.
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

/// Where a test may have this process killed, between two steps that a crash can separate. The
/// process kills itself with SIGKILL at the first point named by `FIRSTCOME_TEST_CRASH_AT`
/// (read once), so a test of the real binary can stop it exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A state change that closed a win committed; its units are not yet back in the gate.
    BeforeGateReturn,
    /// A live control committed; the gate does not have it yet.
    BeforeGateControl,
}

impl CrashPoint {
    fn name(self) -> &'static str {
        match self {
            CrashPoint::BeforeGateReturn => "before-gate-return",
            CrashPoint::BeforeGateControl => "before-gate-control",
        }
    }

    /// SIGKILL now if the test asked for this point.
    pub fn reached(self) {
        static ASKED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let asked = ASKED.get_or_init(|| std::env::var("FIRSTCOME_TEST_CRASH_AT").ok());
        if asked.as_deref() == Some(self.name()) {
            tracing::warn!(
                point = self.name(),
                "Crash point reached: SIGKILL (test hook)."
            );
            let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        }
    }
}
