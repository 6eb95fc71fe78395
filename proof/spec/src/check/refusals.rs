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
//! | join, controls | `CAMPAIGN_ENDED` | closed, or possibly past the campaign's `endsAt` |
//! | join | `CAMPAIGN_NOT_OPEN` | no win yet |
//! | confirm, cancel, refund | `HOLD_EXPIRED` | the hold expired |
//! | confirm | `PARTICIPATION_CANCELLED` | the win cancelled |
//! | cancel | `ALREADY_CONFIRMED` | the win confirmed (and not closed) |
//! | confirm, cancel, refund | `PARTICIPATION_NOT_FOUND` | the user has no win |
//! | stock | `STOCK_IN_USE` | fewer free units than withdrawn |
//! | join | `GROUP_LIMIT_REACHED` | judged across the group by [`super::groups`] |
//!
//! Other codes (validation, rate limits, tokens, idempotency keys, 5xx recorded as `fail`) are
//! counted as not judged; that they wrote nothing is still checked (a refused operation never
//! explains an event).
//!
//! A refusal the order does not justify is excused only by a relaxation of design §18.1, each
//! within its bound and counted apart: for `SOLD_OUT` the sold-out memo, reservations of joins
//! in doubt and returns on their way to the gate ([`super::sold_out`]); a `CAMPAIGN_PAUSED`
//! while a resume that committed was not yet at the gate ([`super::arrivals`]: until an answer
//! observed it, ≤ 1 s after its commit; a resume that changed nothing wrote no event and
//! excuses nothing); an `ALREADY_PARTICIPATED` while another join of the same user was in
//! flight (§3: the gate holds the user from the reservation on, and a retry that finds no row
//! yet answers without an id), or while one that ended unanswered may still hold its
//! reservation, within the bound its reason has ([`super::holds`]: a killed instance's until the
//! reconciler gives it back). `CAMPAIGN_ENDED` of a campaign with an `endsAt` is judged on the
//! wall clock ([`super::wall_clock`]).

use crate::{
    check::Ctx,
    event::CancelReason,
    history::{Func, Op, Outcome},
    report::{AnomalyKind, Report},
};

use super::arrivals;

pub const MEMO: &str = "sold-out memo (≤ SOLD_OUT_MEMO_MS)";
pub const SAME_USER: &str = "ALREADY_PARTICIPATED while the same user's join was in flight";
pub const ARRIVING: &str =
    "SOLD_OUT while units a return brought back reached the gate (a cancel, refund or stock addition: until it answered; an expiry: ≤ 1 s after its commit)";
pub const RESUMING: &str = "CAMPAIGN_PAUSED while a committed resume reached the gate (≤ 1 s)";

pub(super) enum Verdict {
    Justified,
    NotJudged,
    Relaxed(&'static str, String),
    Unjustified(String),
}

/// Judges every refusal of the campaign; answers, for the report's stretches, each `SOLD_OUT`
/// of a join in invocation order with whether the order had the units free (`true`: excused or
/// unjustified).
pub fn check(ctx: &Ctx, report: &mut Report) -> Vec<(usize, bool)> {
    let mut sold_out = Vec::new();
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
        let verdict = judge(ctx, op, code);
        if op.f == Func::Join && code == "SOLD_OUT" {
            sold_out.push((i, !matches!(verdict, Verdict::Justified)));
        }
        match verdict {
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
    sold_out
}

/// Judges one refusal at the prefixes real time allows: for free units, the campaign's order;
/// for one user's win, its key's; for pause and close, the campaign key's ([`super::lanes`]:
/// the same windows for an unbucketed campaign).
fn judge(ctx: &Ctx, op: &Op, code: &str) -> Verdict {
    let end = op.complete.unwrap_or(i64::MAX);
    let Some((a, b)) = ctx.windows.range(op.invoke, end) else {
        // Real time allows no prefix: an inversion around it, reported by that pass.
        return Verdict::Justified;
    };
    let r = ctx.replay;
    let line = op.user().and_then(|u| r.users.get(&u));
    let user = ctx
        .user_windows(op.user().unwrap_or_default())
        .range(op.invoke, end);
    let control = ctx.control_windows().range(op.invoke, end);
    // Real time allows no prefix of the key: an inversion, reported by that pass.
    let on = |range: Option<(usize, usize)>, then: &dyn Fn((usize, usize)) -> Verdict| {
        range.map_or(Verdict::Justified, then)
    };
    let verdict = |ok: bool, why: &dyn Fn() -> String| {
        if ok {
            Verdict::Justified
        } else {
            Verdict::Unjustified(why())
        }
    };
    match (op.f, code) {
        (Func::Join, "SOLD_OUT") => super::sold_out::judge(ctx, op, op.quantity(), (a, b)),
        (Func::Stock, "STOCK_IN_USE") => {
            let asked = -op.value.delta.unwrap_or(0);
            let min = super::sold_out::least_seen(ctx, op, (a, b)).unwrap_or(i64::MAX);
            verdict(min < asked, &|| {
                format!("at least {min} unit(s) free throughout, {asked} withdrawn")
            })
        }
        (Func::Join, "ALREADY_PARTICIPATED") => on(user, &|(_, b)| already(ctx, op, b)),
        // A group's limit is across campaigns: `groups` judges it, with the user's wins in each.
        (Func::Join, "GROUP_LIMIT_REACHED") => Verdict::Justified,
        (Func::Join, "CAMPAIGN_PAUSED") => on(control, &|ab| paused(ctx, op, ab)),
        (_, "CAMPAIGN_ENDED") => on(control, &|(_, b)| ended(ctx, op, b)),
        (Func::Join, "CAMPAIGN_NOT_OPEN") => verdict(ctx.no_win_yet(op.invoke), &|| {
            "a win was committed before it began".to_owned()
        }),
        (_, "CAMPAIGN_NOT_FOUND") => verdict(ctx.row.is_none() || a == 0, &|| {
            "the campaign had events before it began".to_owned()
        }),
        (Func::Confirm | Func::Cancel | Func::Refund, "HOLD_EXPIRED") => on(user, &|(_, b)| {
            let expired = line
                .and_then(|l| l.closed)
                .filter(|c| c.1 == CancelReason::Expired);
            verdict(expired.is_some_and(|(x, _)| x < b), &|| match expired {
                Some(_) => "the order expires the hold only after the answer".to_owned(),
                None => "the order never expires the hold".to_owned(),
            })
        }),
        (Func::Confirm, "PARTICIPATION_CANCELLED") => on(user, &|(_, b)| {
            let cancelled = line
                .and_then(|l| l.closed)
                .filter(|c| c.1 != CancelReason::Expired);
            verdict(cancelled.is_some_and(|(x, _)| x < b), &|| {
                "not cancelled while it ran".to_owned()
            })
        }),
        (Func::Cancel, "ALREADY_CONFIRMED") => on(user, &|(a, b)| {
            // Confirmed at prefixes c + 1 ..= x.
            let ok = line.and_then(|l| {
                l.confirmed
                    .map(|c| (c, l.closed.map_or(usize::MAX, |x| x.0)))
            });
            verdict(ok.is_some_and(|(c, x)| a.max(c + 1) <= b.min(x)), &|| {
                "not confirmed while it ran".to_owned()
            })
        }),
        (Func::Confirm | Func::Cancel | Func::Refund, "PARTICIPATION_NOT_FOUND") => {
            on(user, &|(a, _)| {
                verdict(line.is_none_or(|l| l.accepted >= a), &|| {
                    "the user's win was committed before it began".to_owned()
                })
            })
        }
        _ => Verdict::NotJudged,
    }
}

fn paused(ctx: &Ctx, op: &Op, (a, b): (usize, usize)) -> Verdict {
    let r = ctx.replay;
    if r.paused_in(a, b) {
        return Verdict::Justified;
    }
    if resuming(ctx, op, (a, b)) {
        return Verdict::Relaxed(
            RESUMING,
            "paused until a resume that had not reached the gate".to_owned(),
        );
    }
    let before = ctx
        .control_windows()
        .earliest(op.invoke.saturating_sub(ctx.opts.lookback));
    Verdict::Unjustified(if r.paused_in(before, a) {
        "paused only shortly before the invoke (a pause the gate kept too long?)".to_owned()
    } else {
        "never paused while it ran".to_owned()
    })
}

/// Whether a resume that committed before prefix `b`, after a pause, may not have reached the
/// gate at some instant of the refusal (no answer had observed it, ≤ 1 s after its commit),
/// while the refusal may have seen a prefix that has it.
fn resuming(ctx: &Ctx, op: &Op, (a, b): (usize, usize)) -> bool {
    let end = op.complete.unwrap_or(i64::MAX);
    let windows = ctx.control_windows();
    arrivals::pending(&ctx.arrivals.resumes, b, op.invoke)
        .any(|r| (r.pos + 1).max(a) <= windows.latest(end.min(r.until)).min(b))
}

/// `CAMPAIGN_ENDED`: closed at some prefix the request allows, or, for a campaign with an
/// `endsAt`, possibly past it.
fn ended(ctx: &Ctx, op: &Op, b: usize) -> Verdict {
    if ctx.replay.closed_by(b) {
        return Verdict::Justified;
    }
    let Some(ends) = ctx.row.and_then(|c| c.ends_at) else {
        return Verdict::Unjustified("not closed while it ran".to_owned());
    };
    match super::wall_clock::before_end(ctx, op, ends) {
        Some(true) => Verdict::Unjustified(format!(
            "not closed while it ran, and it ran before endsAt {ends}"
        )),
        Some(false) => Verdict::Justified,
        None => Verdict::NotJudged,
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
    // A join answered overlapped it until its answer; one that ended unanswered holds the user
    // only within its reservation's bound (below), with no lookback of the checker's own.
    let concurrent = crate::check::index::CampaignOps::of_user(&ctx.index.joins, user)
        .iter()
        .map(|&j| &ctx.ops[j])
        .any(|other| {
            other.id != op.id
                && other.outcome != Outcome::Info
                && other.invoke < end
                && other.definite_end() > op.invoke
        });
    if concurrent {
        return Verdict::Relaxed(
            SAME_USER,
            "another join of the user overlapped it".to_owned(),
        );
    }
    // A join of the user that ended unanswered keeps the user at the gate as long as its
    // reservation may stay open (a killed instance's: until the reconciler, §18.1).
    if let Some(hold) =
        (ctx.holds.overlapping(op.invoke, end)).find(|h| h.user == user && h.op != op.id)
    {
        return Verdict::Relaxed(
            SAME_USER,
            format!(
                "an unanswered join of the user may still hold its reservation ({})",
                hold.why.relaxation()
            ),
        );
    }
    Verdict::Unjustified(match line {
        Some(_) => "the user's win was committed only after the answer".to_owned(),
        None => "the user never won (a reservation released, or a stale gate user set?)".to_owned(),
    })
}
