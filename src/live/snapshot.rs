//! [`Snapshot`]: one campaign as the live view shows it, a reading with the rates since the
//! reading before it (wins, refusals and admissions per second). The sale's figures are anyone's
//! to watch; the service's own ([`Operations`]: the relay's and the consumer's lag, dead events)
//! go only to a watcher with an admin token, as on `/api/v1/admin/outbox`, a bucketed campaign's
//! balance among them (as on `/api/v1/admin/campaigns/{id}/buckets`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{
    bucket::view::Balance,
    campaign::CampaignState,
    live::{group::GroupFigures, reading::Reading},
};

#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    /// Tickets in the queue (abandoned ones leave it at the room's next step).
    pub length: i64,
    pub admitted_per_second: f64,
    /// The waitlist (docs/design.md §22): tickets on it, offers open now, and offers taken and
    /// passed on so far (all 0 on a campaign without one).
    pub waitlisted: i64,
    pub offers_open: i64,
    pub offers_taken: i64,
    pub offers_passed: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub campaign_id: i64,
    pub at: DateTime<Utc>,
    pub name: String,
    pub state: CampaignState,
    pub paused: bool,
    pub total_stock: i64,
    /// Units of confirmed wins.
    pub confirmed_stock: i64,
    /// Units of wins waiting for their confirmation.
    pub held_stock: i64,
    /// Units still on sale.
    pub free_stock: i64,
    pub accepted_count: i64,
    pub wins_per_second: f64,
    pub refused_count: i64,
    pub refused_by_reason: BTreeMap<String, i64>,
    pub refused_per_second: BTreeMap<String, f64>,
    /// Held and confirmed units over the total.
    pub stock_usage_rate: f64,
    pub holds_expiring_soon: i64,
    /// When the first hold runs out (none held: `None`).
    pub next_hold_expiry: Option<DateTime<Utc>>,
    /// What became of the wins, as the stats consumer has applied them (`None`: not read).
    pub outcomes: Option<Outcomes>,
    pub queue: Option<QueueFigures>,
    /// The campaign's group, its campaigns side by side; `None` outside a group.
    pub group: Option<GroupFigures>,
    /// Wins and refusals of the last five minutes in 5-second slots, oldest first; a slot with
    /// neither is absent, the last one may be under way.
    pub series: Vec<Slot>,
    /// For admins only.
    pub operations: Operations,
}

/// One 5-second slot of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The slot's start.
    pub at: DateTime<Utc>,
    pub wins: i64,
    pub refused: i64,
}

/// What became of a campaign's wins so far: `accepted_count` counts every win ever made, and a
/// unit that came back (a cancel, a hold that ran out) was sold again, so a sale of 50 units can
/// show 52 wins with 2 of them cancelled or expired. A refunded win is confirmed and cancelled,
/// and counted apart too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcomes {
    pub confirmed: i64,
    pub cancelled: i64,
    pub expired: i64,
    /// Confirmed wins cancelled since, among the cancelled.
    pub refunded: i64,
}

/// How the service's own machinery keeps up with the sale: the outbox relay, the dead letters,
/// the stats consumer. An admin's to see (it tells an outsider how loaded the service is and
/// what fails). `None`: could not be read this time.
#[derive(Debug, Clone, PartialEq)]
pub struct Operations {
    pub relay_lag_ms: Option<i64>,
    pub dead_events: Option<i64>,
    /// Wins committed that the stats consumer has not applied yet.
    pub consumer_lag_events: Option<i64>,
    pub consumer_lag_ms: Option<i64>,
    /// A bucketed campaign's balance (docs/design.md §21): the pool, and each bucket's row beside
    /// its gate.
    pub buckets: Option<Balance>,
}

impl Snapshot {
    /// `now` as a snapshot, with its rates since `before` (none for the first reading).
    pub fn new(now: &Reading, before: Option<&Reading>) -> Self {
        let c = &now.campaign;
        let used = c.total_stock - c.remaining_stock;
        let seconds = before
            .map(|b| (now.at - b.at).num_milliseconds() as f64 / 1_000.0)
            .filter(|s| *s > 0.0);
        let rate = |now_count: i64, before_count: i64| match seconds {
            Some(s) => (now_count - before_count).max(0) as f64 / s,
            None => 0.0,
        };
        let refused_per_second = now
            .refusals
            .by_reason
            .iter()
            .map(|(reason, n)| {
                let was = before
                    .and_then(|b| b.refusals.by_reason.get(reason))
                    .copied()
                    .unwrap_or(*n);
                (reason.clone(), rate(*n, was))
            })
            .collect();
        let queue = now.room.map(|room| QueueFigures {
            length: room.waiting,
            admitted_per_second: before
                .and_then(|b| b.room)
                .map_or(0.0, |was| rate(room.admitted, was.admitted)),
            waitlisted: room.waitlisted,
            offers_open: room.offers_open,
            offers_taken: room.offers_taken,
            offers_passed: room.offers_passed,
        });
        Self {
            campaign_id: c.id,
            at: now.at,
            name: c.name.clone(),
            state: c.state(now.at),
            paused: c.paused,
            total_stock: c.total_stock,
            confirmed_stock: (used - now.held.held).max(0),
            held_stock: now.held.held,
            free_stock: c.remaining_stock,
            accepted_count: now.accepted_count,
            wins_per_second: before.map_or(0.0, |b| rate(now.accepted_count, b.accepted_count)),
            refused_count: now.refusals.total,
            refused_by_reason: now.refusals.by_reason.clone(),
            refused_per_second,
            stock_usage_rate: c.stock_usage_rate(),
            holds_expiring_soon: now.held.expiring_soon,
            next_hold_expiry: now.held.next_expiry.map(|t| t.and_utc()),
            outcomes: now.applied.as_ref().map(|a| Outcomes {
                confirmed: a.confirmed_count,
                cancelled: a.cancelled_count,
                expired: a.expired_count,
                refunded: a.refunded_count,
            }),
            queue,
            group: now.group.clone(),
            series: now
                .series
                .iter()
                .map(|p| Slot {
                    at: p.slot.and_utc(),
                    wins: p.wins,
                    refused: p.refused,
                })
                .collect(),
            operations: Operations {
                relay_lag_ms: Some((now.relay_lag_seconds.max(0.0) * 1_000.0).round() as i64),
                dead_events: now.dead_events,
                consumer_lag_events: now
                    .applied
                    .as_ref()
                    .map(|a| (now.accepted_count - a.accepted_count).max(0)),
                consumer_lag_ms: now.applied.as_ref().map(|a| a.lag_ms),
                buckets: now.buckets.clone(),
            },
        }
    }
}
