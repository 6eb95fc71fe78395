//! The checker: a history and a final state in, a [`Report`] out. Near-linear, no search over
//! interleavings: per campaign it
//! 1. takes the topic's deduplicated order as the committed order ([`order`]);
//! 2. replays it on the model, reporting illegal steps and keeping per-prefix state ([`replay`]);
//! 3. bounds each event's commit instant by the operations and checks the order against real
//!    time ([`timeline`]);
//! 4. checks every `ok` ([`answers`]) and every `fail` ([`refusals`]) against the prefixes real
//!    time allows;
//! 5. compares the model's end with MySQL and the gate ([`end_state`]) and the consumers
//!    ([`consumers`]).
//!
//! Cost: sorting the records and the spans, O(n log n); replay and the inversion pass, O(n); each
//! operation O(log n) (two binary searches and a segment-tree query). Memory is O(n). A million
//! operations check in a few seconds in release (the `scale` test measures it).

mod answers;
mod consumers;
mod end_state;
mod index;
mod order;
mod refusals;
mod replay;
mod rmq;
mod timeline;

use std::collections::{BTreeSet, HashSet};

use crate::final_state::{Campaign, FinalState};
use crate::history::{Fault, Func, History, Op, Outcome};
use crate::model::ModelParams;
use crate::report::{AnomalyKind, Report};

pub use refusals::{ARRIVING, IN_DOUBT, MEMO, RESUMING, SAME_USER};

/// The checker's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `SOLD_OUT_MEMO_MS` of the run, in ns: a SOLD_OUT justified only by looking this far back
    /// before its invoke is counted as the memo's.
    pub sold_out_memo: i64,
    /// How far back (ns) the explanation of an unjustified refusal looks for a sold-out moment, a
    /// pause or a fault, and how long a timed-out operation is taken to stay in flight.
    pub lookback: i64,
    /// `RESERVATION_TIMEOUT_MS` of the run, in ns: a join that ended indeterminate may hold its
    /// reservation at the gate this long after its invoke, plus the reconciler's period (a tenth
    /// of it) and [`RECONCILER_PASS`], when the instance that made it died (§2.9: the reconciler
    /// gives it back).
    pub reservation_timeout: i64,
    pub model: ModelParams,
}

/// What one pass of the service's reconciler may take, ns.
pub const RECONCILER_PASS: i64 = 500_000_000;

impl Default for Options {
    fn default() -> Self {
        Self {
            sold_out_memo: 0,
            lookback: 2_000_000_000,
            reservation_timeout: 0,
            model: ModelParams::default(),
        }
    }
}

/// What the checks of one campaign share.
pub(crate) struct Ctx<'a> {
    pub campaign: i64,
    pub ops: &'a [Op],
    pub index: &'a index::CampaignOps,
    pub order: &'a [crate::event::Envelope],
    pub replay: &'a replay::Replay,
    pub windows: &'a timeline::Windows,
    pub free: &'a rmq::RangeMinMax,
    pub opts: &'a Options,
    pub row: Option<&'a Campaign>,
    pub mysql_participations: &'a HashSet<i64>,
    pub faults: &'a [Fault],
    pub in_flight: &'a InFlight,
}

impl Ctx<'_> {
    /// Until when an operation may still act on the server: its completion, or for a timed-out
    /// one its give-up time plus the lookback, counted from the end of an instance's stop that
    /// overlapped it (a stopped instance serves the requests it holds when it resumes).
    pub fn in_flight_until(&self, op: &Op) -> i64 {
        match (op.outcome, op.complete) {
            (_, None) => i64::MAX,
            (Outcome::Info, Some(t)) => {
                let resumed = self
                    .faults
                    .iter()
                    .filter(|f| f.kind == "stop" && f.start <= t)
                    .filter_map(|f| f.end)
                    .filter(|&end| end >= op.invoke)
                    .fold(t, i64::max);
                resumed.saturating_add(self.opts.lookback)
            }
            (_, Some(t)) => t,
        }
    }

    /// Until when a join's reservation may hold units at the gate: while it may still act on
    /// the server ([`Ctx::in_flight_until`]), and for one that ended indeterminate until the
    /// reconciler gives back what a dead instance left open.
    pub fn reserved_until(&self, op: &Op) -> i64 {
        let acting = self.in_flight_until(op);
        if op.outcome != Outcome::Info || self.opts.reservation_timeout == 0 {
            return acting;
        }
        let t = self.opts.reservation_timeout;
        acting.max(op.invoke.saturating_add(t + t / 10 + RECONCILER_PASS))
    }
}

/// Units asked by the joins of a campaign that overlap an interval: Q(invoked before its end) −
/// Q(over before its start), with prefix sums over the sorted times. O(log n) a query.
pub(crate) struct InFlight {
    starts: Vec<(i64, i64)>,
    ends: Vec<(i64, i64)>,
}

impl InFlight {
    fn new(ops: &[Op], index: &index::CampaignOps, opts: &Options) -> Self {
        let joins = index.joins.values().flatten().map(|&i| &ops[i]);
        let mut starts: Vec<(i64, i64)> = Vec::new();
        let mut ends: Vec<(i64, i64)> = Vec::new();
        for op in joins {
            starts.push((op.invoke, op.quantity()));
            let end = match (op.outcome, op.complete) {
                (_, None) => i64::MAX,
                (Outcome::Info, Some(t)) => t.saturating_add(opts.lookback),
                (_, Some(t)) => t,
            };
            ends.push((end, op.quantity()));
        }
        for v in [&mut starts, &mut ends] {
            v.sort_unstable();
            for j in 1..v.len() {
                v[j].1 += v[j - 1].1;
            }
        }
        Self { starts, ends }
    }

    /// Units asked by the joins in flight at some moment of `op` (itself included).
    pub fn quantity(&self, op: &Op) -> i64 {
        let sum_before = |v: &[(i64, i64)], t: i64, inclusive: bool| {
            let i = v.partition_point(|&(x, _)| if inclusive { x <= t } else { x < t });
            if i == 0 {
                0
            } else {
                v[i - 1].1
            }
        };
        let end = op.complete.unwrap_or(i64::MAX);
        sum_before(&self.starts, end, false) - sum_before(&self.ends, op.invoke, true)
    }
}

/// Checks a history against a final state.
pub fn check(history: &History, state: &FinalState, opts: &Options) -> Report {
    let mut report = Report::default();
    count(history, &mut report);
    let orders = order::build(&state.events, &mut report);
    if let Some(outbox) = &state.outbox {
        order::against_outbox(&orders, outbox, &mut report);
    }
    let (by_campaign, without) = index::by_campaign(&history.ops);
    for i in without {
        report
            .push(
                AnomalyKind::MalformedInput,
                None,
                "a client operation without its campaign or user",
            )
            .ops
            .push(history.ops[i].clone());
    }
    let mysql_participations: HashSet<i64> = state.participations.iter().map(|p| p.id).collect();
    let campaigns: BTreeSet<i64> = state
        .campaigns
        .iter()
        .map(|c| c.id)
        .chain(orders.keys().copied())
        .chain(by_campaign.keys().copied())
        .collect();
    report.campaigns = campaigns.len();
    let empty_index = index::CampaignOps::default();
    let mut ends = Vec::new();
    for campaign in campaigns {
        let row = state.campaigns.iter().find(|c| c.id == campaign);
        let order = orders.get(&campaign).map(Vec::as_slice).unwrap_or(&[]);
        let index = by_campaign.get(&campaign).unwrap_or(&empty_index);
        let Some(row) = row else {
            if !order.is_empty() {
                report.push(
                    AnomalyKind::DatabaseMismatch,
                    Some(campaign),
                    "events of a campaign MySQL does not have",
                );
            }
            // Without its row there is no stock to replay from; refusals are judged as such.
            check_without_row(campaign, &history.ops, index, &mut report);
            continue;
        };
        let stock = end_state::initial_stock(row, state, order);
        let replay = replay::run(
            campaign,
            stock,
            row.reward_points,
            opts.model,
            order,
            &mut report,
        );
        let spans = timeline::spans(campaign, order, &history.ops, index, &mut report);
        timeline::inversions(campaign, order, &spans, &history.ops, &mut report);
        let windows = timeline::Windows::new(&spans);
        let free = rmq::RangeMinMax::new(&replay.free);
        let in_flight = InFlight::new(&history.ops, index, opts);
        let ctx = Ctx {
            campaign,
            ops: &history.ops,
            index,
            order,
            replay: &replay,
            windows: &windows,
            free: &free,
            opts,
            row: Some(row),
            mysql_participations: &mysql_participations,
            faults: &history.faults,
            in_flight: &in_flight,
        };
        answers::check(&ctx, &mut report);
        refusals::check(&ctx, &mut report);
        end_state::campaign(&ctx, state, &mut report);
        ends.push(replay);
    }
    consumers::rewards(&ends, state, &mut report);
    report
}

fn count(history: &History, report: &mut Report) {
    for f in Func::CLIENT {
        report.operations.entry(f.name()).or_default();
    }
    for op in &history.ops {
        *report
            .operations
            .entry(op.f.name())
            .or_default()
            .entry(op.outcome.name())
            .or_default() += 1;
    }
    for fault in &history.faults {
        *report.faults.entry(fault.kind.clone()).or_default() += 1;
    }
}

/// A campaign MySQL does not have: every acknowledged write to it is lost; refusals other than
/// CAMPAIGN_NOT_FOUND are not judged.
fn check_without_row(campaign: i64, ops: &[Op], index: &index::CampaignOps, report: &mut Report) {
    for &i in &index.all {
        let op = &ops[i];
        match (op.outcome, op.code()) {
            (Outcome::Ok, _) => report
                .push(
                    AnomalyKind::LostWin,
                    Some(campaign),
                    "acknowledged on a campaign MySQL does not have",
                )
                .ops
                .push(op.clone()),
            (Outcome::Fail, Some(code)) if code != "CAMPAIGN_NOT_FOUND" => {
                *report
                    .refusals_not_judged
                    .entry(code.to_owned())
                    .or_default() += 1
            }
            _ => {}
        }
    }
}
