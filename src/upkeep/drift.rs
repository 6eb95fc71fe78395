//! The drift audit, on every instance (docs/design.md §14): every [`AUDIT_EVERY`], for each open
//! campaign this instance serves whose gate state is loaded, it compares what the gate holds with
//! MySQL and exports the difference as `firstcome_gate_drift_units{campaign}`:
//!
//! drift = gate stock + units in open reservations + units in `gate_return` markers + units of
//! stock changes in `gate_control` markers − `remaining_stock`.
//!
//! In a quiet, consistent state it is 0. Redis is read first (stock and the pending hash in one
//! script), then MySQL (the stock and the markers in one statement), so anything that moves
//! between the two reads and explains a difference touches the gate's stock after it was read:
//! a join's reservation, a closed win's return. The audit repairs only what it can prove: the
//! same non-zero drift in two consecutive audits with no open reservation and no marker either
//! time. It then sets the gate's stock to `remaining_stock` with `lua/repair.lua`, which writes
//! only if the stock is still the one observed and no reservation opened since.
//!
//! A bucketed campaign (docs/design.md §21) is audited gate by gate, each bucket's against its
//! row: units its gate set aside for a transfer count as open reservations, its `gate_transfer`
//! markers as owed units, the campaign's control markers as owed but moving none of its stock
//! (a withdrawal reaches a bucket as a transfer); the gauge is the buckets' drifts summed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{DbErr, FromQueryResult};
use tokio_util::sync::CancellationToken;

use crate::{
    campaign::{Campaign, CampaignCache, Window},
    db::{sql::stmt, Db},
    gate::{
        audit::{GateHolding, Repair},
        Gate, GateError, Slot,
    },
    telemetry::metrics::{CampaignLabels, Metrics},
};

/// How often each campaign is audited. A real drift is repaired after two audits, so within
/// about twice this.
pub const AUDIT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error("could not read the campaign's stock and markers from MySQL")]
    Db(#[from] DbErr),
    #[error("could not read or repair the campaign's gate state")]
    Gate(#[from] GateError),
}

/// MySQL's side, read in one statement: the truth and the units still owed to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Ledger {
    pub remaining_stock: i64,
    /// `gate_return` and `gate_control` rows of the campaign.
    pub markers: i64,
    /// Units MySQL moved that the gate may not have yet: returned units, and stock added
    /// (positive) or withdrawn (negative) by controls.
    pub marker_units: i64,
}

/// One audit of one campaign: the gate's holding, then MySQL's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub gate: GateHolding,
    pub ledger: Ledger,
}

impl Observation {
    /// Units the gate would sell that MySQL does not have (negative: units MySQL has that the
    /// gate would never sell).
    pub fn drift(&self) -> i64 {
        self.gate.stock + self.gate.reserved_units + self.ledger.marker_units
            - self.ledger.remaining_stock
    }

    /// Nothing in flight that could explain a difference: no open reservation, no marker.
    pub fn quiet(&self) -> bool {
        self.gate.open_reservations == 0 && self.ledger.markers == 0
    }
}

/// What an audit concludes, given the campaign's previous audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No drift.
    Consistent,
    /// A drift that a transient may explain (yet): measured, not touched.
    Watch,
    /// A proven drift: set the gate's stock from `observed` to `to`.
    Repair { observed: i64, to: i64 },
}

/// Repairs only the same non-zero drift twice in a row, quiet both times.
pub fn verdict(previous: Option<&Observation>, now: &Observation) -> Verdict {
    let drift = now.drift();
    if drift == 0 {
        return Verdict::Consistent;
    }
    match previous {
        Some(before) if before.quiet() && now.quiet() && before.drift() == drift => {
            Verdict::Repair {
                observed: now.gate.stock,
                to: now.ledger.remaining_stock,
            }
        }
        _ => Verdict::Watch,
    }
}

async fn ledger(db: &Db, slot: Slot) -> Result<Option<Ledger>, DbErr> {
    let statement = match slot.bucket {
        None => stmt(
            "SELECT c.remaining_stock, \
             CAST((SELECT COUNT(*) FROM gate_return g WHERE g.campaign_id = c.id) \
               + (SELECT COUNT(*) FROM gate_control k WHERE k.campaign_id = c.id) AS SIGNED) AS markers, \
             CAST(COALESCE((SELECT SUM(g.quantity) FROM gate_return g WHERE g.campaign_id = c.id), 0) \
               + COALESCE((SELECT SUM(k.delta) FROM gate_control k WHERE k.campaign_id = c.id), 0) AS SIGNED) \
             AS marker_units FROM campaign c WHERE c.id = ?",
            vec![slot.campaign_id.into()],
        ),
        // A bucket's row, its returns and transfers owed, and the campaign's controls owed,
        // which move no bucket's stock (docs/design.md §21) but are not applied yet: not quiet.
        Some(bucket) => stmt(
            "SELECT b.remaining_stock, \
             CAST((SELECT COUNT(*) FROM gate_return g WHERE g.campaign_id = b.campaign_id AND g.bucket = b.bucket) \
               + (SELECT COUNT(*) FROM gate_transfer t WHERE t.campaign_id = b.campaign_id AND t.bucket = b.bucket) \
               + (SELECT COUNT(*) FROM gate_control k WHERE k.campaign_id = b.campaign_id) AS SIGNED) AS markers, \
             CAST(COALESCE((SELECT SUM(g.quantity) FROM gate_return g \
                 WHERE g.campaign_id = b.campaign_id AND g.bucket = b.bucket), 0) \
               + COALESCE((SELECT SUM(t.units) FROM gate_transfer t \
                 WHERE t.campaign_id = b.campaign_id AND t.bucket = b.bucket), 0) AS SIGNED) \
             AS marker_units FROM campaign_bucket b WHERE b.campaign_id = ? AND b.bucket = ?",
            vec![slot.campaign_id.into(), bucket.into()],
        ),
    };
    Ledger::find_by_statement(statement).one(db).await
}

/// The audit loop's dependencies. Cheap to clone.
#[derive(Clone)]
pub struct DriftAudit {
    db: Db,
    gate: Gate,
    campaigns: Arc<CampaignCache>,
    metrics: Arc<Metrics>,
}

impl DriftAudit {
    pub fn new(db: Db, gate: Gate, campaigns: Arc<CampaignCache>, metrics: Arc<Metrics>) -> Self {
        Self {
            db,
            gate,
            campaigns,
            metrics,
        }
    }

    /// Audits every [`AUDIT_EVERY`] until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        // Each campaign's last observation, kept for one audit only: "consecutive" means that.
        let mut last: HashMap<Slot, Observation> = HashMap::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(AUDIT_EVERY) => {}
            }
            last = self.audit_all(&last).await;
        }
        tracing::debug!("Drift audit stopped.");
    }

    /// One audit of every campaign, measured and exported, none repaired (tests run it on demand).
    pub async fn audit_once(&self) {
        self.audit_all(&HashMap::new()).await;
    }

    /// One audit of every open campaign cached here, each of its gates (a bucketed campaign
    /// has one per bucket, each compared with its bucket's row); returns the observations made.
    async fn audit_all(&self, last: &HashMap<Slot, Observation>) -> HashMap<Slot, Observation> {
        let mut observed = HashMap::new();
        for id in self.campaigns.ids().await {
            let labels = CampaignLabels { campaign: id };
            let campaign = match self.campaigns.get(&self.db, id).await {
                Ok(Some(c)) if c.window(Utc::now()) == Window::Open => c,
                Ok(_) => {
                    self.metrics.gate_drift.remove(&labels);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, campaign_id = id, "Could not read a campaign to audit.");
                    continue;
                }
            };
            // A bucketed campaign at rest is not audited (gate::activity): no join, reservation or
            // take reached its buckets for longer than two audits, so a drift there cannot have
            // refused anybody; the first join marks it again, and the audits resume. Its gauge
            // keeps the last audit's figure.
            if campaign.buckets > 1 && !self.gate.busy(id).await.unwrap_or(true) {
                continue;
            }
            // The campaign's drift is its gates' (a bucketed campaign's buckets', summed).
            let mut drift = None;
            for slot in campaign.slots() {
                let Some(now) = self.audit_slot(&campaign, slot).await else {
                    continue;
                };
                *drift.get_or_insert(0) += now.drift();
                if !self.act(&campaign, slot, last.get(&slot), &now).await {
                    observed.insert(slot, now);
                }
            }
            match drift {
                Some(units) => {
                    self.metrics.gate_drift.get_or_create(&labels).set(units);
                }
                None => {
                    self.metrics.gate_drift.remove(&labels);
                }
            }
        }
        observed
    }

    /// One gate's observation, logged; `None` when there is nothing to compare (or it failed).
    async fn audit_slot(&self, campaign: &Campaign, slot: Slot) -> Option<Observation> {
        match self.observe(campaign, slot).await {
            Ok(Some(now)) => {
                tracing::trace!(
                    campaign_id = campaign.id,
                    bucket = slot.bucket,
                    gate_stock = now.gate.stock,
                    open_reservations = now.gate.open_reservations,
                    reserved_units = now.gate.reserved_units,
                    markers = now.ledger.markers,
                    marker_units = now.ledger.marker_units,
                    remaining_stock = now.ledger.remaining_stock,
                    drift = now.drift(),
                    "Audited a campaign's gate."
                );
                Some(now)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, campaign_id = campaign.id, bucket = slot.bucket,
                    "Could not audit a campaign's gate; the next audit tries again.");
                None
            }
        }
    }

    /// The gate's holding, then MySQL's ledger; `None` when either is missing (keys not loaded,
    /// campaign gone).
    async fn observe(
        &self,
        campaign: &Campaign,
        slot: Slot,
    ) -> Result<Option<Observation>, DriftError> {
        let epoch = crate::campaign::gate_epoch(campaign);
        let Some(gate) = self.gate.holding(slot, epoch).await? else {
            return Ok(None);
        };
        let Some(ledger) = ledger(&self.db, slot).await? else {
            return Ok(None);
        };
        Ok(Some(Observation { gate, ledger }))
    }

    /// Repairs a proven drift; `true` when it tried (the next audit starts afresh).
    async fn act(
        &self,
        campaign: &Campaign,
        slot: Slot,
        before: Option<&Observation>,
        now: &Observation,
    ) -> bool {
        let (observed, to) = match verdict(before, now) {
            Verdict::Consistent => return false,
            Verdict::Watch => {
                tracing::debug!(
                    campaign_id = campaign.id,
                    drift = now.drift(),
                    "Gate drift seen; watching."
                );
                return false;
            }
            Verdict::Repair { observed, to } => (observed, to),
        };
        let epoch = crate::campaign::gate_epoch(campaign);
        match self.gate.repair_stock(slot, epoch, observed, to).await {
            Ok(Repair::Set) => tracing::warn!(
                campaign_id = campaign.id, drift = now.drift(), gate_stock = observed,
                remaining_stock = to,
                "The gate's stock drifted from MySQL in two quiet audits; set it to MySQL's remaining stock."
            ),
            Ok(Repair::Moved) => tracing::info!(
                campaign_id = campaign.id, drift = now.drift(),
                "The gate moved before its drift could be repaired; the next audits measure again."
            ),
            Ok(Repair::NotLoaded) => {}
            Err(e) => tracing::warn!(error = %e, campaign_id = campaign.id,
                "Could not repair the gate's drift; the next audits try again."),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(
        stock: i64,
        open: i64,
        reserved: i64,
        markers: i64,
        marker_units: i64,
        remaining: i64,
    ) -> Observation {
        Observation {
            gate: GateHolding {
                stock,
                open_reservations: open,
                reserved_units: reserved,
            },
            ledger: Ledger {
                remaining_stock: remaining,
                markers,
                marker_units,
            },
        }
    }

    #[test]
    fn drift_counts_reservations_and_markers_on_the_gates_side() {
        assert_eq!(observation(5, 0, 0, 0, 0, 5).drift(), 0);
        // Reserved, committed, not yet settled: +q until the settle.
        assert_eq!(observation(4, 1, 1, 0, 0, 4).drift(), 1);
        // Reserved, not yet committed: balanced.
        assert_eq!(observation(3, 1, 2, 0, 0, 5).drift(), 0);
        // A win closed in MySQL, its units not yet returned: balanced by the marker.
        assert_eq!(observation(5, 0, 0, 1, 2, 7).drift(), 0);
        // Returned, marker not yet deleted: +q.
        assert_eq!(observation(7, 0, 0, 1, 2, 7).drift(), 2);
        assert_eq!(observation(3, 0, 0, 0, 0, 5).drift(), -2);
    }

    #[test]
    fn only_the_same_quiet_drift_twice_is_repaired() {
        let lost = observation(3, 0, 0, 0, 0, 5);
        assert_eq!(verdict(None, &lost), Verdict::Watch);
        assert_eq!(
            verdict(Some(&lost), &lost),
            Verdict::Repair { observed: 3, to: 5 }
        );
        assert_eq!(
            verdict(Some(&lost), &observation(5, 0, 0, 0, 0, 5)),
            Verdict::Consistent
        );
        // A different drift the second time: watch again.
        assert_eq!(
            verdict(Some(&lost), &observation(2, 0, 0, 0, 0, 5)),
            Verdict::Watch
        );
        // An open reservation or a marker either time may explain it.
        let busy = observation(3, 1, 1, 0, 0, 2);
        assert_eq!(verdict(Some(&busy), &busy), Verdict::Watch);
        let owed = observation(5, 0, 0, 1, 1, 5);
        assert_eq!(verdict(Some(&owed), &owed), Verdict::Watch);
        let later = observation(2, 0, 0, 0, 0, 0);
        assert_eq!(verdict(Some(&busy), &later), Verdict::Watch);
        assert_eq!(
            verdict(Some(&later), &later),
            Verdict::Repair { observed: 2, to: 0 }
        );
    }
}
