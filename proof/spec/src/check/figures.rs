//! The figures an `ok` answer states, against the order: a control's `totalStock` and
//! `remainingStock` (§15: the answer is the campaign, read in the control's own transaction),
//! and a join's `sequence` (§3–4: the one its event carries).
//!
//! A control that wrote its event answers the model at that event; a stock change always
//! writes one, so it is held to exactly that prefix. A pause, resume or close answered with
//! control `s` either wrote it or changed nothing and read the campaign while `s` was the last
//! control: its figures must be the model's at some prefix from event `s` up to the next
//! control, that real time allows while it ran (the total is fixed there; the remaining stock
//! must lie within the range the free units take there). O(log n) per answer. A bucketed
//! campaign's remaining stock is held only to `0..=totalStock` ([`super::merge`]).

use crate::{
    check::Ctx,
    event::{ControlKind, Event},
    history::{Func, Op, Outcome},
    report::{AnomalyKind, Report},
};

use super::{index::control_kind, replay::event_ref};

pub fn check(ctx: &Ctx, report: &mut Report) {
    for &i in &ctx.index.all {
        let op = &ctx.ops[i];
        if op.outcome != Outcome::Ok {
            continue;
        }
        let detail = match op.f {
            Func::Join => sequence(ctx, op),
            f if f.is_control() => control(ctx, op),
            _ => None,
        };
        if let Some((detail, pos)) = detail {
            let a = report.push(AnomalyKind::LostWin, Some(ctx.campaign), detail);
            a.ops.push(op.clone());
            if let Some(pos) = pos {
                a.events.push(event_ref(&ctx.order[pos], pos));
            }
        }
    }
}

/// A join answered with a sequence its win's event does not carry.
fn sequence(ctx: &Ctx, op: &Op) -> Option<(String, Option<usize>)> {
    let said = op.value.sequence?;
    let line = ctx.replay.users.get(&op.user()?)?;
    if op.value.participation_id != Some(line.participation) || line.sequence == Some(said) {
        return None;
    }
    Some((
        format!(
            "answered sequence {said}; the event of participation {} carries {:?}",
            line.participation, line.sequence
        ),
        Some(line.accepted),
    ))
}

/// A control's stated totals against the model where its answer was read.
fn control(ctx: &Ctx, op: &Op) -> Option<(String, Option<usize>)> {
    let (seq, total, remaining) = (
        op.value.control_seq?,
        op.value.total_stock?,
        op.value.remaining_stock?,
    );
    let kind = control_kind(op)?;
    let r = ctx.replay;
    // The prefixes where `seq` is the last control, and the total there.
    let (first, last, want_total, pos) = if seq == 0 {
        let next = r.controls.get(&1).copied().unwrap_or(ctx.order.len());
        (0, next, r.free[0], None)
    } else {
        // An answer naming a control the order lacks is the answers check's to report.
        let &pos = r.controls.get(&seq)?;
        let next = r
            .controls
            .get(&(seq + 1))
            .copied()
            .unwrap_or(ctx.order.len());
        (
            pos + 1,
            next.max(pos + 1),
            *r.totals_after.get(&seq)?,
            Some(pos),
        )
    };
    let (from, to) = match (kind, pos) {
        (ControlKind::Stock(_), Some(pos)) => {
            // Not the stock change it asked for: the answers check reports that.
            if !matches!(
                ctx.order[pos].event,
                Event::Control {
                    kind: ControlKind::Stock(_),
                    ..
                }
            ) {
                return None;
            }
            (pos + 1, pos + 1)
        }
        _ => match ctx.windows.range(op.invoke, op.definite_end()) {
            Some((a, b)) if a.max(first) <= b.min(last) => (a.max(first), b.min(last)),
            // Real time allows none of them: an inversion, the timeline's to report.
            _ => (first, last),
        },
    };
    // A bucketed campaign's control read other keys at an instant the order does not place
    // (super::merge): its remaining is held only to the total.
    let (min, max) = match ctx.keys.bucketed() {
        true => (0, want_total),
        false => ctx.free.query(from, to)?,
    };
    if total == want_total && (min..=max).contains(&remaining) {
        return None;
    }
    let free = if min == max {
        min.to_string()
    } else {
        format!("{min}..={max}")
    };
    Some((
        format!(
            "a {} answered with control {seq} stating total {total} / remaining {remaining}; the order has {want_total} / {free} there",
            op.f.name()
        ),
        pos,
    ))
}
