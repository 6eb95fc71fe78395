//! Units held at the gate by joins whose outcome the client never learned (design §18.1): each
//! such join, and until when the contract lets its reservation keep units out of the sale.
//!
//! A join that ended indeterminate (`info`, or never completed) may have left a reservation at
//! the gate that the service could not yet resolve. The contract bounds how long, by the
//! reason it stayed open (§18.1), each bound the documented figure with no slack of the
//! checker's own:
//!
//! | reason | held until |
//! |---|---|
//! | no fault overlapping the request: the client gave up | invoke + `HTTP_REQUEST_TIMEOUT_MS`: the service answers within its deadline and gives the reservation back before answering (§2.6, §2.9) |
//! | MySQL did not answer (a fault with target `mysql`) | the fault's end + `--in-doubt-settle-ms` (§2.1: back ≤ 2 s after MySQL answers again) |
//! | the join's instance was killed or terminated | its reservation + `RESERVATION_TIMEOUT_MS` + its tenth (the reconciler's period) + [`RECONCILER_PASS`]; the reservation was made by the kill at the latest (and by the request's deadline) |
//! | the join's instance was stopped | the earlier of its resume + [`RESUME_SETTLE`] and that reconciler bound |
//! | Redis hung or restarted with reservations queued (target `redis`) | the fault's end + `--redis-settle-ms` |
//!
//! With a fault overlapping the request, the fault's own bound applies, not the client's (the
//! longest among the faults that overlap it). A kill, stop or term counts on the instance the
//! join was sent to (`value.instance`); a history that does not name it (older runs) lets the
//! join have been on another instance, so there the client-gave-up bound stays a candidate.
//! With one writer per campaign ([`Options::writers_anywhere`], the service's default) a kill,
//! stop or term that began during the request counts on every instance's joins too: the join's
//! win may have been handed to the instance that went down, and then its reservation waits for
//! the reconciler (its reservation + `RESERVATION_TIMEOUT_MS` + its tenth + [`RECONCILER_PASS`],
//! the reservation made by the fault's start at the latest).
//!
//! A fault counts when its span overlaps the span the service may have worked on the join:
//! from its invoke to the later of its completion and the service's deadline (a client that
//! gave up first leaves the request running on the server). Built once per campaign, O(j log j + j·f')
//! with `f'` the faults a join's span can reach; a query walks only the holds whose join began
//! within the longest hold before it.

use crate::{
    check::{index::CampaignOps, Options, RECONCILER_PASS},
    history::{Fault, Op, Outcome},
};

/// How long after a stopped instance resumes its reservations may stay open, ns: its requests
/// pass their deadlines at once and give their reservations back (§2.9).
pub const RESUME_SETTLE: i64 = 1_000_000_000;

pub const CLIENT_TIMEOUT: &str =
    "SOLD_OUT while joins that timed out at the client held the units (≤ HTTP_REQUEST_TIMEOUT_MS)";
pub const IN_DOUBT: &str =
    "SOLD_OUT while joins whose commit was in doubt held the units (≤ 2 s after MySQL answered)";
pub const DEAD_INSTANCE: &str =
    "SOLD_OUT while a crashed or stopped instance's reservations held the units (≤ RESERVATION_TIMEOUT_MS)";
pub const REDIS_QUEUED: &str =
    "SOLD_OUT while reservations queued through a Redis fault held the units (≤ 1 s after Redis answered)";

/// Why a join's reservation may still hold units: the relaxation that excuses a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldWhy {
    ClientTimeout,
    MysqlInDoubt,
    DeadInstance,
    RedisQueued,
}

impl HoldWhy {
    pub fn relaxation(self) -> &'static str {
        match self {
            HoldWhy::ClientTimeout => CLIENT_TIMEOUT,
            HoldWhy::MysqlInDoubt => IN_DOUBT,
            HoldWhy::DeadInstance => DEAD_INSTANCE,
            HoldWhy::RedisQueued => REDIS_QUEUED,
        }
    }
}

/// One join in doubt and the span its reservation may hold units.
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub op: usize,
    pub user: i64,
    pub quantity: i64,
    /// The join's invoke: the reservation is not made before.
    pub from: i64,
    /// The latest instant the contract lets it hold units.
    pub until: i64,
    pub why: HoldWhy,
}

/// What a fault means for a reservation it overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Killed,
    Stopped,
    Mysql,
    Redis,
}

/// Whether the fault left Redis unreachable (or restarted it).
pub(super) fn is_redis(f: &Fault) -> bool {
    class(f) == Some(Class::Redis)
}

fn class(f: &Fault) -> Option<Class> {
    match (f.kind.as_str(), f.target.as_deref()) {
        ("kill" | "term", _) => Some(Class::Killed),
        ("stop", _) => Some(Class::Stopped),
        (_, Some("mysql")) => Some(Class::Mysql),
        (_, Some("redis")) => Some(Class::Redis),
        (kind, None) if kind.starts_with("mysql") => Some(Class::Mysql),
        (kind, None) if kind.starts_with("redis") => Some(Class::Redis),
        _ => None,
    }
}

/// A fault reduced to what the bounds need.
#[derive(Debug, Clone)]
struct Span {
    start: i64,
    /// `i64::MAX`: not healed within the history.
    end: i64,
    class: Class,
    /// What it hit (an instance's name for a kill, stop or term).
    target: Option<String>,
}

/// The campaign's joins in doubt, sorted by invoke.
pub struct Holds {
    list: Vec<Hold>,
    /// The longest `until − from` among them: how far back a query must look.
    longest: i64,
}

impl Holds {
    pub fn new(ops: &[Op], index: &CampaignOps, faults: &[Fault], opts: &Options) -> Self {
        let faults = Faults::new(faults);
        let mut list: Vec<Hold> = index
            .joins
            .iter()
            .flat_map(|(&user, joins)| joins.iter().map(move |&j| (user, j)))
            .map(|(user, j)| (user, &ops[j]))
            .filter(|(_, op)| op.outcome == Outcome::Info)
            .map(|(user, op)| {
                let (until, why) = faults.bound(op, opts);
                Hold {
                    op: op.id,
                    user,
                    quantity: op.quantity(),
                    from: op.invoke,
                    until,
                    why,
                }
            })
            .collect();
        list.sort_unstable_by_key(|h| (h.from, h.op));
        let longest = list
            .iter()
            .map(|h| h.until.saturating_sub(h.from))
            .max()
            .unwrap_or(0);
        Self { list, longest }
    }

    /// The holds that may keep units at some instant of `[from, to]`.
    pub fn overlapping(&self, from: i64, to: i64) -> impl Iterator<Item = &Hold> {
        let end = self.list.partition_point(|h| h.from < to);
        let earliest = from.saturating_sub(self.longest);
        let start = self.list[..end].partition_point(|h| h.from < earliest);
        self.list[start..end].iter().filter(move |h| h.until > from)
    }
}

/// The run's faults that bear on reservations: the healed ones sorted by start with the
/// longest span among them, the unhealed ones apart (few; each is checked against every join).
struct Faults {
    healed: Vec<Span>,
    longest: i64,
    open: Vec<Span>,
}

impl Faults {
    fn new(faults: &[Fault]) -> Self {
        let mut healed = Vec::new();
        let mut open = Vec::new();
        for f in faults {
            let Some(class) = class(f) else { continue };
            let span = Span {
                start: f.start,
                end: f.end.unwrap_or(i64::MAX),
                class,
                target: f.target.clone(),
            };
            if f.end.is_none() || f.start == i64::MIN {
                open.push(span);
            } else {
                healed.push(span);
            }
        }
        healed.sort_unstable_by_key(|s| s.start);
        let longest = healed.iter().map(|s| s.end - s.start).max().unwrap_or(0);
        Self {
            healed,
            longest,
            open,
        }
    }

    /// The faults whose span overlaps `[from, to]`.
    fn overlapping(&self, from: i64, to: i64) -> impl Iterator<Item = &Span> {
        let end = self.healed.partition_point(|s| s.start <= to);
        let start =
            self.healed[..end].partition_point(|s| s.start < from.saturating_sub(self.longest));
        self.healed[start..end]
            .iter()
            .chain(self.open.iter())
            .filter(move |s| s.start <= to && s.end >= from)
    }

    /// Until when a join in doubt may hold its units, and why (the module's table). With no
    /// fault that bears on it overlapping the request, the client-gave-up bound; with one, the
    /// fault's own bound (the longest among them), never the request timeout's on top.
    fn bound(&self, op: &Op, opts: &Options) -> (i64, HoldWhy) {
        let deadline = op.invoke.saturating_add(opts.request_timeout);
        let to = op.complete.unwrap_or(i64::MAX).max(deadline);
        let gave_up = (deadline, HoldWhy::ClientTimeout);
        let instance = op.value.instance.as_deref();
        let later = |a: Option<(i64, HoldWhy)>, b: (i64, HoldWhy)| match a {
            Some(a) if a.0 >= b.0 => a,
            _ => b,
        };
        // The faults that bear on the join for sure, and those that may: an instance fault on
        // an instance the history does not name as the join's (it may have hit another one,
        // and then the client-gave-up bound stays a candidate), or, with one writer per
        // campaign (§21), on another instance that may have been writing the join's win
        // (handed to it before it went down; one handed over after is taken back, and nothing
        // holds).
        let (mut certain, mut possible) = (None, None);
        for f in self.overlapping(op.invoke, to) {
            let (candidate, sure) = match (f.class, instance, f.target.as_deref()) {
                (Class::Killed | Class::Stopped, Some(i), Some(t)) if i != t => {
                    if !(opts.writers_anywhere && f.start >= op.invoke) {
                        continue;
                    }
                    (handed_bound(f, deadline, opts), false)
                }
                (Class::Killed | Class::Stopped, None, _) => {
                    possible = Some(later(possible, gave_up));
                    (fault_bound(f, op, deadline, opts), false)
                }
                _ => (fault_bound(f, op, deadline, opts), true),
            };
            match sure {
                true => certain = Some(later(certain, candidate)),
                false => possible = Some(later(possible, candidate)),
            }
        }
        later(possible, certain.unwrap_or(gave_up))
    }
}

/// The bound an instance's kill, term or stop sets on a join sent to another instance whose
/// win it may have been writing (§18.1): the win was handed over, so reserved, before the fault
/// began (and by the request's deadline); the reconciler gives it back
/// `RESERVATION_TIMEOUT_MS`, its period and [`RECONCILER_PASS`] after. A stop gets no resume
/// shortcut: the join's own
/// instance may have stopped waiting for the writer's answer by then.
fn handed_bound(f: &Span, deadline: i64, opts: &Options) -> (i64, HoldWhy) {
    let rt = opts.reservation_timeout;
    let reserved = f.start.min(deadline);
    let held = (reserved.saturating_add(rt))
        .saturating_add(rt / 10)
        .saturating_add(RECONCILER_PASS);
    (held, HoldWhy::DeadInstance)
}

/// The bound a fault that overlapped a join in doubt sets on its reservation. A killed or
/// stopped instance made the reservation at the latest when it went down (and never after the
/// request's deadline); the reconciler gives it back `RESERVATION_TIMEOUT_MS` + its period +
/// [`RECONCILER_PASS`] after the reservation.
fn fault_bound(f: &Span, op: &Op, deadline: i64, opts: &Options) -> (i64, HoldWhy) {
    let rt = opts.reservation_timeout;
    let reconciled = |reserved: i64| {
        reserved
            .saturating_add(rt)
            .saturating_add(rt / 10)
            .saturating_add(RECONCILER_PASS)
    };
    // Sent while the instance was down or stopped, the request is served once it is back.
    let reserved = if f.start >= op.invoke {
        f.start.min(deadline)
    } else {
        f.end.max(op.invoke)
    };
    match f.class {
        Class::Killed => (reconciled(reserved), HoldWhy::DeadInstance),
        Class::Stopped => (
            reconciled(reserved).min(f.end.saturating_add(RESUME_SETTLE)),
            HoldWhy::DeadInstance,
        ),
        Class::Mysql => (
            f.end.saturating_add(opts.in_doubt_settle),
            HoldWhy::MysqlInDoubt,
        ),
        Class::Redis => (
            f.end.saturating_add(opts.redis_settle),
            HoldWhy::RedisQueued,
        ),
    }
}
