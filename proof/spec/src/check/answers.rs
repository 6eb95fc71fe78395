//! Every `ok` against the order: the write it acknowledged is in the order, once, as answered,
//! at a prefix real time allows (the timing of the events an answer observed is checked by the
//! inversion pass; what is checked here is what that pass cannot see: answers that observed a
//! state rather than caused an event).

use std::collections::BTreeMap;

use crate::{
    check::Ctx,
    event::{ControlKind, Event},
    history::{Func, Op, Outcome},
    report::{AnomalyKind, Report},
};

use super::{index::control_kind, replay::event_ref};

pub fn check(ctx: &Ctx, report: &mut Report) {
    // Stock changes answered without a controlSeq are matched by counting, per delta.
    let mut unnumbered: BTreeMap<i64, (usize, Vec<usize>)> = BTreeMap::new();
    for &i in &ctx.index.all {
        let op = &ctx.ops[i];
        if op.outcome != Outcome::Ok {
            continue;
        }
        match op.f {
            Func::Join => join(ctx, op, report),
            Func::Confirm => confirm(ctx, op, report),
            Func::Cancel | Func::Refund => cancel(ctx, op, report),
            Func::Stock if op.value.control_seq.is_none() => {
                let entry = unnumbered.entry(op.value.delta.unwrap_or(0)).or_default();
                entry.0 += 1;
                entry.1.push(i);
            }
            _ => control(ctx, op, report),
        }
    }
    for (delta, (acknowledged, list)) in unnumbered {
        let in_order = ctx
            .order
            .iter()
            .filter(|e| matches!(e.event, Event::Control { kind: ControlKind::Stock(d), .. } if d == delta))
            .count();
        if in_order < acknowledged {
            let a = lost(
                report,
                ctx,
                format!(
                    "{acknowledged} stock changes of {delta} acknowledged, {in_order} in the order"
                ),
            );
            a.ops.extend(list.iter().map(|&i| ctx.ops[i].clone()));
        }
    }
}

fn lost<'r>(report: &'r mut Report, ctx: &Ctx, detail: String) -> &'r mut crate::report::Anomaly {
    report.push(AnomalyKind::LostWin, Some(ctx.campaign), detail)
}

fn join(ctx: &Ctx, op: &Op, report: &mut Report) {
    let Some(p) = op.value.participation_id else {
        let a = report.push(
            AnomalyKind::MalformedInput,
            Some(ctx.campaign),
            "an ok join without participationId",
        );
        a.ops.push(op.clone());
        return;
    };
    let user = op.user().unwrap_or_default();
    let line = ctx.replay.users.get(&user);
    let detail = match line {
        Some(l) if l.participation == p => {
            let answered = op.value.status.as_deref();
            let status = match l.accepted_status {
                crate::event::LiveStatus::Held => "HELD",
                crate::event::LiveStatus::Confirmed => "CONFIRMED",
            };
            if l.quantity != op.quantity() {
                format!(
                    "answered {} unit(s), the order's win has {}",
                    op.quantity(),
                    l.quantity
                )
            } else if answered.is_some_and(|s| s != status) {
                format!("answered {answered:?}, the order accepted it {status}")
            } else {
                return;
            }
        }
        // MySQL has it: the topic lost its event, which the end-state comparison reports.
        _ if ctx.mysql_participations.contains(&p) => return,
        Some(l) => format!(
            "participation {p} acknowledged; the order's win of user {user} is participation {}",
            l.participation
        ),
        None => format!("participation {p} acknowledged; neither the order nor MySQL has it"),
    };
    let a = lost(report, ctx, detail);
    a.ops.push(op.clone());
    if let Some(l) = line {
        a.events.push(event_ref(&ctx.order[l.accepted], l.accepted));
    }
}

fn confirm(ctx: &Ctx, op: &Op, report: &mut Report) {
    let user = op.user().unwrap_or_default();
    let Some(line) = ctx.replay.users.get(&user) else {
        let a = lost(
            report,
            ctx,
            format!("a confirm acknowledged; the order has no win of user {user}"),
        );
        a.ops.push(op.clone());
        return;
    };
    let Some(c) = line.confirmed else {
        let a = lost(
            report,
            ctx,
            format!(
                "a confirm acknowledged; the order never confirms participation {}",
                line.participation
            ),
        );
        a.ops.push(op.clone());
        a.events
            .push(event_ref(&ctx.order[line.accepted], line.accepted));
        return;
    };
    // Confirmed at prefixes c + 1 ..= x (x: its cancellation, if any); the answer needs one of
    // them within the operation's window. A late confirmation is the inversion pass's to report.
    let window = ctx.user_windows(user).range(op.invoke, op.definite_end());
    if let (Some((a, _)), Some((x, _))) = (window, line.closed) {
        if x < a && x > c {
            let an = report.push(
                AnomalyKind::RealTimeInversion,
                Some(ctx.campaign),
                format!(
                    "answered CONFIRMED, but participation {} was closed before the confirm was invoked",
                    line.participation
                ),
            );
            an.ops.push(op.clone());
            an.events.push(event_ref(&ctx.order[x], x));
        }
    }
}

fn cancel(ctx: &Ctx, op: &Op, report: &mut Report) {
    let user = op.user().unwrap_or_default();
    let closed = ctx
        .replay
        .users
        .get(&user)
        .and_then(|l| l.closed.map(|c| (l, c)));
    let Some((line, (x, reason))) = closed else {
        let a = lost(
            report,
            ctx,
            format!(
                "a {} acknowledged; the order never closes a win of user {user}",
                op.f.name()
            ),
        );
        a.ops.push(op.clone());
        return;
    };
    let said_status = op.value.status.as_deref();
    let said_reason = op.value.reason.as_deref();
    let status = if reason == crate::event::CancelReason::Expired {
        "EXPIRED"
    } else {
        "CANCELLED"
    };
    if said_status.is_some_and(|s| s != status) || said_reason.is_some_and(|r| r != reason.name()) {
        let a = lost(
            report,
            ctx,
            format!(
                "answered {said_status:?}/{said_reason:?}; the order closed participation {} as {status}/{}",
                line.participation,
                reason.name()
            ),
        );
        a.ops.push(op.clone());
        a.events.push(event_ref(&ctx.order[x], x));
    }
}

fn control(ctx: &Ctx, op: &Op, report: &mut Report) {
    let Some(kind) = control_kind(op) else { return };
    let holds = |k: usize| match kind {
        ControlKind::Pause => ctx.replay.paused_in(k, k),
        ControlKind::Resume => ctx.replay.running_in(k, k),
        ControlKind::Close => ctx.replay.closed_by(k),
        ControlKind::Stock(_) => true,
    };
    let detail = match op.value.control_seq {
        // A pause, resume or close that changed nothing answers the campaign's count of
        // controls; 0 before the first one, which no event of the order carries.
        Some(0) if !matches!(kind, ControlKind::Stock(_)) => match state_held(ctx, op, kind) {
            true => return,
            false => format!(
                "answered with control 0 (none yet), but the order never has the campaign {} while it ran",
                op.f.name()
            ),
        },
        Some(seq) => match ctx.replay.controls.get(&seq) {
            None => format!("answered with control {seq}, which the order lacks"),
            Some(&pos) => match (&ctx.order[pos].event, kind) {
                (
                    Event::Control {
                        kind: ControlKind::Stock(d),
                        ..
                    },
                    ControlKind::Stock(asked),
                ) if *d != asked => {
                    format!("asked {asked}, control {seq} in the order changed the stock by {d}")
                }
                (
                    Event::Control {
                        kind: ControlKind::Stock(_),
                        ..
                    },
                    ControlKind::Stock(_),
                ) => return,
                (_, ControlKind::Stock(_)) => {
                    format!("a stock change answered with control {seq}, which is not one")
                }
                _ if holds(pos + 1) => return,
                _ => format!(
                    "answered with control {seq}, after which the order has the campaign otherwise"
                ),
            },
        },
        None if state_held(ctx, op, kind) => return,
        None => format!(
            "acknowledged, but the order never has the campaign {} while it ran",
            op.f.name()
        ),
    };
    let a = lost(report, ctx, detail);
    a.ops.push(op.clone());
}

/// Whether the order has the campaign as a control of `kind` leaves it (paused, running,
/// closed) at some prefix real time allows while `op` ran: what a control that changed nothing
/// answers.
fn state_held(ctx: &Ctx, op: &Op, kind: ControlKind) -> bool {
    match (
        kind,
        ctx.control_windows().range(op.invoke, op.definite_end()),
    ) {
        (_, None) => true, // an inversion, reported by that pass
        (ControlKind::Pause, Some((a, b))) => ctx.replay.paused_in(a, b),
        (ControlKind::Resume, Some((a, b))) => ctx.replay.running_in(a, b),
        (ControlKind::Close, Some((_, b))) => ctx.replay.closed_by(b),
        (ControlKind::Stock(_), _) => true,
    }
}
