//! The `Rate limits` settings (docs/design.md §16): token buckets per user and per client IP at
//! the door, shared by every instance through Redis, and which header names the client's IP when
//! a proxy stands in front.
//!
//! Each rate is unset (the default: on for the calls of a campaign with a waiting room, at
//! values an honest client polling once a second never meets; off elsewhere), 0 (off
//! everywhere) or a number (on every public call).

use clap::Args;

use super::values::{header_name, number};

/// A bucket: tokens added per second and the most it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: u32,
    pub burst: u32,
}

/// A user's bucket on a campaign with a waiting room when `RATE_LIMIT_USER_PER_SECOND` is unset.
pub const QUEUED_USER: Limit = Limit {
    per_second: 5,
    burst: 10,
};
/// An IP's bucket on a campaign with a waiting room when `RATE_LIMIT_IP_PER_SECOND` is unset.
pub const QUEUED_IP: Limit = Limit {
    per_second: 50,
    burst: 100,
};

#[derive(Debug, Clone, Default, Args)]
pub struct RateLimitSettings {
    /// Calls per second per user (joins, queue, polls, confirm, cancel, rewards); unset: 5 on campaigns with a waiting room, off elsewhere; 0: off (0–100000)
    #[arg(id = "RATE_LIMIT_USER_PER_SECOND", long = "rate-limit-user-per-second", env,
          value_parser = number::<u32>(0..=100_000))]
    pub user_per_second: Option<u32>,
    /// Burst per user (1–1000000); unset: twice the rate (10 on campaigns with a waiting room)
    #[arg(id = "RATE_LIMIT_USER_BURST", long = "rate-limit-user-burst", env,
          value_parser = number::<u32>(1..=1_000_000))]
    pub user_burst: Option<u32>,
    /// Calls per second per client IP on every public call; unset: 50 on campaigns with a waiting room, off elsewhere; 0: off (0–1000000)
    #[arg(id = "RATE_LIMIT_IP_PER_SECOND", long = "rate-limit-ip-per-second", env,
          value_parser = number::<u32>(0..=1_000_000))]
    pub ip_per_second: Option<u32>,
    /// Burst per client IP (1–10000000); unset: twice the rate (100 on campaigns with a waiting room)
    #[arg(id = "RATE_LIMIT_IP_BURST", long = "rate-limit-ip-burst", env,
          value_parser = number::<u32>(1..=10_000_000))]
    pub ip_burst: Option<u32>,
    /// Header a proxy in front sets to the client's address (e.g. x-forwarded-for: its last address is used); unset: the connection's peer address. Never set it without such a proxy: clients could pick their own IP
    #[arg(id = "TRUSTED_PROXY_HEADER", long = "trusted-proxy-header", env,
          value_parser = header_name)]
    pub trusted_proxy_header: Option<String>,
}

impl RateLimitSettings {
    /// The user's bucket on a call of a campaign with (`queued`) or without a waiting room.
    pub fn user(&self, queued: bool) -> Option<Limit> {
        resolve(self.user_per_second, self.user_burst, queued, QUEUED_USER)
    }

    /// The client IP's bucket, likewise.
    pub fn ip(&self, queued: bool) -> Option<Limit> {
        resolve(self.ip_per_second, self.ip_burst, queued, QUEUED_IP)
    }

    /// Whether the IP limit is configured for every public call (not only queued campaigns').
    pub fn ip_everywhere(&self) -> Option<Limit> {
        self.ip(false)
    }
}

fn resolve(rate: Option<u32>, burst: Option<u32>, queued: bool, default: Limit) -> Option<Limit> {
    match rate {
        Some(0) => None,
        Some(per_second) => Some(Limit {
            per_second,
            burst: burst.unwrap_or(per_second.saturating_mul(2)),
        }),
        None if queued => Some(Limit {
            burst: burst.unwrap_or(default.burst),
            ..default
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_limits_apply_to_queued_campaigns_only_and_zero_turns_them_off() {
        let unset = RateLimitSettings::default();
        assert_eq!(unset.user(false), None);
        assert_eq!(unset.user(true), Some(QUEUED_USER));
        assert_eq!(unset.ip(true), Some(QUEUED_IP));
        let off = RateLimitSettings {
            user_per_second: Some(0),
            ..RateLimitSettings::default()
        };
        assert_eq!(off.user(true), None);
        let set = RateLimitSettings {
            ip_per_second: Some(7),
            ..RateLimitSettings::default()
        };
        let seven = Limit {
            per_second: 7,
            burst: 14,
        };
        assert_eq!(set.ip(false), Some(seven));
        assert_eq!(set.ip(true), Some(seven));
    }
}
