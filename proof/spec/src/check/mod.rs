//! The checker: a history and a final state in, a [`Report`] out. Near-linear, no search over
//! interleavings: per campaign it
//! 1. takes the topic's deduplicated order as the committed order ([`order`]); a bucketed
//!    campaign (§21) has one per key, merged by outbox id ([`merge`]), its keys and per-bucket
//!    sequences checked ([`keys`]), and the prefixes an operation may have seen taken per key
//!    where the question is about one key ([`lanes`]);
//! 2. replays it on the model, reporting illegal steps and keeping per-prefix state ([`replay`]);
//! 3. bounds each event's commit instant by the operations and checks the order against real
//!    time ([`timeline`]);
//! 4. checks every `ok` ([`answers`], and the figures it states: [`figures`]) and every `fail`
//!    ([`refusals`], [`sold_out`]) against the prefixes real time allows, a refusal with units
//!    free excused only by a relaxation within its bound ([`holds`], [`arrivals`],
//!    [`gate_view`]), and measures the longest stretch of such refusals ([`stretch`]);
//! 5. judges what depends on the wall clock: wins after `endsAt`, `CAMPAIGN_ENDED` before it,
//!    holds left past their deadline ([`wall_clock`]);
//! 6. compares the model's end with MySQL and the gate ([`end_state`]; per bucket:
//!    [`bucket_end`]) and the consumers ([`consumers`]);
//! 7. judges the waiting room and the per-user limit, which the order does not show
//!    ([`admission`]);
//! 8. judges groups and carts (§22): each cart's items are projected as joins of their
//!    campaigns before step 1 ([`project`]), so every check above counts them; then the
//!    group's per-user limit ([`groups`]) and carts all or nothing ([`carts`]).
//!
//! Cost: sorting the records and the spans, O(n log n); replay and the inversion pass, O(n); each
//! operation O(log n) (two binary searches and a segment-tree query). Memory is O(n). A million
//! operations check in a few seconds in release (the `scale` test measures it).

mod admission;
mod answers;
mod arrivals;
mod bots;
mod bucket_end;
mod carts;
mod consumers;
mod end_state;
mod figures;
mod gate_view;
mod groups;
mod holds;
mod in_flight;
mod index;
mod keys;
mod lanes;
mod merge;
mod order;
mod project;
mod refusals;
mod replay;
mod rmq;
mod sold_out;
mod stretch;
mod timeline;
mod wall_clock;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::{
    final_state::{BucketState, Campaign, FinalState, GroupState},
    history::{Fault, Func, History, Op, Outcome},
    model::{CampaignModel, ModelParams},
    report::{AnomalyKind, Report},
};

use in_flight::InFlight;

pub use arrivals::GATE_ARRIVAL;
pub use groups::SAME_USER_GROUP;
pub use holds::{CLIENT_TIMEOUT, DEAD_INSTANCE, IN_DOUBT, REDIS_QUEUED, RESUME_SETTLE};
pub use project::NOT_TAKEN;
pub use refusals::{ARRIVING, MEMO, RESUMING, SAME_USER};

/// The checker's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `SOLD_OUT_MEMO_MS` of the run, in ns: a SOLD_OUT justified only by looking this far back
    /// before its invoke is counted as the memo's.
    pub sold_out_memo: i64,
    /// How far back (ns) the explanation of an unjustified refusal looks for a sold-out moment, a
    /// pause or a fault, and how long a timed-out operation is taken to stay in flight.
    pub lookback: i64,
    /// `RESERVATION_TIMEOUT_MS` of the run, in ns: a join that ended indeterminate while its
    /// instance was killed, terminated or stopped may hold its reservation at the gate this
    /// long after the reservation (made by the kill at the latest), plus the reconciler's
    /// period (a tenth of it) and [`RECONCILER_PASS`] (§18.1: the reconciler gives it back).
    /// Default 15 s, the service's.
    pub reservation_timeout: i64,
    /// How long after MySQL answers again (the end of a fault with target `mysql`) a join whose
    /// commit was in doubt may still hold its units, ns (§2.1, §18.1: 2 s).
    pub in_doubt_settle: i64,
    /// How long after Redis answers again (the end of a fault with target `redis`) a join that
    /// ended indeterminate during it may still hold its units, ns (1 s).
    pub redis_settle: i64,
    /// `HTTP_REQUEST_TIMEOUT_MS` of the run, ns: a join that ended indeterminate with no fault
    /// overlapping it (the client gave up) holds its units at most this long after its invoke
    /// (§2.6, §2.9: the service answers within it and gives the reservation back first; §18.1:
    /// no slack). Default 10 s, the service's.
    pub request_timeout: i64,
    /// `QUEUE_TICKET_IDLE_MS` of the run, ns: a waiting ticket (waitlisted or not) not polled
    /// for this long is dropped, and no offer reaches it after (§16). Default 30 s, the
    /// service's.
    pub queue_idle: i64,
    /// `WRITER_PER_CAMPAIGN` of the run (§23, on by default): a campaign's wins may be written
    /// by another instance than the one a join was sent to, so an instance's kill, term or
    /// stop bears on every instance's joins in flight ([`holds`]).
    pub writers_anywhere: bool,
    pub model: ModelParams,
}

/// What one pass of the service's reconciler may take, ns.
pub const RECONCILER_PASS: i64 = 500_000_000;

impl Default for Options {
    fn default() -> Self {
        Self {
            sold_out_memo: 0,
            lookback: 2_000_000_000,
            reservation_timeout: 15_000_000_000,
            in_doubt_settle: 2_000_000_000,
            redis_settle: 1_000_000_000,
            request_timeout: 10_000_000_000,
            queue_idle: 30_000_000_000,
            writers_anywhere: true,
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
    /// The campaign's keys (one unless bucketed) and the windows each gives.
    pub keys: &'a lanes::KeyWindows,
    pub mysql_participations: &'a HashSet<i64>,
    pub faults: &'a [Fault],
    pub in_flight: &'a InFlight,
    pub commit: &'a timeline::CommitBounds,
    pub holds: &'a holds::Holds,
    pub arrivals: &'a arrivals::Arrivals,
    pub anchor: &'a wall_clock::Anchor,
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
}

/// Checks a history against a final state, every campaign unbucketed.
pub fn check(history: &History, state: &FinalState, opts: &Options) -> Report {
    check_with_buckets(history, state, &BucketState::default(), opts)
}

/// Checks a history against a final state and what it says of buckets (§21;
/// [`crate::final_state::read_with_buckets`]). A campaign of one bucket is judged as before.
pub fn check_with_buckets(
    history: &History,
    state: &FinalState,
    buckets: &BucketState,
    opts: &Options,
) -> Report {
    check_all(history, state, buckets, &GroupState::default(), opts)
}

/// Checks a history against a final state with what it says of buckets and of groups and
/// carts (§22; [`crate::final_state::read_all`]). Without groups, as [`check_with_buckets`].
pub fn check_all(
    recorded: &History,
    state: &FinalState,
    buckets: &BucketState,
    groups: &GroupState,
    opts: &Options,
) -> Report {
    let mut report = Report::default();
    count(recorded, &mut report);
    let projected = project::project(recorded, state, groups);
    let history = &projected;
    let counts = keys::counts(state, buckets, &mut report);
    let count_of = |c: i64| counts.get(&c).copied().unwrap_or(1);
    let orders = orders(state, count_of, &mut report);
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
    let (empty_index, empty_order) = (index::CampaignOps::default(), merge::Merged::default());
    let mut ends = Vec::new();
    let mut anchor = wall_clock::Anchor::default();
    let run = Run {
        history,
        state,
        buckets,
        opts,
        mysql_participations: &mysql_participations,
    };
    for campaign in campaigns {
        let row = state.campaigns.iter().find(|c| c.id == campaign);
        let merged = orders.get(&campaign).unwrap_or(&empty_order);
        let index = by_campaign.get(&campaign).unwrap_or(&empty_index);
        let Some(row) = row else {
            if !merged.order.is_empty() {
                report.push(
                    AnomalyKind::DatabaseMismatch,
                    Some(campaign),
                    "events of a campaign MySQL does not have",
                );
            }
            // Without its row there is no stock to replay from; refusals are judged as such.
            end_state::without_row(campaign, &history.ops, index, &mut report);
            continue;
        };
        let buckets = count_of(campaign);
        let (replay, campaign_anchor) =
            check_campaign(&run, (row, buckets), merged, index, &mut report);
        anchor.merge(&campaign_anchor);
        ends.push(replay);
    }
    let last_event = orders
        .values()
        .flat_map(|m| m.order.iter())
        .map(|e| e.occurred_at)
        .max();
    wall_clock::stale_holds(
        state,
        &anchor,
        (history_end(history), last_event),
        opts.model.deadline_tolerance,
        &mut report,
    );
    consumers::rewards(&ends, state, &mut report);
    admission::check(history, state, &mut report);
    bots::check(history, state, opts, &mut report);
    groups::check(recorded, state, groups, opts, &mut report);
    carts::check(recorded, state, groups, &mut report);
    report
}

/// Each campaign's committed order: its keys' orders, checked against the outbox ids and
/// merged by them ([`merge`]; one key: the topic's order as it is).
fn orders(
    state: &FinalState,
    buckets: impl Fn(i64) -> i64,
    report: &mut Report,
) -> BTreeMap<i64, merge::Merged> {
    let lanes = order::build(&state.events, buckets, report);
    if let Some(outbox) = &state.outbox {
        order::against_outbox(&lanes, outbox, report);
    }
    let id_of: HashMap<&str, i64> = state
        .outbox
        .iter()
        .flatten()
        .map(|r| (r.event_id.as_str(), r.id))
        .collect();
    lanes
        .into_iter()
        .map(|(c, lanes)| (c, merge::merge(lanes, &id_of)))
        .collect()
}

/// What every campaign's checks read.
struct Run<'a> {
    history: &'a History,
    state: &'a FinalState,
    buckets: &'a BucketState,
    opts: &'a Options,
    mysql_participations: &'a HashSet<i64>,
}

/// Checks one campaign that MySQL has; answers its replay (for the consumers' totals) and what
/// its events tell of the wall clock.
fn check_campaign(
    run: &Run,
    (row, buckets): (&Campaign, i64),
    merged: &merge::Merged,
    index: &index::CampaignOps,
    report: &mut Report,
) -> (replay::Replay, wall_clock::Anchor) {
    let (ops, campaign, opts) = (&run.history.ops, row.id, run.opts);
    let order = merged.order.as_slice();
    let replay = replay_campaign(run, (row, buckets), order, report);
    if buckets > 1 {
        keys::check(campaign, buckets, merged, report);
        keys::notes(campaign, merged, report);
    } else {
        keys::sequences(campaign, merged, report);
    }
    // An expiry's commit is bounded from above by the order alone (the later events of its
    // key): MySQL's `cancelled_at` is written before the commit, a lower bound only (a 30-minute
    // run, seed 140, had expiries wait on the campaign row past a later win's invoke).
    let spans = timeline::spans(campaign, order, ops, index, report);
    let anchor = wall_clock::Anchor::new(order, &spans);
    // Merged by outbox id, the order cannot contradict real time across keys (merge): an
    // inversion anywhere in it is one. Merged by occurredAt, only each key's order says so.
    let inversion_keys: &[usize] = if merged.by_outbox { &[] } else { &merged.lane };
    timeline::inversions(campaign, order, (&spans, inversion_keys), ops, report);
    let windows = timeline::Windows::new(&spans);
    let commit = timeline::CommitBounds::new(&spans, &merged.lane);
    let free = rmq::RangeMinMax::new(&replay.free);
    let ctx = Ctx {
        campaign,
        ops,
        index,
        order,
        replay: &replay,
        windows: &windows,
        free: &free,
        opts,
        row: Some(row),
        keys: &lanes::KeyWindows::new(merged, &spans, buckets),
        mysql_participations: run.mysql_participations,
        faults: &run.history.faults,
        in_flight: &InFlight::new(ops, index, opts),
        commit: &commit,
        holds: &holds::Holds::new(ops, index, &run.history.faults, opts),
        arrivals: &arrivals::Arrivals::new(&arrivals::Sources {
            order,
            replay: &replay,
            bounds: &commit,
            ops,
            index,
            bucketed: buckets > 1,
            faults: &run.history.faults,
            redis_settle: opts.redis_settle,
        }),
        anchor: &anchor,
    };
    answers::check(&ctx, report);
    figures::check(&ctx, report);
    let sold_out = refusals::check(&ctx, report);
    if let Some(s) = stretch::longest(campaign, ops, &index.all, &sold_out) {
        report.stretches.insert(campaign, s);
    }
    wall_clock::wins_after_end(&ctx, report);
    end_state::campaign(&ctx, run.state, report);
    bucket_end::check(&ctx, row, run.buckets, report);
    let anchor = *ctx.anchor;
    (replay, anchor)
}

/// Replays the campaign's order from the stock it was created with; a bucketed campaign's
/// controls state a remaining stock the merged order cannot place ([`merge`]).
fn replay_campaign(
    run: &Run,
    (row, buckets): (&Campaign, i64),
    order: &[crate::event::Envelope],
    report: &mut Report,
) -> replay::Replay {
    let stock = end_state::initial_stock(row, run.state, order);
    let model = CampaignModel::new(stock, row.reward_points, run.opts.model);
    let model = if buckets > 1 {
        model.with_buckets()
    } else {
        model
    };
    replay::run(row.id, model, order, report)
}

/// The history's last instant: its last entry (operations and faults).
fn history_end(history: &History) -> i64 {
    let ops = history.ops.iter().map(|o| o.complete.unwrap_or(o.invoke));
    let faults = history.faults.iter().map(|f| f.end.unwrap_or(f.start));
    ops.chain(faults).max().unwrap_or(0)
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
