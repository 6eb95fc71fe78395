//! Carts (§22) seen by the per-campaign checks: each item of a cart is a win of its campaign,
//! so every check of a campaign (exactly-N on the replay, phantoms, lost wins, the refusals'
//! justification, the holds of joins in doubt) must count it. Rather than teach each of them
//! carts, the history is projected once: every cart becomes one join per item on the item's
//! campaign, with the cart's invoke, completion and user.
//!
//! | cart | each item's join |
//! |---|---|
//! | `ok` | `ok`, with the item's answered `participationId`, `sequence`, `status` |
//! | `info` (or never completed) | `info`: it may have written, now or later |
//! | `fail` naming the item (`campaign`) | `fail` with the cart's code: judged as a join's refusal (a `SOLD_OUT` of that campaign is judged by the sold-out logic) |
//! | `fail` naming another item | `fail` [`NOT_TAKEN`]: wrote nothing, not judged |
//! | `fail` naming none (`GROUP_LIMIT_REACHED`, validation) | `fail` with the cart's code |
//!
//! A refusal writes nothing (§2.6), so a refused item never explains an event; an item of a
//! cart in flight may hold a reservation and, for `ALREADY_PARTICIPATED`, its user.
//!
//! And since a cancel or an expiry of one item closes its whole purchase (and a confirmation
//! of a purchase confirms every item), a confirm, cancel or refund of a win that belongs to a
//! purchase (the final state's `participation.purchase_id`) may have written the events of its
//! siblings: it is projected onto each sibling's campaign as an `info` of the same function (a
//! possible cause, never an answer to hold to). Only operations that may have written count.
//!
//! A purchase's own confirm, cancel and refund (`purchase-confirm`, `purchase-cancel`,
//! `purchase-refund`) act on every item: each is projected onto every item MySQL has in the
//! purchase as a confirm, cancel or refund of the item's campaign, with the item's answered
//! `status` on an `ok` (an item the answer lacks: `info`), the code on every item of a `fail`
//! (every item shares the purchase's state, so a `HOLD_EXPIRED` is each item's), `info` on an
//! `info`.

use std::collections::HashMap;

use crate::{
    final_state::{FinalState, GroupState},
    history::{Func, History, Op, Outcome, Value},
};

/// The code of the items of a refused cart that the refusal does not name.
pub const NOT_TAKEN: &str = "CART_ITEM_NOT_TAKEN";

/// The history with every cart's items as joins and every purchase item's confirm, cancel and
/// refund also on its siblings' campaigns, appended after the recorded operations (their ids
/// follow). The recorded operations keep their ids.
pub fn project(history: &History, state: &FinalState, groups: &GroupState) -> History {
    let mut ops = history.ops.clone();
    let siblings = Siblings::new(state, groups);
    for op in &history.ops {
        let extra: Vec<Op> = match op.f {
            Func::Cart => items(op),
            Func::PurchaseConfirm | Func::PurchaseCancel | Func::PurchaseRefund => {
                siblings.whole(op)
            }
            Func::Confirm | Func::Cancel | Func::Refund if op.outcome != Outcome::Fail => {
                siblings.of(op)
            }
            _ => Vec::new(),
        };
        for mut e in extra {
            e.id = ops.len();
            ops.push(e);
        }
    }
    History {
        ops,
        faults: history.faults.clone(),
    }
}

/// One join per item of a cart.
fn items(cart: &Op) -> Vec<Op> {
    let asked = cart.value.items.as_deref().unwrap_or(&[]);
    let named = cart.value.campaign;
    asked
        .iter()
        .map(|item| {
            let mut value = Value {
                campaign: Some(item.campaign),
                user: cart.value.user,
                quantity: Some(item.quantity),
                ..Value::default()
            };
            let mut outcome = cart.outcome;
            match cart.outcome {
                Outcome::Ok => {
                    value.participation_id = item.participation_id;
                    value.sequence = item.sequence;
                    value.status = item.status.clone();
                }
                Outcome::Info => value.error = cart.value.error.clone(),
                Outcome::Fail => {
                    value.code = match named {
                        Some(c) if c != item.campaign => Some(NOT_TAKEN.to_owned()),
                        _ => cart.value.code.clone(),
                    };
                    value.participation_id = cart
                        .value
                        .participation_id
                        .filter(|_| named == Some(item.campaign));
                }
            }
            if cart.outcome != Outcome::Info {
                // For people reading a report: which cart the item came from.
                let key = cart
                    .value
                    .idempotency_key
                    .as_deref()
                    .unwrap_or("without a key");
                value.error = Some(format!("an item of cart {key} (process {})", cart.process));
            }
            if cart.outcome == Outcome::Ok && item.participation_id.is_none() {
                // An answer without the item's win: what it wrote is unknown.
                outcome = Outcome::Info;
            }
            Op {
                id: 0,
                process: cart.process,
                f: Func::Join,
                invoke: cart.invoke,
                complete: cart.complete,
                outcome,
                value,
            }
        })
        .collect()
}

/// Each purchase item's siblings: (campaign, user) → the other items' campaigns; and each
/// purchase's items (campaign, participation, user).
struct Siblings {
    of: HashMap<(i64, i64), Vec<i64>>,
    items: HashMap<i64, Vec<(i64, i64, i64)>>,
}

impl Siblings {
    fn new(state: &FinalState, groups: &GroupState) -> Self {
        let purchase_of = groups.purchase_of();
        let mut items: HashMap<i64, Vec<(i64, i64, i64)>> = HashMap::new();
        for p in &state.participations {
            if let Some(&purchase) = purchase_of.get(&p.id) {
                items
                    .entry(purchase)
                    .or_default()
                    .push((p.campaign, p.id, p.user));
            }
        }
        let mut of: HashMap<(i64, i64), Vec<i64>> = HashMap::new();
        for list in items.values() {
            for &(campaign, _, user) in list {
                let others = list.iter().map(|x| x.0).filter(|&c| c != campaign);
                of.entry((campaign, user)).or_default().extend(others);
            }
        }
        Self { of, items }
    }

    /// A purchase's confirm, cancel or refund as one of each item MySQL has in it.
    fn whole(&self, op: &Op) -> Vec<Op> {
        let f = match op.f {
            Func::PurchaseConfirm => Func::Confirm,
            Func::PurchaseCancel => Func::Cancel,
            _ => Func::Refund,
        };
        let list = op.value.purchase.and_then(|p| self.items.get(&p));
        let answered = op.value.items.as_deref().unwrap_or(&[]);
        (list.into_iter().flatten())
            .map(|&(campaign, pid, user)| {
                let mut value = Value {
                    campaign: Some(campaign),
                    user: Some(user),
                    participation_id: Some(pid),
                    code: op.value.code.clone(),
                    error: op.value.error.clone(),
                    gate: op.value.gate.clone(),
                    ..Value::default()
                };
                let mut outcome = op.outcome;
                if outcome == Outcome::Ok {
                    let item = answered.iter().find(|i| i.campaign == campaign);
                    value.status = item.and_then(|i| i.status.clone());
                    if value.status.is_none() {
                        outcome = Outcome::Info;
                    }
                }
                Op {
                    id: 0,
                    f,
                    outcome,
                    value,
                    ..op.clone()
                }
            })
            .collect()
    }

    /// The operation as an `info` on each sibling's campaign.
    fn of(&self, op: &Op) -> Vec<Op> {
        let (Some(campaign), Some(user)) = (op.campaign(), op.user()) else {
            return Vec::new();
        };
        let Some(others) = self.of.get(&(campaign, user)) else {
            return Vec::new();
        };
        others
            .iter()
            .map(|&c| Op {
                id: 0,
                outcome: Outcome::Info,
                value: Value {
                    campaign: Some(c),
                    user: Some(user),
                    error: Some(format!("a sibling's {} (campaign {campaign})", op.f.name())),
                    ..Value::default()
                },
                ..op.clone()
            })
            .collect()
    }
}
