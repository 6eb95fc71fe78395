//! The sequential model of one campaign, written from the contract (design §2.1, §11, §14, §15):
//! the state a campaign's committed events lead to, and which steps are legal.
//!
//! The model holds units in three piles, `free + held + confirmed = total`, each user's win and
//! its state (`HELD → CONFIRMED | CANCELLED | EXPIRED`, `CONFIRMED → CANCELLED`), whether the
//! campaign is paused or closed, the last control's number, and what the consumers should have
//! made of the events so far (the stats figures, the points per user). [`CampaignModel::apply`]
//! takes one event: a legal step changes the state and answers what it moved; an illegal one is
//! an [`Illegal`] and leaves the state as it was, so one bad event does not hide the next.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::event::{CancelReason, ControlKind, Envelope, Event, LiveStatus};

pub mod admission;
pub mod bucket;
mod illegal;
mod win;

pub use illegal::Illegal;
pub use win::{Win, WinState};

/// Tolerances of the clock comparisons. Both compare timestamps the database wrote.
#[derive(Debug, Clone, Copy)]
pub struct ModelParams {
    /// An expiry's `occurredAt` may precede its hold's deadline by this much, and a confirm's
    /// follow it by this much (the deadline is read by `NOW()`, `occurredAt` a moment apart).
    pub deadline_tolerance: Duration,
    /// A win may commit this long after a pause or close (§15: a join the gate let through just
    /// before may still commit after it; documented bound 1 s).
    pub control_grace: Duration,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            deadline_tolerance: Duration::milliseconds(100),
            control_grace: Duration::seconds(1),
        }
    }
}

/// What the stats consumer should hold for the campaign (design §11).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsFigures {
    pub accepted_count: i64,
    pub accepted_quantity: i64,
    pub confirmed_count: i64,
    pub cancelled_count: i64,
    pub expired_count: i64,
    pub active_quantity: i64,
    pub stock_added: i64,
    pub stock_withdrawn: i64,
    pub controls_applied: i64,
}

/// What a legal step moved, for the consumers' side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Points granted to (positive) or taken from (negative) the event's user.
    pub points: i64,
}

/// The state of one campaign after a prefix of its committed order.
#[derive(Debug, Clone)]
pub struct CampaignModel {
    params: ModelParams,
    reward_points: i64,
    pub total: i64,
    pub free: i64,
    pub held: i64,
    pub confirmed: i64,
    pub paused: bool,
    pub closed: bool,
    paused_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    pub last_control: i64,
    /// Whether a control's `remainingStock` must equal the free units (see
    /// [`CampaignModel::with_buckets`]).
    remaining_in_order: bool,
    wins: HashMap<i64, Win>,
    by_user: HashMap<i64, i64>,
    pub stats: StatsFigures,
}

impl CampaignModel {
    /// A campaign as created: `stock` units free, nothing won, open.
    pub fn new(stock: i64, reward_points: i64, params: ModelParams) -> Self {
        Self {
            params,
            reward_points,
            total: stock,
            free: stock,
            held: 0,
            confirmed: 0,
            paused: false,
            closed: false,
            paused_at: None,
            closed_at: None,
            last_control: 0,
            remaining_in_order: true,
            wins: HashMap::new(),
            by_user: HashMap::new(),
            stats: StatsFigures::default(),
        }
    }

    /// A bucketed campaign (§21): a control's `remainingStock` is the pool and every bucket's
    /// row as the control read them, and no order across the buckets' keys says which wins and
    /// returns of other buckets had committed by then. The control's number and total are
    /// still held to the order (controls share one key); its remaining only to `0..=total`.
    pub fn with_buckets(mut self) -> Self {
        self.remaining_in_order = false;
        self
    }

    pub fn win(&self, participation: i64) -> Option<&Win> {
        self.wins.get(&participation)
    }

    pub fn wins(&self) -> impl Iterator<Item = &Win> {
        self.wins.values()
    }

    pub fn user_win(&self, user: i64) -> Option<&Win> {
        self.by_user.get(&user).and_then(|p| self.wins.get(p))
    }

    /// Applies one event; on `Err` the state is unchanged.
    pub fn apply(&mut self, e: &Envelope) -> Result<Applied, Illegal> {
        match e.event {
            Event::Accepted {
                participation,
                user,
                quantity,
                status,
                hold_expires_at,
                reward_points,
                ..
            } => {
                self.check_points(reward_points)?;
                self.accept(
                    e.occurred_at,
                    participation,
                    user,
                    quantity,
                    status,
                    hold_expires_at,
                )?;
                let final_now = status == LiveStatus::Confirmed;
                Ok(Applied {
                    points: if final_now {
                        reward_points.saturating_mul(quantity)
                    } else {
                        0
                    },
                })
            }
            Event::Confirmed {
                participation,
                user,
                quantity,
                reward_points,
            } => {
                self.check_points(reward_points)?;
                self.confirm(e.occurred_at, participation, user, quantity)?;
                Ok(Applied {
                    points: reward_points.saturating_mul(quantity),
                })
            }
            Event::Cancelled {
                participation,
                user,
                quantity,
                reason,
                previous,
                reward_points,
            } => {
                self.check_points(reward_points)?;
                self.cancel(
                    e.occurred_at,
                    participation,
                    user,
                    quantity,
                    reason,
                    previous,
                )?;
                let refund = previous == LiveStatus::Confirmed;
                Ok(Applied {
                    points: if refund {
                        -reward_points.saturating_mul(quantity)
                    } else {
                        0
                    },
                })
            }
            Event::Control {
                kind,
                seq,
                total_stock,
                remaining_stock,
            } => {
                self.control(e.occurred_at, kind, seq, total_stock, remaining_stock)?;
                Ok(Applied::default())
            }
        }
    }

    fn check_points(&self, said: i64) -> Result<(), Illegal> {
        // Events written before rewardPoints existed read as 0 (§4).
        if said != self.reward_points && said != 0 {
            return Err(Illegal::RewardPoints {
                said,
                campaign: self.reward_points,
            });
        }
        Ok(())
    }

    fn accept(
        &mut self,
        at: DateTime<Utc>,
        participation: i64,
        user: i64,
        quantity: i64,
        status: LiveStatus,
        hold_expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), Illegal> {
        if self.wins.contains_key(&participation) {
            return Err(Illegal::ParticipationReused(participation));
        }
        if let Some(&first) = self.by_user.get(&user) {
            return Err(Illegal::DoubleWin {
                user,
                first,
                second: participation,
            });
        }
        if quantity < 1 {
            return Err(Illegal::BadQuantity(quantity));
        }
        if quantity > self.free {
            return Err(Illegal::Oversell {
                asked: quantity,
                free: self.free,
            });
        }
        if status == LiveStatus::Held && hold_expires_at.is_none() {
            return Err(Illegal::HeldWithoutDeadline);
        }
        let grace = self.params.control_grace;
        for (what, since) in [("closed", self.closed_at), ("paused", self.paused_at)] {
            let active = if what == "closed" {
                self.closed
            } else {
                self.paused
            };
            if let (true, Some(since)) = (active, since) {
                if at > since + grace {
                    return Err(Illegal::WinAfterControl {
                        what,
                        late_ms: (at - since).num_milliseconds(),
                        grace_ms: grace.num_milliseconds(),
                    });
                }
            }
        }
        self.free -= quantity;
        match status {
            LiveStatus::Held => self.held += quantity,
            LiveStatus::Confirmed => {
                self.confirmed += quantity;
                self.stats.confirmed_count += 1;
            }
        }
        self.stats.accepted_count += 1;
        self.stats.accepted_quantity += quantity;
        self.stats.active_quantity += quantity;
        self.by_user.insert(user, participation);
        self.wins.insert(
            participation,
            Win {
                participation,
                user,
                quantity,
                state: WinState::live(status),
                hold_expires_at,
                cancel_reason: None,
            },
        );
        Ok(())
    }

    /// The win an event is about, checked against what the event says of it.
    fn known(&self, participation: i64, user: i64, quantity: i64) -> Result<&Win, Illegal> {
        let win = self
            .wins
            .get(&participation)
            .ok_or(Illegal::UnknownParticipation(participation))?;
        let field = if win.user != user {
            "userId"
        } else if win.quantity != quantity {
            "quantity"
        } else {
            return Ok(win);
        };
        Err(Illegal::Disagrees {
            participation,
            field,
        })
    }

    fn confirm(
        &mut self,
        at: DateTime<Utc>,
        participation: i64,
        user: i64,
        quantity: i64,
    ) -> Result<(), Illegal> {
        let win = self.known(participation, user, quantity)?;
        if win.state != WinState::Held {
            return Err(Illegal::ConfirmFrom(win.state.name()));
        }
        if let Some(deadline) = win.hold_expires_at {
            if at > deadline + self.params.deadline_tolerance {
                return Err(Illegal::ConfirmPastDeadline {
                    late_ms: (at - deadline).num_milliseconds(),
                });
            }
        }
        self.held -= quantity;
        self.confirmed += quantity;
        self.stats.confirmed_count += 1;
        if let Some(win) = self.wins.get_mut(&participation) {
            win.state = WinState::Confirmed;
        }
        Ok(())
    }

    fn cancel(
        &mut self,
        at: DateTime<Utc>,
        participation: i64,
        user: i64,
        quantity: i64,
        reason: CancelReason,
        previous: LiveStatus,
    ) -> Result<(), Illegal> {
        let win = self.known(participation, user, quantity)?;
        let was = win.state;
        if matches!(was, WinState::Cancelled | WinState::Expired) {
            return Err(Illegal::ReturnedTwice(participation, was.name()));
        }
        if WinState::live(previous) != was {
            return Err(Illegal::PreviousStatus {
                said: WinState::live(previous).name(),
                was: was.name(),
            });
        }
        // Only an admin cancels a confirmed win (a refund); only a hold expires.
        if was == WinState::Confirmed && reason != CancelReason::Admin {
            return Err(Illegal::CancelFrom {
                reason: reason.name(),
                state: was.name(),
            });
        }
        if reason == CancelReason::Expired {
            if let Some(deadline) = win.hold_expires_at {
                if at + self.params.deadline_tolerance < deadline {
                    return Err(Illegal::ExpiredEarly {
                        early_ms: (deadline - at).num_milliseconds(),
                    });
                }
            }
        }
        match was {
            WinState::Held => self.held -= quantity,
            _ => self.confirmed -= quantity,
        }
        self.free += quantity;
        self.stats.active_quantity -= quantity;
        match reason {
            CancelReason::Expired => self.stats.expired_count += 1,
            _ => self.stats.cancelled_count += 1,
        }
        if let Some(win) = self.wins.get_mut(&participation) {
            win.state = match reason {
                CancelReason::Expired => WinState::Expired,
                _ => WinState::Cancelled,
            };
            win.cancel_reason = Some(reason);
        }
        Ok(())
    }

    fn control(
        &mut self,
        at: DateTime<Utc>,
        kind: ControlKind,
        seq: i64,
        said_total: i64,
        said_free: i64,
    ) -> Result<(), Illegal> {
        if seq != self.last_control + 1 {
            return Err(Illegal::ControlSeq {
                seq,
                last: self.last_control,
            });
        }
        if self.closed {
            return Err(Illegal::ControlAfterClose);
        }
        let delta = match kind {
            ControlKind::Stock(0) => return Err(Illegal::ZeroDelta),
            ControlKind::Stock(d) if d < 0 && -d > self.free => {
                return Err(Illegal::WithdrawInUse {
                    asked: -d,
                    free: self.free,
                })
            }
            ControlKind::Stock(d) => d,
            ControlKind::Pause if self.paused => return Err(Illegal::NoOpControl("pause")),
            ControlKind::Resume if !self.paused => return Err(Illegal::NoOpControl("resume")),
            _ => 0,
        };
        let (total, free) = (self.total + delta, self.free + delta);
        let free_differs = if self.remaining_in_order {
            said_free != free
        } else {
            !(0..=said_total).contains(&said_free)
        };
        if said_total != total || free_differs {
            return Err(Illegal::ControlFigures {
                said_total,
                said_free,
                total,
                free,
            });
        }
        self.total = total;
        self.free = free;
        self.last_control = seq;
        self.stats.controls_applied += 1;
        match kind {
            ControlKind::Stock(d) if d > 0 => self.stats.stock_added += d,
            ControlKind::Stock(d) => self.stats.stock_withdrawn += -d,
            ControlKind::Pause => {
                self.paused = true;
                self.paused_at = Some(at);
            }
            ControlKind::Resume => self.paused = false,
            ControlKind::Close => {
                self.closed = true;
                self.closed_at = Some(at);
            }
        }
        Ok(())
    }
}
