//! The model's end against the final state: MySQL (campaign row, participations, control audit)
//! and the gate in Redis once settled. O(n) with hash lookups. What buckets add (rows, pool,
//! one gate per bucket) is [`super::bucket_end`]'s. A campaign MySQL lacks altogether: every
//! acknowledged write to it lost ([`without_row`]).

use crate::history::{Op, Outcome};
use std::collections::HashMap;

use crate::{
    check::Ctx,
    event::{ControlKind, Envelope, Event},
    final_state::{Campaign, FinalState},
    model::WinState,
    report::{AnomalyKind, Report},
};

use super::replay::event_ref;

/// The stock the campaign was created with: as the harness recorded it, else MySQL's total less
/// the audit's stock changes (the audit is kept for good), else less the order's.
pub fn initial_stock(row: &Campaign, state: &FinalState, order: &[Envelope]) -> i64 {
    if let Some(stock) = row.initial_stock {
        return stock;
    }
    let changed: i64 = match &state.controls {
        Some(rows) => rows
            .iter()
            .filter(|c| c.campaign == row.id && c.kind == "STOCK")
            .map(|c| c.delta)
            .sum(),
        None => order
            .iter()
            .filter_map(|e| match e.event {
                Event::Control {
                    kind: ControlKind::Stock(d),
                    ..
                } => Some(d),
                _ => None,
            })
            .sum(),
    };
    row.total_stock - changed
}

pub fn campaign(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    campaign_row(ctx, state, report);
    participations(ctx, state, report);
    audit(ctx, state, report);
    gate(ctx, state, report);
    super::consumers::stats(ctx, state, report);
}

fn campaign_row(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    let (c, m) = (ctx.campaign, &ctx.replay.model);
    if let Some(row) = ctx.row {
        let (mine, theirs) = (
            (m.total, m.free, m.paused, m.closed),
            (row.total_stock, row.remaining_stock, row.paused, row.closed),
        );
        if mine != theirs {
            report.push(
                AnomalyKind::DatabaseMismatch,
                Some(c),
                format!("campaign row (total, remaining, paused, closed) {theirs:?}, the model {mine:?}"),
            );
        }
        let live: i64 = state
            .participations
            .iter()
            .filter(|p| p.campaign == c && matches!(p.status.as_str(), "HELD" | "CONFIRMED"))
            .map(|p| p.quantity)
            .sum();
        if live > row.total_stock {
            report.push(
                AnomalyKind::Oversell,
                Some(c),
                format!(
                    "MySQL holds {live} unit(s) held or confirmed of {}",
                    row.total_stock
                ),
            );
        } else if live != row.total_stock - row.remaining_stock {
            report.push(
                AnomalyKind::DatabaseMismatch,
                Some(c),
                format!(
                    "MySQL: {live} held or confirmed, but total − remaining = {}",
                    row.total_stock - row.remaining_stock
                ),
            );
        }
    }
}

/// MySQL's participations against the model's wins: a row the topic never announced is a
/// missing event; a status MySQL has further along than the order, a missing lifecycle event.
fn participations(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    let (c, m) = (ctx.campaign, &ctx.replay.model);
    let mut rows: HashMap<i64, &crate::final_state::Participation> = state
        .participations
        .iter()
        .filter(|p| p.campaign == c)
        .map(|p| (p.id, p))
        .collect();
    for win in m.wins() {
        let Some(row) = rows.remove(&win.participation) else {
            report.push(
                AnomalyKind::DatabaseMismatch,
                Some(c),
                format!(
                    "participation {} is in the order, not in MySQL",
                    win.participation
                ),
            );
            continue;
        };
        let rank = |s: &str| match s {
            "HELD" => 0,
            "CONFIRMED" => 1,
            _ => 2,
        };
        let reason = win.cancel_reason.map(|r| r.name());
        let detail = if row.status != win.state.name() {
            let kind = if rank(&row.status) > rank(win.state.name()) {
                AnomalyKind::MissingOrDuplicatedEvent
            } else {
                AnomalyKind::DatabaseMismatch
            };
            Some((
                kind,
                format!(
                    "status {} in MySQL, {} in the order",
                    row.status,
                    win.state.name()
                ),
            ))
        } else if (row.user, row.quantity) != (win.user, win.quantity) {
            Some((
                AnomalyKind::DatabaseMismatch,
                format!(
                    "user/quantity {:?} in MySQL, {:?} in the order",
                    (row.user, row.quantity),
                    (win.user, win.quantity)
                ),
            ))
        } else if win.state != WinState::Held
            && win.state != WinState::Confirmed
            && row.cancel_reason.as_deref() != reason
        {
            Some((
                AnomalyKind::DatabaseMismatch,
                format!(
                    "cancel reason {:?} in MySQL, {reason:?} in the order",
                    row.cancel_reason
                ),
            ))
        } else if row.hold_expires_at.is_some()
            && win.hold_expires_at.is_some()
            && row.hold_expires_at != win.hold_expires_at
        {
            Some((
                AnomalyKind::DatabaseMismatch,
                "holdExpiresAt differs between MySQL and the order".to_owned(),
            ))
        } else {
            None
        };
        if let Some((kind, detail)) = detail {
            report.push(
                kind,
                Some(c),
                format!("participation {}: {detail}", win.participation),
            );
        }
    }
    for p in rows.values() {
        report.push(
            AnomalyKind::MissingOrDuplicatedEvent,
            Some(c),
            format!("MySQL has participation {} (user {}), the topic has no ParticipationAccepted of it", p.id, p.user),
        );
    }
}

/// The control audit against the order's control events, by event id.
fn audit(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    let Some(rows) = &state.controls else {
        note(report, "the control audit (final state has no `controls`)");
        return;
    };
    let c = ctx.campaign;
    let mut by_id: HashMap<&str, &crate::final_state::ControlRow> = rows
        .iter()
        .filter(|r| r.campaign == c)
        .map(|r| (r.event_id.as_str(), r))
        .collect();
    for (pos, e) in ctx.order.iter().enumerate() {
        let Event::Control {
            kind,
            seq,
            total_stock,
            remaining_stock,
        } = e.event
        else {
            continue;
        };
        let Some(row) = by_id.remove(e.event_id.as_str()) else {
            report
                .push(
                    AnomalyKind::MissingOrDuplicatedEvent,
                    Some(c),
                    format!("control {seq} on the topic has no audit row"),
                )
                .events
                .push(event_ref(e, pos));
            continue;
        };
        let delta = match kind {
            ControlKind::Stock(d) => d,
            _ => 0,
        };
        if (
            row.seq,
            row.kind.as_str(),
            row.delta,
            row.total_stock,
            row.remaining_stock,
        ) != (seq, kind.audit_name(), delta, total_stock, remaining_stock)
        {
            report
                .push(
                    AnomalyKind::DatabaseMismatch,
                    Some(c),
                    format!("control {seq}: the audit row differs from its event"),
                )
                .events
                .push(event_ref(e, pos));
        }
    }
    for row in by_id.values() {
        report.push(
            AnomalyKind::MissingOrDuplicatedEvent,
            Some(c),
            format!(
                "audit row {} ({}) has no event on the topic",
                row.seq, row.kind
            ),
        );
    }
}

fn gate(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    // A bucketed campaign has a gate per bucket: super::bucket_end judges them.
    if ctx.keys.bucketed() {
        return;
    }
    let Some(gates) = &state.gates else {
        note(report, "the gate (final state has no `gates`)");
        return;
    };
    let (c, m) = (ctx.campaign, &ctx.replay.model);
    // A closed campaign's markers are dropped (§14): its gate stock no longer follows returns.
    let Some(g) = gates.iter().find(|g| g.campaign == c) else {
        return;
    };
    let mut drift = |detail: String| {
        report.push(AnomalyKind::GateDrift, Some(c), detail);
    };
    if let (Some(stock), false) = (g.stock, m.closed) {
        if stock != m.free {
            drift(format!(
                "gate stock {stock}, the order leaves {} free",
                m.free
            ));
        }
    }
    if let Some(n) = g.pending.filter(|&n| n > 0) {
        drift(format!("{n} reservation(s) still open once settled"));
    }
    if let (Some(users), true) = (&g.users, g.stock.is_some()) {
        let users: std::collections::HashSet<i64> = users.iter().copied().collect();
        let missing = m.wins().filter(|w| !users.contains(&w.user)).count();
        if missing > 0 {
            drift(format!("{missing} past winner(s) missing from the gate's users: it would let them win again"));
        }
    }
    // Judged when the gate is loaded, as its users: keys lost and not loaded again hold
    // nothing, and their next load reads the returned wins from MySQL.
    if let (Some(returned), false, true) = (&g.returned, m.closed, g.stock.is_some()) {
        let returned: std::collections::HashSet<i64> = returned.iter().copied().collect();
        for w in m.wins() {
            let closed = matches!(w.state, WinState::Cancelled | WinState::Expired);
            if closed != returned.contains(&w.participation) {
                drift(format!(
                    "participation {} is {} but {} the gate's returned set",
                    w.participation,
                    w.state.name(),
                    if closed { "missing from" } else { "in" }
                ));
            }
        }
    }
}

pub(super) fn note(report: &mut Report, what: &str) {
    let s = format!("{what}: not compared");
    if !report.skipped.contains(&s) {
        report.skipped.push(s);
    }
}

/// A campaign MySQL does not have: every acknowledged write to it is lost; refusals other than
/// CAMPAIGN_NOT_FOUND are not judged.
pub(super) fn without_row(
    campaign: i64,
    ops: &[Op],
    index: &super::index::CampaignOps,
    report: &mut Report,
) {
    for &i in &index.all {
        let op = &ops[i];
        match (op.outcome, op.code()) {
            (Outcome::Ok, _) => report
                .push(
                    AnomalyKind::LostWin,
                    Some(campaign),
                    "acknowledged on a campaign MySQL does not have",
                )
                .ops
                .push(op.clone()),
            (Outcome::Fail, Some(code)) if code != "CAMPAIGN_NOT_FOUND" => {
                *report
                    .refusals_not_judged
                    .entry(code.to_owned())
                    .or_default() += 1
            }
            _ => {}
        }
    }
}
