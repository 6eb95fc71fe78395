//! Every `fail` against the order: a refusal is justified when the model refuses the same at some
//! prefix real time allows during the operation (`[A(invoke), B(complete)]`, see
//! [`super::timeline`]). What the relaxations allow is counted apart; the rest are unjustified
//! refusals, each with the mechanism that may have given it when the history shows one.
//!
//! | f | code | justified when, at some allowed prefix |
//! |---|---|---|
//! | join | `SOLD_OUT` | fewer free units than asked |
//! | join | `ALREADY_PARTICIPATED` | the user has a win |
//! | join | `CAMPAIGN_PAUSED` | paused |
//! | join, controls | `CAMPAIGN_ENDED` | closed (or the campaign has an `endsAt`: not judged) |
//! | join | `CAMPAIGN_NOT_OPEN` | no win yet |
//! | confirm, cancel, refund | `HOLD_EXPIRED` | the hold expired |
//! | confirm | `PARTICIPATION_CANCELLED` | the win cancelled |
//! | cancel | `ALREADY_CONFIRMED` | the win confirmed (and not closed) |
//! | confirm, cancel, refund | `PARTICIPATION_NOT_FOUND` | the user has no win |
//! | stock | `STOCK_IN_USE` | fewer free units than withdrawn |
//!
//! Other codes (validation, rate limits, tokens, idempotency keys, 5xx recorded as `fail`) are
//! counted as not judged; that they wrote nothing is still checked (a refused operation never
//! explains an event).
//!
//! Relaxations: a `SOLD_OUT` justified only by widening the window back by `SOLD_OUT_MEMO_MS`
//! (the sold-out memo, §2.1: an instance keeps answering SOLD_OUT that long after it saw the
//! campaign sold out); a `SOLD_OUT` justified only by counting the units of joins that ended
//! indeterminate and were in doubt meanwhile (§18: the gate keeps a reservation whose commit is
//! in doubt until the service learns its fate, since selling its units could oversell); a
//! `SOLD_OUT` justified only without the units that a stock addition, a cancel or a refund not
//! yet answered when the join began brought back (§14–15: the gate gets them after MySQL's
//! commit, before the answer, so the change may take effect for sale after the join); a
//! `CAMPAIGN_PAUSED` while a resume not yet answered when the join began reached the gate (§15,
//! the same way); an
//! `ALREADY_PARTICIPATED` while another join of the same user was in flight
//! (§3: the gate holds the user from the reservation on, and a retry that finds no row yet answers
//! without an id).

use crate::check::Ctx;
use crate::event::CancelReason;
use crate::history::{Func, Op, Outcome};
use crate::report::{AnomalyKind, Report};

pub const MEMO: &str = "sold-out memo (SOLD_OUT_MEMO_MS)";
pub const SAME_USER: &str = "ALREADY_PARTICIPATED while the same user's join was in flight";
pub const IN_DOUBT: &str = "SOLD_OUT while joins in doubt held the units";
pub const ARRIVING: &str =
    "SOLD_OUT while units an unanswered stock addition or cancel brought back reached the gate";
pub const RESUMING: &str = "CAMPAIGN_PAUSED while an unanswered resume reached the gate";

enum Verdict {
    Justified,
    NotJudged,
    Relaxed(&'static str, String),
    Unjustified(String),
}

pub fn check(ctx: &Ctx, report: &mut Report) {
    for &i in &ctx.index.all {
        let op = &ctx.ops[i];
        if op.outcome != Outcome::Fail {
            continue;
        }
        let Some(code) = op.code() else {
            report
                .push(
                    AnomalyKind::MalformedInput,
                    Some(ctx.campaign),
                    "a fail without a code",
                )
                .ops
                .push(op.clone());
            continue;
        };
        match judge(ctx, op, code) {
            Verdict::Justified => {}
            Verdict::NotJudged => {
                *report
                    .refusals_not_judged
                    .entry(code.to_owned())
                    .or_default() += 1
            }
            Verdict::Relaxed(relaxation, mechanism) => report.relax(relaxation, mechanism, op),
            Verdict::Unjustified(mechanism) => {
                let a = report.push(
                    AnomalyKind::UnjustifiedRefusal,
                    Some(ctx.campaign),
                    format!("{} refused {code}: {mechanism}", op.f.name()),
                );
                a.ops.push(op.clone());
            }
        }
    }
}

fn judge(ctx: &Ctx, op: &Op, code: &str) -> Verdict {
    let end = op.complete.unwrap_or(i64::MAX);
    let Some((a, b)) = ctx.windows.range(op.invoke, end) else {
        // Real time allows no prefix: an inversion around it, reported by that pass.
        return Verdict::Justified;
    };
    let r = ctx.replay;
    let line = op.user().and_then(|u| r.users.get(&u));
    let verdict = |ok: bool, why: &dyn Fn() -> String| {
        if ok {
            Verdict::Justified
        } else {
            Verdict::Unjustified(why())
        }
    };
    match (op.f, code) {
        (Func::Join, "SOLD_OUT") => sold_out(ctx, op, op.quantity(), (a, b)),
        (Func::Stock, "STOCK_IN_USE") => {
            let asked = -op.value.delta.unwrap_or(0);
            let min = ctx.free.query(a, b).map_or(i64::MAX, |m| m.0);
            verdict(min < asked, &|| {
                format!("at least {min} unit(s) free throughout, {asked} withdrawn")
            })
        }
        (Func::Join, "ALREADY_PARTICIPATED") => already(ctx, op, b),
        (Func::Join, "CAMPAIGN_PAUSED") => paused(ctx, op, (a, b)),
        (_, "CAMPAIGN_ENDED") if ctx.row.is_some_and(|c| c.ends_at.is_some()) => Verdict::NotJudged,
        (_, "CAMPAIGN_ENDED") => verdict(r.closed_by(b), &|| "not closed while it ran".to_owned()),
        (Func::Join, "CAMPAIGN_NOT_OPEN") => verdict(r.first_win.is_none_or(|w| w > a), &|| {
            "a win was committed before it began".to_owned()
        }),
        (_, "CAMPAIGN_NOT_FOUND") => verdict(ctx.row.is_none() || a == 0, &|| {
            "the campaign had events before it began".to_owned()
        }),
        (Func::Confirm | Func::Cancel | Func::Refund, "HOLD_EXPIRED") => {
            let expired = line
                .and_then(|l| l.closed)
                .filter(|c| c.1 == CancelReason::Expired);
            verdict(expired.is_some_and(|(x, _)| x < b), &|| match expired {
                Some(_) => "the order expires the hold only after the answer".to_owned(),
                None => "the order never expires the hold".to_owned(),
            })
        }
        (Func::Confirm, "PARTICIPATION_CANCELLED") => {
            let cancelled = line
                .and_then(|l| l.closed)
                .filter(|c| c.1 != CancelReason::Expired);
            verdict(cancelled.is_some_and(|(x, _)| x < b), &|| {
                "not cancelled while it ran".to_owned()
            })
        }
        (Func::Cancel, "ALREADY_CONFIRMED") => {
            // Confirmed at prefixes c + 1 ..= x.
            let ok = line.and_then(|l| {
                l.confirmed
                    .map(|c| (c, l.closed.map_or(usize::MAX, |x| x.0)))
            });
            verdict(ok.is_some_and(|(c, x)| a.max(c + 1) <= b.min(x)), &|| {
                "not confirmed while it ran".to_owned()
            })
        }
        (Func::Confirm | Func::Cancel | Func::Refund, "PARTICIPATION_NOT_FOUND") => {
            verdict(line.is_none_or(|l| l.accepted >= a), &|| {
                "the user's win was committed before it began".to_owned()
            })
        }
        _ => Verdict::NotJudged,
    }
}

fn sold_out(ctx: &Ctx, op: &Op, asked: i64, (a, b): (usize, usize)) -> Verdict {
    let min_free = |from: usize| ctx.free.query(from, b).map_or(i64::MAX, |m| m.0);
    if min_free(a) < asked {
        return Verdict::Justified;
    }
    let memo_from = ctx
        .windows
        .earliest(op.invoke.saturating_sub(ctx.opts.sold_out_memo));
    if min_free(memo_from) < asked {
        return Verdict::Relaxed(
            MEMO,
            "sold out within the memo window before the invoke, units back since".to_owned(),
        );
    }
    let in_doubt = in_doubt_units(ctx, op, a);
    if in_doubt > 0 && min_free(a) - in_doubt < asked {
        return Verdict::Relaxed(
            IN_DOUBT,
            format!("{in_doubt} unit(s) reserved by joins that ended indeterminate, not committed by then"),
        );
    }
    let arriving = arriving_units(ctx, op, op.invoke, b);
    if arriving > 0 && min_free(a) - arriving < asked {
        return Verdict::Relaxed(
            ARRIVING,
            format!("{arriving} unit(s) brought back by operations not answered when it began"),
        );
    }
    // The memo repeats a sold-out its instance saw up to SOLD_OUT_MEMO_MS before: one given
    // while units were on their way to the gate is repeated too (another instance's cancel or
    // stock addition clears only its own memo).
    let seen = op.invoke.saturating_sub(ctx.opts.sold_out_memo);
    let arriving_then = arriving_units(ctx, op, seen, b);
    if ctx.opts.sold_out_memo > 0
        && arriving_then > 0
        && min_free(memo_from) - arriving_then < asked
    {
        return Verdict::Relaxed(
            MEMO,
            format!("the memo of a sold-out while {arriving_then} unit(s) were on their way to the gate"),
        );
    }
    Verdict::Unjustified(explain_sold_out(ctx, op, asked, (a, b)))
}

fn paused(ctx: &Ctx, op: &Op, (a, b): (usize, usize)) -> Verdict {
    let r = ctx.replay;
    if r.paused_in(a, b) {
        return Verdict::Justified;
    }
    if resuming(ctx, op, b) {
        return Verdict::Relaxed(
            RESUMING,
            "paused until a resume not answered when it began".to_owned(),
        );
    }
    let before = ctx
        .windows
        .earliest(op.invoke.saturating_sub(ctx.opts.lookback));
    Verdict::Unjustified(if r.paused_in(before, a) {
        "paused only shortly before the invoke (a pause the gate kept too long?)".to_owned()
    } else {
        "never paused while it ran".to_owned()
    })
}

/// Whether a resume that was still running when `op` began (answered `ok` later, §15: MySQL
/// has it from the commit, the gate from the call after it, then the answer) is in the order
/// before `b`, and the campaign was paused just before it: until that answer, the gate may
/// still say paused.
fn resuming(ctx: &Ctx, op: &Op, b: usize) -> bool {
    let end = op.complete.unwrap_or(i64::MAX);
    let Some(resumes) = ctx.index.controls.get(&crate::event::ControlKind::Resume) else {
        return false;
    };
    resumes
        .iter()
        .map(|&i| &ctx.ops[i])
        .filter(|o| {
            o.outcome == Outcome::Ok && o.invoke < end && ctx.in_flight_until(o) > op.invoke
        })
        .filter_map(|o| ctx.replay.controls.get(&o.value.control_seq?).copied())
        .any(|pos| pos < b && ctx.replay.paused_in(pos, pos))
}

/// Units that answered stock additions, cancels and refunds put back in the order before `b`
/// while they were still running at `since` (`op`'s invoke, or earlier for a memo's answer):
/// MySQL has them from the commit, the gate from the call after it, and the operation answers
/// only then (§14–15). Until that answer the units may reach the sale after `op`'s refusal, as
/// if the operation came later.
fn arriving_units(ctx: &Ctx, op: &Op, since: i64, b: usize) -> i64 {
    let end = op.complete.unwrap_or(i64::MAX);
    let running =
        |o: &Op| o.outcome == Outcome::Ok && o.invoke < end && ctx.in_flight_until(o) > since;
    let added: i64 = ctx
        .index
        .controls
        .iter()
        .filter(|(kind, _)| matches!(kind, crate::event::ControlKind::Stock(d) if *d > 0))
        .flat_map(|(_, ops)| ops.iter().map(|&i| &ctx.ops[i]))
        .filter(|o| running(o))
        .filter_map(|o| {
            let pos = *ctx.replay.controls.get(&o.value.control_seq?)?;
            (pos < b).then_some(o.value.delta.unwrap_or(0))
        })
        .sum();
    let returned: i64 = ctx
        .index
        .cancels
        .values()
        .flatten()
        .map(|&i| &ctx.ops[i])
        .filter(|o| running(o))
        .filter_map(|o| {
            let line = ctx.replay.users.get(&o.user()?)?;
            let (pos, reason) = line.closed?;
            (pos < b && reason != CancelReason::Expired).then_some(line.quantity)
        })
        .sum();
    added + returned
}

/// Units of the campaign's joins that ended indeterminate (`info`: a timeout, a reset, a 5xx),
/// in doubt at some moment of `op` (invoked before it completed, and still holding their
/// reservation when it began: [`Ctx::reserved_until`]), whose win is not in the order before
/// `a`: the gate holds such a join's units until the service learns whether its commit landed,
/// however long MySQL takes to say, or, when its instance died, until the reconciler gives them
/// back (§18: selling them meanwhile could oversell).
fn in_doubt_units(ctx: &Ctx, op: &Op, a: usize) -> i64 {
    let end = op.complete.unwrap_or(i64::MAX);
    ctx.index
        .joins
        .values()
        .flatten()
        .map(|&j| &ctx.ops[j])
        .filter(|j| j.outcome == Outcome::Info && j.id != op.id)
        .filter(|j| j.invoke < end && ctx.reserved_until(j) > op.invoke)
        .filter(|j| {
            let won_before = j
                .user()
                .and_then(|u| ctx.replay.users.get(&u))
                .is_some_and(|l| l.accepted < a);
            !won_before
        })
        .map(|j| j.quantity())
        .sum()
}

/// Which mechanism may have answered SOLD_OUT while the order had units free throughout.
fn explain_sold_out(ctx: &Ctx, op: &Op, asked: i64, (a, b): (usize, usize)) -> String {
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
    for f in ctx.faults {
        if f.start <= to && f.end.unwrap_or(i64::MAX) >= from {
            why.push(format!("during or just after fault {}: a gate rebuilt from an older snapshot or a lost return?", f.kind));
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
    let mut by_end: std::collections::BTreeMap<String, (usize, i64)> = Default::default();
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

fn already(ctx: &Ctx, op: &Op, b: usize) -> Verdict {
    let user = op.user().unwrap_or_default();
    let line = ctx.replay.users.get(&user);
    if line.is_some_and(|l| l.accepted < b) {
        let answered = op.value.participation_id;
        if answered.is_some_and(|p| line.is_some_and(|l| l.participation != p)) {
            return Verdict::Unjustified(format!(
                "answered participation {answered:?}, not the user's win"
            ));
        }
        return Verdict::Justified;
    }
    let end = op.complete.unwrap_or(i64::MAX);
    let concurrent = crate::check::index::CampaignOps::of_user(&ctx.index.joins, user)
        .iter()
        .map(|&j| &ctx.ops[j])
        .any(|other| {
            other.id != op.id && other.invoke < end && ctx.in_flight_until(other) > op.invoke
        });
    if concurrent {
        return Verdict::Relaxed(
            SAME_USER,
            "another join of the user overlapped it".to_owned(),
        );
    }
    Verdict::Unjustified(match line {
        Some(_) => "the user's win was committed only after the answer".to_owned(),
        None => "the user never won (a reservation released, or a stale gate user set?)".to_owned(),
    })
}
