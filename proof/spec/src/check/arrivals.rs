//! Returns and controls on their way to the gate (design §14–15, §18.1): MySQL has a cancel's,
//! a refund's or a stock addition's units from the commit, the gate from a call after it, and
//! the operation answers only once the gate has them; a resume likewise. Until then a refusal
//! may still see the gate without them, as if the change came later.
//!
//! The promise has two bounds, both enforced: the change is at the gate once the operation
//! that wrote it has answered (for a return, any cancel or refund answering `CANCELLED`: the
//! service repeats that answer only once the gate has the units), and in any case ≤
//! [`GATE_ARRIVAL`] after its commit. The commit instant is bounded by the whole order
//! ([`CommitBounds`]): no later than the earliest answer that observed it or any later event.
//! The relaxation is about events, never about operations: a control that changed nothing
//! wrote no event and excuses nothing, and a unit returned once is counted once however many
//! operations answered about it.
//!
//! An answer that says its change did not reach the gate (`gate: PENDING`: Redis could not be
//! reached, §18.1) observes the commit, not the arrival: its change is at the gate ≤
//! [`GATE_ARRIVAL`] after its commit or ≤ `redis_settle` after the end of a Redis fault that
//! overlapped the answer, whichever is later. (An answer without the field, as histories before
//! it have, counts as reaching the gate.)
//!
//! An expiry (the sweeper's) is a return like a cancel (§18.1), but no answer observes it: its
//! units are at the gate ≤ [`GATE_ARRIVAL`] after its commit, which the later events of its key
//! bound (MySQL's `cancelled_at` cannot: it is written before the commit, which may wait on the
//! campaign row's lock). A change whose commit nothing bounds from above is not counted: no
//! bound could be enforced (and then real time lets a refusal see the order without it anyway).
//!
//! A bucketed campaign's order places each event at the instant it took its outbox id, before
//! its commit ([`super::merge`]); a read of the whole campaign sees only what had committed.
//! So every event that brought units back (a return of any kind, an expiry too, a stock
//! addition) is also listed as *unseen* from its position until its commit bound in its own
//! key: not a relaxation, but what the merged order cannot tell. An unbucketed campaign's ids
//! follow its commits (one row, one lock): nothing is unseen.

use std::collections::HashMap;

use crate::{
    event::{CancelReason, ControlKind, Envelope, Event},
    history::{Fault, Op, Outcome},
};

use super::{holds::is_redis, index::CampaignOps, replay::Replay, timeline::CommitBounds};

/// How long after its commit a return or a control reaches the gate at the latest, ns (§14:
/// "within ~1 s of that commit").
pub const GATE_ARRIVAL: i64 = 1_000_000_000;

/// One return, stock addition or resume in the order.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub pos: usize,
    /// Units it brought back (0 for a resume).
    pub units: i64,
    /// The instant by which it is at the gate: the earlier of its first observation and
    /// [`GATE_ARRIVAL`] after the latest instant its commit can have.
    pub until: i64,
    /// [`GATE_ARRIVAL`] after the latest commit instant (the commit bound itself, for an
    /// unseen event).
    reach: i64,
    /// The largest `reach` up to this one in its list: a backward walk stops at the first one
    /// that is over. (The bounds are per key, so `reach` alone may fall along a merged order.)
    walk: i64,
}

/// The campaign's arrivals, by position.
pub struct Arrivals {
    pub units: Vec<Arrival>,
    pub resumes: Vec<Arrival>,
    /// A bucketed campaign's events that brought units back, from their instant to their
    /// commit bound (module doc); those whose commit nothing bounds are in `unseen_open`.
    pub unseen: Vec<Arrival>,
    pub unseen_open: Vec<Arrival>,
}

/// What [`Arrivals::new`] reads.
pub struct Sources<'a> {
    pub order: &'a [Envelope],
    pub replay: &'a Replay,
    pub bounds: &'a CommitBounds,
    pub ops: &'a [Op],
    pub index: &'a CampaignOps,
    /// Whether the order is a bucketed campaign's merge (then units may be unseen).
    pub bucketed: bool,
    pub faults: &'a [Fault],
    /// How long after Redis answers again a change answered `PENDING` reaches the gate, ns.
    pub redis_settle: i64,
}

impl Arrivals {
    /// O(n). Only steps the model applied count (an illegal return moved no unit), and only
    /// those whose commit something bounds (otherwise no bound could be enforced).
    pub fn new(src: &Sources) -> Self {
        let answered = control_answers(src.ops, src.index);
        let pending = Pending::new(src);
        let (mut units, mut resumes) = (Vec::new(), Vec::new());
        for (pos, e) in src.order.iter().enumerate() {
            let r = src.replay;
            let (list, amount, observed) = match e.event {
                // An expiry is a return like a cancel (§18.1), but no answer observes it: back
                // ≤ GATE_ARRIVAL after its commit, which the order or MySQL's record bounds.
                Event::Cancelled {
                    reason: CancelReason::Expired,
                    quantity,
                    ..
                } => (&mut units, quantity, i64::MAX),
                Event::Cancelled { quantity, user, .. } => {
                    (&mut units, quantity, pending.cancel_reached(user))
                }
                Event::Control {
                    kind: kind @ ControlKind::Stock(d),
                    seq,
                    ..
                } if d > 0 => (&mut units, d, answered_at(&answered, kind, seq)),
                Event::Control {
                    kind: kind @ ControlKind::Resume,
                    seq,
                    ..
                } if r.paused_in(pos, pos) && !r.paused_in(pos + 1, pos + 1) => {
                    (&mut resumes, 0, answered_at(&answered, kind, seq))
                }
                _ => continue,
            };
            let latest = src.bounds.latest[pos];
            if r.free[pos + 1] - r.free[pos] != amount || latest == i64::MAX {
                continue;
            }
            let reach = latest
                .saturating_add(GATE_ARRIVAL)
                .max(pending.redis_bound(&src.order[pos].event));
            list.push(Arrival {
                pos,
                units: amount,
                until: observed.min(reach),
                reach,
                walk: reach,
            });
        }
        let (unseen, unseen_open) = match src.bucketed {
            true => unseen(src),
            false => Default::default(),
        };
        let mut arrivals = Self {
            units,
            resumes,
            unseen,
            unseen_open,
        };
        for list in [
            &mut arrivals.units,
            &mut arrivals.resumes,
            &mut arrivals.unseen,
        ] {
            for j in 1..list.len() {
                list[j].walk = list[j].reach.max(list[j - 1].walk);
            }
        }
        arrivals
    }
}

/// Every step that raised the free units, unseen until its commit bound in its key; apart,
/// those whose commit nothing bounds.
fn unseen(src: &Sources) -> (Vec<Arrival>, Vec<Arrival>) {
    let free = &src.replay.free;
    let (mut bounded, mut open) = (Vec::new(), Vec::new());
    for pos in 0..src.order.len() {
        let units = free[pos + 1] - free[pos];
        if units <= 0 {
            continue;
        }
        let until = src.bounds.latest[pos];
        let list = if until == i64::MAX {
            &mut open
        } else {
            &mut bounded
        };
        list.push(Arrival {
            pos,
            units,
            until,
            reach: until,
            walk: until,
        });
    }
    (bounded, open)
}

/// The answers that said their change had not reached the gate (`gate: PENDING`).
struct Pending<'a> {
    src: &'a Sources<'a>,
}

impl<'a> Pending<'a> {
    fn new(src: &'a Sources<'a>) -> Self {
        Self { src }
    }

    /// The earliest completion of an `ok` cancel or refund of `user` answering `CANCELLED` with
    /// its units at the gate (`gate` not `PENDING`).
    fn cancel_reached(&self, user: i64) -> i64 {
        CampaignOps::of_user(&self.src.index.cancels, user)
            .iter()
            .map(|&i| &self.src.ops[i])
            .filter(|op| op.outcome == Outcome::Ok && !said_pending(op))
            .filter(|op| op.value.status.as_deref().is_none_or(|s| s == "CANCELLED"))
            .filter_map(|op| op.complete)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The latest `end of a Redis fault + redis_settle` among the faults overlapping an answer
    /// about `event` that said `PENDING` (`i64::MIN`: none).
    fn redis_bound(&self, event: &Event) -> i64 {
        let ops: Vec<&Op> = match *event {
            Event::Cancelled { user, .. } => CampaignOps::of_user(&self.src.index.cancels, user)
                .iter()
                .map(|&i| &self.src.ops[i])
                .collect(),
            Event::Control { kind, seq, .. } => (self.src.index.controls.get(&kind))
                .into_iter()
                .flatten()
                .map(|&i| &self.src.ops[i])
                .filter(|op| op.value.control_seq == Some(seq))
                .collect(),
            _ => Vec::new(),
        };
        ops.into_iter()
            .filter(|op| op.outcome == Outcome::Ok && said_pending(op))
            .flat_map(|op| {
                let done = op.complete.unwrap_or(i64::MAX);
                (self.src.faults.iter())
                    .filter(move |f| is_redis(f) && f.start <= done)
                    .filter(move |f| f.end.is_none_or(|end| end >= op.invoke))
            })
            .map(|f| {
                f.end
                    .map_or(i64::MAX, |end| end.saturating_add(self.src.redis_settle))
            })
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// Whether the answer said its change had not reached the gate.
fn said_pending(op: &Op) -> bool {
    op.value.gate.as_deref() == Some("PENDING")
}

/// (kind, control number) → the earliest completion of an `ok` control of that kind answering
/// exactly that number: the operation that wrote it answers only once the gate has it. A later
/// control's answer says nothing of this one's trip to the gate, so only these count (one that
/// changed nothing and answered the same number is among them: which of the two wrote the
/// event the history cannot tell, so the earlier answer ends the relaxation).
fn control_answers(ops: &[Op], index: &CampaignOps) -> HashMap<(ControlKind, i64), i64> {
    let mut answered: HashMap<(ControlKind, i64), i64> = HashMap::new();
    for (&kind, list) in &index.controls {
        for op in list.iter().map(|&i| &ops[i]) {
            if let (Outcome::Ok, Some(seq), Some(done), false) = (
                op.outcome,
                op.value.control_seq,
                op.complete,
                said_pending(op),
            ) {
                let at = answered.entry((kind, seq)).or_insert(done);
                *at = (*at).min(done);
            }
        }
    }
    answered
}

fn answered_at(answered: &HashMap<(ControlKind, i64), i64>, kind: ControlKind, seq: i64) -> i64 {
    answered.get(&(kind, seq)).copied().unwrap_or(i64::MAX)
}

/// The arrivals of `list` before prefix `b` that may still be on their way at some instant
/// after `since`. Walks back from `b` and stops where every earlier one is over its bound.
pub fn pending(list: &[Arrival], b: usize, since: i64) -> impl Iterator<Item = &Arrival> {
    let end = list.partition_point(|a| a.pos < b);
    list[..end]
        .iter()
        .rev()
        .take_while(move |a| a.walk > since)
        .filter(move |a| a.until > since)
}
