//! The longest stretch during which a campaign refused joins while its committed order had
//! units free (design §18.1: the checker reports it per campaign).
//!
//! Walk the campaign's joins in invocation order. A stretch is a maximal run of `SOLD_OUT`
//! refusals each given while the order had the units asked free at every prefix real time
//! allows (so each was excused by a relaxation, or is an unjustified refusal), broken by any
//! join that won (`ok`) or by a `SOLD_OUT` the order justifies; joins that ended otherwise
//! (`info`, other codes) neither extend nor break it. It lasts from the first refusal's invoke
//! to the latest completion among its refusals: how long a buyer arriving then was turned away
//! from units the order had. One pass over the campaign's operations, O(n).

use crate::{
    history::{Func, Op, Outcome},
    report::Stretch,
};

/// The campaign's longest stretch, if it refused any join with units free. `sold_out` is what
/// [`super::refusals::check`] answers: each `SOLD_OUT` of a join, in invocation order, with
/// whether the order had the units free.
pub fn longest(
    campaign: i64,
    ops: &[Op],
    all: &[usize],
    sold_out: &[(usize, bool)],
) -> Option<Stretch> {
    let mut marks = sold_out.iter().peekable();
    let mut current: Option<Stretch> = None;
    let mut best: Option<Stretch> = None;
    let mut close = |current: &mut Option<Stretch>| {
        if let Some(s) = current.take() {
            if best.is_none_or(|b| s.nanos() > b.nanos()) {
                best = Some(s);
            }
        }
    };
    for &i in all {
        let op = &ops[i];
        if op.f != Func::Join {
            continue;
        }
        let free = match marks.peek() {
            Some(&&(j, free)) if j == i => {
                marks.next();
                Some(free)
            }
            _ => None,
        };
        match (free, op.outcome) {
            (Some(true), _) => {
                let to = op.complete.unwrap_or(op.invoke);
                let s = current.get_or_insert(Stretch {
                    campaign,
                    from: op.invoke,
                    to,
                    refusals: 0,
                });
                s.to = s.to.max(to);
                s.refusals += 1;
            }
            (Some(false), _) | (None, Outcome::Ok) => close(&mut current),
            (None, _) => {}
        }
    }
    close(&mut current);
    best
}
