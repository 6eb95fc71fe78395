//! The operations of one campaign, indexed the ways the checks look them up: a user's joins,
//! confirms and cancels, and the controls by what they asked. Built in one pass, O(n).

use std::collections::{BTreeMap, HashMap};

use crate::{
    event::ControlKind,
    history::{Func, Op, Outcome},
};

#[derive(Debug, Default)]
pub struct CampaignOps {
    /// Every operation of the campaign, in invocation order (indices into the history's ops).
    pub all: Vec<usize>,
    pub joins: HashMap<i64, Vec<usize>>,
    pub confirms: HashMap<i64, Vec<usize>>,
    /// Cancels and refunds: both may close a win.
    pub cancels: HashMap<i64, Vec<usize>>,
    /// Controls by what they ask (a stock change by its delta).
    pub controls: BTreeMap<ControlKind, Vec<usize>>,
}

impl CampaignOps {
    pub fn of_user(map: &HashMap<i64, Vec<usize>>, user: i64) -> &[usize] {
        map.get(&user).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// What a control operation asked, as the event it would write names it.
pub fn control_kind(op: &Op) -> Option<ControlKind> {
    match op.f {
        Func::Stock => Some(ControlKind::Stock(op.value.delta.unwrap_or(0))),
        Func::Pause => Some(ControlKind::Pause),
        Func::Resume => Some(ControlKind::Resume),
        Func::Close => Some(ControlKind::Close),
        _ => None,
    }
}

/// Groups the operations by campaign; operations without a campaign are returned apart.
pub fn by_campaign(ops: &[Op]) -> (BTreeMap<i64, CampaignOps>, Vec<usize>) {
    let mut campaigns: BTreeMap<i64, CampaignOps> = BTreeMap::new();
    let mut without = Vec::new();
    for op in ops {
        // The waiting room's calls write nothing the order shows: `admission` judges them. A
        // cart and a purchase's confirm or cancel are judged through their items, projected
        // onto their campaigns (`project`), and a cart as a whole by `carts`.
        if matches!(op.f, Func::Queue | Func::Poll) || op.f.is_purchase() {
            continue;
        }
        let Some(campaign) = op.campaign() else {
            without.push(op.id);
            continue;
        };
        let index = campaigns.entry(campaign).or_default();
        index.all.push(op.id);
        let by_user = match op.f {
            Func::Join => Some(&mut index.joins),
            Func::Confirm => Some(&mut index.confirms),
            Func::Cancel | Func::Refund => Some(&mut index.cancels),
            _ => None,
        };
        match (by_user, op.user(), control_kind(op)) {
            (Some(map), Some(user), _) => map.entry(user).or_default().push(op.id),
            (Some(_), None, _) => without.push(op.id),
            (None, _, Some(kind)) => index.controls.entry(kind).or_default().push(op.id),
            (None, _, None) => {}
        }
    }
    (campaigns, without)
}

/// Whether an operation may have caused a write: anything but a definite refusal (§2.6: a
/// refusal writes nothing).
pub fn may_have_written(op: &Op) -> bool {
    op.outcome != Outcome::Fail
}
