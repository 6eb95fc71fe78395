//! The waiting room and the per-user limit as the contract states them (design §3, §16), judged
//! from what a history shows of them. The room lives in Redis and writes no event, so its model
//! is built from the answers the clients got: when each ticket arrived (bounded by the queue
//! calls that may have created it), the answers that found it waiting or admitted, the
//! positions it was told, and the tokens the room issued, to whom and for which campaign.
//!
//! # What a history can show, and the rules
//!
//! - **First come, first admitted** (`QUEUE`). A ticket takes its place at Redis in arrival
//!   order and the room admits from the head. A ticket `A` whose queue call completed before
//!   `B`'s queue call was invoked arrived first, so its place is lower: once `B` is admitted, `A`
//!   is admitted, expired or gone. So an answer that found `A` still waiting, invoked after an
//!   answer that showed `B` admitted had completed, is a breach. Expiry is allowed for by
//!   construction: a ticket dropped for idleness, whose token lapsed or that Redis lost never
//!   answers `WAITING` again (its user queues again with a new ticket, at the back), so only a
//!   ticket still in the queue can be caught behind a later one.
//! - **A ticket never moves back** (`QUEUE`). Its position is its rank among the waiting
//!   tickets; newcomers go behind it and departures only move it up. An answer invoked after
//!   another had told a smaller position is a breach.
//! - **No win without its admission.** On a queued campaign every win needs a token the room
//!   issued to that user for that campaign (an `ADMITTED` answer to that user's ticket): an `ok`
//!   join must carry one that was issued before the join began, a token wins at most once, and
//!   every win MySQL holds must have come from a join of its user that carried such a token.
//! - **Per-user limit.** A user's one win holds at most the campaign's `perUserLimit` units; a
//!   join asking more is invalid (§2.6: `VALIDATION_FAILED`, writes nothing) unless the campaign
//!   itself refuses first (not found, not open yet, ended: decided before the quantity). Any
//!   other answer means the request went past validation. A join within the limit is never
//!   refused as invalid (the harness's requests are otherwise well-formed).
//!
//! Cost: one pass over the operations, then a sort per room, O(n log n).

use std::collections::{BTreeMap, HashMap};

use crate::history::{Func, Op, Outcome};

/// The admission mode whose order is first come, first admitted.
pub const QUEUE: &str = "QUEUE";

/// Codes a join asking more than the limit may get: the validation's, or a refusal the campaign
/// decides before looking at the quantity.
pub const OVER_LIMIT_CODES: [&str; 4] = [
    "VALIDATION_FAILED",
    "CAMPAIGN_NOT_FOUND",
    "CAMPAIGN_NOT_OPEN",
    "CAMPAIGN_ENDED",
];

/// A waiting ticket's answer: when it was asked, answered, and the position it told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub invoke: i64,
    pub complete: i64,
    pub position: i64,
    pub op: usize,
}

/// One ticket of a room as the answers showed it; times on the history's clock (ns).
#[derive(Debug, Clone)]
pub struct Ticket {
    pub user: i64,
    /// It arrived after this: the earliest invoke of a queue call of its user that may have
    /// created it (one answered with it, or one that ended indeterminate before that).
    pub arrived_after: i64,
    /// It had arrived by this: the earliest completion of an answer naming it.
    pub arrived_by: i64,
    /// The latest invoke of an answer that found it waiting (`WAITING`, `SOLD_OUT`, `WAITLISTED`), and that
    /// answer: it was still in the queue at an instant after this.
    pub waiting_after: Option<(i64, usize)>,
    /// The earliest completion of an answer that found it admitted (`ADMITTED`, `USED`), and
    /// that answer: it had been admitted by then.
    pub admitted_by: Option<(i64, usize)>,
    /// Every answer that found it waiting with a position.
    pub told: Vec<Told>,
}

/// A token the room issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    pub campaign: i64,
    pub user: i64,
    /// The invoke of the first answer that carried it: no join could know it before.
    pub first: i64,
    pub op: usize,
}

/// One campaign's room: its tickets by id.
#[derive(Debug, Clone, Default)]
pub struct Room {
    pub tickets: HashMap<String, Ticket>,
}

/// Every room the history shows, and every token issued.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub rooms: BTreeMap<i64, Room>,
    pub tokens: HashMap<String, Issued>,
}

/// `A` was still waiting after `B`, which arrived after it, had been admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfOrder {
    pub first: String,
    pub later: String,
    /// The answer that found `first` waiting, and the one that showed `later` admitted.
    pub waiting_op: usize,
    pub admitted_op: usize,
}

/// A ticket told a larger position than an earlier answer had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedBack {
    pub ticket: String,
    pub earlier_op: usize,
    pub later_op: usize,
}

/// What an `ok` join of a queued campaign carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    Fine,
    Missing,
    NotIssued,
    /// Issued for another user or campaign.
    NotTheirs(Issued),
    /// Sent before any answer carried it.
    BeforeIssued(Issued),
}

/// A join judged against its campaign's `perUserLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitVerdict {
    Fine,
    /// An `ok` join of more units than the limit.
    WonOverLimit,
    /// Asked more than the limit and was refused with a code only a valid request gets.
    PastValidation(String),
    /// Asked within the limit and was refused as invalid.
    RefusedWithinLimit,
}

impl Observed {
    /// Reads the waiting room's operations (`queue`, `poll`) of a history.
    pub fn from_ops(ops: &[Op]) -> Self {
        let mut observed = Observed::default();
        for op in ops
            .iter()
            .filter(|o| matches!(o.f, Func::Queue | Func::Poll))
        {
            observed.observe(op);
        }
        observed.bound_arrivals(ops);
        observed
    }

    fn observe(&mut self, op: &Op) {
        let (Outcome::Ok, Some(campaign), Some(user), Some(ticket), Some(complete)) = (
            op.outcome,
            op.campaign(),
            op.user(),
            op.value.ticket.as_ref(),
            op.complete,
        ) else {
            return;
        };
        let t = self
            .rooms
            .entry(campaign)
            .or_default()
            .tickets
            .entry(ticket.clone())
            .or_insert_with(|| Ticket {
                user,
                arrived_after: i64::MIN,
                arrived_by: complete,
                waiting_after: None,
                admitted_by: None,
                told: Vec::new(),
            });
        t.arrived_by = t.arrived_by.min(complete);
        match op.value.state.as_deref() {
            // On a waitlist (design §22) a ticket waits as in the queue: an offer of a unit that
            // came back is an admission, judged as every admission is.
            Some("WAITING" | "SOLD_OUT" | "WAITLISTED") => {
                if t.waiting_after.is_none_or(|(w, _)| op.invoke > w) {
                    t.waiting_after = Some((op.invoke, op.id));
                }
                if let Some(position) = op.value.position {
                    t.told.push(Told {
                        invoke: op.invoke,
                        complete,
                        position,
                        op: op.id,
                    });
                }
            }
            Some("ADMITTED" | "USED") if t.admitted_by.is_none_or(|(a, _)| complete < a) => {
                t.admitted_by = Some((complete, op.id));
            }
            _ => {}
        }
        if let (Some("ADMITTED"), Some(token)) =
            (op.value.state.as_deref(), &op.value.admission_token)
        {
            let issued = Issued {
                campaign,
                user,
                first: op.invoke,
                op: op.id,
            };
            self.tokens
                .entry(token.clone())
                .and_modify(|i| {
                    if op.invoke < i.first {
                        *i = issued;
                    }
                })
                .or_insert(issued);
        }
    }

    /// A ticket arrived after the earliest queue call of its user that may have created it:
    /// one answered with it, or one that ended indeterminate before it was first named.
    fn bound_arrivals(&mut self, ops: &[Op]) {
        let mut calls: HashMap<(i64, i64), Vec<&Op>> = HashMap::new();
        for op in ops.iter().filter(|o| o.f == Func::Queue) {
            if let (Some(c), Some(u)) = (op.campaign(), op.user()) {
                calls.entry((c, u)).or_default().push(op);
            }
        }
        for (&campaign, room) in &mut self.rooms {
            for (id, t) in &mut room.tickets {
                let created_by = |op: &&&Op| match op.outcome {
                    Outcome::Ok => op.value.ticket.as_ref() == Some(id),
                    Outcome::Info => op.invoke < t.arrived_by,
                    Outcome::Fail => false,
                };
                let mine = calls.get(&(campaign, t.user)).map(Vec::as_slice);
                t.arrived_after = mine
                    .unwrap_or(&[])
                    .iter()
                    .filter(created_by)
                    .map(|op| op.invoke)
                    .min()
                    // Never queued in the history: its arrival is unknown, before everything.
                    .unwrap_or(i64::MIN);
            }
        }
    }

    /// What an `ok` join of a queued campaign carried, against the tokens issued.
    pub fn token_of(&self, join: &Op) -> TokenVerdict {
        let Some(token) = &join.value.admission_token else {
            return TokenVerdict::Missing;
        };
        let Some(&issued) = self.tokens.get(token) else {
            return TokenVerdict::NotIssued;
        };
        if Some(issued.campaign) != join.campaign() || Some(issued.user) != join.user() {
            TokenVerdict::NotTheirs(issued)
        } else if issued.first >= join.invoke {
            TokenVerdict::BeforeIssued(issued)
        } else {
            TokenVerdict::Fine
        }
    }
}

impl Room {
    /// Tickets still waiting after a ticket that arrived after them was admitted. For each
    /// admitted ticket `B`, the tickets that arrived before it are a prefix of the tickets sorted
    /// by `arrived_by`; the one last seen waiting among them is the witness. O(n log n).
    pub fn out_of_order(&self) -> Vec<OutOfOrder> {
        let mut by_arrival: Vec<(&String, &Ticket)> = self.tickets.iter().collect();
        by_arrival.sort_by_key(|(id, t)| (t.arrived_by, id.as_str()));
        // prefix[i]: the latest "still waiting" among the first i + 1 tickets.
        let mut prefix: Vec<Option<(i64, usize, usize)>> = Vec::with_capacity(by_arrival.len());
        for (i, (_, t)) in by_arrival.iter().enumerate() {
            let mine = t.waiting_after.map(|(w, op)| (w, op, i));
            let best = match (prefix.last().copied().flatten(), mine) {
                (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
                (a, b) => a.or(b),
            };
            prefix.push(best);
        }
        let mut breaches = Vec::new();
        for (id, t) in &by_arrival {
            let Some((admitted, admitted_op)) = t.admitted_by else {
                continue;
            };
            let before = by_arrival.partition_point(|(_, a)| a.arrived_by < t.arrived_after);
            let Some(Some((waiting, waiting_op, i))) = before.checked_sub(1).map(|k| prefix[k])
            else {
                continue;
            };
            if waiting > admitted {
                breaches.push(OutOfOrder {
                    first: by_arrival[i].0.clone(),
                    later: (*id).clone(),
                    waiting_op,
                    admitted_op,
                });
            }
        }
        breaches
    }

    /// Tickets told a larger position than an answer that had completed before. O(k log k) a
    /// ticket.
    pub fn moved_back(&self) -> Vec<MovedBack> {
        let mut breaches = Vec::new();
        for (id, t) in &self.tickets {
            let mut done = t.told.clone();
            done.sort_by_key(|x| x.complete);
            // prefix[i]: the smallest position among the first i + 1 completed answers.
            let mut prefix: Vec<Told> = Vec::with_capacity(done.len());
            for x in &done {
                let best = match prefix.last() {
                    Some(p) if p.position <= x.position => *p,
                    _ => *x,
                };
                prefix.push(best);
            }
            for later in &t.told {
                let before = done.partition_point(|x| x.complete < later.invoke);
                if let Some(earlier) = before.checked_sub(1).map(|k| prefix[k]) {
                    if later.position > earlier.position {
                        breaches.push(MovedBack {
                            ticket: id.clone(),
                            earlier_op: earlier.op,
                            later_op: later.op,
                        });
                    }
                }
            }
        }
        breaches
    }
}

/// A join against its campaign's `perUserLimit`.
pub fn judge_limit(join: &Op, limit: i64) -> LimitVerdict {
    let over = join.quantity() > limit;
    match (join.outcome, join.code(), over) {
        (Outcome::Ok, _, true) => LimitVerdict::WonOverLimit,
        (Outcome::Fail, Some(code), true) if !OVER_LIMIT_CODES.contains(&code) => {
            LimitVerdict::PastValidation(code.to_owned())
        }
        (Outcome::Fail, Some("VALIDATION_FAILED"), false) if join.quantity() >= 1 => {
            LimitVerdict::RefusedWithinLimit
        }
        _ => LimitVerdict::Fine,
    }
}
