//! The keys of a bucketed campaign's events and the sequence per bucket (§21, D3–D4):
//! - a win (`ParticipationAccepted`) is keyed `<campaign>:<home>`, its user's home bucket
//!   ([`home`]), one the campaign has; a control is keyed `<campaign>`: otherwise a wrong key;
//! - every later event of a win (confirmed, cancelled, expired, refunded) is keyed as the win
//!   was: otherwise a split win (per-key order would no longer cover the win's life). A later
//!   event whose win is nowhere in the order is held to its user's home bucket instead;
//! - a win's `sequence` (its FCFS number) is not another win's of the campaign: one repeated is
//!   a bucket sequence anomaly, in an unbucketed campaign too ([`sequences`]). Its order is not
//!   judged: each gate hands its numbers out when it reserves, and two instances may commit them
//!   in the other order.
//!
//! An unbucketed campaign's keys are checked as they are read ([`super::order`]): every one is
//! `<campaign>`. O(n). Here too: each campaign's bucket count, and what the report says of
//! how a bucketed campaign was judged.

use std::collections::{HashMap, HashSet};

use super::{merge::Merged, replay::event_ref};
use crate::{
    event::{Envelope, Event},
    final_state::{BucketState, FinalState},
    model::bucket::{home, Lane, MAX_BUCKETS},
    report::{AnomalyKind, Report},
};

/// Each campaign's bucket count (1 unless the final state says otherwise); one outside
/// `1..=1024` is malformed and read as the nearest bound.
pub fn counts(state: &FinalState, buckets: &BucketState, report: &mut Report) -> HashMap<i64, i64> {
    let mut counts = HashMap::new();
    for c in &state.campaigns {
        let n = buckets.buckets(c.id);
        if !(1..=MAX_BUCKETS).contains(&n) {
            report.push(
                AnomalyKind::MalformedInput,
                Some(c.id),
                format!("buckets {n} outside 1..={MAX_BUCKETS}"),
            );
        }
        counts.insert(c.id, n.clamp(1, MAX_BUCKETS));
    }
    counts
}

/// What the report says of how a bucketed campaign was judged.
pub fn notes(campaign: i64, merged: &Merged, report: &mut Report) {
    report.skipped.push(format!(
        "campaign {campaign} (bucketed): a control's remainingStock against the order: held only to 0..=totalStock (no order across its keys)"
    ));
    if !merged.by_outbox {
        report.skipped.push(format!(
            "campaign {campaign} (bucketed): its keys merged by occurredAt, not outbox id (some events have no outbox row)"
        ));
    }
}

/// Checks a bucketed campaign's merged order (`buckets` > 1).
pub fn check(campaign: i64, buckets: i64, merged: &Merged, report: &mut Report) {
    let lane_at = |p: usize| merged.lanes[merged.lane[p]];
    // participation → the key its win was accepted under.
    let mut win_lane: HashMap<i64, Lane> = HashMap::new();
    for (p, e) in merged.order.iter().enumerate() {
        if let Event::Accepted { participation, .. } = e.event {
            win_lane.entry(participation).or_insert(lane_at(p));
        }
    }
    let mut sequences = Sequences::default();
    for (p, e) in merged.order.iter().enumerate() {
        let lane = lane_at(p);
        let (kind, detail) = match e.event {
            Event::Control { seq, .. } if lane != Lane::Campaign => (
                AnomalyKind::WrongKey,
                format!("control {seq} under {lane}, not the campaign's key"),
            ),
            Event::Control { .. } => continue,
            Event::Accepted {
                participation,
                user,
                sequence,
                ..
            } => {
                if let (Lane::Bucket(b), Some(seq)) = (lane, sequence) {
                    sequences.check(campaign, Some(b), seq, (e, p), report);
                }
                let want = Lane::Bucket(home(user, buckets));
                if lane == want {
                    continue;
                }
                (
                    AnomalyKind::WrongKey,
                    format!(
                        "participation {participation} of user {user} accepted under {lane}; its home is {want} (of {buckets})"
                    ),
                )
            }
            Event::Confirmed {
                participation,
                user,
                ..
            }
            | Event::Cancelled {
                participation,
                user,
                ..
            } => match win_lane.get(&participation) {
                Some(&won) if won == lane => continue,
                Some(&won) => (
                    AnomalyKind::SplitWin,
                    format!(
                        "{} of participation {participation} under {lane}; the win is under {won}",
                        e.type_name()
                    ),
                ),
                None if lane == Lane::Bucket(home(user, buckets)) => continue,
                None => (
                    AnomalyKind::WrongKey,
                    format!(
                        "{} of participation {participation} (user {user}) under {lane}, not the user's home bucket",
                        e.type_name()
                    ),
                ),
            },
        };
        report
            .push(kind, Some(campaign), detail)
            .events
            .push(event_ref(e, p));
    }
}

/// An unbucketed campaign's wins: no sequence twice either (docs/design.md §2.1: a gate rebuilt
/// after Redis lost it never hands out a sequence a late win of the lost gate carries; CI's
/// short run once met one repeated in a bucketed burst, and the fence covers every gate). O(n).
pub fn sequences(campaign: i64, merged: &Merged, report: &mut Report) {
    let mut sequences = Sequences::default();
    for (p, e) in merged.order.iter().enumerate() {
        if let Event::Accepted {
            sequence: Some(seq),
            ..
        } = e.event
        {
            sequences.check(campaign, None, seq, (e, p), report);
        }
    }
}

/// The campaign's sequences seen so far.
#[derive(Default)]
struct Sequences {
    seen: HashSet<i64>,
}

impl Sequences {
    fn check(
        &mut self,
        campaign: i64,
        bucket: Option<i64>,
        seq: i64,
        (e, p): (&Envelope, usize),
        report: &mut Report,
    ) {
        if self.seen.insert(seq) {
            return;
        }
        let detail = match bucket {
            Some(bucket) => format!("sequence {seq} repeated (bucket {bucket})"),
            None => format!("sequence {seq} repeated (unbucketed)"),
        };
        report
            .push(AnomalyKind::BucketSequence, Some(campaign), detail)
            .events
            .push(event_ref(e, p));
    }
}
