//! What depends on the wall clock: wins committed after the campaign's `endsAt`, `CAMPAIGN_ENDED`
//! answered while the campaign still ran, and holds left `HELD` past their deadline once the
//! run settled (§3, §14).
//!
//! The history's clock is the harness's monotonic one; `endsAt`, deadlines and `occurredAt` are
//! wall time. The events tie the two: an event's `occurredAt` was taken while its cause ran
//! (after the earliest invoke of a possible cause, `lo`, before the earliest answer that
//! observed it, `hi`), so `wall − harness` lies in `[occurredAt − hi, occurredAt − lo]` for each
//! event; the [`Anchor`] is the intersection over the order. Without an event bounded on the
//! needed side the question is not judged. Comparisons allow the model's deadline tolerance for
//! the two clocks' reading moments.

use chrono::{DateTime, Duration, Utc};

use crate::{
    check::Ctx,
    event::{Envelope, Event},
    final_state::FinalState,
    history::Op,
    report::{AnomalyKind, Report},
};

use super::{replay::event_ref, timeline::Span};

/// How late the expiry sweeper may be, ns (§14: "at most ~1 s late").
pub const SWEEP_LATE: i64 = 1_000_000_000;

/// Bounds of `wall − harness`, in ns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anchor {
    lo: Option<i64>,
    hi: Option<i64>,
}

impl Anchor {
    /// O(n) over the order.
    pub fn new(order: &[Envelope], spans: &[Span]) -> Self {
        let mut anchor = Anchor::default();
        for (e, s) in order.iter().zip(spans) {
            let Some(wall) = e.occurred_at.timestamp_nanos_opt() else {
                continue;
            };
            if s.hi_op.is_some() {
                let lo = wall.saturating_sub(s.hi);
                anchor.lo = Some(anchor.lo.map_or(lo, |v| v.max(lo)));
            }
            if s.lo_op.is_some() {
                let hi = wall.saturating_sub(s.lo);
                anchor.hi = Some(anchor.hi.map_or(hi, |v| v.min(hi)));
            }
        }
        anchor
    }

    /// Both campaigns' bounds hold (one database clock).
    pub fn merge(&mut self, other: &Anchor) {
        self.lo = match (self.lo, other.lo) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.hi = match (self.hi, other.hi) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The earliest wall instant the harness instant `t` can be.
    fn earliest(&self, t: i64) -> Option<DateTime<Utc>> {
        self.lo
            .map(|o| DateTime::from_timestamp_nanos(t.saturating_add(o)))
    }

    /// The latest wall instant the harness instant `t` can be.
    fn latest(&self, t: i64) -> Option<DateTime<Utc>> {
        self.hi
            .map(|o| DateTime::from_timestamp_nanos(t.saturating_add(o)))
    }
}

/// Every win whose commit came after the campaign's `endsAt` (with the grace a close allows: a
/// join the gate let through just before may commit a moment after): by its `occurredAt`, or
/// by the earliest instant real time allows for its commit.
pub fn wins_after_end(ctx: &Ctx, report: &mut Report) {
    let Some(ends) = ctx.row.and_then(|c| c.ends_at) else {
        return;
    };
    let limit = ends + ctx.opts.model.control_grace;
    for (pos, e) in ctx.order.iter().enumerate() {
        let Event::Accepted { participation, .. } = e.event else {
            continue;
        };
        let earliest = ctx.anchor.earliest(ctx.commit.earliest[pos]);
        let late = [Some(e.occurred_at), earliest]
            .into_iter()
            .flatten()
            .filter(|&t| t > limit)
            .max();
        if let Some(at) = late {
            let a = report.push(
                AnomalyKind::IllegalTransition,
                Some(ctx.campaign),
                format!(
                    "participation {participation} committed {} ms after endsAt {ends}",
                    (at - ends).num_milliseconds()
                ),
            );
            a.events.push(event_ref(e, pos));
        }
    }
}

/// For a `CAMPAIGN_ENDED` of a campaign with an `endsAt` and no close at any prefix the request
/// allows: `Some(true)` when every instant of the request was before `endsAt` (the campaign
/// still ran: unjustified), `Some(false)` when it may have ended, `None` when the clocks are
/// not tied.
pub fn before_end(ctx: &Ctx, op: &Op, ends: DateTime<Utc>) -> Option<bool> {
    let latest = ctx.anchor.latest(op.complete.unwrap_or(i64::MAX))?;
    Some(latest + ctx.opts.model.deadline_tolerance < ends)
}

/// Holds MySQL still has `HELD` past their deadline once the run settled: the final state is
/// taken after the history's last entry and after every event it holds, and the sweeper
/// expires a hold at most [`SWEEP_LATE`] after its deadline (§14).
pub fn stale_holds(
    state: &FinalState,
    anchor: &Anchor,
    (history_end, last_event): (i64, Option<DateTime<Utc>>),
    tolerance: Duration,
    report: &mut Report,
) {
    let Some(settled) = [last_event, anchor.earliest(history_end)]
        .into_iter()
        .flatten()
        .max()
    else {
        return;
    };
    let allowed = Duration::nanoseconds(SWEEP_LATE) + tolerance;
    for p in &state.participations {
        let Some(deadline) = p.hold_expires_at.filter(|_| p.status == "HELD") else {
            continue;
        };
        if deadline + allowed < settled {
            report.push(
                AnomalyKind::IllegalTransition,
                Some(p.campaign),
                format!(
                    "participation {} still HELD once settled, {} ms past its deadline (the expiry §14 promises never came)",
                    p.id,
                    (settled - deadline).num_milliseconds()
                ),
            );
        }
    }
}
