//! Bots at the waiting room's door (design §16 "Bots at the door"), judged from the answers the
//! clients got:
//!
//! - **No ticket to a client that failed the check.** A `queue` call that sent no solution
//!   (`botCheck: none`) or one that solves nothing (`forged`), in a run with the check on, is
//!   never answered with a ticket.
//! - **No offer to a ticket silent past the interval.** A waitlisted ticket must keep polling to
//!   keep its place: one not polled for `QUEUE_TICKET_IDLE_MS` is dropped, and no unit is
//!   offered to it after. An answer that finds a ticket `ADMITTED` right after one that found it
//!   `WAITLISTED` shows an offer (a waitlisted ticket's admission is one), made at its
//!   `admissionExpiresAt` less the campaign's `offerSeconds`; the ticket was last seen alive when
//!   that earlier answer arrived. An offer made later than that plus the interval (and a second
//!   for the clocks of the two processes, on one machine) went to a silent ticket.
//!
//! A campaign whose final state lacks `offerSeconds` is not judged for offers. One pass over the
//! operations, a sort per ticket: O(n log n).

use std::collections::HashMap;

use crate::{
    check::Options,
    final_state::FinalState,
    history::{Func, History, Op, Outcome},
    report::{AnomalyKind, Report},
};

/// Allowance between the harness's wall clock and the service's, ms.
const CLOCKS_MS: i64 = 1_000;

pub fn check(history: &History, state: &FinalState, opts: &Options, report: &mut Report) {
    failed_checks(&history.ops, report);
    silent_offers(&history.ops, state, opts, report);
}

fn failed_checks(ops: &[Op], report: &mut Report) {
    let failed = |o: &&Op| matches!(o.value.bot_check.as_deref(), Some("none" | "forged"));
    for op in ops
        .iter()
        .filter(|o| o.f == Func::Queue && o.outcome == Outcome::Ok)
        .filter(failed)
    {
        report
            .push(
                AnomalyKind::AdmissionBreach,
                op.campaign(),
                format!(
                    "a client that failed the bot check ({}) was given ticket {}",
                    op.value.bot_check.as_deref().unwrap_or_default(),
                    op.value.ticket.as_deref().unwrap_or("?")
                ),
            )
            .ops
            .push(op.clone());
    }
}

fn silent_offers(ops: &[Op], state: &FinalState, opts: &Options, report: &mut Report) {
    let offer_ms: HashMap<i64, i64> = (state.campaigns.iter())
        .filter_map(|c| Some((c.id, c.offer_seconds.filter(|s| *s > 0)? * 1_000)))
        .collect();
    let mut answers: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in ops.iter().filter(|o| {
        matches!(o.f, Func::Queue | Func::Poll)
            && o.outcome == Outcome::Ok
            && o.campaign().is_some_and(|c| offer_ms.contains_key(&c))
    }) {
        if let Some(ticket) = op.value.ticket.as_deref() {
            answers.entry(ticket).or_default().push(op);
        }
    }
    let idle_ms = opts.queue_idle / 1_000_000;
    for seen in answers.values_mut() {
        seen.sort_by_key(|o| o.invoke);
        for pair in seen.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let state = |o: &Op| o.value.state.clone().unwrap_or_default();
            if state(before) != "WAITLISTED" || state(after) != "ADMITTED" {
                continue;
            }
            let campaign = after.campaign().unwrap_or_default();
            let (Some(alive), Some(expires)) = (
                before.value.answered_at_ms,
                after.value.admission_expires_ms,
            ) else {
                continue;
            };
            let offered = expires - offer_ms[&campaign];
            if offered > alive + idle_ms + CLOCKS_MS {
                report
                    .push(
                        AnomalyKind::AdmissionBreach,
                        Some(campaign),
                        format!(
                            "ticket {} was offered a unit {} ms after it was last seen alive \
                             (QUEUE_TICKET_IDLE_MS {idle_ms}): an offer to a silent ticket",
                            after.value.ticket.as_deref().unwrap_or("?"),
                            offered - alive
                        ),
                    )
                    .ops
                    .extend([before.clone(), after.clone()]);
            }
        }
    }
}
