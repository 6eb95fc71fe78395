//! Campaigns: the model with its live state, the MySQL repository, the service the API holds,
//! the live controls (stock, pause, resume, close), and the in-process cache the participation
//! path reads instead of MySQL.

mod cache;
pub mod control;
pub mod create_key;
pub mod repo;
mod service;

use chrono::{DateTime, Utc};

pub use cache::CampaignCache;
pub use service::{CampaignService, CreateError, Creation};

pub use crate::events::contract::MAX_TOTAL_STOCK;

/// A campaign as stored in MySQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    pub total_stock: i64,
    pub remaining_stock: i64,
    pub per_user_limit: i32,
    /// Points per unit won, granted by the rewards consumer (carried in the event).
    pub reward_points: i64,
    /// How long a win stays held for its confirmation; 0: a win is final at once.
    pub confirm_within_seconds: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Paused by an admin: joins are refused until a resume (docs/design.md §15).
    pub paused: bool,
    /// Closed early by an admin: the campaign has ended, whatever `ends_at` says.
    pub closed_at: Option<DateTime<Utc>>,
    /// Live controls applied so far; the last one's number.
    pub control_seq: i64,
    /// How joins are let in: by the gate alone, or through the waiting room (docs/design.md §16).
    pub admission: Admission,
    /// Users the waiting room admits per second (0 for [`Admission::Open`]).
    pub admission_rate_per_second: i32,
    /// How many buckets its stock is split into; 1: one Redis slot and one MySQL row, as every
    /// campaign had before buckets (docs/design.md §21).
    pub buckets: u16,
    /// The group it joined at its creation (docs/design.md §22): its keys take the group's hash
    /// tag, and a user's units across the group's campaigns stay within the group's limit.
    pub group_id: Option<i64>,
    /// How long an offer to a waitlisted user stays valid, in seconds; 0: no waitlist
    /// (docs/design.md §22).
    pub offer_seconds: i32,
    /// Its own choice of the bot check at its door (docs/design.md §16); `None`: the service's
    /// default. As read when the campaign was: a door asks `bot_check::choice`, which reads it
    /// again every second.
    pub bot_check: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a campaign lets joins in (docs/design.md §16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Anyone may join; the gate decides (first come, first served).
    Open,
    /// Users queue first and are admitted in arrival order, at the campaign's rate.
    Queue,
    /// Users who queue before `starts_at` get a random place; later arrivals queue behind them.
    Raffle,
}

impl Admission {
    /// As stored in `campaign.admission` and written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Queue => "QUEUE",
            Self::Raffle => "RAFFLE",
        }
    }

    /// The stored text; anything unknown reads as `OPEN` (a newer version's value).
    pub fn parse(text: &str) -> Self {
        match text {
            "QUEUE" => Self::Queue,
            "RAFFLE" => Self::Raffle,
            _ => Self::Open,
        }
    }

    /// Whether joins need an admission token from the waiting room.
    pub fn queued(self) -> bool {
        self != Self::Open
    }
}

/// Most users a waiting room may admit per second.
pub const MAX_ADMISSION_RATE: i32 = 10_000;

/// Where `now` falls relative to a campaign's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    NotOpen,
    Open,
    Ended,
}

/// The live state reported by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    Scheduled,
    Open,
    Paused,
    SoldOut,
    Ended,
}

impl Campaign {
    /// The gate state of bucket `bucket` (0 for an unbucketed campaign).
    pub fn slot(&self, bucket: u16) -> crate::gate::Slot {
        crate::gate::Slot::new(self.id, self.group_id, self.buckets, bucket)
    }

    /// Where its waiting room's keys live (docs/design.md §16): with its gate state when it has
    /// one (in its group's slot when grouped), in the campaign's own slot `{c:<id>}` when it is
    /// bucketed (§21: the room copies an admission into the user's home bucket).
    pub fn room_slot(&self) -> crate::gate::Slot {
        match self.buckets {
            0 | 1 => self.slot(0),
            _ => crate::gate::Slot::solo(self.id),
        }
    }

    /// Every gate state of the campaign, in bucket order.
    pub fn slots(&self) -> impl Iterator<Item = crate::gate::Slot> {
        crate::gate::Slot::all(self.id, self.group_id, self.buckets)
    }

    /// The window is half-open: `[starts_at, ends_at)`; a campaign closed early has ended.
    pub fn window(&self, now: DateTime<Utc>) -> Window {
        if self.closed_at.is_some() {
            Window::Ended
        } else if now < self.starts_at {
            Window::NotOpen
        } else if self.ends_at.is_some_and(|end| now >= end) {
            Window::Ended
        } else {
            Window::Open
        }
    }

    /// Held and confirmed units over the total (what is no longer on sale), 0 to 1; 0 for a
    /// total withdrawn to nothing.
    pub fn stock_usage_rate(&self) -> f64 {
        match self.total_stock {
            t if t > 0 => (t - self.remaining_stock).clamp(0, t) as f64 / t as f64,
            _ => 0.0,
        }
    }

    pub fn state(&self, now: DateTime<Utc>) -> CampaignState {
        match self.window(now) {
            Window::Ended => CampaignState::Ended,
            Window::NotOpen => CampaignState::Scheduled,
            Window::Open if self.paused => CampaignState::Paused,
            Window::Open if self.remaining_stock == 0 => CampaignState::SoldOut,
            Window::Open => CampaignState::Open,
        }
    }
}

/// Whether MySQL's `DATETIME` can hold `t`: years 1000 to 9999. Outside that range the binary
/// protocol does not fail: MariaDB stores `0000-00-00 00:00:00` (NULL in a nullable column), a
/// value that then cannot be read back. Check the value as it will be written, after
/// [`crate::db::time::precision`].
pub fn storable(t: DateTime<Utc>) -> bool {
    use chrono::Datelike;
    (1000..=9999).contains(&t.year())
}

/// What tells a campaign's Redis keys from those of an earlier campaign with the same id (a
/// database rebuilt from scratch gives ids again).
pub fn gate_epoch(campaign: &Campaign) -> i64 {
    campaign.created_at.timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn campaign(start: i64, end: Option<i64>, remaining: i64) -> Campaign {
        let t0 = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        Campaign {
            id: 1,
            name: "c".into(),
            total_stock: 10,
            remaining_stock: remaining,
            per_user_limit: 1,
            reward_points: 0,
            confirm_within_seconds: 0,
            starts_at: t0 + Duration::seconds(start),
            ends_at: end.map(|e| t0 + Duration::seconds(e)),
            paused: false,
            closed_at: None,
            control_seq: 0,
            admission: Admission::Open,
            admission_rate_per_second: 0,
            buckets: 1,
            group_id: None,
            offer_seconds: 0,
            bot_check: None,
            created_at: t0,
            updated_at: t0,
        }
    }

    #[test]
    fn usage_is_the_share_of_the_total_taken() {
        let with = |total: i64, remaining: i64| Campaign {
            total_stock: total,
            ..campaign(0, None, remaining)
        };
        assert_eq!(with(1_000, 1_000).stock_usage_rate(), 0.0);
        assert_eq!(with(1_000, 250).stock_usage_rate(), 0.75);
        assert_eq!(with(1_000, 0).stock_usage_rate(), 1.0);
        assert_eq!(with(0, 0).stock_usage_rate(), 0.0);
    }

    #[test]
    fn window_is_half_open() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let c = campaign(0, Some(10), 5);
        assert_eq!(c.window(t0 - Duration::milliseconds(1)), Window::NotOpen);
        assert_eq!(c.window(t0), Window::Open);
        assert_eq!(c.window(t0 + Duration::seconds(10)), Window::Ended);
        assert_eq!(c.state(t0 + Duration::seconds(10)), CampaignState::Ended);
        assert_eq!(campaign(0, None, 0).state(t0), CampaignState::SoldOut);
        assert_eq!(campaign(5, None, 0).state(t0), CampaignState::Scheduled);
    }

    #[test]
    fn a_closed_campaign_has_ended_and_a_paused_one_says_so_while_open() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let paused = Campaign {
            paused: true,
            ..campaign(0, None, 5)
        };
        assert_eq!(paused.state(t0), CampaignState::Paused);
        assert_eq!(
            Campaign {
                paused: true,
                ..campaign(5, None, 5)
            }
            .state(t0),
            CampaignState::Scheduled
        );
        let closed = Campaign {
            closed_at: Some(t0),
            ..paused
        };
        assert_eq!(closed.window(t0), Window::Ended);
        assert_eq!(closed.state(t0), CampaignState::Ended);
        let closed_before_opening = Campaign {
            closed_at: Some(t0),
            ..campaign(5, None, 5)
        };
        assert_eq!(closed_before_opening.state(t0), CampaignState::Ended);
    }

    #[test]
    fn a_leap_second_at_the_end_of_9999_is_not_storable_once_truncated() {
        let last = "9999-12-31T23:59:59.999999Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        assert!(storable(crate::db::time::precision(last)));
        let leap = "9999-12-31T23:59:60Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        assert!(storable(leap), "chrono keeps a leap second in its minute");
        assert!(
            !storable(crate::db::time::precision(leap)),
            "truncation carries it into 10000"
        );
        let first = "1000-01-01T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("valid");
        assert!(storable(first));
        assert!(!storable(first - Duration::microseconds(1)));
    }
}
