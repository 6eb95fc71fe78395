//! Carts all or nothing (design §22), judged on the final state against the cart requests. The
//! harness sends every cart request with an `Idempotency-Key` of its own (a retry reuses it),
//! which MySQL keeps on the purchase row: that ties each purchase to the requests that may
//! have written it. Per purchase and per request:
//!
//! - every participation with a `purchase` has its purchase row, and its user and a campaign
//!   of the purchase's group;
//! - a purchase was asked: some cart request with its key may have written (an `ok` or an
//!   unknown outcome), by its user, in its group;
//! - a purchase has exactly the items its request asked (campaign and quantity, each once);
//!   an unknown outcome is whole or absent, never partial;
//! - an `ok` cart is in MySQL whole: its purchase row, with the key sent, and each answered
//!   item's participation in that purchase; every `ok` with one key answered one purchase,
//!   and no request with a key is refused once a purchase was answered for it;
//! - a key every request of which was refused (a 4xx) has no purchase: a refusal writes
//!   nothing (§2.6);
//! - a purchase's items share one status at the end (held, confirmed, cancelled or expired
//!   together);
//! - each item's `ParticipationAccepted` names its purchase (`purchaseId`), and a single
//!   join's names none; a later event of a win that names a purchase names its own;
//! - a participation without a purchase is a single join's: some join of its user on its
//!   campaign (not a cart's item) may have written it — a cart that wrote an item without its
//!   purchase is caught here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::{
    final_state::{FinalState, GroupState, Participation, Purchase},
    history::{Func, History, Op, Outcome},
    report::{AnomalyKind, Report},
};

pub fn check(history: &History, state: &FinalState, groups: &GroupState, report: &mut Report) {
    let carts: Vec<&Op> = history.ops.iter().filter(|o| o.f == Func::Cart).collect();
    let Some(purchases) = &groups.purchases else {
        if !carts.is_empty() {
            report
                .skipped
                .push("carts: all or nothing (no purchases in the final state)".to_owned());
        }
        return;
    };
    let purchase_of = groups.purchase_of();
    let mut items: BTreeMap<i64, Vec<&Participation>> = BTreeMap::new();
    for p in &state.participations {
        if let Some(&x) = purchase_of.get(&p.id) {
            items.entry(x).or_default().push(p);
        }
    }
    let by_id: HashMap<i64, &Purchase> = purchases.iter().map(|p| (p.id, p)).collect();
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in &carts {
        if let Some(k) = op.value.idempotency_key.as_deref() {
            by_key.entry(k).or_default().push(op);
        }
    }
    let group_of = groups.group_of();
    for (&purchase, list) in &items {
        let Some(row) = by_id.get(&purchase) else {
            breach(
                report,
                format!("purchase {purchase}: items without its row"),
                &[],
            );
            continue;
        };
        for p in list {
            if p.user != row.user || group_of.get(&p.campaign) != Some(&row.group) {
                breach(
                    report,
                    format!(
                        "purchase {purchase}: participation {} of another user or group",
                        p.id
                    ),
                    &[],
                );
            }
        }
        statuses(purchase, list, report);
    }
    for row in purchases {
        let list = items.get(&row.id).map(Vec::as_slice).unwrap_or(&[]);
        let asked = row.idempotency_key.as_deref().and_then(|k| by_key.get(k));
        asked_whole(row, list, asked.map(Vec::as_slice).unwrap_or(&[]), report);
    }
    for op in carts.iter().filter(|o| o.outcome == Outcome::Ok) {
        answered(op, &by_id, &items, report);
    }
    refused_wrote_nothing(&by_key, purchases, report);
    events(state, &purchase_of, report);
    singles(history, state, &purchase_of, report);
}

fn breach(report: &mut Report, detail: String, ops: &[&Op]) {
    let a = report.push(AnomalyKind::CartBreach, None, detail);
    a.ops.extend(ops.iter().map(|o| (*o).clone()));
}

/// The items of one purchase share one status.
fn statuses(purchase: i64, list: &[&Participation], report: &mut Report) {
    let seen: BTreeSet<&str> = list.iter().map(|p| p.status.as_str()).collect();
    if seen.len() > 1 {
        breach(
            report,
            format!("purchase {purchase}: items left in different states {seen:?}"),
            &[],
        );
    }
}

/// A purchase row was asked by a request that may have written, and has exactly its items.
fn asked_whole(row: &Purchase, list: &[&Participation], asked: &[&Op], report: &mut Report) {
    let writers: Vec<&&Op> = asked
        .iter()
        .filter(|o| o.outcome != Outcome::Fail)
        .collect();
    let Some(request) = writers.first() else {
        let why = if asked.is_empty() {
            "no cart request sent its key"
        } else {
            "every request with its key was refused"
        };
        breach(report, format!("purchase {}: {why}", row.id), asked);
        return;
    };
    let wanted: BTreeMap<i64, i64> = (request.value.items.iter().flatten())
        .map(|i| (i.campaign, i.quantity))
        .collect();
    let mut got: BTreeMap<i64, i64> = BTreeMap::new();
    for p in list {
        *got.entry(p.campaign).or_default() += p.quantity;
    }
    let counted = list.len() == got.len();
    let same_owner = request.user() == Some(row.user) && request.value.group == Some(row.group);
    if wanted != got || !counted || !same_owner {
        breach(
            report,
            format!(
                "purchase {}: items {got:?} ({} row(s)), the request asked {wanted:?} \
                 (user {:?}, group {:?})",
                row.id,
                list.len(),
                request.user(),
                request.value.group
            ),
            &[request],
        );
    }
}

/// An `ok` cart is in MySQL whole, as answered.
fn answered(
    op: &Op,
    by_id: &HashMap<i64, &Purchase>,
    items: &BTreeMap<i64, Vec<&Participation>>,
    report: &mut Report,
) {
    let Some(purchase) = op.value.purchase else {
        breach(
            report,
            "an ok cart without its purchase id".to_owned(),
            &[op],
        );
        return;
    };
    let Some(row) = by_id.get(&purchase) else {
        let detail = format!("purchase {purchase} answered 201, MySQL has no such purchase");
        let a = report.push(AnomalyKind::LostWin, None, detail);
        a.ops.push(op.clone());
        return;
    };
    if row.idempotency_key != op.value.idempotency_key {
        let detail = format!("purchase {purchase} answered for another Idempotency-Key");
        breach(report, detail, &[op]);
    }
    let held: BTreeSet<i64> = items
        .get(&purchase)
        .into_iter()
        .flatten()
        .map(|p| p.id)
        .collect();
    let answered: BTreeSet<i64> = (op.value.items.iter().flatten())
        .filter_map(|i| i.participation_id)
        .collect();
    if answered != held {
        let detail =
            format!("purchase {purchase}: answered items {answered:?}, MySQL has {held:?} in it");
        breach(report, detail, &[op]);
    }
}

/// A key every request of which was refused has no purchase; every `ok` of a key answered one
/// purchase.
fn refused_wrote_nothing(
    by_key: &HashMap<&str, Vec<&Op>>,
    purchases: &[Purchase],
    report: &mut Report,
) {
    let keys: HashMap<&str, i64> = (purchases.iter())
        .filter_map(|p| p.idempotency_key.as_deref().map(|k| (k, p.id)))
        .collect();
    for (key, ops) in by_key {
        let oks: BTreeSet<i64> = (ops.iter())
            .filter(|o| o.outcome == Outcome::Ok)
            .filter_map(|o| o.value.purchase)
            .collect();
        if oks.len() > 1 {
            breach(
                report,
                format!("key {key}: answered purchases {oks:?}"),
                ops,
            );
        }
        // The same key and items answer the same purchase again (§22): once one was answered,
        // a later request with its key is never refused.
        let answered_at = (ops.iter())
            .filter(|o| o.outcome == Outcome::Ok)
            .map(|o| o.definite_end())
            .min();
        let late: Vec<&Op> = (ops.iter().copied())
            .filter(|o| o.outcome == Outcome::Fail && answered_at.is_some_and(|t| t < o.invoke))
            .collect();
        if !late.is_empty() {
            breach(
                report,
                format!("key {key}: refused after its purchase was answered"),
                &late,
            );
        }
        let all_refused = ops.iter().all(|o| o.outcome == Outcome::Fail);
        if let (true, Some(p)) = (all_refused, keys.get(key)) {
            breach(
                report,
                format!("a refused cart wrote purchase {p} (key {key})"),
                ops,
            );
        }
    }
}

/// Each `ParticipationAccepted` names the purchase MySQL has its win in, or none for a single
/// join; a later event of a win (confirmed, cancelled) that names a purchase names that one
/// (§22 asks the name of the accepted event; a later one may leave it out). A record without a
/// participation id is left to the order's checks.
fn events(state: &FinalState, purchase_of: &HashMap<i64, i64>, report: &mut Report) {
    let mut seen = BTreeSet::new();
    for record in &state.events {
        let p = &record.payload;
        let ty = p.get("eventType").and_then(|t| t.as_str()).unwrap_or("");
        let required = match ty {
            "ParticipationAccepted" => true,
            "ParticipationConfirmed" | "ParticipationCancelled" => false,
            _ => continue,
        };
        let Some(id) = p.get("participationId").and_then(|v| v.as_i64()) else {
            continue;
        };
        let named = p.get("purchaseId").and_then(|v| v.as_i64());
        let expected = purchase_of.get(&id).copied();
        let wrong = named != expected && (required || named.is_some());
        if wrong && seen.insert((id, ty)) {
            let detail = format!(
                "participation {id}'s {ty} names purchase {named:?}, MySQL has it in {expected:?}"
            );
            breach(report, detail, &[]);
        }
    }
}

/// A win outside any purchase is a single join's.
fn singles(
    history: &History,
    state: &FinalState,
    purchase_of: &HashMap<i64, i64>,
    report: &mut Report,
) {
    let mut joined: BTreeSet<(i64, i64)> = BTreeSet::new();
    for op in history.ops.iter().filter(|o| o.f == Func::Join) {
        if let (Some(c), Some(u), true) = (op.campaign(), op.user(), op.outcome != Outcome::Fail) {
            joined.insert((c, u));
        }
    }
    let carted: BTreeSet<(i64, i64)> = (history.ops.iter())
        .filter(|o| o.f == Func::Cart && o.outcome != Outcome::Fail)
        .flat_map(|o| {
            let user = o.user().unwrap_or_default();
            o.value
                .items
                .iter()
                .flatten()
                .map(move |i| (i.campaign, user))
        })
        .collect();
    for p in &state.participations {
        let key = (p.campaign, p.user);
        if purchase_of.contains_key(&p.id) || joined.contains(&key) || !carted.contains(&key) {
            // A win no operation explains at all is the order's phantom, not a cart's.
            continue;
        }
        breach(
            report,
            format!(
                "participation {} (campaign {}, user {}) has no purchase, and only carts could \
                 have written it",
                p.id, p.campaign, p.user
            ),
            &[],
        );
    }
}
