//! The model's end against the consumers' tables: the stats consumer's figures per campaign and
//! the rewards consumer's balances and grants (design §11). O(n) with hash lookups.

use std::collections::{BTreeMap, HashMap};

use crate::{
    check::Ctx,
    final_state::FinalState,
    model::StatsFigures,
    report::{AnomalyKind, Report},
};

use super::{end_state::note, replay::Replay};

pub fn stats(ctx: &Ctx, state: &FinalState, report: &mut Report) {
    let Some(rows) = &state.stats else {
        note(report, "the stats consumer (final state has no `stats`)");
        return;
    };
    let c = ctx.campaign;
    let Some(row) = rows.iter().find(|s| s.campaign == c) else {
        if !ctx.order.is_empty() {
            report.push(
                AnomalyKind::ConsumerMismatch,
                Some(c),
                "no stats row for a campaign with events",
            );
        }
        return;
    };
    let m = &ctx.replay.model;
    let StatsFigures {
        accepted_count,
        accepted_quantity,
        confirmed_count,
        cancelled_count,
        expired_count,
        active_quantity,
        stock_added,
        stock_withdrawn,
        controls_applied,
    } = m.stats;
    let expected = [
        ("acceptedCount", row.accepted_count, accepted_count),
        ("acceptedQuantity", row.accepted_quantity, accepted_quantity),
        ("confirmedCount", row.confirmed_count, confirmed_count),
        ("cancelledCount", row.cancelled_count, cancelled_count),
        ("expiredCount", row.expired_count, expired_count),
        ("activeQuantity", row.active_quantity, active_quantity),
        ("stockAdded", row.stock_added, stock_added),
        ("stockWithdrawn", row.stock_withdrawn, stock_withdrawn),
        ("controlsApplied", row.controls_applied, controls_applied),
        ("eventsApplied", row.events_applied, ctx.order.len() as i64),
        ("paused", row.paused.map(i64::from), i64::from(m.paused)),
        ("closed", row.closed.map(i64::from), i64::from(m.closed)),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|&(name, theirs, mine)| {
            theirs
                .filter(|&t| t != mine)
                .map(|t| format!("{name} {t} (model {mine})"))
        })
        .collect();
    if !wrong.is_empty() {
        report.push(
            AnomalyKind::ConsumerMismatch,
            Some(c),
            format!("stats: {}", wrong.join(", ")),
        );
    }
}

/// Points per user over every campaign, and the grants per event, against the rewards consumer.
pub fn rewards(ends: &[Replay], state: &FinalState, report: &mut Report) {
    let mut points: BTreeMap<i64, i64> = BTreeMap::new();
    let mut grants: HashMap<&str, (i64, i64)> = HashMap::new();
    for (event_id, user, moved) in ends.iter().flat_map(|r| r.grants.iter()) {
        *points.entry(*user).or_default() += moved;
        grants.insert(event_id.as_str(), (*user, *moved));
    }
    match &state.rewards {
        None => note(
            report,
            "the rewards balances (final state has no `rewards`)",
        ),
        Some(accounts) => {
            let mut theirs: BTreeMap<i64, i64> =
                accounts.iter().map(|a| (a.user, a.points)).collect();
            for (user, mine) in &points {
                let t = theirs.remove(user).unwrap_or(0);
                if t != *mine {
                    report.push(
                        AnomalyKind::ConsumerMismatch,
                        None,
                        format!("rewards: user {user} has {t} point(s), the model {mine}"),
                    );
                }
            }
            for (user, t) in theirs.into_iter().filter(|(_, t)| *t != 0) {
                report.push(
                    AnomalyKind::ConsumerMismatch,
                    None,
                    format!("rewards: user {user} has {t} point(s), the model 0"),
                );
            }
        }
    }
    match &state.grants {
        None => note(report, "the reward grants (final state has no `grants`)"),
        Some(rows) => {
            for row in rows.iter().filter(|g| g.points != 0) {
                match grants.remove(row.event_id.as_str()) {
                    Some((user, moved)) if (user, moved) == (row.user, row.points) => {}
                    other => {
                        report.push(
                            AnomalyKind::ConsumerMismatch,
                            Some(row.campaign),
                            format!(
                                "grant for event {}: {} point(s) to user {}, the model {other:?}",
                                row.event_id, row.points, row.user
                            ),
                        );
                    }
                }
            }
            for (event_id, (user, moved)) in grants {
                report.push(
                    AnomalyKind::ConsumerMismatch,
                    None,
                    format!("no grant for event {event_id} ({moved} point(s) to user {user})"),
                );
            }
        }
    }
}
