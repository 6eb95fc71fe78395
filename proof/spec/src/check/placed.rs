//! Instants the history cannot place but the final state records (issue 68): an expiry is
//! written by a sweeper, so no operation bounds its commit; MySQL's `cancelled_at` of the
//! expired participation does (the instant its transaction wrote the row, on MySQL's clock).
//! Read through the [`Anchor`] (wall − harness, from the events' `occurredAt`), it gives the
//! expiry's commit a latest harness instant: its span's `hi`, with no operation behind it.
//!
//! A transaction held between its write and its commit (an instance stopped mid-transaction,
//! MySQL hung or failed over) commits later than it wrote: where a fault overlaps the write
//! or the second after it, the recorded instant is not used and the order alone bounds the
//! commit, as for a final state without it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{
    event::{CancelReason, Envelope, Event},
    final_state::FinalState,
    history::Fault,
};

use super::{arrivals::GATE_ARRIVAL, timeline::Span, wall_clock::Anchor};

/// Each expired participation's recorded `cancelled_at`, by id.
pub fn expiries(state: &FinalState, campaign: i64) -> HashMap<i64, DateTime<Utc>> {
    state
        .participations
        .iter()
        .filter(|p| p.campaign == campaign && p.cancel_reason.as_deref() == Some("EXPIRED"))
        .filter_map(|p| p.cancelled_at.map(|at| (p.id, at)))
        .collect()
}

/// Bounds each expiry's commit from above by its recorded instant, unless a fault overlaps it.
pub fn place_expiries(
    spans: &mut [Span],
    order: &[Envelope],
    recorded: &HashMap<i64, DateTime<Utc>>,
    anchor: &Anchor,
    faults: &[Fault],
) {
    for (span, e) in spans.iter_mut().zip(order) {
        let Event::Cancelled {
            participation,
            reason: CancelReason::Expired,
            ..
        } = e.event
        else {
            continue;
        };
        let Some(&at) = recorded.get(&participation) else {
            continue;
        };
        let Some(latest) = anchor.harness_latest(at) else {
            continue;
        };
        let earliest = anchor.harness_earliest(at).unwrap_or(latest);
        let until = latest.saturating_add(GATE_ARRIVAL);
        let held = faults
            .iter()
            .any(|f| f.start <= until && f.end.unwrap_or(i64::MAX) >= earliest);
        if !held && latest < span.hi {
            span.hi = latest;
        }
    }
}
