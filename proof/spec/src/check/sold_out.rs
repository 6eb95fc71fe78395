//! A join's `SOLD_OUT` against the order: justified when fewer units than asked are free at some
//! prefix real time allows; otherwise excused only by a relaxation of design §18.1, each within
//! its bound, each unit subtracted once ([`super::gate_view`]):
//! 1. the sold-out memo: sold out at some instant within `SOLD_OUT_MEMO_MS` before the invoke;
//! 2. reservations of joins in doubt, each until its bound ([`super::holds`]) and never past
//!    the prefix where its win is in the order (a join in doubt that committed is a win);
//! 3. returns and stock additions on their way to the gate ([`super::arrivals`]), from the
//!    prefix that has them until they are at the gate;
//! 4. the memo repeating a sold-out given while units were on their way (3. seen from
//!    `SOLD_OUT_MEMO_MS` before the invoke: another instance's return clears only its own
//!    memo).
//!
//! Anything else is an unjustified refusal, reported with the mechanism the history suggests.
//!
//! For a bucketed campaign the free units of a prefix count returns and stock additions that
//! may not have committed yet at the instants the prefix stands for ([`super::arrivals`]'
//! unseen units): every step, the justification first, withholds them over those prefixes.
//! An unbucketed campaign has none.

use std::collections::BTreeMap;

use crate::{
    check::Ctx,
    history::{Op, Outcome},
};

use super::{
    arrivals::{self, Arrival},
    gate_view::{least_free, Withheld},
    refusals::{Verdict, ARRIVING, MEMO},
};

pub fn judge(ctx: &Ctx, op: &Op, asked: i64, (a, b): (usize, usize)) -> Verdict {
    let end = op.complete.unwrap_or(i64::MAX);
    let least = |from: usize, since: i64, list: Vec<Withheld>| {
        least_free(ctx.free, (from, b), &with_unseen(ctx, since, end, b, list))
    };
    let below = |r: Option<(i64, Vec<usize>)>| r.is_some_and(|(least, _)| least < asked);
    if below(least(a, op.invoke, Vec::new())) {
        return Verdict::Justified;
    }
    let seen = op.invoke.saturating_sub(ctx.opts.sold_out_memo);
    let memo_from = ctx.windows.earliest(seen);
    if below(least(memo_from, seen, Vec::new())) {
        return Verdict::Relaxed(
            MEMO,
            "sold out within the memo window before the invoke, units back since".to_owned(),
        );
    }
    if let Some(verdict) = in_doubt(ctx, op, asked, (a, b)) {
        return verdict;
    }
    let back = arriving(ctx, op.invoke, end, (a, b));
    if let Some((least, units)) = least(a, op.invoke, back.clone()).map(total(&back)) {
        if least < asked {
            return Verdict::Relaxed(
                ARRIVING,
                format!("{units} unit(s) brought back, committed but not yet at the gate"),
            );
        }
    }
    if ctx.opts.sold_out_memo > 0 {
        let back = arriving(ctx, seen, end, (memo_from, b));
        let relaxed = least(memo_from, seen, back.clone()).map(total(&back));
        if let Some((_, units)) = relaxed.filter(|r| r.0 < asked) {
            return Verdict::Relaxed(
                MEMO,
                format!(
                    "the memo of a sold-out while {units} unit(s) were on their way to the gate"
                ),
            );
        }
    }
    Verdict::Unjustified(explain(ctx, op, asked, (a, b)))
}

/// The tag of a unit withheld as unseen (it names no relaxation).
const UNSEEN: usize = usize::MAX;

/// `list` with a bucketed campaign's unseen units ([`super::arrivals`]) that may be missing
/// from a read at some instant of `[since, end]`, before prefix `b`, each from the prefix that
/// has it to the last prefix a read before its commit bound can stand for.
fn with_unseen(
    ctx: &Ctx,
    since: i64,
    end: i64,
    b: usize,
    mut list: Vec<Withheld>,
) -> Vec<Withheld> {
    let (bounded, open) = (&ctx.arrivals.unseen, &ctx.arrivals.unseen_open);
    let pending = arrivals::pending(bounded, b, since);
    let open = open.iter().take_while(|u| u.pos < b);
    for u in pending.chain(open) {
        list.push(Withheld {
            from: u.pos + 1,
            to: ctx.windows.latest(end.min(u.until)).min(b),
            units: u.units,
            tag: UNSEEN,
        });
    }
    list
}

/// The least free units a read of the whole campaign may have found over the prefixes `a..=b`
/// while `op` ran: what `STOCK_IN_USE` is judged on too.
pub fn least_seen(ctx: &Ctx, op: &Op, (a, b): (usize, usize)) -> Option<i64> {
    let end = op.complete.unwrap_or(i64::MAX);
    let list = with_unseen(ctx, op.invoke, end, b, Vec::new());
    least_free(ctx.free, (a, b), &list).map(|r| r.0)
}

/// The least units and the units a relaxation withheld there, from [`least_free`]'s tags.
fn total(withheld: &[Withheld]) -> impl Fn((i64, Vec<usize>)) -> (i64, i64) + '_ {
    move |(least, tags)| {
        let units = tags
            .iter()
            .filter_map(|&t| withheld.get(t))
            .map(|w| w.units);
        (least, units.sum())
    }
}

/// The refusal with the reservations of joins in doubt withheld: one per user (the gate holds
/// a user once), from the instant both ran to the earlier of the hold's bound and the prefix
/// where the user's win is in the order. Named after the hold that lasted longest among those
/// the least free units needed.
fn in_doubt(ctx: &Ctx, op: &Op, asked: i64, (a, b): (usize, usize)) -> Option<Verdict> {
    let end = op.complete.unwrap_or(i64::MAX);
    // user → (from, to, units, the hold with the latest bound)
    let mut by_user: BTreeMap<i64, (usize, usize, i64, usize)> = BTreeMap::new();
    let holds: Vec<_> = ctx
        .holds
        .overlapping(op.invoke, end)
        .filter(|h| h.op != op.id)
        .collect();
    for (i, h) in holds.iter().enumerate() {
        let from = ctx.windows.earliest(op.invoke.max(h.from));
        let mut to = ctx.windows.latest(end.min(h.until));
        if let Some(line) = ctx.replay.users.get(&h.user) {
            to = to.min(line.accepted);
        }
        if from > to {
            continue;
        }
        let entry = by_user.entry(h.user).or_insert((from, to, h.quantity, i));
        entry.0 = entry.0.min(from);
        entry.1 = entry.1.max(to);
        entry.2 = entry.2.max(h.quantity);
        if h.until > holds[entry.3].until {
            entry.3 = i;
        }
    }
    let withheld: Vec<Withheld> = by_user
        .values()
        .map(|&(from, to, units, tag)| Withheld {
            from,
            to,
            units,
            tag,
        })
        .collect();
    let all = with_unseen(ctx, op.invoke, end, b, withheld.clone());
    let (least, tags) = least_free(ctx.free, (a, b), &all)?;
    if least >= asked {
        return None;
    }
    let tags: Vec<usize> = tags.into_iter().filter(|&t| t != UNSEEN).collect();
    let longest = tags.iter().map(|&t| holds[t]).max_by_key(|h| h.until)?;
    let units: i64 = withheld
        .iter()
        .filter(|w| tags.contains(&w.tag))
        .map(|w| w.units)
        .sum();
    Some(Verdict::Relaxed(
        longest.why.relaxation(),
        format!(
            "{units} unit(s) reserved by joins that ended indeterminate, not committed by then \
             (the longest hold's bound: {} ms after its invoke)",
            longest.until.saturating_sub(longest.from) / 1_000_000
        ),
    ))
}

/// Units of returns and stock additions on their way to the gate at some instant of
/// `[since, end]`, withheld from the prefix that has them to the last prefix the refusal may
/// have seen before they reached the gate.
fn arriving(ctx: &Ctx, since: i64, end: i64, (a, b): (usize, usize)) -> Vec<Withheld> {
    arrivals::pending(&ctx.arrivals.units, b, since)
        .enumerate()
        .map(
            |(
                tag,
                &Arrival {
                    pos, units, until, ..
                },
            )| Withheld {
                from: (pos + 1).max(a),
                to: ctx.windows.latest(end.min(until)).min(b),
                units,
                tag,
            },
        )
        .collect()
}

/// Which mechanism may have answered SOLD_OUT while the order had units free throughout.
fn explain(ctx: &Ctx, op: &Op, asked: i64, (a, b): (usize, usize)) -> String {
    let (min, max) = ctx.free.query(a, b).unwrap_or((0, 0));
    let mut why = vec![format!(
        "{min}..={max} unit(s) free throughout, {asked} asked"
    )];
    let look_from = ctx
        .windows
        .earliest(op.invoke.saturating_sub(ctx.opts.lookback));
    if ctx.free.query(look_from, a).is_some_and(|m| m.0 < asked) {
        why.push(format!(
            "sold out within {} ms before the invoke: a sold-out memo after a return or a stock addition",
            ctx.opts.lookback / 1_000_000
        ));
    }
    let in_flight = ctx.in_flight.quantity(op) - asked;
    if in_flight > max - asked {
        why.push(format!(
            "{in_flight} unit(s) asked by joins in flight at the same time: reservations still in flight (the gate takes units before MySQL commits); {}",
            uncommitted_overlapping(ctx, op)
        ));
    }
    let from = op.invoke.saturating_sub(ctx.opts.lookback);
    let to = op.complete.unwrap_or(i64::MAX);
    let expired = ctx
        .holds
        .overlapping(from, to)
        .filter(|h| h.until <= op.invoke);
    if let Some(h) = expired.max_by_key(|h| h.until) {
        why.push(format!(
            "a join in doubt held units until {} ms before the invoke at most ({}): a reservation kept past its bound?",
            (op.invoke - h.until) / 1_000_000,
            h.why.relaxation()
        ));
    }
    for f in ctx.faults {
        if f.start <= to && f.end.unwrap_or(i64::MAX) >= from {
            why.push(format!("during or just after fault {}: a gate rebuilt from an older snapshot, a lost return, or a reservation held past its bound?", f.kind));
        }
    }
    if why.len() == 1 {
        why.push("no mechanism identified".to_owned());
    }
    why.join("; ")
}

/// The overlapping joins whose user has no win in the order, by how they ended: the ones whose
/// reservations may have held the units and gone back.
fn uncommitted_overlapping(ctx: &Ctx, op: &Op) -> String {
    let end = op.complete.unwrap_or(i64::MAX);
    let mut by_end: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    let overlapping = ctx.index.joins.values().flatten().map(|&j| &ctx.ops[j]);
    for j in overlapping
        .filter(|j| j.id != op.id && j.invoke < end && ctx.in_flight_until(j) > op.invoke)
    {
        if j.user().is_some_and(|u| ctx.replay.users.contains_key(&u)) {
            continue;
        }
        let how = match j.outcome {
            Outcome::Fail => format!("fail {}", j.code().unwrap_or("?")),
            other => format!(
                "{} {}",
                other.name(),
                j.value.error.as_deref().unwrap_or("")
            ),
        };
        let e = by_end.entry(how).or_default();
        e.0 += 1;
        e.1 += j.quantity();
    }
    let said: Vec<String> = by_end
        .iter()
        .filter(|(how, _)| how.as_str() != "fail SOLD_OUT")
        .map(|(how, (n, q))| format!("{n} × {} ({q} unit(s))", how.trim_end()))
        .collect();
    if said.is_empty() {
        "no overlapping join that never won ended other than SOLD_OUT".to_owned()
    } else {
        format!("overlapping joins that never won: {}", said.join(", "))
    }
}
