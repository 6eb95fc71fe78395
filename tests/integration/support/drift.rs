//! The gate's drift after a test (docs/design.md §14): `firstcome_gate_drift_units{campaign}` must
//! read 0 once the test's traffic and faults are over. An in-process app runs an audit on demand
//! (its probe); the real binary is read over HTTP while its own audit loop runs.

use std::time::Duration;

use firstcome::upkeep::drift::AUDIT_EVERY;

use crate::spawn::TestApp;

/// How long the gate may take to settle after a fault: returns still owed to it, reservations
/// a crashed request left (the reconciler's timeout), a repair (two audits).
const SETTLE: Duration = Duration::from_secs(30);

/// The campaign's drift in a Prometheus exposition, `None` while it has no series.
pub fn drift_in(exposition: &str, campaign: i64) -> Option<i64> {
    let series = format!("firstcome_gate_drift_units{{campaign=\"{campaign}\"}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map(|value| value.trim().parse().expect("an integer gauge"))
}

impl TestApp {
    /// Waits until an audit of the campaign's gate finds no drift; fails naming the last drift.
    pub async fn assert_no_drift(&self, campaign: i64) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            self.probe.audit_drift().await;
            let drift = drift_in(&self.probe.metrics_text(), campaign);
            if drift == Some(0) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "campaign {campaign}: the drift gauge still reads {drift:?} after {SETTLE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the real binary at `base` reports no drift for the campaign (its loop audits
/// every [`AUDIT_EVERY`]).
pub async fn assert_no_drift_at(client: &reqwest::Client, base: &str, campaign: i64) {
    let limit = SETTLE + AUDIT_EVERY * 2;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match client.get(format!("{base}/metrics")).send().await {
            Ok(reply) => drift_in(&reply.text().await.unwrap_or_default(), campaign),
            Err(_) => None,
        };
        if last == Some(0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "campaign {campaign} at {base}: the drift gauge still reads {last:?} after {limit:?} \
             (None: no series, the campaign not audited there)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
