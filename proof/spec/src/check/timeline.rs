//! Ties the committed order to real time (TigerBeetle's way: replay the database's own total order,
//! then check that order against the clients' clock), without any search over interleavings.
//!
//! # Each event's span
//!
//! An event committed at some instant of the harness's clock that the checker does not see; it
//! bounds it by the operations:
//! - `lo`, not before: the earliest invocation among the operations that may have caused it (the
//!   user's joins for a win, their confirms for a confirmation, their cancels and refunds for a
//!   cancellation; a refused operation writes nothing, so it never counts). The k-th control of
//!   a kind needs k distinct operations of that kind, so its `lo` is the k-th earliest of their
//!   invocations. Expiries are written by sweepers: no `lo`.
//! - `hi`, not after: the earliest completion among the `ok` operations that observed it (a join
//!   answered with its participation id, a confirm answered `CONFIRMED`, a cancel answered
//!   `CANCELLED`, a control answered with a `controlCount` at or past its number).
//!
//! An event no possible cause explains is a phantom.
//!
//! # Real-time order
//!
//! Commit instants `t_i ∈ [lo_i, hi_i]` that never decrease along the order exist if and only if
//! every `hi_j ≥ max(lo_i, i ≤ j)` (take `t_j = max(lo_i, i ≤ j)`). One pass checks it; an event
//! `j` with `hi_j` below the largest earlier `lo_i` is a real-time inversion of the pair.
//!
//! # The prefixes an operation may have seen
//!
//! At instant `t` the committed prefix has length `k` only if every event before `k` may have
//! committed by then (`lo_i ≤ t`) and every event from `k` on may still be ahead (`hi_i ≥ t`).
//! So an operation running over `[invoke, complete]` may have seen any prefix in `[A, B]` with
//! `A = max{i + 1 : hi_i < invoke}` (the last event an operation acknowledged before this one
//! began) and `B = min{i : lo_i > complete}` (the first event whose every possible cause began
//! after this one ended). Both are binary searches over the spans sorted once: O(log n) each.

use crate::{
    check::index::{may_have_written, CampaignOps},
    event::{CancelReason, ControlKind, Envelope, Event, LiveStatus},
    history::{Op, Outcome},
    report::{AnomalyKind, Report},
};

use super::replay::event_ref;

/// The bounds of one event's commit instant, with the operations that gave them.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub lo: i64,
    pub hi: i64,
    pub lo_op: Option<usize>,
    pub hi_op: Option<usize>,
}

impl Span {
    const OPEN: Span = Span {
        lo: i64::MIN,
        hi: i64::MAX,
        lo_op: None,
        hi_op: None,
    };

    fn lower(&mut self, time: i64, op: usize) {
        if self.lo_op.is_none() || time < self.lo {
            self.lo = time;
            self.lo_op = Some(op);
        }
    }

    fn upper(&mut self, time: i64, op: usize) {
        if time < self.hi {
            self.hi = time;
            self.hi_op = Some(op);
        }
    }
}

/// Computes every event's span, reporting phantoms. O(n + m log m).
pub fn spans(
    campaign: i64,
    order: &[Envelope],
    ops: &[Op],
    index: &CampaignOps,
    report: &mut Report,
) -> Vec<Span> {
    let controls = ControlCauses::new(ops, index);
    let mut taken: std::collections::BTreeMap<ControlKind, usize> = Default::default();
    let mut spans = Vec::with_capacity(order.len());
    for (pos, e) in order.iter().enumerate() {
        let mut span = Span::OPEN;
        let (causes, observer) = match &e.event {
            Event::Accepted {
                participation,
                user,
                status,
                ..
            } => {
                // The confirms of a win final at once observe its acceptance.
                if *status == LiveStatus::Confirmed {
                    for &c in CampaignOps::of_user(&index.confirms, *user) {
                        if ops[c].outcome == Outcome::Ok && answered(&ops[c], "CONFIRMED") {
                            span.upper(ops[c].definite_end(), c);
                        }
                    }
                }
                (
                    CampaignOps::of_user(&index.joins, *user),
                    Observer::Join(*participation),
                )
            }
            Event::Confirmed { user, .. } => (
                CampaignOps::of_user(&index.confirms, *user),
                Observer::Status("CONFIRMED"),
            ),
            Event::Cancelled {
                reason: CancelReason::Expired,
                ..
            } => {
                spans.push(span);
                continue;
            }
            Event::Cancelled { user, .. } => (
                CampaignOps::of_user(&index.cancels, *user),
                Observer::Status("CANCELLED"),
            ),
            Event::Control { kind, seq, .. } => {
                let k = taken.entry(*kind).or_default();
                match controls.nth_invoke(*kind, *k) {
                    Some((time, op)) => span.lower(time, op),
                    None => {
                        let tried = index.controls.get(kind).map(Vec::as_slice);
                        phantom(report, campaign, e, pos, ops, tried);
                    }
                }
                *k += 1;
                if let Some((time, op)) = controls.first_answer_from(*seq) {
                    span.upper(time, op);
                }
                spans.push(span);
                continue;
            }
        };
        for &c in causes {
            let op = &ops[c];
            if may_have_written(op) {
                span.lower(op.invoke, c);
            }
            if op.outcome == Outcome::Ok && observer.observes(op) {
                span.upper(op.definite_end(), c);
            }
        }
        if span.lo_op.is_none() {
            phantom(report, campaign, e, pos, ops, Some(causes));
        }
        spans.push(span);
    }
    spans
}

/// Which `ok` answers observed an event.
enum Observer {
    /// A join answered with this participation id (or with none recorded).
    Join(i64),
    /// A confirm or cancel answered with this status (or with none recorded).
    Status(&'static str),
}

impl Observer {
    fn observes(&self, op: &Op) -> bool {
        match *self {
            Observer::Join(p) => op.value.participation_id.is_none_or(|id| id == p),
            Observer::Status(s) => answered(op, s),
        }
    }
}

fn answered(op: &Op, status: &str) -> bool {
    op.value.status.as_deref().is_none_or(|s| s == status)
}

fn phantom(
    report: &mut Report,
    campaign: i64,
    e: &Envelope,
    pos: usize,
    ops: &[Op],
    refused: Option<&[usize]>,
) {
    let what = if refused.is_some_and(|r| !r.is_empty()) {
        "only refused operations could have caused it"
    } else {
        "no operation invoked it"
    };
    let a = report.push(
        AnomalyKind::PhantomWin,
        Some(campaign),
        format!("{} in the order: {what}", e.type_name()),
    );
    a.events.push(event_ref(e, pos));
    a.ops
        .extend(refused.unwrap_or(&[]).iter().map(|&i| ops[i].clone()));
}

/// The possible causes and observers of control events.
struct ControlCauses {
    /// Kind → invocations of the operations that may have written it, sorted.
    invokes: std::collections::BTreeMap<ControlKind, Vec<(i64, usize)>>,
    /// (answered controlSeq, completion, op) of `ok` controls, sorted by seq, with the suffix
    /// minimum of the completion.
    answers: Vec<(i64, i64, usize)>,
}

impl ControlCauses {
    fn new(ops: &[Op], index: &CampaignOps) -> Self {
        let mut invokes = std::collections::BTreeMap::new();
        let mut answers = Vec::new();
        for (kind, list) in &index.controls {
            let mut times: Vec<(i64, usize)> = list
                .iter()
                .filter(|&&i| may_have_written(&ops[i]))
                .map(|&i| (ops[i].invoke, i))
                .collect();
            times.sort_unstable();
            invokes.insert(*kind, times);
            for &i in list {
                if let (Outcome::Ok, Some(seq), Some(done)) =
                    (ops[i].outcome, ops[i].value.control_seq, ops[i].complete)
                {
                    answers.push((seq, done, i));
                }
            }
        }
        answers.sort_unstable();
        for j in (0..answers.len().saturating_sub(1)).rev() {
            if answers[j + 1].1 < answers[j].1 {
                answers[j].1 = answers[j + 1].1;
                answers[j].2 = answers[j + 1].2;
            }
        }
        Self { invokes, answers }
    }

    fn nth_invoke(&self, kind: ControlKind, n: usize) -> Option<(i64, usize)> {
        self.invokes.get(&kind).and_then(|v| v.get(n)).copied()
    }

    /// The earliest completion of an answer that includes control `seq`.
    fn first_answer_from(&self, seq: i64) -> Option<(i64, usize)> {
        let i = self.answers.partition_point(|a| a.0 < seq);
        self.answers.get(i).map(|a| (a.1, a.2))
    }
}

/// Reports every real-time inversion among the events of each key (`lane[p]`: event `p`'s key;
/// an empty `lane` puts every event in one). A bucketed campaign merged by outbox id is checked
/// as one key: ids follow real time ([`super::merge`]), so an inversion across keys is still
/// one. Merged by `occurredAt`, only each key's own order is checked. O(n).
pub fn inversions(
    campaign: i64,
    order: &[Envelope],
    (spans, lane): (&[Span], &[usize]),
    ops: &[Op],
    report: &mut Report,
) {
    // Per key: (max lo so far, its position).
    let mut latest: Vec<Option<(i64, usize)>> = Vec::new();
    for (j, span) in spans.iter().enumerate() {
        let k = lane.get(j).copied().unwrap_or(0);
        if latest.len() <= k {
            latest.resize(k + 1, None);
        }
        if let Some((lo, i)) = latest[k] {
            if span.hi < lo {
                let a = report.push(
                    AnomalyKind::RealTimeInversion,
                    Some(campaign),
                    format!(
                        "{} (#{j}) was acknowledged before the operation behind {} (#{i}) was invoked, yet follows it",
                        order[j].type_name(),
                        order[i].type_name()
                    ),
                );
                a.events.push(event_ref(&order[i], i));
                a.events.push(event_ref(&order[j], j));
                a.ops.extend(spans[i].lo_op.map(|o| ops[o].clone()));
                a.ops.extend(span.hi_op.map(|o| ops[o].clone()));
            }
        }
        if span.lo_op.is_some() && latest[k].is_none_or(|(lo, _)| span.lo > lo) {
            latest[k] = Some((span.lo, j));
        }
    }
}

/// The prefixes operations may have seen (module doc).
pub struct Windows {
    n: usize,
    /// (hi, running max of position + 1), sorted by hi.
    by_hi: Vec<(i64, usize)>,
    /// (lo, suffix min of position), sorted by lo.
    by_lo: Vec<(i64, usize)>,
}

impl Windows {
    pub fn new(spans: &[Span]) -> Self {
        Self::of(spans, |_| true)
    }

    /// The windows one key gives (`lane[p]`: event `p`'s key), in positions of the whole
    /// order: the prefixes of that key's events an operation may have seen. A key with no
    /// event bounds nothing (`0..=n`).
    pub fn lane(spans: &[Span], lane: &[usize], key: usize) -> Self {
        Self::of(spans, |i| lane.get(i) == Some(&key))
    }

    fn of(spans: &[Span], keep: impl Fn(usize) -> bool) -> Self {
        let mut by_hi: Vec<(i64, usize)> = spans
            .iter()
            .enumerate()
            .filter(|&(i, s)| s.hi_op.is_some() && keep(i))
            .map(|(i, s)| (s.hi, i + 1))
            .collect();
        by_hi.sort_unstable();
        for j in 1..by_hi.len() {
            by_hi[j].1 = by_hi[j].1.max(by_hi[j - 1].1);
        }
        let mut by_lo: Vec<(i64, usize)> = spans
            .iter()
            .enumerate()
            .filter(|&(i, s)| s.lo_op.is_some() && keep(i))
            .map(|(i, s)| (s.lo, i))
            .collect();
        by_lo.sort_unstable();
        for j in (0..by_lo.len().saturating_sub(1)).rev() {
            by_lo[j].1 = by_lo[j].1.min(by_lo[j + 1].1);
        }
        Self {
            n: spans.len(),
            by_hi,
            by_lo,
        }
    }

    /// `A(t)`: the shortest prefix that may be committed at `t`.
    pub fn earliest(&self, t: i64) -> usize {
        match self.by_hi.partition_point(|&(hi, _)| hi < t) {
            0 => 0,
            i => self.by_hi[i - 1].1,
        }
    }

    /// `B(t)`: the longest prefix that may be committed at `t`.
    pub fn latest(&self, t: i64) -> usize {
        let i = self.by_lo.partition_point(|&(lo, _)| lo <= t);
        self.by_lo.get(i).map_or(self.n, |&(_, pos)| pos)
    }

    /// `[A(from), B(to)]`, or `None` if real time allows no prefix (an inversion, reported apart).
    pub fn range(&self, from: i64, to: i64) -> Option<(usize, usize)> {
        let (a, b) = (self.earliest(from), self.latest(to));
        (a <= b).then_some((a, b))
    }
}

/// Each event's commit instant as the order bounds it: event `p` committed no earlier than any
/// `lo` before it (instants rise along the order, and a commit follows its instant) and no
/// later than any `hi` after it in its own key (`lane[p]`), whose row lock it held until then.
/// For one key (an unbucketed campaign) that is every later event, as before.
pub struct CommitBounds {
    /// `max lo_i, i ≤ p` (`i64::MIN` when no cause bounds it).
    pub earliest: Vec<i64>,
    /// `min hi_j, j ≥ p` in `p`'s key (`i64::MAX` when no answer bounds it).
    pub latest: Vec<i64>,
}

impl CommitBounds {
    /// O(n).
    pub fn new(spans: &[Span], lane: &[usize]) -> Self {
        let mut earliest = Vec::with_capacity(spans.len());
        let mut lo = i64::MIN;
        for s in spans {
            lo = lo.max(s.lo);
            earliest.push(lo);
        }
        let mut latest = vec![i64::MAX; spans.len()];
        let mut hi: Vec<i64> = Vec::new();
        for (p, s) in spans.iter().enumerate().rev() {
            let k = lane.get(p).copied().unwrap_or(0);
            if hi.len() <= k {
                hi.resize(k + 1, i64::MAX);
            }
            hi[k] = hi[k].min(s.hi);
            latest[p] = hi[k];
        }
        Self { earliest, latest }
    }
}
