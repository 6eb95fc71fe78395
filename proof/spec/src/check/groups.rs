//! A group's per-user limit (design §22): a user's units across the group's campaigns never
//! exceed it. The limit counts every unit the user ever won in the group, whatever became of
//! the win (a cancelled or expired win still counts, as a campaign's one win per user does), so
//! the judgement needs no order across the group's campaigns, only the wins and real time:
//!
//! - **At the end**: for each group and user, the units of every participation MySQL has in
//!   the group's campaigns (any status) ≤ the group's `perUserLimit`; and MySQL's own guard,
//!   `group_holding.units`, equal to that sum (a row for every user with a win, none else).
//! - **Each `GROUP_LIMIT_REACHED`** (a join of a grouped campaign, or a cart): justified when
//!   the user's wins in the group that may have committed before the refusal's answer, plus the
//!   units it asked, exceed the limit. A win may have committed once any operation that may
//!   have written it (the user's joins of that campaign, carts naming it; not a definite
//!   refusal) was invoked, so taking every such win is the most the refusal could have seen.
//!   Otherwise it is excused only while another join or cart of the same user in the group was
//!   in flight ([`SAME_USER_GROUP`]: the gate counts a reservation against the limit until it
//!   is settled, as it holds the user of a campaign, §18.1's last row), for as long as a
//!   reservation of an unanswered request may stay open (its answer plus the lookback, or the
//!   crashed-instance bound of §18.1); beyond that it is an unjustified refusal.

use std::collections::{BTreeMap, HashMap};

use crate::{
    check::{Options, RECONCILER_PASS},
    final_state::{FinalState, GroupState},
    history::{Func, History, Op, Outcome},
    report::{AnomalyKind, Report},
};

pub const SAME_USER_GROUP: &str =
    "GROUP_LIMIT_REACHED while another join or cart of the same user in the group was in flight";

/// The group's operations of one user, and its wins.
#[derive(Default)]
struct UserLine<'a> {
    ops: Vec<&'a Op>,
    /// (campaign, units) of each win MySQL has.
    wins: Vec<(i64, i64)>,
}

pub fn check(
    history: &History,
    state: &FinalState,
    groups: &GroupState,
    opts: &Options,
    report: &mut Report,
) {
    let Some(rows) = &groups.groups else {
        if history.ops.iter().any(|o| o.f == Func::Cart) {
            report
                .skipped
                .push("groups: the group limits (no groups in the final state)".to_owned());
        }
        return;
    };
    let limits: HashMap<i64, i64> = rows.iter().map(|g| (g.id, g.per_user_limit)).collect();
    let group_of = groups.group_of();
    let mut lines: BTreeMap<(i64, i64), UserLine> = BTreeMap::new();
    for p in &state.participations {
        if let Some(&g) = group_of.get(&p.campaign) {
            let line = lines.entry((g, p.user)).or_default();
            line.wins.push((p.campaign, p.quantity));
        }
    }
    for op in &history.ops {
        let group = match op.f {
            Func::Cart => op.value.group,
            Func::Join => op.campaign().and_then(|c| group_of.get(&c).copied()),
            _ => None,
        };
        if let (Some(g), Some(user)) = (group, op.user()) {
            lines.entry((g, user)).or_default().ops.push(op);
        }
    }
    for (&(group, user), line) in &lines {
        let Some(&limit) = limits.get(&group) else {
            continue;
        };
        let units: i64 = line.wins.iter().map(|w| w.1).sum();
        if units > limit {
            report.push(
                AnomalyKind::GroupLimit,
                None,
                format!("group {group}: user {user} holds {units} units, the limit is {limit}"),
            );
        }
        for op in line.ops.iter().filter(|o| refused(o)) {
            judge(op, line, (group, limit), opts, report);
        }
    }
    holdings(groups, &lines, report);
}

fn refused(op: &Op) -> bool {
    op.outcome == Outcome::Fail && op.code() == Some("GROUP_LIMIT_REACHED")
}

/// Units an operation asked: a join's quantity, a cart's items together.
fn asked(op: &Op) -> i64 {
    match (&op.value.items, op.f) {
        (Some(items), Func::Cart) => items.iter().map(|i| i.quantity).sum(),
        _ => op.quantity(),
    }
}

/// Whether an operation may have written the user's win of `campaign`.
fn may_cause(op: &Op, campaign: i64) -> bool {
    op.outcome != Outcome::Fail
        && match op.f {
            Func::Cart => (op.value.items.iter().flatten()).any(|i| i.campaign == campaign),
            _ => op.campaign() == Some(campaign),
        }
}

/// Judges one `GROUP_LIMIT_REACHED`.
fn judge(
    op: &Op,
    line: &UserLine,
    (group, limit): (i64, i64),
    opts: &Options,
    report: &mut Report,
) {
    let end = op.complete.unwrap_or(i64::MAX);
    let committed: i64 = (line.wins.iter())
        .filter(|(campaign, _)| {
            (line.ops.iter())
                .filter(|o| may_cause(o, *campaign))
                .any(|o| o.invoke < end)
        })
        .map(|w| w.1)
        .sum();
    let want = asked(op);
    if committed + want > limit {
        return;
    }
    let in_flight: i64 = (line.ops.iter())
        .filter(|o| o.id != op.id && o.invoke < end && open_until(o, opts) > op.invoke)
        .map(|o| asked(o))
        .sum();
    if committed + in_flight + want > limit {
        report.relax(
            SAME_USER_GROUP,
            format!("{in_flight} unit(s) of the user's other requests in the group in flight"),
            op,
        );
        return;
    }
    report
        .push(
            AnomalyKind::GroupLimit,
            op.campaign(),
            format!(
                "{} refused GROUP_LIMIT_REACHED in group {group}: at most {committed} unit(s) \
                 won before its answer, {want} asked, limit {limit}",
                op.f.name()
            ),
        )
        .ops
        .push(op.clone());
}

/// Until when an operation's reservation may count against the limit at the gate.
fn open_until(op: &Op, opts: &Options) -> i64 {
    match (op.outcome, op.complete) {
        (_, None) => i64::MAX,
        (Outcome::Info, Some(t)) => {
            let reconciled = op.invoke.saturating_add(
                opts.reservation_timeout + opts.reservation_timeout / 10 + RECONCILER_PASS,
            );
            t.saturating_add(opts.lookback).max(reconciled)
        }
        (_, Some(t)) => t,
    }
}

/// MySQL's guard: `group_holding` equal, per group and user, to the units of the user's wins.
fn holdings(groups: &GroupState, lines: &BTreeMap<(i64, i64), UserLine>, report: &mut Report) {
    let Some(rows) = &groups.group_holdings else {
        report
            .skipped
            .push("groups: MySQL's group_holding (not taken)".to_owned());
        return;
    };
    let mut held: HashMap<(i64, i64), i64> =
        rows.iter().map(|h| ((h.group, h.user), h.units)).collect();
    for (&key, line) in lines {
        let units: i64 = line.wins.iter().map(|w| w.1).sum();
        let row = held.remove(&key).unwrap_or(0);
        if row != units {
            report.push(
                AnomalyKind::GroupLimit,
                None,
                format!(
                    "group {}: user {}'s group_holding is {row}, the wins add up to {units}",
                    key.0, key.1
                ),
            );
        }
    }
    for ((group, user), units) in held.into_iter().filter(|h| h.1 != 0) {
        report.push(
            AnomalyKind::GroupLimit,
            None,
            format!("group {group}: user {user}'s group_holding is {units} without a win"),
        );
    }
}
