//! Replays a campaign's committed order on the model and keeps, for every prefix of it, what the
//! refusals are judged against: free units, paused, closed, and where each user's win was
//! accepted, confirmed and closed. Prefix `k` is the state after the first `k` events
//! (`k = 0..=n`); event `i` moves prefix `i` to prefix `i + 1`.

use std::collections::HashMap;

use crate::{
    event::{CancelReason, Envelope, Event, LiveStatus},
    model::{CampaignModel, Illegal},
    report::{AnomalyKind, EventRef, Report},
};

/// Where one user's win moved in the order.
#[derive(Debug, Clone)]
pub struct UserLine {
    pub participation: i64,
    pub quantity: i64,
    pub accepted_status: LiveStatus,
    /// Position of the event that accepted it.
    pub accepted: usize,
    /// Position of the event that made it `CONFIRMED` (its acceptance when final at once).
    pub confirmed: Option<usize>,
    /// Position and reason of its cancellation or expiry.
    pub closed: Option<(usize, CancelReason)>,
    /// The gate's sequence its event carries.
    pub sequence: Option<i64>,
}

#[derive(Debug)]
pub struct Replay {
    pub model: CampaignModel,
    /// `free[k]`: free units at prefix k.
    pub free: Vec<i64>,
    /// `paused_before[k]`: how many of prefixes `0..k` are paused (so `k = n + 1` counts all).
    pub paused_before: Vec<u32>,
    /// The first prefix that is closed.
    pub closed_from: Option<usize>,
    /// The first prefix with a win in it.
    pub first_win: Option<usize>,
    pub users: HashMap<i64, UserLine>,
    /// Control number → position of its event.
    pub controls: HashMap<i64, usize>,
    /// Control number → the total stock the model has after it (what a control's answer, or
    /// a no-op's read while it was the last control, must say).
    pub totals_after: HashMap<i64, i64>,
    /// (eventId, user, points) of every event that moved points.
    pub grants: Vec<(String, i64, i64)>,
}

impl Replay {
    /// Whether some prefix in `a..=b` is paused.
    pub fn paused_in(&self, a: usize, b: usize) -> bool {
        a <= b && self.paused_before[b + 1] > self.paused_before[a]
    }

    /// Whether some prefix in `a..=b` is not paused.
    pub fn running_in(&self, a: usize, b: usize) -> bool {
        a <= b && ((self.paused_before[b + 1] - self.paused_before[a]) as usize) < b + 1 - a
    }

    pub fn closed_by(&self, k: usize) -> bool {
        self.closed_from.is_some_and(|c| c <= k)
    }
}

/// Replays `order` from `model`, a fresh campaign. Illegal steps are reported (the model skips
/// them) and the replay goes on.
pub fn run(campaign: i64, model: CampaignModel, order: &[Envelope], report: &mut Report) -> Replay {
    let stock = model.free;
    let mut r = Replay {
        model,
        free: Vec::with_capacity(order.len() + 1),
        paused_before: Vec::with_capacity(order.len() + 2),
        closed_from: None,
        first_win: None,
        users: HashMap::new(),
        controls: HashMap::new(),
        totals_after: HashMap::new(),
        grants: Vec::new(),
    };
    r.free.push(stock);
    r.paused_before.push(0);
    // paused[k]: whether prefix k is paused.
    let mut paused = Vec::with_capacity(order.len() + 1);
    paused.push(false);
    for (pos, e) in order.iter().enumerate() {
        // Kept even for an illegal control, so the answer that named it still finds it.
        if let Event::Control { seq, .. } = e.event {
            r.controls.entry(seq).or_insert(pos);
        }
        match r.model.apply(e) {
            Ok(applied) => {
                record(&mut r, pos, e);
                if applied.points != 0 {
                    if let Some(user) = user_of(e) {
                        r.grants.push((e.event_id.clone(), user, applied.points));
                    }
                }
            }
            Err(illegal) => {
                let kind = match illegal {
                    Illegal::Oversell { .. } => AnomalyKind::Oversell,
                    Illegal::DoubleWin { .. } => AnomalyKind::DoubleWin,
                    Illegal::ControlSeq { .. } => AnomalyKind::MissingOrDuplicatedEvent,
                    _ => AnomalyKind::IllegalTransition,
                };
                report
                    .push(
                        kind,
                        Some(campaign),
                        format!("{}: {illegal}", e.type_name()),
                    )
                    .events
                    .push(event_ref(e, pos));
            }
        }
        if let Event::Control { seq, .. } = e.event {
            r.totals_after.entry(seq).or_insert(r.model.total);
        }
        r.free.push(r.model.free);
        paused.push(r.model.paused);
        if r.model.closed && r.closed_from.is_none() {
            r.closed_from = Some(pos + 1);
        }
    }
    for (k, &p) in paused.iter().enumerate() {
        let before = r.paused_before[k] + u32::from(p);
        r.paused_before.push(before);
    }
    r
}

fn record(r: &mut Replay, pos: usize, e: &Envelope) {
    match e.event {
        Event::Accepted {
            participation,
            user,
            quantity,
            status,
            sequence,
            ..
        } => {
            r.first_win.get_or_insert(pos + 1);
            r.users.insert(
                user,
                UserLine {
                    participation,
                    quantity,
                    accepted_status: status,
                    accepted: pos,
                    confirmed: (status == LiveStatus::Confirmed).then_some(pos),
                    closed: None,
                    sequence,
                },
            );
        }
        Event::Confirmed { user, .. } => {
            if let Some(line) = r.users.get_mut(&user) {
                line.confirmed = Some(pos);
            }
        }
        Event::Cancelled { user, reason, .. } => {
            if let Some(line) = r.users.get_mut(&user) {
                line.closed = Some((pos, reason));
            }
        }
        Event::Control { .. } => {}
    }
}

fn user_of(e: &Envelope) -> Option<i64> {
    match e.event {
        Event::Accepted { user, .. }
        | Event::Confirmed { user, .. }
        | Event::Cancelled { user, .. } => Some(user),
        Event::Control { .. } => None,
    }
}

pub fn event_ref(e: &Envelope, position: usize) -> EventRef {
    EventRef {
        event_id: e.event_id.clone(),
        event_type: e.type_name(),
        position,
    }
}
