//! What the crate's own tests read from a built application, and nothing else does: the embedded
//! broker they inject Kafka faults through, the relay whose owner they compare, and a [`Probe`] of
//! the counters they synchronize on, a reconciler pass and a drift audit, which outlives the
//! application being moved into its server. Reads only: where a test steps into the application,
//! it does so through the one seam, `crate::hooks`, given to the builder.

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
            participations: self.inside.participations.clone(),
            metrics: self.metrics.clone(),
            db: self.inside.db.clone(),
            consumers: self.inside.consumers.clone(),
            drift: self.inside.drift.clone(),
        }
    }
}

/// Reads inside a running application. Cheap to clone.
#[derive(Clone)]
pub struct Probe {
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

    /// The instance that writes the campaign as this one sees it, and this one's id (`None`
    /// with `WRITER_PER_CAMPAIGN=false`).
    pub fn writer_seen(&self, campaign_id: i64) -> Option<(String, String)> {
        let writers = self.participations.writers();
        Some((
            writers.writer_seen(campaign_id)?.to_string(),
            writers.me()?.to_string(),
        ))
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
    ) -> Result<u64, crate::upkeep::reconcile::ReconcileError> {
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

    /// The application's metrics, as `/metrics` shows them.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }
}
