//! The waiting room and the per-user limit (design §3, §16) against the rules of
//! [`crate::model::admission`]: per campaign, every join against its `perUserLimit` and every
//! win MySQL holds against it; on a `QUEUE` campaign, every `ok` join's token, each token's
//! wins, every win MySQL holds against the tokens its user was issued, and the room's order
//! (first come, first admitted; no ticket moves back). The room's own operations (`queue`,
//! `poll`) are judged here only: the other checks leave them out.
//!
//! A campaign whose final state lacks `perUserLimit` or `admission` is not judged on that
//! count, and the report says so when the history has operations it would have judged.

use std::collections::{BTreeMap, HashMap};

use crate::{
    final_state::{Campaign, FinalState},
    history::{Func, History, Op, Outcome},
    model::admission::{judge_limit, LimitVerdict, Observed, TokenVerdict, QUEUE},
    report::{AnomalyKind, Report},
};

pub fn check(history: &History, state: &FinalState, report: &mut Report) {
    let observed = Observed::from_ops(&history.ops);
    let mut joins: BTreeMap<i64, Vec<&Op>> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| o.f == Func::Join) {
        if let Some(c) = op.campaign() {
            joins.entry(c).or_default().push(op);
        }
    }
    for row in &state.campaigns {
        let mine = joins.get(&row.id).map(Vec::as_slice).unwrap_or(&[]);
        limit(row, mine, state, report);
        match row.admission.as_deref() {
            Some(QUEUE) => {
                tokens(row.id, mine, &observed, state, report);
                order(row.id, &observed, &history.ops, report);
            }
            Some(_) => {}
            None if observed.rooms.contains_key(&row.id) => report.skipped.push(format!(
                "campaign {}: the waiting room (no admission mode in the final state)",
                row.id
            )),
            None => {}
        }
    }
}

fn limit(row: &Campaign, joins: &[&Op], state: &FinalState, report: &mut Report) {
    let Some(limit) = row.per_user_limit else {
        if joins.iter().any(|j| j.quantity() > 1) {
            report.skipped.push(format!(
                "campaign {}: the per-user limit (no perUserLimit in the final state)",
                row.id
            ));
        }
        return;
    };
    for p in state.participations.iter().filter(|p| p.campaign == row.id) {
        if p.quantity > limit {
            report.push(
                AnomalyKind::PerUserLimit,
                Some(row.id),
                format!(
                    "MySQL holds participation {} of user {} with {} units, past the limit of {limit}",
                    p.id, p.user, p.quantity
                ),
            );
        }
    }
    for join in joins {
        let detail = match judge_limit(join, limit) {
            LimitVerdict::Fine => continue,
            LimitVerdict::WonOverLimit => format!(
                "a join of {} units won, past the limit of {limit}",
                join.quantity()
            ),
            LimitVerdict::PastValidation(code) => format!(
                "a join of {} units, past the limit of {limit}, was refused {code}: it went past \
                 validation (VALIDATION_FAILED expected)",
                join.quantity()
            ),
            LimitVerdict::RefusedWithinLimit => format!(
                "a join of {} units, within the limit of {limit}, was refused as invalid",
                join.quantity()
            ),
        };
        report
            .push(AnomalyKind::PerUserLimit, Some(row.id), detail)
            .ops
            .push((*join).clone());
    }
}

fn tokens(
    campaign: i64,
    joins: &[&Op],
    observed: &Observed,
    state: &FinalState,
    report: &mut Report,
) {
    // token → (participation id, the join that won it) of the first ok join that used it.
    let mut wins: HashMap<&str, (i64, &Op)> = HashMap::new();
    for join in joins.iter().filter(|j| j.outcome == Outcome::Ok) {
        let detail = match observed.token_of(join) {
            TokenVerdict::Fine => None,
            TokenVerdict::Missing => Some("won without an admission token".to_owned()),
            TokenVerdict::NotIssued => Some("won with a token the room never issued".to_owned()),
            TokenVerdict::NotTheirs(i) => Some(format!(
                "won with a token issued to user {} for campaign {}",
                i.user, i.campaign
            )),
            TokenVerdict::BeforeIssued(_) => {
                Some("won with a token before any answer carried it".to_owned())
            }
        };
        if let Some(detail) = detail {
            report
                .push(AnomalyKind::AdmissionBreach, Some(campaign), detail)
                .ops
                .push((*join).clone());
        }
        let (Some(token), Some(pid)) = (&join.value.admission_token, join.value.participation_id)
        else {
            continue;
        };
        match wins.get(token.as_str()) {
            Some(&(first, other)) if first != pid => {
                let a = report.push(
                    AnomalyKind::AdmissionBreach,
                    Some(campaign),
                    format!("one token won twice: participations {first} and {pid}"),
                );
                a.ops.push(other.clone());
                a.ops.push((*join).clone());
            }
            Some(_) => {}
            None => {
                wins.insert(token, (pid, join));
            }
        }
    }
    // Every win MySQL holds came from a join of its user that carried a token issued to them.
    for p in state
        .participations
        .iter()
        .filter(|p| p.campaign == campaign)
    {
        let admitted = joins.iter().any(|j| {
            j.user() == Some(p.user)
                && j.outcome != Outcome::Fail
                && observed.token_of(j) == TokenVerdict::Fine
        });
        if !admitted {
            let a = report.push(
                AnomalyKind::AdmissionBreach,
                Some(campaign),
                format!(
                    "MySQL holds participation {} of user {}, whose joins carried no token issued to them",
                    p.id, p.user
                ),
            );
            a.ops.extend(
                joins
                    .iter()
                    .filter(|j| j.user() == Some(p.user))
                    .map(|j| (*j).clone()),
            );
        }
    }
}

fn order(campaign: i64, observed: &Observed, ops: &[Op], report: &mut Report) {
    let Some(room) = observed.rooms.get(&campaign) else {
        return;
    };
    for b in room.out_of_order() {
        let a = report.push(
            AnomalyKind::QueueOrder,
            Some(campaign),
            format!(
                "ticket {} was still waiting after ticket {}, which queued after it had queued, \
                 was admitted",
                b.first, b.later
            ),
        );
        a.ops.push(ops[b.waiting_op].clone());
        a.ops.push(ops[b.admitted_op].clone());
    }
    for b in room.moved_back() {
        let a = report.push(
            AnomalyKind::QueueOrder,
            Some(campaign),
            format!("ticket {} moved back in the queue", b.ticket),
        );
        a.ops.push(ops[b.earlier_op].clone());
        a.ops.push(ops[b.later_op].clone());
    }
}
